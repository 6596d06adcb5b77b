"""The GPU path's choices, made right without a GPU: precision by compute capability, fp16 with a
grad scaler (which runs on the CPU too), steps that overflow or diverge, Drive-safe saves."""

import json

import pytest
import torch

from colorful_world.core.data import Batch

from colorful_world.nets import checkpoint as ckpt
from colorful_world.core import runtime as rt
from colorful_world.training import train as training
from colorful_world.core.config import TrainConfig
from colorful_world.nets.models import PatchDiscriminator, UNet
from colorful_world.core.runtime import Runtime, choose_precision


@pytest.mark.parametrize("capability, name, expected", [((7, 5), "Tesla T4", torch.float16),
                                                        ((8, 0), "NVIDIA A100", torch.bfloat16),
                                                        ((8, 9), "NVIDIA L4", torch.bfloat16)])
def test_auto_precision_follows_the_gpus_compute_capability(monkeypatch, capability, name, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers since 2.3
    dtype, reason = choose_precision(torch.device("cuda", 0))
    assert dtype is expected and name in reason and f"{capability[0]}.{capability[1]}" in reason
    for asked, forced in (("fp32", None), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        assert choose_precision(torch.device("cuda", 0), asked) == (forced, f"{asked}, as asked (--precision {asked})")


def test_the_cpu_trains_in_fp32_unless_asked():
    assert choose_precision(torch.device("cpu")) == (None, "fp32: autocast brings no speed on CPU")
    assert choose_precision(torch.device("cpu"), "fp16")[0] is torch.float16
    with pytest.raises(ValueError, match="precision must be"):
        choose_precision(torch.device("cpu"), "fp8")


def _models():
    torch.manual_seed(0)
    G, D = UNet(8, 3, dropout=0.0), PatchDiscriminator(8, 3)
    return G, D, torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)


def _snapshot(*models):
    return [p.detach().clone() for m in models for p in m.parameters()]


FP16 = Runtime(torch.device("cpu"), torch.float16)
CONFIG = TrainConfig(arch="unet", image_size=32, depth=3)


def test_an_fp16_step_with_a_grad_scaler_runs_on_the_cpu():
    G, D, opt_g, opt_d = _models()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    before = _snapshot(G, D)
    logs = training.train_step(Batch.clean(torch.rand(4, 3, 32, 32)), G, D, opt_g, opt_d, scaler, CONFIG, True, FP16)
    assert logs["skipped"] == 0.0 and all(map(lambda v: torch.isfinite(torch.tensor(v)), logs.values()))
    assert all(not torch.equal(a, b) for a, b in zip(before[:1], _snapshot(G)[:1]))
    assert scaler.get_scale() == 2.0 ** 10


def test_an_overflowing_step_moves_nothing_and_lowers_the_scale():
    G, D, opt_g, opt_d = _models()
    scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # scaled gradients overflow fp16 for sure
    before = _snapshot(G, D)
    logs = training.train_step(Batch.clean(torch.rand(4, 3, 32, 32)), G, D, opt_g, opt_d, scaler, CONFIG, True, FP16)
    assert logs["skipped"] == 1.0 and scaler.get_scale() < 1e38
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(G, D)))


@pytest.mark.parametrize("runtime", [FP16, Runtime(torch.device("cpu"), None)], ids=["fp16", "fp32"])
def test_a_step_with_an_inf_loss_moves_nothing(runtime):
    G, D, opt_g, opt_d = _models()
    scaler = torch.amp.GradScaler("cpu", enabled=runtime.amp_dtype is torch.float16)
    rgb = torch.rand(4, 3, 32, 32)
    rgb[0, :, 0, 0] = float("nan")  # a corrupt photo: its L, and so every loss, is NaN
    before = _snapshot(G, D)
    logs = training.train_step(Batch.clean(rgb), G, D, opt_g, opt_d, scaler, CONFIG, True, runtime)
    assert logs["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, _snapshot(G, D)))


def _tiny(synthetic_folder, tmp_path, **more) -> dict:
    return {"data": str(synthetic_folder), "out": str(tmp_path / "run"), "arch": "unet", "image_size": 32,
            "depth": 3, "base_channels": 8, "disc_channels": 8, "batch_size": 8, "epochs": 2, "l1_epochs": 1,
            "max_images": 48, "val_fraction": 0.2, "min_colourfulness": 1.0, "log_every": 1,
            "cache_dir": str(tmp_path / "cache"), **more}


@pytest.mark.slow
def test_skipped_steps_are_logged_leave_the_ema_alone_and_a_diverged_run_stops(synthetic_folder, tmp_path,
                                                                              monkeypatch):
    real_step, calls, ema_updates = training.train_step, [], []

    def flaky(*args, **kwargs):  # steps 2 and 3 diverge
        calls.append(1)
        logs = real_step(*args, **kwargs)
        return logs | {"skipped": 1.0} if len(calls) in (2, 3) else logs

    monkeypatch.setattr(training, "train_step", flaky)
    real_ema = training.update_ema
    monkeypatch.setattr(training, "update_ema", lambda *a: (ema_updates.append(1), real_ema(*a)))
    training.train(_tiny(synthetic_folder, tmp_path), progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("skipped_steps", 0) for r in records) == 2
    assert len(ema_updates) == len(calls) - 2
    precision = [r for r in records if r["kind"] == "precision"]
    assert precision[0]["amp_dtype"] == "float32" and "CPU" in precision[0]["reason"]

    monkeypatch.setattr(training, "train_step", lambda *a, **k: {"l1": float("nan"), "skipped": 1.0})
    monkeypatch.setattr(training, "MAX_SKIPS_IN_A_ROW", 3)
    with pytest.raises(training.TrainingDiverged, match="3 steps in a row"):
        training.train(_tiny(synthetic_folder, tmp_path, out=str(tmp_path / "diverged")), progress=False)


@pytest.mark.slow
def test_time_based_saves_fire_between_step_based_ones(synthetic_folder, tmp_path, monkeypatch):
    clock = iter(range(0, 10**6, 30))  # every reading of the clock: 30 s later
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    saved = []
    real_save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint", lambda state, path, **k: (saved.append(state["step"]),
                                                                               real_save(state, path, **k)))
    training.train(_tiny(synthetic_folder, tmp_path, save_every=1000, save_every_minutes=1.0), progress=False)
    steps_per_epoch = 38 // 8
    assert len(saved) > 2 and [s for s in saved if s % steps_per_epoch]  # not only at the epochs' ends


def test_a_drive_save_goes_through_local_disk_and_a_failed_copy_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    drive, local = tmp_path / "drive" / "run", tmp_path / "local"
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, ckpt.checkpoint_path(drive, 1), staging=local)
    assert ckpt.load_checkpoint(ckpt.checkpoint_path(drive, 1))["step"] == 1

    def cut_off(source, target, length=0):  # the connection drops halfway through the copy
        target.write(source.read(100))
        raise OSError("Transport endpoint is not connected")

    monkeypatch.setattr(ckpt.shutil, "copyfileobj", cut_off)
    with pytest.raises(OSError):
        ckpt.save_checkpoint({"step": 2, "w": torch.zeros(3)}, ckpt.checkpoint_path(drive, 2), staging=local)
    monkeypatch.undo()
    path, state = ckpt.latest_checkpoint(drive)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert not list(drive.rglob("*.tmp")) and not list(local.iterdir())  # nothing half-written left behind


def test_runtime_records_its_reason():
    assert "CPU" in rt.local(torch.device("cpu")).precision_reason
