"""colab/launch_training.sh on the CPU: a smoke run on synthetic photos, then the same command with
one more epoch, which continues the run the way a re-run after a Colab disconnect does."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from colorful_world.nets.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "colab" / "launch_training.sh"
TINY_YAML = """\
image_size: 32
batch_size: 8
options: {arch: unet, l1_epochs: 1, base_channels: 8, depth: 3, disc_channels: 8}
lr: 2e-4            # YAML reads this as text; the launcher makes it a number again
"""


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # This interpreter's folder first, so `python3` and `torchrun` are those of the test environment.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("COLAB_RELEASE_TAG", None)
    return subprocess.run(["bash", str(LAUNCHER), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_help_documents_the_launcher(tmp_path):
    result = launch("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("--config", "--out", "--fresh", "torchrun", "Drive", "papermill"):
        assert word in result.stdout


def test_unknown_arguments_are_refused(tmp_path):
    result = launch("--epochz", "3", cwd=tmp_path)
    assert result.returncode != 0 and "unknown argument(s) --epochz 3" in result.stderr


def test_cpu_smoke_run_writes_the_executed_notebook_by_the_checkpoints_and_resumes(tmp_path, synthetic_folder):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    run = tmp_path / "runs" / "smoke"
    common = ("--data", str(synthetic_folder), "--run-name", "smoke", "--config", "tiny.yaml",
              "--max-images", "40", "--val-fraction", "0.2", "--min-colourfulness", "1",
              "--cache-dir", str(tmp_path / "cache"))

    first = launch(*common, "--epochs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "a new run" in first.stdout
    executed = nbformat.read(run / "train.ipynb", as_version=4)
    assert not [out for cell in executed.cells if cell.cell_type == "code" for out in cell.outputs
                if out.output_type == "error"]
    assert (run / "generator.safetensors").is_file()
    steps_per_epoch = load_checkpoint(list_checkpoints(run)[-1])["step"]

    second = launch(*common, "--epochs", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "continuing the run" in second.stdout and "resumed from" in second.stdout
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 2 * steps_per_epoch
