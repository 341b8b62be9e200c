"""Every registered model's receptive field and effective stride, proven by a gradient measurement.

The oracle is tests/test_analysis_rf.py's: a linearised float64 copy (max-pooling replaced by
average pooling of the same window, batch norm at its identity statistics, dropout off, positive
fan-in-normalised weights, zero biases) on an all-ones input keeps every activation positive, so
every ReLU passes and no gradient cancels: the input pixels with a non-zero gradient of one output
unit are exactly its receptive field, and the offset between the fields of two neighbouring units
is the effective stride.

To reach the deepest nets (fields of 1,000-3,000 pixels), the field is measured along one axis at
a time: the input is long along that axis (the field plus a margin) and as narrow as the model
accepts across it. Windows act on each axis independently, so the field along one axis does not
depend on the other's size; a model whose windows are all square is symmetric and needs one axis,
the others (Inception's 1x7 and 7x1) are measured along both.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze
from test_analysis_rf import Features, linearise

# Models measured in a few seconds at most; the rest run with -m slow.
FAST = {"lenet5", "alphago_policy", "nin_cifar", "resnet20", "plain20"}


def _windows(model: nn.Module):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            for attr in ("kernel_size", "stride", "padding", "dilation"):
                value = getattr(m, attr, 1)
                yield (value, value) if isinstance(value, int) else tuple(value)


def axes_to_measure(model: nn.Module) -> tuple[int, ...]:
    """Height only when every window is square (the net is then symmetric), else both axes."""
    return (0,) if all(h == w for h, w in _windows(model)) else (0, 1)


def narrowest(net: nn.Module, chans: int) -> int:
    """The smallest side (of a few candidates) on which ``net`` runs, tried on the meta device."""
    for side in (8, 16, 24, 32, 48, 64, 75, 96, 128):
        try:
            with torch.no_grad():
                net(torch.empty(1, chans, side, side, device="meta"))
        except (RuntimeError, ValueError):
            continue
        return side
    raise AssertionError("no candidate input size runs the model")


def field_along(net: nn.Module, shape: tuple[int, int, int], axis: int) -> tuple[int, int]:
    """Field size and stride along ``axis`` (0: height, 1: width) of the centre output unit,
    measured by backpropagating from it and from its next neighbour along that axis."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    y = net(x)
    centre = [y.shape[2] // 2, y.shape[3] // 2]
    spans = []
    for step in (0, 1):
        unit = list(centre)
        unit[axis] += step
        (grad,) = torch.autograd.grad(y[0, :, unit[0], unit[1]].sum(), x, retain_graph=True)
        hit = (grad[0].abs().sum(0) > 0).any(1 - axis).nonzero().flatten()
        assert hit.min() > 0 and hit.max() < shape[1 + axis] - 1, "field clipped: longer input"
        spans.append((int(hit.min()), int(hit.max())))
    (lo, hi), (lo_next, _) = spans
    return hi - lo + 1, lo_next - lo


def _params():
    return [
        pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in cnnzoo.list_models()
    ]


@pytest.mark.parametrize("name", _params())
def test_receptive_field_and_stride_match_gradient(name):
    info = cnnzoo.get_model_info(name)
    chans = info.input_size[0]
    meta = Features(cnnzoo.create_model(name, device="meta"))
    report = analyze(meta, info.input_size)
    net = linearise(Features(cnnzoo.create_model(name))).double()
    side = narrowest(meta, chans)
    if report.total.rf_global:  # squeeze-and-excitation: every unit sees the whole input
        x = torch.ones(1, chans, side, side, dtype=torch.float64, requires_grad=True)
        y = net(x)
        y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
        assert bool((x.grad[0].abs().sum(0) > 0).all())
        return
    last = report.layers[-1]
    assert last.rf == report.total.rf
    rf, stride = last.rf, last.stride
    long = stride * math.ceil((rf + 4 * stride + 8) / stride)  # some nets want even sides
    measured = []
    for axis in axes_to_measure(net):
        shape = (chans, long, side) if axis == 0 else (chans, side, long)
        assert analyze(meta, shape).total.rf == rf  # the field does not depend on the input size
        measured.append(field_along(net, shape, axis))
    assert max(measured) == (rf, stride), measured


def resnet50_v1(device: str = "meta") -> nn.Module:
    """ResNet-50 as He et al.'s Caffe model strides it: on the first 1x1 of each stage's first
    block rather than on its 3x3 (cnnzoo and torchvision follow v1.5)."""
    model = cnnzoo.create_model("resnet50", device=device)
    for stage in (model.layer2, model.layer3, model.layer4):
        block = stage[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    return model


def test_resnet50_v1_stride_placement_gives_the_published_483():
    # Each stage's first 3x3 now works after the stride: it adds 2 * (jump after) instead of
    # 2 * (jump before), one jump more per stage: 427 + 8 + 16 + 32 = 483 (Araujo et al.'s).
    v15 = analyze(Features(cnnzoo.create_model("resnet50", device="meta")), (3, 224, 224))
    v1 = analyze(Features(resnet50_v1()), (3, 224, 224))
    assert (v15.total.rf, v1.total.rf) == (427, 427 + 8 + 16 + 32) == (427, 483)
    assert v1.layers[-1].output == v15.layers[-1].output  # the same 7x7x2048 map


@pytest.mark.slow
def test_resnet50_v1_field_by_gradient():
    net = linearise(Features(resnet50_v1("cpu"))).double()
    assert field_along(net, (3, 32 * 17, 32), 0) == (483, 32)
