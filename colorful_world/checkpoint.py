"""Training checkpoints (atomic, pickle-free loading) and the small exported inference model."""

import json
import os
import pickle
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from colorful_world.config import ModelConfig
from colorful_world.models import build_generator

CHECKPOINT_DIR = "checkpoints"
EXPORT_NAME = "generator.safetensors"
BUNDLED_MODEL = Path(__file__).parent / "weights" / "faces.safetensors"


class CheckpointError(ValueError):
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


def newest_model(run_dir: str | Path) -> Path | None:
    """The run's newest model: its export, or a later checkpoint of a run still training."""
    run_dir = Path(run_dir)
    candidates = [p for p in (run_dir / EXPORT_NAME, *list_checkpoints(run_dir)[-1:]) if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def find_model(checkpoint: str | Path | None = None, run_dir: str | Path | None = None) -> Path | None:
    """The model to load: `checkpoint` (a model file, or a run folder: its newest model), else the
    newest model of `run_dir`, else None, which stands for the bundled model."""
    if not checkpoint:
        return newest_model(run_dir) if run_dir else None
    if not Path(checkpoint).is_dir():
        return Path(checkpoint)
    model = newest_model(checkpoint)
    if model is None:
        raise CheckpointError(f"{checkpoint}: no model in this run folder yet")
    return model


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)


def export_generator(state_dict: dict, config: dict, path: Path, fp16: bool = False,
                     provenance: dict | None = None) -> None:
    """The inference model as safetensors: generator weights, the config that rebuilds it, and
    its provenance (data, steps, date, validation figures), readable by `colorful-world info`."""
    tensors = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous()
               for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"config": json.dumps(config),
                                           "provenance": json.dumps(provenance or {})})
    os.replace(tmp, path)


def model_path(path: str | Path | None) -> Path:
    """The model file to use: the one given, or the face model that ships with the package."""
    if path is not None:
        return Path(path)
    if not BUNDLED_MODEL.exists():
        raise CheckpointError(f"no model was given and this install has no bundled one at {BUNDLED_MODEL}")
    return BUNDLED_MODEL


def load_model(path: str | Path | None) -> tuple[dict, dict, dict]:
    """(generator state_dict in float32, config, provenance) from an export or a training
    checkpoint (its EMA generator); None means the bundled model. Nothing is unpickled."""
    path = model_path(path)
    if path.suffix == ".onnx":
        raise CheckpointError(f"{path}: an ONNX model runs with the onnx backend (--backend onnx)")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            config = json.loads(metadata.get("config", "null"))
            provenance = json.loads(metadata.get("provenance", "{}"))
            tensors = load_file(str(path))
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such model file") from None
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise CheckpointError(f"{path}: not a readable model file ({err})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"{path}: has no colorful-world config in its metadata")
    else:
        state = load_checkpoint(path)
        if "ema" not in state or "config" not in state:
            raise CheckpointError(f"{path}: not a colorful-world training checkpoint")
        tensors, config = state["ema"], state["config"]
        provenance = {"step": state["step"], "epoch": state["epoch"]}
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, config, provenance


def load_generator(path: str | Path | None) -> tuple[torch.nn.Module, dict, dict]:
    """(generator in eval mode, config, provenance): what colorize and evaluate run. The config
    names the architecture, so the right network is built; one that does not match its weights
    is refused with a CheckpointError."""
    state, config, provenance = load_model(path)
    where = model_path(path)
    try:
        generator = build_generator(ModelConfig.from_dict(config))
        generator.load_state_dict(state)
    except (ValueError, TypeError, RuntimeError) as err:  # load_state_dict raises RuntimeError
        raise CheckpointError(f"{where}: its config does not describe its weights "
                              f"({str(err).splitlines()[0]})") from None
    return generator.eval(), config, provenance
