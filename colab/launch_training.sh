#!/usr/bin/env bash
# Install colorful-world (keeping the machine's own torch) and train a colorizer.
# Every argument goes to `colorful-world train`; see `colorful-world train --help`.
#
#   bash colab/launch_training.sh --data lfw                  # download LFW, train with the defaults
#   bash colab/launch_training.sh --data photos.tgz --epochs 5
#   bash colab/launch_training.sh --resume                    # continue the run after a disconnect
#
# On Colab the run folder defaults to Drive (colorful_world/runs/faces), so checkpoints outlive
# the session; the photos are decoded once onto the local disk, never read from Drive one by one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec python3 -m colorful_world train "$@"
