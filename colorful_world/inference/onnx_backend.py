"""The generator on ONNX Runtime: a faster CPU path for colorizing (the `onnx` extra).

Only the network moves to ONNX Runtime; decoding, Lab conversion and upsampling stay the same
code as the torch path, so both give the same pictures (within 1/255, tested).
"""

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from colorful_world.core.config import ModelConfig
from colorful_world.io.atomic import write_bytes
from colorful_world.io.errors import CheckpointError, UserError
from colorful_world.io.paths import user_cache_dir

# The bundled model (model_record.BUNDLED_MODEL) exported as ONNX, so that a server on ONNX Runtime
# needs neither torch nor a conversion; tests/test_bundled_model.py holds the two to 1/255.
BUNDLED_ONNX = Path(__file__).parents[1] / "weights" / "faces.onnx"


class OnnxGenerator:
    """Stands in for the torch U-Net inside `Colorizer`: L (N,1,H,W) -> ab (N,2,H,W), numpy
    arrays both; with an .onnx file, nothing here imports torch."""

    def __init__(self, path: Path, depth: int, hints: bool = False):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Its threads would otherwise spin after each run, stealing the cores from the torch code
        # (Lab, resize) that runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.depth = depth
        self.hints = hints

    def __call__(self, l_norm: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        feed = {"l": l_norm.astype(np.float32, copy=False)}
        if self.hints:  # a model with hints always has the input; none given is all zeros
            n, _, h, w = l_norm.shape
            feed["hints"] = np.zeros((n, 3, h, w), np.float32) if hints is None else hints.astype(np.float32, copy=False)
        (ab,) = self.session.run(None, feed)
        return ab


def export_onnx(checkpoint: str | Path | None, path: Path, provenance: dict | None = None,
                config_changes: dict | None = None) -> None:
    """A model or checkpoint -> .onnx with its config (with `config_changes`) and provenance in
    the file's metadata."""
    try:
        import onnx
        import torch
    except ImportError as err:
        raise UserError(f"writing an ONNX model needs {err.name}: pip install 'colorful-world[train,onnx]'") from None

    from colorful_world.nets.model_file import load_generator

    generator, config, saved = load_generator(checkpoint)
    config = config | (config_changes or {})
    side = config["image_size"]
    inputs = (torch.zeros(1, 1, side, side),) + ((torch.zeros(1, 3, side, side),) if generator_hints(generator) else ())
    names = ["l", "hints"][:len(inputs)]
    axes = {0: "batch", 2: "height", 3: "width"}  # any working size that is a multiple of 2**depth
    path.parent.mkdir(parents=True, exist_ok=True)
    # The TorchScript exporter: a plain conv net needs nothing more, and it spares the onnxscript
    # dependency of the newer one. It warns that it is deprecated; that is known. Exported in
    # memory (a model is megabytes) and written once, by io.atomic.
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # HintSpread reads its cells' size from the working size: the export keeps its own size's.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(generator, inputs, exported, input_names=names, output_names=["ab"],
                          dynamic_axes={name: axes for name in [*names, "ab"]}, opset_version=17, dynamo=False)
    model = onnx.load_model_from_string(exported.getvalue())
    for key, value in (("config", config), ("provenance", provenance or saved)):
        model.metadata_props.add(key=key, value=json.dumps(value))
    write_bytes(path, model.SerializeToString())


def load_onnx_generator(path: str | Path | None) -> tuple[OnnxGenerator, dict]:
    """(generator, config) from an .onnx file, or with None the bundled face model's (it ships
    as ONNX too); a .safetensors/.pt model is exported once into the user's cache and reused."""
    if path is None and BUNDLED_ONNX.is_file():
        path = BUNDLED_ONNX
    if path is not None and Path(path).suffix == ".onnx":
        source = Path(path)
        if not source.is_file():
            raise CheckpointError(f"{source}: no such model file")
    else:
        from colorful_world.nets.model_record import model_path
        source = model_path(path)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        cached = user_cache_dir() / "onnx" / f"{source.stem}-{digest}.onnx"
        if not cached.exists():
            export_onnx(source, cached)
        source = cached
    try:
        generator = OnnxGenerator(source, depth=0)
        config = json.loads(generator.session.get_modelmeta().custom_metadata_map["config"])
    except Exception as err:  # ONNX Runtime raises its own error types for a foreign file
        raise CheckpointError(f"{source}: not a colorful-world ONNX model ({err})") from None
    try:  # the same bounds as a torch model's (core.config): a config that claims too much is refused here
        model = ModelConfig.from_dict(config)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: its config cannot work ({err})") from None
    generator.depth = model.depth
    generator.hints = "hints" in {i.name for i in generator.session.get_inputs()}
    return generator, config


def generator_hints(generator) -> bool:
    return bool(getattr(generator, "hints", False))
