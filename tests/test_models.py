import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from colorful_world import Colorizer
from colorful_world.core.data import augment, epoch_order, split_by_person
from colorful_world.io.images import load_rgb
from colorful_world.nets.models import PatchDiscriminator, UNet, count_parameters, receptive_field
from colorful_world.io.png import png_bytes


@pytest.mark.parametrize("depth,size", [(3, 32), (5, 64), (8, 256)])
def test_unet_maps_l_to_ab_in_range(depth, size):
    net = UNet(base_channels=4, depth=depth, dropout=0.5).eval()
    ab = net(torch.randn(2, 1, size, size))
    assert ab.shape == (2, 2, size, size) and ab.dtype == torch.float32
    assert ab.abs().max() <= 1


def test_pix2pix_sized_unet_has_its_parameter_count():
    assert count_parameters(UNet(base_channels=64, depth=8)) == 54_409_858


def test_discriminator_scores_patches_of_70_pixels():
    disc = PatchDiscriminator(base_channels=8, n_layers=3)
    # Instance-norm statistics are image-wide by design; the receptive field is the convolutions' reach.
    for i, layer in enumerate(disc.model):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            disc.model[i] = torch.nn.Identity()
    l_norm = torch.zeros(1, 1, 128, 128, requires_grad=True)
    logits = disc(l_norm, torch.zeros(1, 2, 128, 128))
    assert logits.shape == (1, 1, 14, 14)
    # The input pixels that one logit depends on span exactly the receptive field.
    logits[0, 0, 7, 7].backward()
    rows, cols = np.nonzero(l_norm.grad[0, 0].abs().numpy() > 0)
    assert rows.max() - rows.min() + 1 == receptive_field(3) == 70
    assert cols.max() - cols.min() + 1 == 70


def test_augment_crops_and_keeps_uint8():
    images = torch.randint(0, 255, (5, 3, 64, 64), dtype=torch.uint8)
    crops = augment(images, 32, torch.Generator().manual_seed(0), min_crop=0.5)
    assert crops.shape == (5, 3, 32, 32) and crops.dtype == torch.uint8
    again = augment(images, 32, torch.Generator().manual_seed(0), min_crop=0.5)
    assert torch.equal(crops, again)


def test_augment_scales_from_tight_crops_to_the_whole_photo():
    # A photo whose columns are numbered: a crop's span of numbers is the share of the side it saw.
    columns = torch.arange(64, dtype=torch.uint8).expand(200, 3, 64, 64)
    crops = augment(columns, 32, torch.Generator().manual_seed(1), min_crop=0.5)
    spans = (crops[:, 0, 16].max(dim=1).values - crops[:, 0, 16].min(dim=1).values).float() / 63
    assert spans.min() >= 0.45 and spans.max() >= 0.95  # from half the side to all of it
    assert 0.65 < spans.mean() < 0.85  # uniform in between
    whole = augment(columns, 32, torch.Generator().manual_seed(1), min_crop=1.0)
    assert torch.all(whole[:, 0, 16].max(dim=1).values >= 62)  # min_crop 1: always the whole photo


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    order = epoch_order(100, epoch=3, seed=1)
    assert sorted(order.tolist()) == list(range(100))
    assert torch.equal(order, epoch_order(100, 3, 1))
    assert not torch.equal(order, epoch_order(100, 4, 1))


def test_lfw_layout_is_split_by_person(tmp_path):
    files = [tmp_path / f"Person_{p}" / f"Person_{p}_{i:04d}.jpg" for p in range(20) for i in range(1, 4)]
    train, val = split_by_person(files, val_fraction=0.2, seed=0)
    people = lambda fs: {f.parent.name for f in fs}  # noqa: E731
    assert len(people(val)) == 4 and not people(train) & people(val)
    assert sorted(train + val) == sorted(files)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "I", "F"])
def test_every_mode_loads_as_rgb(mode):
    image = Image.new("RGB", (7, 5), (200, 30, 60)).convert(mode) if mode != "I;16" \
        else Image.fromarray(np.full((5, 7), 40000, dtype=np.uint16))
    rgb, alpha = load_rgb(image)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert (alpha is not None) == (mode in ("LA", "RGBA"))
    pixels, _ = load_rgb(image, keep_grey=True)  # grey photos as one plane: the same values
    grey = mode in ("L", "LA", "I;16", "I", "F")
    assert pixels.shape == ((5, 7) if grey else (5, 7, 3))
    assert np.array_equal(pixels, rgb[..., 0] if grey else rgb)


def test_colorizer_keeps_size_and_luminance(tiny_model):
    colorizer = Colorizer.from_checkpoint(tiny_model)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (77, 123), dtype=np.uint8), "L")
    out = colorizer.colorize(photo)
    assert out.size == (123, 77) and out.mode == "RGB"
    light_in = skcolor.rgb2lab(np.asarray(photo.convert("RGB")) / 255.0)[..., 0]
    light_out = skcolor.rgb2lab(np.asarray(out) / 255.0)[..., 0]
    # The photo's own lightness is kept; only chroma is added (small shifts from gamut clipping).
    assert np.abs(light_out - light_in).mean() < 1.5


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_colorize_png_writes_the_bytes_of_colorize_made_a_band_at_a_time(tiny_model, mode):
    colorizer = Colorizer.from_checkpoint(tiny_model)
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 256, (1500, 700, 4), dtype=np.uint8), "RGBA").convert(mode)
    expected = png_bytes(colorizer.colorize(photo))  # 1500 rows: many bands, several pieces
    assert colorizer.colorize_png(photo) == expected
    assert colorizer.colorize_png(photo, threads=1) == expected
    assert Image.open(io.BytesIO(expected)).mode == ("RGBA" if "A" in mode else "RGB")


def test_colorizer_works_at_another_size_and_refuses_a_bad_one(tiny_model):
    colorizer = Colorizer.from_checkpoint(tiny_model)
    photo = Image.new("L", (50, 40), 120)
    assert colorizer.colorize(photo, size=64).size == (50, 40)
    with pytest.raises(ValueError, match="multiple of 8"):
        colorizer.colorize(photo, size=60)


@pytest.mark.parametrize("arch", ["encoder_unet", "unet"])
def test_folding_batch_norms_keeps_the_function(arch):
    from colorful_world.core.config import TrainConfig
    from colorful_world.nets.models import build_generator
    from colorful_world.nets.predict import TorchNetwork

    torch.manual_seed(0)
    net = build_generator(TrainConfig(arch=arch, image_size=64, base_channels=8).model())
    for module in net.modules():  # statistics of a trained network, not the identity of a new one
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    net.eval()
    small = np.random.default_rng(0).uniform(-1, 1, (1, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(small)).numpy()
    network = TorchNetwork(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in network.generator.modules())
    np.testing.assert_allclose(network(small), expected, atol=1e-5)
