"""Exported models: the generator's weights with the config that rebuilds it and its provenance,
as safetensors (nothing to unpickle); a training checkpoint's EMA generator loads the same way."""

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from colorful_world.io.atomic import write_bytes
from colorful_world.nets.checkpoint import CheckpointError, load_checkpoint
from colorful_world.nets.model_record import model_path
from colorful_world.core.config import ModelConfig
from colorful_world.nets.models import build_generator

EXPORT_NAME = "generator.safetensors"


def export_generator(state_dict: dict, config: dict, path: Path, fp16: bool = False,
                     provenance: dict | None = None) -> None:
    """The inference model as safetensors: generator weights, the config that rebuilds it, and
    its provenance (data, steps, date, validation figures), readable by `colorful-world info`."""
    tensors = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous()
               for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialized in memory (a model is megabytes) and written by io.atomic, not by save_file,
    # whose own temporary file a killed export would leave in the run folder for good.
    data = save(tensors, metadata={"config": json.dumps(config), "provenance": json.dumps(provenance or {})})
    write_bytes(path, data)  # readable as any file the user writes (a serving user, say), not 0600


def load_model(path: str | Path | None) -> tuple[dict, dict, dict]:
    """(generator state_dict in float32, config, provenance) from an export or a training
    checkpoint (its EMA generator); None means the bundled model. Nothing is unpickled."""
    path = model_path(path)
    if path.suffix == ".onnx":
        raise CheckpointError(f"{path}: an ONNX model, which only colorize and serve read (with --backend onnx); "
                              "give the .safetensors or .pt model it was exported from")
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
        if not isinstance(state, dict) or not isinstance(state.get("ema"), dict) or "config" not in state:
            raise CheckpointError(f"{path}: not a colorful-world training checkpoint")
        tensors, config = state["ema"], state["config"]
        if not all(isinstance(v, torch.Tensor) for v in tensors.values()):
            raise CheckpointError(f"{path}: its generator weights are not all tensors")
        # A checkpoint without its step or epoch (hand-made, or cut down) still holds a model.
        provenance = {k: state[k] for k in ("step", "epoch") if isinstance(state.get(k), int)}
    try:  # every door (colorize, serve, info, export, evaluate) holds a model to the same bounds
        ModelConfig.from_dict(config)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: its config cannot work ({err})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, config, provenance


def upgrade_state(state: dict, config: dict) -> dict:
    """A format-3 hinted model's weights for today's network: its decoder's hint inputs (learned
    within 0.1% of zero) and its lightness-only spread's weights are dropped, and HintRefine
    keeps its zero start: today's spread alone."""
    if config.get("format", 1) >= 4:
        return state
    return {k: v for k, v in state.items() if not k.startswith(("hint_inputs.", "spread."))}


def load_generator(path: str | Path | None) -> tuple[torch.nn.Module, dict, dict]:
    """(generator in eval mode, config, provenance): what colorize and evaluate run. The config
    names the architecture, so the right network is built; one that does not match its weights
    is refused with a CheckpointError."""
    state, config, provenance = load_model(path)
    where = model_path(path)
    try:
        generator = build_generator(ModelConfig.from_dict(config))
        missing, unexpected = generator.load_state_dict(upgrade_state(state, config), strict=False)
        if unexpected or any(not (key.startswith("refine.") and config.get("format", 1) < 4) for key in missing):
            raise RuntimeError(f"{len(missing)} weights missing, {len(unexpected)} unexpected: "
                               + ", ".join((missing + unexpected)[:3]))
    except (ValueError, TypeError, RuntimeError) as err:  # load_state_dict raises RuntimeError
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if not line.startswith("Error(s) in loading")), lines[0])
        raise CheckpointError(f"{where}: its config does not describe its weights ({detail})") from None
    return generator.eval(), config, provenance
