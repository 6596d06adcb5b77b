"""Recoloured training photos: one object in a far colour, clicked inside, the rest as it was."""
import torch

from colorful_world.core.color import model_to_rgb, rgb_to_model
from colorful_world.core.recolour import MIN_CHROMA, recolour
from colorful_world.core.simulated_clicks import simulate_clicks


def _two_halves(n: int = 8, side: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Photos whose left half is one colour and right half another, at the same lightness."""
    l_norm = torch.zeros(n, 1, side, side)
    ab = torch.zeros(n, 2, side, side)
    ab[:, 0, :, :side // 2], ab[:, 1, :, side // 2:] = 0.3, -0.3
    rgb = model_to_rgb(l_norm, ab)
    return rgb, *rgb_to_model(rgb)


def test_one_half_takes_a_far_colour_its_clicks_say_so_and_the_other_half_stays():
    rgb, l_norm, ab = _two_halves()
    clicks = simulate_clicks(ab, torch.Generator().manual_seed(0), count=4, patch=1)
    new_rgb, new_ab, new_hints = recolour(rgb, l_norm, ab, clicks, torch.Generator().manual_seed(1), share=1.0)
    for i in range(len(ab)):
        changed = (new_ab[i] - ab[i]).norm(dim=0) > 1e-3
        shares = sorted([changed[:, :16].float().mean().item(), changed[:, 16:].float().mean().item()])
        assert shares[0] == 0 and shares[1] > 0.9, shares  # one half (but the edge's blurred column), never both
        region = changed
        assert new_hints[i, 2].sum() >= 1 and bool((new_hints[i, 2] > 0)[~region].sum() == 0)  # clicks inside
        hinted = new_hints[i, 2] > 0
        assert torch.allclose(new_hints[i, :2][:, hinted], new_ab[i][:, hinted], atol=1e-4)
        before, after = ab[i][:, region].mean(dim=1), new_ab[i][:, region].mean(dim=1)
        assert torch.dot(before, after) < 0 and after.norm() >= MIN_CHROMA * 0.9  # the opposite hue, strong
    assert not torch.equal(new_rgb, rgb)


def test_recolouring_is_seeded_and_leaves_photos_without_hints_alone():
    rgb, l_norm, ab = _two_halves()
    clicks = simulate_clicks(ab, torch.Generator().manual_seed(0), count=4, patch=1)
    clicks[:2] = 0  # the first two photos have no hints
    first = recolour(rgb, l_norm, ab, clicks, torch.Generator().manual_seed(5), share=1.0)
    again = recolour(rgb, l_norm, ab, clicks, torch.Generator().manual_seed(5), share=1.0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert torch.equal(first[1][:2], ab[:2]) and not first[2][:2].any()
    assert recolour(rgb, l_norm, ab, clicks, torch.Generator(), share=0.0)[1] is ab
