import subprocess
import sys

import pytest

from colorful_world.nets.checkpoint import list_checkpoints, load_checkpoint

pytestmark = pytest.mark.slow  # training under torchrun: left out of the quick subset


def test_two_processes_train_under_torchrun_and_save_one_checkpoint(synthetic_folder, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "colorful_world", "train", "--data", str(synthetic_folder), "--out", str(out),
         "--cache-dir", str(tmp_path / "cache"), "--epochs", "2", "--l1-epochs", "1", "--image-size", "32",
         "--batch-size", "8", "--arch", "unet", "--base-channels", "8", "--depth", "3", "--disc-channels", "8",
         "--val-fraction", "0.2", "--min-colourfulness", "1", "--save-every", "1000", "--keep-checkpoints", "1", "--gan-mode", "lsgan", "--data-on-device",
         "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = list_checkpoints(out)
    assert len(checkpoints) == 1
    state = load_checkpoint(checkpoints[0])
    assert state["step"] == 2 * (160 // (8 * 2))  # each step consumes a batch per process
    assert (out / "generator.safetensors").exists()
    assert result.stdout.count("generator:") == 1  # only rank 0 speaks
