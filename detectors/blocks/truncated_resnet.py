"""The small from-scratch trunk NPR and SAFE share: a ResNet-50 cut after ``layer2``.

Stem: 3×3 convolution, 64 channels, stride 2, no bias; BatchNorm; ReLU; 3×3/2 max-pool (not the
7×7 ResNet stem). Then torchvision's ResNet-50 Bottleneck ``layer1`` (3 blocks, 64 → 256 channels)
and ``layer2`` (4 blocks, 128 → 512, stride 2), global average pooling and ``fc1`` = Linear(512, n).
No ``layer3``/``layer4``. Convolutions are Kaiming-normal (fan-out), BatchNorm weight 1 and bias 0.
About 1.44M parameters. Module names equal the released files' keys (``conv1``, ``bn1``,
``layer1.0.conv1``, ..., ``fc1``), so those load without renaming.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck


class TruncatedResNet(nn.Module):
    """NPR/SAFE trunk with ``num_outputs`` logits (NPR: 1; SAFE: 2)."""

    def __init__(self, num_outputs: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, blocks=3, stride=1)
        self.layer2 = _layer(256, 128, blocks=4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(512, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` → ``[B, num_outputs]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc1(self.avgpool(x).flatten(1))


def _layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet-50 stage of Bottleneck blocks (expansion 4), stride on the 3×3 convolution."""
    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out))
    layers = [Bottleneck(inplanes, planes, stride=stride, downsample=downsample)]
    layers += [Bottleneck(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)

