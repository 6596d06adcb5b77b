#!/usr/bin/env bash
# Make LFW ready (download, verify, extract) and print the image folder on the last line.
# Every argument goes to `colorful-world download-lfw`; see `python3 -m colorful_world download-lfw --help`.
#
#   bash colab/download_lfw.sh                                   # LFW from the figshare mirror
#   bash colab/download_lfw.sh --variant funneled
#   bash colab/download_lfw.sh --archive lfw-deepfunneled.tgz    # a copy you already have
#   bash colab/download_lfw.sh --url URL --sha256 HEX --dest /content/data
#   bash colab/download_lfw.sh --gdrive-id https://drive.google.com/file/d/ID/view
#
# On Colab the archive is cached in Drive (colorful_world/data: mount Drive first, or it is
# fetched again every session) and extracted to /content/data; elsewhere ~/.cache/colorful_world.
# It does not change directory, so relative paths stay yours.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec python3 -m colorful_world download-lfw "$@"
