#!/usr/bin/env bash
# Install this checkout of colorful-world and what it needs, keeping the machine's own torch
# (requirements are lower bounds, which Colab's preinstalled torch/torchvision satisfy).
# Sourced by the other helpers; run it alone to set up a notebook session.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 -c "import colorful_world" 2>/dev/null || python3 -m pip install -q -e "$repo"
