"""MobileNetV2's feature layers (Sandler et al., 2018), with the module names torchvision gives
them, so torchvision's ImageNet state_dict loads into them as it is.

Built here rather than by torchvision because importing torchvision takes 1.5 s (its detection
ops pull in torch's compiler stack), which every `colorize` and every server start paid for a
network that needs none of it. Tests check it against torchvision's, key for key and output for
output.
"""

from torch import Tensor, nn

# The paper's table 2: expansion t, output channels c, repeats n, stride s of the first repeat.
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_STEM = 32


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1), filter each channel (3x3), project (1x1, no activation); a shortcut when
    the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        expand = [_conv_bn_relu6(cin, hidden, kernel=1)] if expansion != 1 else []
        self.conv = nn.Sequential(*expand, _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.shortcut else self.conv(x)


class MobileNetV2Features(nn.Module):
    """`features` as torchvision's mobilenet_v2 has it, without its last 1x1 conv (320 -> 1280
    channels), which only feeds the classifier."""

    def __init__(self):
        super().__init__()
        layers, cin = [_conv_bn_relu6(3, _STEM, stride=2)], _STEM
        for expansion, cout, repeats, stride in _BLOCKS:
            for n in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if n == 0 else 1, expansion))
                cin = cout
        self.features = nn.Sequential(*layers)
        for module in self.modules():  # the paper's initialisation, as torchvision does it
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
