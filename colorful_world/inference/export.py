"""A training checkpoint (or a model) -> the model file people colorize with: its chroma gain
(given, or calibrated on the training photos), its figures on the held-out photos, and where it
comes from, written as safetensors (float32 or fp16) or ONNX. `colorful-world export` is this
function with a command line around it; a notebook or a test calls it the same way.

Nothing here imports torch until a model is exported, so the command line can import it."""

from datetime import datetime, timezone
from pathlib import Path

from colorful_world.core.config import CHROMA_GAIN_MAX, check_chroma_gain
from colorful_world.io.errors import ConfigError

# Where each framing of `evaluate` goes in a model's provenance (see `colorful-world info`).
VALIDATION_KEYS = {"whole": "validation", "crop": "validation_tight_crops", "old": "validation_old_prints",
                   "scenes": "validation_scenes"}
HINTS_KEY = "validation_hints"  # {hints per photo: figures}, whole photos, for a model that takes hints
HINT_COUNTS = (1, 5, 10)


def parse_chroma_gain(value: float | str | None) -> float | str | None:
    """None (the model's own), "auto" (calibrate), or a factor held to config's one rule (0 to
    CHROMA_GAIN_MAX); text as a command line gives it is read as a number."""
    if value is None or value == "" or value == "auto":
        return value or None
    try:
        return check_chroma_gain(float(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"the chroma gain takes a factor from 0 to {CHROMA_GAIN_MAX:g} or 'auto', "
                          f"not {value!r}") from None


def validation_figures(checkpoint: str | Path | None, data: str | list[str], cache_dir: str | Path | None = None, *,
                       chroma_gain: float | None = None, hints_table: bool = False,
                       progress: bool = True) -> dict:
    """A model's figures on the held-out photos of `data`, as its provenance keeps them: every
    framing (VALIDATION_KEYS; scenes where `data` names several sources), and with `hints_table`, for a model that takes hints, the whole
    photos with each of HINT_COUNTS hints (HINTS_KEY: {count: figures})."""
    from colorful_world.core.data import data_sources
    from colorful_world.inference.evaluate import evaluate
    from colorful_world.nets.model_file import load_model

    def scored(framing: str = "whole", hints: int = 0) -> dict:
        return evaluate(checkpoint, data, cache_dir, progress=progress, framing=framing,
                        chroma_gain=chroma_gain, hints=hints)

    framings = [f for f in VALIDATION_KEYS if f != "scenes" or len(data_sources(data)) > 1]
    figures = {VALIDATION_KEYS[framing]: scored(framing) for framing in framings}
    if hints_table and load_model(checkpoint)[1].get("hints"):
        figures[HINTS_KEY] = {count: scored(hints=count) for count in HINT_COUNTS}
    return figures


def _provenance(checkpoint: str | Path | None, config: dict, saved: dict) -> dict:
    """An exported model's own record, carried over as it is; a training checkpoint's from its
    run folder (the figures of its own step, the data, the schedule), dated by the file."""
    from colorful_world.nets.model_record import model_path

    path = model_path(checkpoint)
    if path.suffix == ".safetensors" and saved:
        return dict(saved)
    from colorful_world.core.report import provenance

    made = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)  # its own date, not today's
    return provenance(path.parent.parent, config, saved.get("step", saved.get("steps", 0)), made)


def export_model(checkpoint: str | Path | None, output: str | Path, *, chroma_gain: float | str | None = None,
                 data: str | None = None, cache_dir: str | Path | None = None, onnx: bool = False,
                 fp16: bool = False, note: str = "", hints_table: bool = False, progress: bool = True) -> Path:
    """Write `checkpoint`'s generator (a training checkpoint's EMA weights, or a model; None: the
    bundled one) to `output`.

    `chroma_gain`: None keeps the model's own; a factor from 0 to 10 scales its colour whenever it
    colorizes; "auto" calibrates it on the training photos of `data` (`calibrate_chroma`).
    `data`: also score it on that data's held-out photos in every framing (`validation_figures`;
    with `hints_table`, with 1, 5 and 10 hints as well, slow), kept in its provenance.
    `onnx`: an .onnx file for ONNX Runtime (the light install) instead of safetensors; `fp16`:
    safetensors in half precision. `note`: free text kept in the provenance (an exported
    model's own note stays when none is given). Figures measured at another chroma gain than the
    one written are left out: they describe other colours. `progress`: progress bars, and the
    calibrated gain printed. Returns `output` as a Path.
    """
    from colorful_world.nets.model_file import export_generator, load_model

    output = Path(output)
    gain = parse_chroma_gain(chroma_gain)
    for needs, what in ((gain == "auto", "the chroma gain 'auto' is calibrated on the training photos"),
                        (hints_table, "the hints table is measured on the held-out photos")):
        if needs and not data:
            raise ConfigError(f"{what}: give the photos the model was trained on (data; --data on the command line)")
    state, config, saved = load_model(checkpoint)
    provenance = _provenance(checkpoint, config, saved)
    if gain == "auto":
        from colorful_world.inference.evaluate import calibrate_chroma
        gain = round(calibrate_chroma(checkpoint, data, cache_dir, progress=progress), 3)
        if progress:
            print(f"chroma gain {gain} (calibrated on the training photos)")
    changes = {} if gain is None else {"chroma_gain": gain}
    if gain is not None and gain != config.get("chroma_gain", 1.0):
        for key in (*VALIDATION_KEYS.values(), HINTS_KEY):
            provenance.pop(key, None)
    if data:
        provenance |= validation_figures(checkpoint, data, cache_dir, chroma_gain=gain, hints_table=hints_table,
                                         progress=progress)
    if note or "note" not in provenance:
        provenance["note"] = note
    if onnx:
        from colorful_world.inference.onnx_backend import export_onnx
        export_onnx(checkpoint, output, provenance, changes)
    else:
        export_generator(state, config | changes, output, fp16=fp16, provenance=provenance)
    return output
