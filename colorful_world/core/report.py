"""What a person looks at: the sample grid (grey | ours | truth), the loss/metric plot, and the
record a run leaves of where its models come from (its metrics log, an export's provenance)."""

import json
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch
from matplotlib.figure import Figure  # a figure of its own: pyplot's global backend stays as the user set it
from torchvision.utils import make_grid, save_image

from colorful_world.core.color import model_to_rgb, rgb_to_model


METRICS = "metrics.jsonl"  # a run folder's log of training and validation figures, one JSON record a line


@torch.no_grad()
def save_samples(predict_ab, images: torch.Tensor, device: torch.device, path: Path) -> None:
    """One row per photo: the grey input, our colours, the true colours."""
    rgb = images.to(device).float() / 255
    l_norm, _ = rgb_to_model(rgb)
    grey = model_to_rgb(l_norm, torch.zeros_like(l_norm).repeat(1, 2, 1, 1))
    ours = model_to_rgb(l_norm, predict_ab(l_norm).float())
    rows = torch.stack([grey, ours, rgb], dim=1).flatten(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(rows.cpu(), nrow=3, padding=2, pad_value=1.0), path)


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl; a torn last line (a crash mid-write) is skipped with a warning."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise
            warnings.warn(f"{path}: skipped a torn last line ({line[:40]!r}...)")
    return records


def provenance(folder: Path, config: dict, step: int, when: datetime | None = None) -> dict:
    """Where a model comes from: data, schedule, date, and the validation figures of its own
    step in the run `folder`'s metrics log (the last ones at or before it), not those of a later
    checkpoint of the same run. What an export carries, whoever exports it (the training loop
    at its end, `export_model` for a checkpoint)."""
    metrics = Path(folder) / METRICS
    vals = [r for r in read_metrics(metrics) if r["kind"] == "val" and r["step"] <= step] if metrics.exists() else []
    when = when or datetime.now(timezone.utc)
    return {"data": config.get("data"), "steps": step, "image_size": config["image_size"],
            "arch": config.get("arch", "unet"), "encoder": config.get("encoder", ""),
            "epochs": config.get("epochs"), "gan_mode": config.get("gan_mode"),
            "date": when.isoformat(timespec="seconds"),
            "validation": {k: v for k, v in vals[-1].items() if k not in ("kind", "samples")} if vals else {}}


def plot_metrics(metrics_path: Path, out_path: Path) -> None:
    """Training losses over steps on the left, validation figures over epochs on the right."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    fig = Figure(figsize=(18, 3.8))
    axes = fig.subplots(1, 4)
    for key, label in (("l1", "L1 (ab)"), ("chroma", "colourfulness deficit"), ("adversarial", "G adversarial"),
                       ("loss_d", "D")):
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            axes[0].plot(*zip(*points), label=label)
    axes[0].set(title="training losses", xlabel="step", yscale="log")
    if train:
        axes[0].legend(loc="upper right", fontsize="small")
    for ax, key, title in zip(axes[1:], ("ab_l1", "psnr", "colourfulness_ratio"),
                              ("validation ab L1 (lower is better)", "validation PSNR, dB",
                               "colourfulness / truth's (1 = as colourful)")):
        for prefix, label in (("", "whole photos"), ("crop_", "tight crops"), ("old_", "old prints"),
                              ("hints10_", "whole, 10 hints"), ("scenes_", "scenes")):
            points = [(r["step"], r[prefix + key]) for r in val if prefix + key in r]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set(title=title, xlabel="step")
        if val:
            ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
