import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from colorful_world.nets.checkpoint import list_checkpoints, load_checkpoint

pytestmark = pytest.mark.slow  # trainings in subprocesses, killed and resumed: left out of the quick subset

STEPS_PER_EPOCH = 20  # 160 training photos / batch 8


def train_command(data, out, cache, precision="auto"):
    return [sys.executable, "-m", "colorful_world", "train", "--data", str(data), "--out", str(out),
            "--cache-dir", str(cache), "--epochs", "3", "--l1-epochs", "1", "--image-size", "32",
            "--batch-size", "8", "--arch", "unet", "--base-channels", "8", "--depth", "3", "--disc-channels", "8",
            "--val-fraction", "0.2", "--min-colourfulness", "1", "--save-every", "3", "--seed", "7",
            "--log-every", "5", "--lr-decay-epochs", "2", "--precision", precision, "--no-progress"]


def final_state(run):
    return load_checkpoint(list_checkpoints(run)[-1])


@pytest.mark.parametrize("precision", ["auto", "fp16"])  # fp16: autocast and a grad scaler, on the CPU too
def test_run_killed_mid_epoch_resumes_to_the_same_weights(synthetic_folder, tmp_path, precision):
    cache = tmp_path / "cache"
    subprocess.run(train_command(synthetic_folder, tmp_path / "straight", cache, precision), check=True,
                   capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_command(synthetic_folder, killed, cache, precision),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # Kill (SIGKILL: no clean-up at all) once a checkpoint inside the second epoch is on disk.
    while not any(int(p.stem.split("_")[1]) > STEPS_PER_EPOCH + 3 for p in list_checkpoints(killed)):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "generator.safetensors").exists()
    resumed_from = load_checkpoint(list_checkpoints(killed)[-1])["step"]
    assert resumed_from % STEPS_PER_EPOCH != 0, "the kill should land mid-epoch"

    result = subprocess.run(train_command(synthetic_folder, killed, cache, precision), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"at step {resumed_from}" in result.stdout

    straight, resumed = final_state(tmp_path / "straight"), final_state(killed)
    assert straight["step"] == resumed["step"] == 3 * STEPS_PER_EPOCH
    # CPU kernels are deterministic for a fixed thread count, so equality is exact.
    for part in ("G", "D", "ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), f"{part}.{key} differs"
    assert straight["opt_g"]["state"][0]["exp_avg"].equal(resumed["opt_g"]["state"][0]["exp_avg"])
    assert straight["scaler"] == resumed["scaler"]  # under fp16: the same loss scale and growth tracker
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [r["step"] for r in records if r["kind"] == "train"]
    assert all(0 <= r["data_wait"] < 1 for r in records if r["kind"] == "train")
    assert steps_logged == list(range(5, 3 * STEPS_PER_EPOCH + 1, 5))  # redone past the checkpoint, not doubled

    again = subprocess.run(train_command(synthetic_folder, killed, cache, precision), capture_output=True, text=True)
    assert again.returncode == 0 and f"at step {3 * STEPS_PER_EPOCH}" in again.stdout  # continues: nothing left
    assert final_state(killed)["step"] == 3 * STEPS_PER_EPOCH  # a finished run is never started over
    bigger = train_command(synthetic_folder, killed, cache, precision)
    bigger[bigger.index("--image-size") + 1] = "64"
    refused = subprocess.run(bigger, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "cannot continue with these settings: image_size is 32 in the run, 64 here" in refused.stderr
    fresh = subprocess.run(bigger + ["--fresh", "--max-minutes", "0.0001"], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("killed.old-")]
    assert len(kept) == 1 and list_checkpoints(kept[0]) and f"kept as {kept[0]}" in fresh.stdout  # moved, not lost


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(synthetic_folder, tmp_path):
    out = tmp_path / "run"
    command = train_command(synthetic_folder, out, tmp_path / "cache")
    command[command.index("--save-every") + 1] = "1000"  # only the stop itself writes mid-epoch
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or '"kind": "train"' not in (out / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "the same command again continues it" in stderr
    step = load_checkpoint(list_checkpoints(out)[-1])["step"]
    assert 5 <= step < 3 * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH != 0


def test_max_minutes_ends_a_run_like_its_last_epoch_and_resume_goes_on(synthetic_folder, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    command = train_command(synthetic_folder, out, cache) + ["--max-minutes", "0.001"]  # 60 ms
    subprocess.run(command, check=True, capture_output=True)
    stopped = final_state(out)
    assert 1 <= stopped["step"] < 3 * STEPS_PER_EPOCH and stopped["elapsed"] >= 0.06
    assert (out / "generator.safetensors").exists()  # exported as at a normal end
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"][-1] == stopped["step"]

    subprocess.run(command, check=True, capture_output=True)  # budget spent: no step
    assert final_state(out)["step"] == stopped["step"]
    subprocess.run(command + ["--max-minutes", "0"], check=True, capture_output=True)
    assert final_state(out)["step"] == 3 * STEPS_PER_EPOCH


def test_a_second_training_on_the_same_folder_is_refused_and_a_killed_ones_lock_blocks_nothing(
        synthetic_folder, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    command = train_command(synthetic_folder, out, cache)
    command[command.index("--epochs") + 1] = "300"  # long enough to be running when the second comes
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list_checkpoints(out):  # it holds the folder and has begun to train
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 2 and f"in use by another training (PID {first.pid})" in second.stderr
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    third = subprocess.run(command + ["--max-minutes", "0.0001"], capture_output=True, text=True)
    assert third.returncode == 0 and "resumed from" in third.stdout, third.stderr


def test_a_full_disk_during_a_save_is_one_sentence_and_the_same_command_goes_on(
        synthetic_folder, tmp_path, monkeypatch, capsys):
    from colorful_world.apps import cli
    out = tmp_path / "run"
    argv = train_command(synthetic_folder, out, tmp_path / "cache")[3:]
    real_save, calls = torch.save, []

    def disk_fills_up(obj, f, *args, **kwargs):  # the third save finds the disk full halfway
        calls.append(f)
        if len(calls) == 3:
            f.write(bytes(1000))
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_up)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not write the checkpoint") and "MB free" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(out)] == [3, 6]
    assert not list((out / "checkpoints").glob("*.tmp"))

    monkeypatch.setattr(torch, "save", real_save)
    assert cli.main(argv + ["--max-minutes", "0.0001"]) == 0
    assert "resumed from" in capsys.readouterr().out
