"""Old-print damage on L, the old validation framing, and restoring a faded print's contrast."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorful_world import Colorizer
from colorful_world.core.config import TrainConfig
from colorful_world.core.data import training_batch
from colorful_world.core.old_print import Damage, damage, damage_batch, old_print_framing
from colorful_world.core.tone import stretch_contrast


def ramp(side: int = 64) -> torch.Tensor:
    """L in [-1, 1], dark on the left to light on the right."""
    return torch.linspace(-1, 1, side).repeat(side, 1)[None]


def test_damage_is_a_function_of_the_seed_and_keeps_shape_dtype_and_range():
    l_norm = ramp().repeat(8, 1, 1, 1)
    first = damage_batch(l_norm, torch.Generator().manual_seed(3), 1.0)
    again = damage_batch(l_norm, torch.Generator().manual_seed(3), 1.0)
    other = damage_batch(l_norm, torch.Generator().manual_seed(4), 1.0)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == l_norm.shape and first.dtype == l_norm.dtype
    assert first.min() >= -1 and first.max() <= 1
    assert torch.equal(damage_batch(l_norm, torch.Generator().manual_seed(3), 0.0), l_norm)


def test_each_kind_of_damage_changes_L_by_what_its_parameters_say():
    rng = torch.Generator().manual_seed(0)
    flat = torch.zeros(1, 128, 128)  # mid-grey
    grainy = (damage(flat, Damage(grain=0.05), rng) + 1) / 2
    assert grainy.std().item() == pytest.approx(0.05, rel=0.15)
    faded = (damage(ramp(), Damage(black=0.2, white=0.9, gamma=1.0), rng) + 1) / 2
    assert faded.min().item() == pytest.approx(0.2, abs=0.01) and faded.max().item() == pytest.approx(0.9, abs=0.01)
    darker = (damage(ramp(), Damage(gamma=1.4), rng) + 1) / 2
    assert darker.mean() < ((ramp() + 1) / 2).mean() - 0.03  # gamma > 1 darkens the mid-tones
    edge = torch.where(torch.arange(64) < 32, -1.0, 1.0).repeat(64, 1)[None]
    soft = damage(edge, Damage(blur=1.5), rng)
    assert (soft[0, :, 31] - soft[0, :, 30]).abs().max() < 1.5  # the step is no longer one pixel wide
    shaken = damage(edge, Damage(motion=7, angle=0.0), rng)
    assert (shaken - edge).abs().max() > 0.2
    dusty = damage(flat, Damage(specks=10, scratches=2), rng)
    assert ((dusty - flat).abs() > 0.5).sum() >= 10
    scanned = damage(ramp(), Damage(jpeg=20), rng)
    assert 0.001 < (scanned - ramp()).abs().mean() < 0.05


def test_the_colour_target_stays_clean():
    images = (torch.rand(8, 3, 80, 80) * 255).to(torch.uint8)
    config = TrainConfig()
    args = (images, torch.arange(8), 64, 0, 5, config.min_crop)
    clean = training_batch(*args, 0.0, False, torch.device("cpu"))
    old = training_batch(*args, 1.0, False, torch.device("cpu"))
    assert torch.equal(clean.rgb, old.rgb) and torch.equal(clean.ab, old.ab) and torch.equal(clean.l_norm, old.l_norm)
    assert torch.equal(clean.l_input, clean.l_norm) and not torch.equal(old.l_input, old.l_norm)


def test_the_old_framing_is_the_same_draw_every_time_and_batch_independent():
    l_norm = ramp().repeat(6, 1, 1, 1)
    whole = old_print_framing(l_norm)
    halves = torch.cat([old_print_framing(l_norm[:3]), old_print_framing(l_norm[3:], first_index=3)])
    assert torch.equal(whole, halves) and not torch.equal(whole, l_norm)


def test_a_faded_print_gets_its_full_range_back_and_a_full_one_is_unchanged():
    faded = np.linspace(30, 65, 200 * 200, dtype=np.float32).reshape(200, 200)
    restored = stretch_contrast(faded)
    assert np.percentile(restored, 0.5) < 1 and np.percentile(restored, 99.5) > 99
    assert (restored <= 0).mean() < 0.01 and (restored >= 100).mean() < 0.01  # only a sliver clipped
    full = np.linspace(0, 100, 200 * 200, dtype=np.float32).reshape(200, 200)
    assert stretch_contrast(full) is full
    flat = np.full((10, 10), 50, np.float32)
    assert stretch_contrast(flat) is flat


def test_contrast_restoration_is_off_by_default_and_reaches_the_colorizer():
    colorizer = Colorizer.from_checkpoint()
    grey = np.linspace(80, 170, 96 * 64).reshape(96, 64).astype(np.uint8)  # a faded print
    photo = Image.fromarray(grey, "L")
    default = np.asarray(colorizer.colorize(photo))
    assert np.array_equal(default, np.asarray(colorizer.colorize(photo, restore_contrast=False)))
    restored = np.asarray(colorizer.colorize(photo, restore_contrast=True).convert("L")).astype(int)
    before = np.asarray(Image.fromarray(default).convert("L")).astype(int)
    assert restored.max() - restored.min() > before.max() - before.min() + 60
