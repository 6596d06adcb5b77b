"""A training run's folder: where it is, the one rule for starting or continuing it, its
metrics log and its newest model (the provenance an export carries is core.report's).

The rule, the same for the CLI, the notebook and the launcher: the same command again continues
the run. That is what a Colab user needs after a disconnect.
"""

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from colorful_world.nets.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints
from colorful_world.core.config import TrainConfig
from colorful_world.io.errors import ConfigError
from colorful_world.nets.model_file import EXPORT_NAME
from colorful_world.io.paths import COLAB_DRIVE, COLAB_RUNS, on_colab
from colorful_world.core.report import METRICS, read_metrics

DEFAULT_RUN = "faces"
# What may change when a run continues (the schedule: its length, the warm start, the decay;
# the loss, so that a trained run can be fine-tuned; where the photos now are, how often to
# save); every other setting must match the run's own.
CONTINUABLE = frozenset({"epochs", "l1_epochs", "max_minutes", "lr_decay_epochs", "save_every", "keep_checkpoints",
                         "log_every", "data", "data_weights", "cache_dir", "data_on_device", "export_fp16", "encoder_weights",
                         "pixel_loss", "chroma_weight", "old_prints", "hint_lr", "recolour_hints"})


def run_dir(out: str | Path = "", run_name: str = DEFAULT_RUN) -> Path:
    """--out as given; else runs/<run_name>, on Drive when on Colab (a disconnect loses nothing)."""
    if out:
        return Path(out)
    return (COLAB_RUNS if on_colab() and COLAB_DRIVE.is_dir() else Path("runs")) / run_name


@contextlib.contextmanager
def locked(folder: Path):
    """Hold the run folder for one training at a time: a second one on the same folder stops
    with the holder's PID. The lock sits beside the folder (so --fresh can move the folder aside)
    and dies with its process, so a killed run never blocks the next one."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f".{folder.name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ConfigError(f"{folder} is in use by another training (PID {holder}): wait for it or "
                              "stop it, or give this one another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _differences(saved: dict, given: dict) -> list[str]:
    kinds = {f.name: type(f.default) for f in fields(TrainConfig)}
    differ = []
    for name, value in given.items():
        if name in CONTINUABLE or name == "out" or name not in saved:
            continue
        if kinds[name](saved[name]) != kinds[name](value):
            differ.append(f"{name} is {saved[name]!r} in the run, {value!r} here")
    return differ


def open_run(settings: dict, fresh: bool = False) -> tuple[TrainConfig, dict | None, Path | None]:
    """(config, the checkpoint state to continue from or None, its path) for these settings.

    A run folder with checkpoints is continued from its newest one: its own config, with the
    CONTINUABLE settings given here. Any other setting given here that differs refuses the run,
    with a sentence naming each difference. `fresh` starts a new run; an old one there is moved
    aside (never deleted), and its new name is printed.
    """
    out = run_dir(settings.get("out", ""))
    settings = settings | {"out": str(out)}
    if fresh and out.exists() and any(out.iterdir()):
        aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        print(f"--fresh: the previous run in {out} is kept as {aside}")
    if not list_checkpoints(out):
        return TrainConfig(**settings), None, None
    path, state = latest_checkpoint(out)
    saved = {f.name: state["config"][f.name] for f in fields(TrainConfig) if f.name in state["config"]}
    differ = _differences(saved, settings)
    if differ:
        raise ConfigError(f"{out} holds a run that cannot continue with these settings: {'; '.join(differ)}. "
                          "Give the same settings to continue it, or start over with --fresh (the old run is "
                          "kept beside it) or another --out.")
    continuing = {k: v for k, v in settings.items() if k in CONTINUABLE or k == "out"}
    return TrainConfig(**(saved | continuing)), state, path


class MetricsLog:
    """metrics.jsonl in the run folder: one JSON object a line, train and validation figures."""

    def __init__(self, path: Path, resume_step: int | None, on_record: Callable[[dict], None] | None = None):
        self.path, self.on_record = path, on_record
        if resume_step is not None and path.exists():
            # Lines written after the checkpoint we resume from describe steps that will be redone.
            kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.on_record:
            self.on_record(record)


def newest_model(folder: str | Path) -> Path | None:
    """The run's newest model: its export, or a later checkpoint of a run still training."""
    folder = Path(folder)
    candidates = [p for p in (folder / EXPORT_NAME, *list_checkpoints(folder)[-1:]) if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def find_model(checkpoint: str | Path | None = None, folder: str | Path | None = None) -> Path | None:
    """The model to load: `checkpoint` (a model file, or a run folder: its newest model), else the
    newest model of the run `folder`, else None, which stands for the bundled model."""
    if not checkpoint:
        return newest_model(folder) if folder else None
    if not Path(checkpoint).is_dir():
        return Path(checkpoint)
    model = newest_model(checkpoint)
    if model is None:
        raise CheckpointError(f"{checkpoint}: no model in this run folder yet")
    return model
