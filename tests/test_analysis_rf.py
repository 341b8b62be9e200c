"""Receptive fields against a gradient measurement.

The oracle: a linearised copy of the network (max-pooling replaced by average pooling of the same
window, batch norm left at its identity statistics in eval mode, dropout off, every weight a
positive constant, biases zero) on an all-ones input makes every activation positive, so ReLUs
pass everything and no gradient cancels; backpropagating from the centre unit of the final feature
map then lights up exactly that unit's receptive field in the input. The input is chosen large
enough that the field is not clipped by the border, which the test checks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze


class Features(nn.Module):
    """``forward_features`` of a zoo model as a module of its own (the analyzer runs forward)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def linearise(model: nn.Module) -> nn.Module:
    for name, child in list(model.named_children()):
        if isinstance(child, nn.MaxPool2d):
            pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode)
            setattr(model, name, pool)
        else:
            linearise(child)
    with torch.no_grad():
        for m in model.modules():
            for pname, p in m.named_parameters(recurse=False):
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    p.fill_(1.0 if pname == "weight" else 0.0)
                elif pname == "bias":
                    p.zero_()
                else:  # a fan-in-normalised positive constant keeps activations near 1
                    p.fill_(1.0 / max(p[0].numel(), 1))
    return model.eval()


def measured_rf(net: nn.Module, size: int, chans: int) -> tuple[int, int]:
    """Height and width of the input region the centre output unit depends on."""
    x = torch.ones(1, chans, size, size, dtype=torch.float64, requires_grad=True)
    y = net.double()(x)
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    hit = x.grad[0].abs().sum(0) > 0
    rows = hit.any(1).nonzero().flatten()
    cols = hit.any(0).nonzero().flatten()
    assert rows.min() > 0 and rows.max() < size - 1, "field clipped: use a larger input"
    assert cols.min() > 0 and cols.max() < size - 1, "field clipped: use a larger input"
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def check(net: nn.Module, chans: int, guess: int = 64) -> int:
    """Analyse ``net`` at an input big enough for its field, then measure the field there."""
    report = analyze(net, (chans, guess, guess))
    rf, stride = report.total.rf, max(r.stride for r in report.layers)
    assert not report.total.rf_global
    size = rf + 4 * stride + 8
    report = analyze(net, (chans, size, size))
    assert report.total.rf == rf  # the field does not depend on the input size
    assert measured_rf(linearise(net), size, chans) == (rf, rf)
    return rf


class Branchy(nn.Module):
    """Inception-style concatenation of 1x1 / 3x3 / 5x5 / pooled branches, a strided residual
    block with a 1x1 projection shortcut, and a functional ``F.avg_pool2d`` and ``+``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 7, stride=2, padding=3)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b3 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.Conv2d(4, 4, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(8, 4, 5, padding=2), nn.ReLU())
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), nn.Conv2d(8, 4, 1))
        self.res = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16))
        self.res2 = nn.Conv2d(16, 16, 3, padding=1, dilation=1)
        self.short = nn.Conv2d(16, 16, 1, stride=2)
        self.tail = nn.Conv2d(16, 8, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)
        x = F.relu(self.res2(self.res(x)) + self.short(x))
        return self.tail(F.avg_pool2d(x, 2))  # functional (max would defeat the oracle)


def test_branching_graph_by_hand_and_by_gradient():
    # stem 7 (jump 2); widest branch 5x5: 7 + 4*2 = 15; res 3x3/2: 15 + 2*2 = 19 (jump 4);
    # res2 3x3: 19 + 2*4 = 27; the shortcut (15 + 0) loses the max; pool 2/2: 27 + 1*4 = 31.
    assert check(Branchy(), 3) == 31


# Zoo models cheap enough for every run; the rest run with -m slow.
FAST = {"lenet5", "alexnet", "alphago_policy"}


def _zoo_params():
    return [
        pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in cnnzoo.list_models()
    ]


@pytest.mark.parametrize("name", _zoo_params())
def test_zoo_receptive_field_matches_gradient(name):
    info = cnnzoo.get_model_info(name)
    meta = Features(cnnzoo.create_model(name, device="meta"))
    report = analyze(meta, info.input_size)
    if report.total.rf_global:
        pytest.skip(f"{name} pools globally inside its features (squeeze-and-excitation)")
    check(Features(cnnzoo.create_model(name)), info.input_size[0], guess=info.input_size[1])


@pytest.mark.parametrize("name", ["alexnet", pytest.param("vgg11", marks=pytest.mark.slow)])
def test_torchvision_receptive_field_matches_gradient(name):
    model = getattr(torchvision.models, name)()
    assert check(model.features, 3) == {"alexnet": 195, "vgg11": 150}[name]


class SubsampleUpsample(nn.Module):
    """Strided slicing (the CIFAR ResNets' option-A shortcut) and nearest upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x[:, :, ::2, ::2])  # jump 2: field 1 + 2*2 = 5
        return self.conv2(F.interpolate(y, scale_factor=2))  # jump 1 again: 5 + 2*1 = 7


def test_subsampling_and_upsampling_by_hand_and_by_gradient():
    assert check(SubsampleUpsample(), 3) == 7
