"""What the notebooks run: each of their cells calls one of these and shows what it returns."""

import os
import shutil
import tempfile
from pathlib import Path

from colorful_world.core.data import DataError, data_sources
from colorful_world.io.errors import CheckpointError
from colorful_world.io.paths import COLAB_DRIVE, on_colab
from colorful_world.core.report import METRICS
from colorful_world.training.run_folder import find_model, run_dir

DRIVE_MOUNT = COLAB_DRIVE.parent  # /content/drive: where Google Drive is mounted (MyDrive inside it)


def mount_drive() -> None:
    """On Colab, mount Google Drive (runs and the LFW archive live there); elsewhere nothing."""
    if on_colab() and not COLAB_DRIVE.is_dir():
        from google.colab import drive
        drive.mount(str(DRIVE_MOUNT))


def on_drive(path: str | Path) -> bool:
    """Whether `path` is on Google Drive as Colab mounts it (and this is Colab)."""
    return on_colab() and Path(path).expanduser().absolute().is_relative_to(DRIVE_MOUNT)


def mount_drive_for(path: str | Path) -> None:
    """Mount Drive if `path` is on it: a model or photo there, and only then."""
    if on_drive(path):
        mount_drive()


def colorize_model(checkpoint: str = "", run_name: str = "", run_required: bool = True) -> Path | None:
    """colorize.ipynb: the model to use. `checkpoint` (a model file, or a run folder: its newest
    model), else the newest model of the training run `run_name` (on Drive, on Colab), else None:
    the bundled model. A run without a model yet is an error, or with `run_required` False, the
    bundled model. Drive is mounted only for a model on it or to look for a run there, so trying
    the bundled model asks for no permission."""
    if checkpoint:
        mount_drive_for(checkpoint)
        return find_model(checkpoint)
    if not run_name:
        return None
    mount_drive()  # on Colab, runs live on Drive
    folder = run_dir("", run_name)
    model = find_model("", folder)
    if model is None and run_required:
        raise CheckpointError(f"no model in {folder} yet: train one there (train.ipynb, run_name "
                              f"{run_name!r}), or leave run_name empty for the bundled model")
    return model


def flush_drive() -> None:
    """On Colab, write what Drive still holds in its cache to Drive itself, and unmount it (the
    next cell that needs it mounts it again); elsewhere nothing."""
    if on_colab() and COLAB_DRIVE.is_dir():
        from google.colab import drive
        drive.flush_and_unmount()
        print("Drive flushed: every checkpoint of the run is on Drive")


def live_plot(out: Path):
    """A callback for train(on_record=...): redraws the metrics plot at each logged step, and
    shows each epoch's sample grid below it."""
    from IPython.display import Image, Markdown, display

    from colorful_world.core.report import plot_metrics

    plot = display(Markdown("*The plot appears with the first logged step.*"), display_id=True)

    def show(record: dict) -> None:
        if record["kind"] == "val":
            display(Markdown(f"**Epoch {record['epoch'] + 1}**"), Image(filename=record["samples"]))
        if record["kind"] in ("train", "val"):
            plot_metrics(out / METRICS, out / "metrics.png")
            plot.update(Image(filename=str(out / "metrics.png")))
    return show


def train_here(settings: dict, out: str = "", run_name: str = "faces", fresh: bool = False) -> Path:
    """train.ipynb: the run folder by the one rule, LFW fetched once, training with a live plot.
    The same call again continues the run. Returns the exported model's path."""
    from colorful_world.nets.checkpoint import list_checkpoints
    from colorful_world.training.train import train

    if out:  # a folder of one's own: Drive only where it is on it
        mount_drive_for(out)
    else:
        mount_drive()  # runs live on Drive on Colab, so that a disconnect loses nothing
    sources = data_sources(settings.get("data") or "lfw")
    for source in sources:
        mount_drive_for(source)
    folder = run_dir(out, run_name)
    continuing = bool(list_checkpoints(folder)) and not fresh
    print(f"run folder: {folder} ({'continuing the run' if continuing else 'a new run'})")
    settings = dict(settings)
    # LFW is downloaded and extracted once (on Colab the archive is kept on Drive), then reused.
    # Under torchrun only the first process fetches it; the others wait for it inside train().
    if "lfw" in sources and os.environ.get("RANK", "0") == "0":
        from colorful_world.io.download import prepare_lfw
        sources = [str(prepare_lfw()) if source == "lfw" else source for source in sources]
        settings["data"] = sources[0] if len(sources) == 1 else sources
    try:
        return train(settings | {"out": str(folder)}, fresh=fresh, on_record=live_plot(folder))
    finally:  # at the end, and on a stop or a crash
        flush_drive()


