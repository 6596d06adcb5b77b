"""The README's pictures, from photos scikit-image ships, with the bundled model:

    python docs/figures.py        # writes docs/before_after.jpg and docs/old_print.jpg

before_after.jpg: grey | automatic | with 3 hints | the original (the hints' colours are the
original's at their points, marked on the third panel). old_print.jpg: scikit-image's
`astronaut` made to look like an old print | automatic | with its contrast restored, and the
real black-and-white photograph `camera` | automatic.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from skimage import data

from colorful_world import Colorizer
from colorful_world.core.old_print import Damage, damage

HERE = Path(__file__).resolve().parent
HINTS = [(90, 300), (200, 430), (25, 230)]  # the suit twice and a red stripe of the flag (pixels of the 512 px photo)
PANEL = 320


def panel(image: Image.Image, label: str) -> Image.Image:
    image = image.convert("RGB").resize((PANEL, PANEL * image.height // image.width), Image.LANCZOS)
    out = Image.new("RGB", (PANEL, image.height + 22), "white")
    out.paste(image, (0, 22))
    ImageDraw.Draw(out).text((6, 5), label, fill="black")
    return out


def row(panels: list[Image.Image]) -> Image.Image:
    height = max(p.height for p in panels)
    out = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), height), "white")
    left = 0
    for p in panels:
        out.paste(p, (left, 0))
        left += p.width + 8
    return out


def hinted(colorizer: Colorizer, truth: np.ndarray, grey: Image.Image) -> Image.Image:
    hints = [(x, y, "#%02x%02x%02x" % tuple(truth[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0).round().astype(int)))
             for x, y in HINTS]
    result = colorizer.colorize(grey, hints=hints)
    draw = ImageDraw.Draw(result)
    for x, y, colour in hints:
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=colour, outline="black", width=3)
    return result


def old_print(grey: Image.Image) -> Image.Image:
    """A faded, soft, grainy scan with dust: the damage training simulates, at this photo's size."""
    l_norm = torch.from_numpy(np.asarray(grey, np.float32) / 127.5 - 1)[None]
    worn = damage(l_norm, Damage(black=0.22, white=0.85, gamma=1.2, blur=1.2, grain=0.05, specks=12, jpeg=40),
                  torch.Generator().manual_seed(0))
    return Image.fromarray(((worn[0].numpy() + 1) * 127.5).round().astype(np.uint8), "L")


def main() -> None:
    colorizer = Colorizer.from_checkpoint()
    truth = data.astronaut()
    grey = Image.fromarray(truth).convert("L")
    row([panel(grey, "black and white"), panel(colorizer.colorize(grey), "automatic"),
         panel(hinted(colorizer, truth, grey), "with 3 hints (dots)"),
         panel(Image.fromarray(truth), "the original")]).save(HERE / "before_after.jpg", quality=88)
    worn = old_print(grey)
    camera = Image.fromarray(data.camera())
    row([panel(worn, "an old print"), panel(colorizer.colorize(worn), "automatic"),
         panel(colorizer.colorize(worn, restore_contrast=True), "contrast restored"),
         panel(camera, "a black-and-white photograph"), panel(colorizer.colorize(camera), "automatic")]
        ).save(HERE / "old_print.jpg", quality=88)


if __name__ == "__main__":
    main()
