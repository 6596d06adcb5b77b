#!/usr/bin/env bash
# Point every place that names the repository at a fork, in one go: the "Open in Colab" badges
# (README and notebooks), the notebooks' set-up cell, colab/setup.sh's clone URL and
# pyproject.toml's Repository. Commit the result to the fork, and its badges open its notebooks.
#
#   bash colab/use_fork.sh OWNER/NAME
set -euo pipefail
cd "$(dirname "$0")/.."
new="${1:?usage: bash colab/use_fork.sh OWNER/NAME}"
[[ "$new" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || { echo "use_fork.sh: not OWNER/NAME: $new" >&2; exit 2; }
old="$(sed -n 's|^Repository = "https://github.com/\(.*\)"$|\1|p' pyproject.toml)"
[[ -n "$old" ]] || { echo "use_fork.sh: no Repository in pyproject.toml" >&2; exit 1; }
for file in pyproject.toml README.md colab/setup.sh notebooks/*.ipynb; do
    sed -i "s|$old|$new|g" "$file"
done
echo "the repository is now $new (was $old)"