def evaluation_data(data: str, config: dict) -> str | list[str]:
    """The photos to score a model on: `data`, else the ones its config records (one source or
    several), if they are here (Drive is mounted for photos on it)."""
    if data:
        mount_drive_for(data)
        return data
    recorded = config.get("data") or ""
    for source in data_sources(recorded) if recorded else ():
        mount_drive_for(source)
    if recorded and all(s == "lfw" or Path(s).exists() for s in data_sources(recorded)):
        return recorded
    raise DataError(f"the model was trained on {recorded or 'photos it does not record'}, which is not "
                            "on this machine: set data to the photos (or archive) it was trained on, or 'lfw'")


def bundled_on_lfw(url: str, held_out: list[str]) -> tuple[Path, str]:
    """LFW's photos of the people `held_out` (evaluate.ipynb lists the bundled model's), downloaded
    from `url` (empty: LFW's mirror), and the bundled model copied with a config that holds out
    every photo of that folder (its own 5% would hold out 5% of these): (model, photos)."""
    from colorful_world.io.download import prepare_lfw
    from colorful_world.nets.model_file import export_generator, load_model

    # The funneled archive: the public alignment nearest to the deep-funneled photos it learned from.
    lfw = prepare_lfw(variant="funneled", url=url or None)
    folder = Path(tempfile.mkdtemp())
    for person in held_out:
        if (lfw / person).is_dir():
            shutil.copytree(lfw / person, folder / "held-out" / person)
    if not (folder / "held-out").is_dir():
        raise DataError(f"{lfw} holds none of the bundled model's held-out people: give data instead")
    state, config, provenance = load_model(None)
    export_generator(state, config | {"val_fraction": 1.0}, folder / "bundled.safetensors", provenance=provenance)
    return folder / "bundled.safetensors", str(folder / "held-out")


def evaluation_model_and_data(checkpoint: str, run_name: str, data: str, lfw_url: str,
                              held_out: list[str]) -> tuple[Path | None, str]:
    """evaluate.ipynb: the model to score and its photos, said in words. The model is
    `checkpoint`, else the newest of the run `run_name`, else the bundled one (as colorize.ipynb
    finds it; Drive mounted only to look there). Its photos are `data`, else those it records;
    for the bundled model, whose training archive is not public, LFW's photos of the people it
    never saw (`held_out`), downloaded from `lfw_url` (empty: LFW's mirror)."""
    from colorful_world.nets.model_file import load_model

    model = colorize_model(checkpoint, run_name, run_required=False)  # None: the bundled model
    config = load_model(model)[1]
    if model is None and not data and not Path(config["data"]).exists():
        model, data = bundled_on_lfw(lfw_url, held_out)
        print(f"model: the bundled model\nphotos: {sum(1 for _ in Path(data).rglob('*.jpg'))} photos of the "
              f"{len(list(Path(data).iterdir()))} people it never saw, from LFW (funneled; its card: deep-funneled)")
        return model, data
    data = evaluation_data(data, config)
    print(f"model: {model or 'the bundled model'}\nphotos: {data}")
    return model, data


def bar_chart(results: dict[str, dict[str, float]]):
    """evaluate.ipynb: the model and both baselines side by side, as a PNG image."""
    import io

    from IPython.display import Image
    from matplotlib.figure import Figure

    figures = {"ab_l1": "ab L1 (lower is better)", "psnr": "PSNR, dB (higher is better)",
               "colourfulness_ratio": "colourfulness / truth's (1 = as colourful)"}
    fig = Figure(figsize=(13, 3.2))
    for ax, (key, title) in zip(fig.subplots(1, len(figures)), figures.items()):
        ax.bar(list(results), [r[key] for r in results.values()], color=["tab:blue", "grey", "tab:orange"])
        ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    return Image(png.getvalue())


def show_sample_grids(model: Path | None, data: str, cache_dir: str = "", samples: int = 8) -> None:
    """evaluate.ipynb: grey | prediction | truth on validation photos, for the model and the
    mean-colour baseline, whole photos and tight crops."""
    from IPython.display import Image, Markdown, display

    from colorful_world.inference.evaluate import sample_grids

    folder = Path(tempfile.mkdtemp())
    for name, path in sample_grids(model, data, folder, cache_dir or None, samples).items():
        display(Markdown(f"**{name}**"), Image(filename=str(path)))
