"""The two demo networks. Both take normalised tiles [N, C, 64, 64] (C = 2: attenuation high, low; C = 1: a
single-energy portal's attenuation; H down the detector, W along the scan) and are small enough to train in minutes on 2 CPU cores and to run at portal line rates on a CPU.
"""
import torch
from torch import nn


def conv_bn(cin, cout, k=3, stride=1, dilation=1):
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class GoodsNet(nn.Module):
    """Tile classifier: class logits over the goods labels and a 64-d embedding (the penultimate layer, before its
    ReLU) for reference-sample matching. ~89k parameters, ~6.7 M multiply-adds per tile."""

    def __init__(self, classes, embedding=64, channels=2):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(channels, 16, k=4, stride=2),  # 32 x 32
            conv_bn(16, 32, stride=2),  # 16 x 16
            conv_bn(32, 48, stride=2),  # 8 x 8
            conv_bn(48, 64),
            conv_bn(64, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Linear(64, embedding)
        self.classify = nn.Linear(embedding, classes)

    def forward(self, x):
        f = self.pool(self.features(x)).flatten(1)
        e = self.embed(f)
        return self.classify(torch.relu(e)), e


class ThreatNet(nn.Module):
    """Fully convolutional threat detector: per-cell logits [N, K, 16, 16] (one cell = 4 x 4 tile samples). Dilated
    layers give each cell a receptive field of ~70 samples so it sees the load around it. ~39k parameters (width 32),
    ~10 M multiply-adds per tile."""

    def __init__(self, kinds, width=32, channels=2):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, 16, k=4, stride=2),  # 32 x 32
            conv_bn(16, 24, stride=2),  # 16 x 16
            conv_bn(24, width),
            conv_bn(width, width, dilation=2),
            conv_bn(width, width, dilation=4),
            conv_bn(width, width, dilation=8),
        )
        self.head = nn.Conv2d(width, kinds, 1)

    def forward(self, x):
        return self.head(self.body(x))


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))) with the given dilation, then ReLU: a dilated residual pair at 16 x 16."""

    def __init__(self, width, dilation):
        super().__init__()
        self.a = conv_bn(width, width, dilation=dilation)
        self.b = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return torch.relu(x + self.b(self.a(x)))


class ThreatNet2(nn.Module):
    """Threat detector with more detail and more context than ThreatNet: a 32 x 32 layer keeps the fine shape of
    wires, barrels and packages before the stride to cells; dilated residual pairs (1, 2, 4, 8) give each cell a
    receptive field over the whole tile; a global context vector (mean of the cell features, projected) is added to
    every cell, so a cell knows whether it sits in a dense steel load or in clothing, where the same local contrast
    means different things. Output [N, K, 16, 16] like ThreatNet (same contract in model.json)."""

    def __init__(self, kinds, width=48, channels=2):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(channels, 24, k=4, stride=2),  # 32 x 32
            conv_bn(24, 32),
            conv_bn(32, width, stride=2),  # 16 x 16
        )
        self.blocks = nn.Sequential(*[ResidualBlock(width, d) for d in (1, 2, 4, 8)])
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width, 1), nn.ReLU(inplace=True))
        self.mix = conv_bn(width, width)
        self.head = nn.Conv2d(width, kinds, 1)

    def forward(self, x):
        f = self.blocks(self.stem(x))
        f = self.mix(f + self.context(f))
        return self.head(f)


def threat_net(arch, kinds, width, channels=2):
    """The threat network of a checkpoint's `arch` ('threatnet' or 'threatnet2') for tiles of `channels` energies."""
    if arch == 'threatnet':
        return ThreatNet(kinds, width, channels)
    if arch == 'threatnet2':
        return ThreatNet2(kinds, width, channels)
    raise ValueError('unknown threat network %r' % arch)
