"""Which model file, and what it says of itself (config, provenance), read without torch: `info`
works on the light install, for the bundled model, an exported .safetensors and an .onnx file."""

import json
import struct
from pathlib import Path

from colorful_world.core.config import ModelConfig
from colorful_world.io.errors import CheckpointError

BUNDLED_MODEL = Path(__file__).parents[1] / "weights" / "faces.safetensors"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own bound on the JSON header


def model_path(path: str | Path | None) -> Path:
    """The model file to use: the one given, or the face model that ships with the package."""
    if path is not None:
        return Path(path)
    if not BUNDLED_MODEL.exists():
        raise CheckpointError(f"no model was given and this install has no bundled one at {BUNDLED_MODEL}")
    return BUNDLED_MODEL


def _safetensors_metadata(path: Path) -> dict:
    """The string metadata of a .safetensors file: an 8-byte little-endian length, then a JSON header."""
    with open(path, "rb") as file:
        head = file.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        if not 2 <= size <= MAX_HEADER_BYTES:
            raise ValueError("no safetensors header")
        header = json.loads(file.read(size))
    return header.get("__metadata__") or {} if isinstance(header, dict) else {}


def _onnx_metadata(path: Path) -> dict:
    import onnxruntime as ort  # the light install's own runtime

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.get_modelmeta().custom_metadata_map


def read_record(path: str | Path | None) -> tuple[dict, dict]:
    """(config, provenance) of a model file, None for the bundled one; held to the bounds every
    door holds a model to. A training checkpoint (.pt) is torch's own format: it needs torch."""
    path = model_path(path)
    if path.suffix not in (".safetensors", ".onnx"):
        try:
            from colorful_world.nets.model_file import load_model
        except ImportError:
            raise CheckpointError(f"{path}: a training checkpoint, which needs torch: pip install "
                                  "'colorful-world[train]' (or give its exported .safetensors or .onnx)") from None
        _, config, provenance = load_model(path)
        return config, provenance
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        metadata = _safetensors_metadata(path) if path.suffix == ".safetensors" else _onnx_metadata(path)
        config = json.loads(metadata.get("config", "null"))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except Exception as err:  # a damaged or foreign file: whatever the reader raised, one sentence
        raise CheckpointError(f"{path}: not a readable model file ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: has no colorful-world config in its metadata")
    try:
        ModelConfig.from_dict(config)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: its config cannot work ({err})") from None
    return config, provenance if isinstance(provenance, dict) else {}
