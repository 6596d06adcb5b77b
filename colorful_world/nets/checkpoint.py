"""Training checkpoints: the whole state of a run at one step, written atomically and loaded
without unpickling anything but tensors and numbers."""

import pickle
import shutil
import tempfile
from pathlib import Path

import torch

from colorful_world.io.atomic import atomic_write
from colorful_world.io.errors import CheckpointError, UserError

CHECKPOINT_DIR = "checkpoints"


class CheckpointSaveError(UserError, OSError):
    """A checkpoint that could not be written (a full disk, most often); the run keeps its last one."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:09d}.pt"


def save_checkpoint(state: dict, path: Path, staging: Path | None = None) -> None:
    """Write to a temporary file in the same folder (io.atomic: a name of this save's own, never
    through a planted link), sync, then rename over the target; with `staging` (local disk, when
    the run folder is on a network drive such as Google Drive), the state is written to a nameless
    file there first and then copied in.

    A save that fails or is killed leaves every finished checkpoint whole; a failed one removes
    its temporary file, and a killed one's is removed by the next save.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path) as f:
            if staging is None:
                torch.save(state, f)
            else:
                staging.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=staging) as local:
                    torch.save(state, local)
                    local.seek(0)
                    shutil.copyfileobj(local, f, 1 << 22)
    except (RuntimeError, OSError) as err:  # torch reports a full disk as a RuntimeError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        free = shutil.disk_usage(path.parent).free / 1e6
        raise CheckpointSaveError(f"could not write the checkpoint {path} ({reason}; {free:,.0f} MB free "
                                  "there); the run keeps its previous checkpoint: make room, then the same "
                                  "command goes on from it") from None


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


