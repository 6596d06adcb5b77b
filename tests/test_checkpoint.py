import os
import subprocess
import sys

import pytest
import torch

from colorful_world.nets import checkpoint as ckpt
from colorful_world.nets import model_file


def test_interrupted_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, ckpt.checkpoint_path(tmp_path, 1))

    def killed(*args):  # the process dies after the temporary file is written, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({"step": 2, "w": torch.zeros(3)}, ckpt.checkpoint_path(tmp_path, 2))
    monkeypatch.undo()

    assert not list((tmp_path / "checkpoints").glob("*.tmp"))  # a failed save cleans up after itself
    path, state = ckpt.latest_checkpoint(tmp_path)
    assert path == ckpt.checkpoint_path(tmp_path, 1) and state["step"] == 1
    assert torch.equal(state["w"], torch.ones(3))


def test_resume_falls_back_past_a_damaged_newest_checkpoint(tmp_path):
    ckpt.save_checkpoint({"step": 1}, ckpt.checkpoint_path(tmp_path, 1))
    ckpt.checkpoint_path(tmp_path, 2).write_bytes(b"PK\x03\x04 truncated")
    path, state = ckpt.latest_checkpoint(tmp_path)
    assert state["step"] == 1


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_checkpoint_that_would_run_code_is_refused(tmp_path, tiny_model):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"ema": RunsCode(marker), "config": {}}, evil)
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load_checkpoint(evil)
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"")  # never reached: the checkpoint is refused first
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(photo),
                             "--checkpoint", str(evil), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "refused" in result.stderr
    assert not marker.exists()


def test_export_round_trips_in_fp16(tmp_path, tiny_model):
    state, config, _ = model_file.load_model(tiny_model)
    half = tmp_path / "half.safetensors"
    model_file.export_generator(state, config, half, fp16=True, provenance={"steps": 7})
    state16, config16, provenance = model_file.load_model(half)
    assert config16 == config and provenance == {"steps": 7}
    assert half.stat().st_size < 0.6 * tiny_model.stat().st_size
    for key, value in state.items():
        assert state16[key].dtype == value.dtype
        assert torch.allclose(state16[key], value, atol=1e-2, rtol=1e-3)


def test_a_torn_last_metrics_line_is_skipped_with_a_warning_when_a_run_continues(tmp_path):
    from colorful_world.training.run_folder import MetricsLog

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"kind": "train", "step": 5}\n{"kind": "train", "step": 10}\n{"kind": "tra')
    with pytest.warns(UserWarning, match="torn last line"):
        MetricsLog(metrics, resume_step=10)
    assert metrics.read_text() == '{"kind": "train", "step": 5}\n{"kind": "train", "step": 10}\n'


def test_a_run_continues_with_another_schedule_but_not_another_network():
    from colorful_world.training.run_folder import _differences
    saved = {"epochs": 5, "l1_epochs": 5, "lr_decay_epochs": 4, "image_size": 128, "lambda_l1": 100.0,
             "pixel_loss": "l1", "chroma_weight": 0.2}
    assert _differences(saved, {"epochs": 7, "l1_epochs": 5, "lr_decay_epochs": 2}) == []
    assert _differences(saved, {"epochs": 7, "l1_epochs": 3}) == []  # the adversarial phase from epoch 4
    assert _differences(saved, {"pixel_loss": "rgb_mse", "chroma_weight": 0.0}) == []  # fine-tuned with another loss
    assert _differences(saved, {"image_size": 256, "lambda_l1": 50.0}) == [
        "image_size is 128 in the run, 256 here", "lambda_l1 is 100.0 in the run, 50.0 here"]
