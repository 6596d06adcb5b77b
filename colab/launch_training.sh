#!/usr/bin/env bash
# Train a colorizer with one command: notebooks/train.ipynb run by papermill, the very notebook a
# Colab user runs by hand. See usage() below, or run it with --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash colab/launch_training.sh [--config FILE.yaml] [--NAME VALUE ...]

Installs what is missing (colab/setup.sh), then runs notebooks/train.ipynb with papermill and
writes the executed notebook next to the run's checkpoints, as RUN/train.ipynb.

Parameters (the notebook's; a YAML file may give any of them by name, and flags win over it):
  --data lfw|FOLDER|ARCHIVE  photos to learn from: LFW (downloaded once), a folder, a .tgz/.zip
  --image-size N             side the network trains at (128)
  --epochs N                 (20)
  --batch-size N             (16)
  --run-name NAME            the run's folder name (faces)
  --out DIR                  the run folder itself; by default NAME in Drive's colorful_world/runs
                             on Colab, in runs/ elsewhere
  --fresh                    start a new run even where one exists (the old one is moved aside);
                             by default the same command continues the run
  --config FILE.yaml         e.g. "epochs: 5\nimage_size: 128\ngan_mode: lsgan"
  --NAME VALUE               any other `colorful-world train` option, e.g. --gan-mode lsgan
                             (all of them: python3 -m colorful_world train --help)

Where it runs:
  Colab          mount Drive first, so checkpoints outlive the session:
                 from google.colab import drive; drive.mount("/content/drive")
  Linux + GPUs   one process per visible GPU under torchrun when there are several
  CPU            fine for a smoke run: --image-size 32 --epochs 1 --max-images 64

After a disconnect or a kill, run the same command again: it continues from the last checkpoint.

Examples:
  bash colab/launch_training.sh --data lfw --out runs/faces
  bash colab/launch_training.sh --config big.yaml --epochs 5 --image-size 256
EOF
}

case "${1:-}" in -h | --help) usage; exit 0 ;; esac

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

if on_colab && [[ ! -d /content/drive/MyDrive ]]; then
    echo "warning: Google Drive is not mounted, so the run stays on this machine and a disconnect" \
         "loses it. In a cell: from google.colab import drive; drive.mount('/content/drive')" >&2
fi

# Several GPUs: this same script once per GPU under torchrun, each process running the notebook.
gpus="$(python3 -c 'import torch; print(torch.cuda.device_count())')"
if [[ -z "${LOCAL_RANK:-}" ]] && ((gpus > 1)); then
    exec torchrun --standalone --nproc_per_node "$gpus" --no-python bash "$0" "$@"
fi

exec python3 -m colorful_world.apps.launch "$COLORFUL_WORLD_HOME/notebooks/train.ipynb" "$@"
