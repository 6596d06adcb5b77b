#!/usr/bin/env bash
# Train a colorizer with one command: notebooks/train.ipynb run by papermill, the very notebook a
# Colab user runs by hand. Run it with --help for every parameter.
set -euo pipefail

# --help needs only Python, before anything is installed: the text comes from the package itself,
# every training setting's help from the one place it is written (colorful_world/core/config.py).
case "${1:-}" in
    -h | --help)
        root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
        PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m colorful_world.apps.launch --help ;;
esac

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
