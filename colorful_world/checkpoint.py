"""Training checkpoints: the whole state of a run at one step, written atomically and loaded
without unpickling anything but tensors and numbers."""

import os
import pickle
from pathlib import Path

import torch

from colorful_world.errors import UserError

CHECKPOINT_DIR = "checkpoints"


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, damaged, or would run code when loaded."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:09d}.pt"


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, sync, then rename over the target.

    A run killed mid-save leaves only a stray .tmp file; every finished checkpoint stays whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load with weights_only=True: plain tensors and numbers only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused, it holds more than tensors and numbers "
                              f"(loading it could run code): {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints of a run, oldest first."""
    return sorted((Path(run_dir) / CHECKPOINT_DIR).glob("step_*.pt"))


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """The newest checkpoint of a run that loads; a damaged newest one falls back to the one before."""
    errors = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            errors.append(str(err))
    detail = "; ".join(errors) or "none found"
    raise CheckpointError(f"{run_dir}: no checkpoint to resume from ({detail})")


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)


