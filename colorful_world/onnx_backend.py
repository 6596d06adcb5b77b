"""The generator on ONNX Runtime: a faster CPU path for colorizing (the `onnx` extra).

Only the network moves to ONNX Runtime; decoding, Lab conversion and upsampling stay the same
code as the torch path, so both give the same pictures (within 1/255, tested).
"""

import hashlib
import json
import warnings
from pathlib import Path

import torch

from colorful_world.checkpoint import CheckpointError
from colorful_world.model_file import load_generator, model_path
from colorful_world.paths import user_cache_dir


class OnnxGenerator:
    """Stands in for the torch U-Net inside `Colorizer`: L (N,1,H,W) -> ab (N,2,H,W)."""

    def __init__(self, path: Path, depth: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Its threads would otherwise spin after each run, stealing the cores from the torch code
        # (Lab, resize) that runs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.depth = depth

    def __call__(self, l_norm: torch.Tensor) -> torch.Tensor:
        (ab,) = self.session.run(None, {"l": l_norm.float().cpu().numpy()})
        return torch.from_numpy(ab)


def export_onnx(checkpoint: str | Path | None, path: Path, provenance: dict | None = None) -> None:
    """A model or checkpoint -> .onnx with its config and provenance in the file's metadata."""
    import onnx

    generator, config, saved = load_generator(checkpoint)
    sample = torch.zeros(1, 1, config["image_size"], config["image_size"])
    axes = {0: "batch", 2: "height", 3: "width"}  # any working size that is a multiple of 2**depth
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # The TorchScript exporter: a plain conv net needs nothing more, and it spares the onnxscript
    # dependency of the newer one. It warns that it is deprecated; that is known.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(generator, (sample,), str(tmp), input_names=["l"], output_names=["ab"],
                          dynamic_axes={"l": axes, "ab": axes}, opset_version=17, dynamo=False)
    model = onnx.load(str(tmp))
    for key, value in (("config", config), ("provenance", provenance or saved)):
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, str(tmp))
    tmp.replace(path)


def load_onnx_generator(path: str | Path | None) -> tuple[OnnxGenerator, dict]:
    """(generator, config) from an .onnx file; a .safetensors/.pt model (or None: the bundled
    one) is exported once into the user's cache and reused from there."""
    import onnx

    source = model_path(path)
    if source.suffix != ".onnx":
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        cached = user_cache_dir() / "onnx" / f"{source.stem}-{digest}.onnx"
        if not cached.exists():
            export_onnx(source, cached)
        source = cached
    try:
        metadata = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
        config = json.loads(metadata["config"])
    except Exception as err:  # onnx raises protobuf's and its own error types for a foreign file
        raise CheckpointError(f"{source}: not a colorful-world ONNX model ({err})") from None
    return OnnxGenerator(source, config["depth"]), config

