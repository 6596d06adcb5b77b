"""What a person looks at: the sample grid (grey | ours | truth) and the loss/metric plot."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; a notebook shows the PNGs
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

from colorful_world.color import model_to_rgb, rgb_to_model  # noqa: E402


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
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_metrics(metrics_path: Path, out_path: Path) -> None:
    """Training losses over steps on the left, validation figures over epochs on the right."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    for key, label in (("l1", "L1 (ab)"), ("adversarial", "G adversarial"), ("loss_d", "D")):
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            axes[0].plot(*zip(*points), label=label)
    axes[0].set(title="training losses", xlabel="step", yscale="log")
    if train:
        axes[0].legend(loc="upper right", fontsize="small")
    for ax, key, title in zip(axes[1:], ("ab_l1", "psnr", "colourfulness_ratio"),
                              ("validation ab L1 (lower is better)", "validation PSNR, dB",
                               "colourfulness / truth's (1 = as colourful)")):
        if val:
            ax.plot([r["step"] for r in val], [r[key] for r in val], marker="o")
        ax.set(title=title, xlabel="step")
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
