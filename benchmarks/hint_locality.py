"""Does a hint stay in its object? On photos with human-drawn regions (BSDS500's, in
scenes-v1-val-segments.tgz): in each photo the largest region covering 4-40% of it gets one hint
at its most interior point, in a colour far from the truth (the true ab there turned 180 degrees
in hue, chroma at least 40); the change of ab against the same photo without the hint is measured
inside the region and outside it (pixels more than 12 px from it).

    python benchmarks/hint_locality.py [--checkpoint MODEL] [--backend torch|onnx]
        [--photos scenes-v1.tgz] [--segments scenes-v1-val-segments.tgz] [--limit N]

Prints, over the photos: the mean change inside and outside, the leak (outside / inside: 0 is a
hint that stays home), and how far inside the region the colour moved towards the hint's
(distance to it after / before: 0 is all the way, 1 not at all).
"""

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color as skcolor
from tqdm.auto import tqdm

from colorful_world import Colorizer
from colorful_world.core.data import resolve_data
from colorful_world.io.images import find_images

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REGION_SHARE = (0.04, 0.40)  # the hinted region's share of the photo
MARGIN = 12  # px: "outside" starts this far from the region (its edge is a person's line, not a pixel's)
MIN_CHROMA = 40  # the hint's chroma, at least: a colour far from the truth's


def hinted_region(segments: np.ndarray) -> np.ndarray | None:
    """The largest region covering REGION_SHARE of the photo (a boolean mask), or None."""
    labels, counts = np.unique(segments, return_counts=True)
    fits = [(count, label) for label, count in zip(labels, counts)
            if REGION_SHARE[0] <= count / segments.size <= REGION_SHARE[1]]
    return segments == max(fits)[1] if fits else None


def far_colour(truth_lab: np.ndarray, y: int, x: int) -> str:
    """The hint: the truth's colour at (x, y), its hue turned 180 degrees, chroma at least MIN_CHROMA."""
    light, a, b = truth_lab[y, x]
    chroma = float(np.hypot(a, b))
    direction = np.array([-a, -b]) / chroma if chroma > 1e-3 else np.array([1.0, 0.0])
    a2, b2 = direction * max(chroma, MIN_CHROMA)
    with warnings.catch_warnings():  # a colour outside sRGB is clipped into it, as a picker would
        warnings.simplefilter("ignore")
        rgb = skcolor.lab2rgb(np.array([[[light, a2, b2]]]))[0, 0]
    return "#%02x%02x%02x" % tuple((rgb * 255).round().astype(int))


def measure(colorizer: Colorizer, photo: Path, segments_path: Path) -> dict | None:
    truth = np.asarray(Image.open(photo).convert("RGB"))
    segments = np.asarray(Image.open(segments_path))
    region = hinted_region(segments) if segments.shape == truth.shape[:2] else None
    if region is None:
        return None
    inside_depth = ndimage.distance_transform_edt(region)
    y, x = np.unravel_index(np.argmax(inside_depth), region.shape)
    truth_lab = skcolor.rgb2lab(truth)
    colour = far_colour(truth_lab, y, x)
    grey = Image.fromarray(truth).convert("L")
    plain = skcolor.rgb2lab(np.asarray(colorizer.colorize(grey)))[..., 1:]
    hinted = skcolor.rgb2lab(np.asarray(colorizer.colorize(grey, hints=[(int(x), int(y), colour)])))[..., 1:]
    hint_ab = skcolor.rgb2lab(np.array([[[int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]]]))[0, 0, 1:]
    change = np.linalg.norm(hinted - plain, axis=-1)
    outside = ndimage.distance_transform_edt(~region) > MARGIN
    before = np.linalg.norm(plain[region] - hint_ab, axis=-1).mean()
    after = np.linalg.norm(hinted[region] - hint_ab, axis=-1).mean()
    return {"inside": float(change[region].mean()), "outside": float(change[outside].mean()),
            "before": float(before), "after": float(after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a model that takes hints (default: the bundled one)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--photos", default=str(SHARED / "scenes-v1.tgz"),
                        help="the photos: a folder or archive; those with a region map of the same stem are used")
    parser.add_argument("--segments", default=str(SHARED / "scenes-v1-val-segments.tgz"),
                        help="the region maps: PNGs of region numbers, a folder or archive")
    parser.add_argument("--cache-dir", default=None, help="where archives are extracted (default: a temporary folder)")
    parser.add_argument("--limit", type=int, default=0, help="the first N photos only; 0: all")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    colorizer = Colorizer.from_checkpoint(args.checkpoint, backend=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache_dir or tmp)
        maps = {p.stem: p for p in find_images(resolve_data(args.segments, cache)) if p.suffix == ".png"}
        photos = [p for p in find_images(resolve_data(args.photos, cache)) if p.stem in maps]
        photos = photos[:args.limit or None]
        results = [r for p in tqdm(photos, desc="hints", disable=args.no_progress)
                   if (r := measure(colorizer, p, maps[p.stem])) is not None]
    if not results:
        raise SystemExit(f"no photo of {args.photos} has a region map in {args.segments} with a region of "
                         f"{REGION_SHARE[0]:.0%}-{REGION_SHARE[1]:.0%} of it")
    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
    print(json.dumps({"photos": len(results), "skipped": len(photos) - len(results),
                      "inside_change": round(mean["inside"], 2), "outside_change": round(mean["outside"], 2),
                      "leak": round(mean["outside"] / mean["inside"], 3),
                      "distance_after_over_before": round(mean["after"] / mean["before"], 3)}, indent=2))


if __name__ == "__main__":
    main()
