"""colab/setup.sh keeps the torch that is installed: its pins are ones pip can satisfy."""
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _pip_accepts(pins: str, tmp_path) -> subprocess.CompletedProcess:
    """pip's resolver, offline, on the train requirements under `pins`: satisfied by what is installed, or not."""
    constraints = tmp_path / "pins.txt"
    constraints.write_text(pins)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "torch>=2.1",
                           "torchvision>=0.16", "-c", str(constraints)], capture_output=True, text=True)


def test_the_pins_are_the_installed_distributions_which_pip_can_satisfy(tmp_path):
    pins = subprocess.run([sys.executable, str(ROOT / "colab" / "installed_pins.py")], capture_output=True,
                          text=True, check=True).stdout
    assert pins.startswith("torch==") and "torchvision==" in pins
    accepted = _pip_accepts(pins, tmp_path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    if "+" in torch.__version__ and "+" not in pins:  # PyPI's wheels: a local build in __version__ alone
        refused = _pip_accepts(f"torch=={torch.__version__}\n", tmp_path)  # the pin setup.sh used to write
        assert refused.returncode != 0


def test_setup_shows_pip_s_reason_when_the_install_fails(tmp_path):
    """setup.sh run with a pip whose resolver refuses: the cause reaches the user, and it stops."""
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(f"""#!/usr/bin/env bash
if [[ "$1 $2" == "-m pip" ]]; then
    echo "ERROR: Cannot install torch>=2.1 because these package versions have conflicting dependencies."
    echo "The conflict is caused by: The user requested (constraint) torch==9.9"
    exit 1
fi
[[ "$1" == "-c" ]] && exit 1  # nothing importable: setup installs
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(ROOT / "colab" / "setup.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "The conflict is caused by" in result.stderr and "setup: installing the requirements failed" in result.stderr
