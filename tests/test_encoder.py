"""The generator on a pretrained encoder: real ImageNet weights wired in, shapes, the clear error
offline, and both architectures through export, loading, colorizing and ONNX."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.nets.checkpoint import CheckpointError
from colorful_world.nets.model_file import export_generator, load_generator
from colorful_world.core.config import MODEL_FORMAT, ModelConfig, TrainConfig
from colorful_world.nets.encoders import IMAGENET_MEAN, IMAGENET_STD, EncoderWeightsError, load_classifier
from colorful_world.nets.mobilenet import MobileNetV2Features
from colorful_world.nets.models import EncoderUNet, build_generator, count_parameters

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "mobilenet_v2_imagenet.safetensors"
CATS, ESPRESSO = range(281, 286), 967  # ImageNet classes: tabby ... Egyptian cat; espresso


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason=f"no ImageNet weights file at {SHARED_WEIGHTS}")
def test_imagenet_weights_from_a_file_recognise_a_cat_and_an_espresso():
    features = load_classifier("mobilenet_v2", str(SHARED_WEIGHTS)).eval()
    # The classifier's head, which the encoder leaves out, from torchvision and the same file.
    classifier = torchvision.models.mobilenet_v2()
    classifier.load_state_dict(load_file(str(SHARED_WEIGHTS)))
    head = torch.nn.Sequential(classifier.features[-1], torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               classifier.classifier).eval()

    def top_class(photo: np.ndarray) -> int:
        image = Image.fromarray(photo).resize((224, 224), Image.BICUBIC)
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            return head(features((x - IMAGENET_MEAN) / IMAGENET_STD)).argmax().item()

    assert top_class(skdata.chelsea()) in CATS
    assert top_class(skdata.coffee()) == ESPRESSO


def test_our_mobilenet_v2_features_are_torchvisions_key_for_key_and_output_for_output():
    theirs = torchvision.models.mobilenet_v2().eval()
    ours = MobileNetV2Features().eval()
    wanted = {key: value for key, value in theirs.state_dict().items()
              if key.startswith("features.") and not key.startswith("features.18.")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in wanted.items()}
    ours.load_state_dict(wanted)
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs.features[:-1](x))


def test_offline_without_weights_is_a_clear_error_never_random_weights(tmp_path, offline_torch_hub):
    with pytest.raises(EncoderWeightsError) as err:
        load_classifier("mobilenet_v2", "imagenet")
    message = str(err.value)
    assert "internet" in message and "--encoder-weights FILE" in message and "random" in message
    with pytest.raises(EncoderWeightsError, match="no such weights file"):
        load_classifier("mobilenet_v2", str(tmp_path / "missing.safetensors"))
    wrong = tmp_path / "resnet.safetensors"
    save_file({"fc.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(EncoderWeightsError, match="not mobilenet_v2 weights"):
        load_classifier("mobilenet_v2", str(wrong))
    assert count_parameters(load_classifier("mobilenet_v2", "random")) == 1_811_712  # only when asked


@pytest.mark.parametrize("encoder, skips", [("mobilenet_v2", [16, 24, 32, 96, 320]),
                                            ("resnet18", [64, 64, 128, 256, 512])])
def test_decoder_finds_the_encoders_skips_by_resolution(encoder, skips):
    net = EncoderUNet(encoder).eval()
    x = torch.zeros(1, 3, 64, 64)
    sides = []
    for stage in net.stages:
        x = stage(x)
        sides.append((x.shape[1], x.shape[-1]))
    assert sides == [(c, 64 // 2 ** (k + 1)) for k, c in enumerate(skips)]


@pytest.mark.parametrize("height, width", [(32, 32), (64, 96), (128, 128), (160, 64)])
def test_encoder_unet_maps_l_to_ab_at_several_sizes(height, width):
    net = EncoderUNet("mobilenet_v2").eval()
    with torch.no_grad():
        ab = net(torch.rand(2, 1, height, width) * 2 - 1)
    assert ab.shape == (2, 2, height, width) and ab.abs().max() <= 1
    assert net.depth == 5


def test_model_configs_name_their_architecture_and_old_ones_still_load(tiny_model):
    new = TrainConfig(image_size=64).model()
    assert (new.arch, new.encoder, new.depth, new.format) == ("encoder_unet", "mobilenet_v2", 5, MODEL_FORMAT)
    _, old_config, _ = load_generator(tiny_model)  # written without arch or format, as models were
    old = ModelConfig.from_dict(old_config)
    assert (old.arch, old.format, old.max_channels) == ("unet", 1, 512)
    with pytest.raises(ValueError, match="newer"):
        ModelConfig.from_dict(asdict(new) | {"format": MODEL_FORMAT + 1})
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelConfig.from_dict(asdict(new) | {"arch": "transformer"})


def _export(net, config: TrainConfig, path: Path) -> Path:
    export_generator(net.state_dict(), asdict(config) | {"format": MODEL_FORMAT}, path, fp16=True)
    return path


@pytest.mark.parametrize("arch", [pytest.param("encoder_unet", marks=pytest.mark.slow), "unet"])
def test_both_architectures_export_load_colorize_and_match_onnx(arch, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = TrainConfig(arch=arch, image_size=64, base_channels=8, encoder_weights="random")
    torch.manual_seed(0)
    net = build_generator(config.model())
    for p in net.parameters():  # away from their initial values, so that loading them is visible
        p.data.add_(0.01 * torch.randn_like(p))
    path = _export(net.eval(), config, tmp_path / f"{arch}.safetensors")

    loaded, loaded_config, _ = load_generator(path)
    assert type(loaded) is type(net) and loaded_config["arch"] == arch
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.no_grad():  # fp16 storage: close, not equal
        assert torch.allclose(loaded(x), net.half().float()(x), atol=1e-3)

    photo = Image.fromarray(skdata.astronaut()).resize((120, 90)).convert("L")
    torch_out = np.asarray(Colorizer.from_checkpoint(path).colorize(photo), dtype=int)
    onnx_out = np.asarray(Colorizer.from_checkpoint(path, backend="onnx").colorize(photo), dtype=int)
    assert torch_out.shape == onnx_out.shape == (90, 120, 3)
    assert np.abs(torch_out - onnx_out).max() <= 1  # 1/255 per channel


def test_a_config_that_does_not_match_its_weights_is_refused_clearly(tmp_path):
    config = TrainConfig(arch="encoder_unet", image_size=64, encoder_weights="random")
    net = build_generator(config.model())
    wrong = _export(net, TrainConfig(arch="encoder_unet", image_size=64, encoder="resnet18"), tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match="does not describe its weights"):
        load_generator(wrong)
    broken = tmp_path / "b.safetensors"
    export_generator(net.state_dict(), {"arch": "encoder_unet", "image_size": 0, "depth": 5,
                                        "base_channels": 16}, broken)
    with pytest.raises(CheckpointError, match="image_size must be a whole number from 1 to 2048, got 0"):
        load_generator(broken)
    lacking = tmp_path / "c.safetensors"
    export_generator(net.state_dict(), {"arch": "encoder_unet"}, lacking)
    with pytest.raises(CheckpointError, match="lacks image_size"):
        load_generator(lacking)
