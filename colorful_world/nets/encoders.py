"""Pretrained torchvision backbones as U-Net encoders, and where their ImageNet weights come from.

A backbone is a line in ENCODERS: its constructor (torchvision's, or one with the same layer
names), its torchvision weights enum, and the part of the classifier that computes features (a sequence of modules, as DynamicUnet expects); the
decoder finds the skip connections itself, by where the resolution halves.
"""

import os
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from colorful_world.io.errors import UserError
from colorful_world.nets.mobilenet import MobileNetV2Features

WEIGHTS_ENV = "COLORFUL_WORLD_ENCODER_WEIGHTS"  # a weights file used when --encoder-weights is imagenet


class EncoderWeightsError(UserError, ValueError):
    """ImageNet weights asked for and not to be had: offline with no file named, or a wrong file."""


@dataclass(frozen=True)
class Encoder:
    build: Callable[[], nn.Module]  # the classifier, or the part of it we use, randomly initialised
    weights: str  # the name of its torchvision weights enum member, e.g. "MobileNet_V2_Weights.IMAGENET1K_V1"
    features: Callable[[nn.Module], nn.Sequential]  # the classifier's feature layers, stride 2 ... 32


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models  # heavy: only when a network is built
        return getattr(torchvision.models, name)(weights=None)
    return build


def _resnet_features(m: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Sequential(m.conv1, m.bn1, m.relu), m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)


ENCODERS = {
    # Built here, with torchvision's names: torchvision's import alone takes longer than colorizing.
    "mobilenet_v2": Encoder(MobileNetV2Features, "MobileNet_V2_Weights.IMAGENET1K_V1", lambda m: m.features),
    "resnet18": Encoder(_tv("resnet18"), "ResNet18_Weights.IMAGENET1K_V1", _resnet_features),
    "resnet34": Encoder(_tv("resnet34"), "ResNet34_Weights.IMAGENET1K_V1", _resnet_features),
}


def load_classifier(name: str, weights: str) -> nn.Module:
    """The torchvision classifier `name` with `weights`: "imagenet" (torchvision's weights API,
    or the file named by $COLORFUL_WORLD_ENCODER_WEIGHTS), "random", or a file of that
    classifier's state_dict: safetensors, or torchvision's own .pth."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    spec = ENCODERS[name]
    model = spec.build()
    if weights == "random":
        return model
    if weights == "imagenet" and os.environ.get(WEIGHTS_ENV):
        weights = os.environ[WEIGHTS_ENV]
    if weights == "imagenet":
        state = _download_imagenet(name, spec)
    else:
        state = _read_weights_file(Path(weights).expanduser(), name)
    # The classifier's own layers (its head, the last conv before it) may be in the file and not
    # in the model; every layer of the model must be in the file.
    state = {key: value for key, value in state.items() if key in model.state_dict()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise EncoderWeightsError(f"{weights}: not {name} weights ({str(err).splitlines()[0]})") from None
    return model


def _download_imagenet(name: str, spec: Encoder) -> dict:
    import torchvision.models
    enum_name, member = spec.weights.split(".")
    weights = getattr(getattr(torchvision.models, enum_name), member)
    try:  # torch hub's cache first, then the internet
        return weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad hash a RuntimeError
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        raise EncoderWeightsError(
            f"could not get the ImageNet weights of {name} from torchvision ({err}). Either connect to the "
            f"internet (torchvision downloads {weights.url} once), or copy that file to {cached}, where "
            f"torch looks for it first, or name it, or a safetensors file of torchvision's {name} state_dict, "
            f"with --encoder-weights FILE (or ${WEIGHTS_ENV}). "
            f"--encoder-weights random trains the encoder from scratch instead.") from None


def _read_weights_file(path: Path, name: str) -> dict:
    """A state_dict from safetensors, or from torchvision's own .pth (told apart by their first
    bytes, whatever the name), the latter loaded with weights_only: tensors, never code."""
    from safetensors.torch import load_file
    if not path.is_file():
        raise EncoderWeightsError(f"{path}: no such weights file for the {name} encoder "
                                  "(give a safetensors or torchvision .pth state_dict, 'imagenet' or 'random')")
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save's zip, or its older plain pickle
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # an UnpicklingError for anything beyond tensors, a zip error for damage
            raise EncoderWeightsError(f"{path}: not a torchvision weights file that loads without running "
                                      f"code ({str(err).splitlines()[0]})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise EncoderWeightsError(f"{path}: holds no state_dict of tensors")
        return state
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors has its own error types for a damaged file
        raise EncoderWeightsError(f"{path}: neither a safetensors nor a torchvision .pth weights file "
                                  f"({err})") from None


def feature_stages(name: str, weights: str) -> nn.Sequential:
    """The encoder's feature layers, ready to be split into stages by resolution."""
    return ENCODERS[name].features(load_classifier(name, weights))


# ImageNet normalisation of torchvision's classifiers.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
