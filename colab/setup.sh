#!/usr/bin/env bash
# Get colorful-world ready: on Colab, clone it into /content/colorful-world (or pull it there);
# anywhere, install what it needs, keeping the machine's own torch and torchvision.
#
#   curl -fsSL https://raw.githubusercontent.com/colorful-world/colorful-world/main/colab/setup.sh | bash
#   bash colab/setup.sh              # from a checkout
#
# The other helpers source it; it leaves the checkout in use in $COLORFUL_WORLD_HOME.
# COLORFUL_WORLD_REPO names another repository to clone on Colab (a fork, say).
set -euo pipefail

COLORFUL_WORLD_REPO="${COLORFUL_WORLD_REPO:-https://github.com/colorful-world/colorful-world}"
COLAB_CHECKOUT=/content/colorful-world

# The environment, not `import google.colab`: that import fails in a subprocess such as this one.
on_colab() { [[ -n "${COLAB_RELEASE_TAG:-}" && -d /content ]]; }

# The checkout holding this script; none when it is piped into bash (then Colab's own one).
checkout() {
    local script="${BASH_SOURCE[0]:-}"
    if [[ -f "$script" && -f "$(dirname "$script")/../pyproject.toml" ]]; then
        (cd "$(dirname "$script")/.." && pwd)
    else
        echo "$COLAB_CHECKOUT"
    fi
}

clone_or_pull() {
    if [[ -d "$COLAB_CHECKOUT/.git" ]]; then
        git -C "$COLAB_CHECKOUT" pull -q --ff-only \
            || echo "setup: could not update $COLAB_CHECKOUT, using it as it is" >&2
    else
        git clone -q --depth 1 "$COLORFUL_WORLD_REPO" "$COLAB_CHECKOUT"
    fi
}

# Requirements are lower bounds, and the installed torch/torchvision are pinned as constraints,
# so pip never swaps Colab's CUDA build for another one.
# pip's output is kept and shown when it fails: its reason (a conflict, no network) is in it.
install() {
    local pins log
    pins="$(mktemp)"
    log="$(mktemp)"
    python3 "$COLORFUL_WORLD_HOME/colab/installed_pins.py" >"$pins"
    if ! python3 -m pip install --progress-bar off -r "$COLORFUL_WORLD_HOME/requirements.txt" -c "$pins" >"$log" 2>&1 \
        || ! python3 -m pip install --progress-bar off --no-deps -e "$COLORFUL_WORLD_HOME" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "setup: installing the requirements failed (pip's last lines above; constraints: $(tr '\n' ' ' <"$pins"))" >&2
        rm -f "$pins" "$log"
        exit 1
    fi
    rm -f "$pins" "$log"
}

COLORFUL_WORLD_HOME="$(checkout)"
export COLORFUL_WORLD_HOME
if on_colab && [[ "$COLORFUL_WORLD_HOME" == "$COLAB_CHECKOUT" ]]; then
    clone_or_pull
fi
# On Colab always (a pull may bring new requirements); elsewhere only what is missing (a light
# install for colorizing has no torch: training adds it).
if on_colab || ! python3 -c "import colorful_world, torch, torchvision, kornia, papermill, ipykernel, ipywidgets, yaml" 2>/dev/null; then
    install
fi
