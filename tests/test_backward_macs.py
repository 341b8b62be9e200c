"""Backward MACs: by hand for a small net, and against PyTorch's FLOP counter for two zoo models.

The rules: a convolution or linear layer's backward computes one product of the forward's size for
the gradient of its input (unless nothing upstream is trainable: the image itself, or below frozen
layers) and one for the gradient of its weight (when it is trainable).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnzoo
from cnnzoo.analysis import analyze


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 10x10x8
        nn.ReLU(),
        nn.Conv2d(8, 4, 3),  # 8x8x4
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


def test_conv_and_linear_by_hand():
    report = analyze(small_net(), (3, 10, 10), batch_size=2)
    rows = {r.name: r for r in report.layers}
    conv1 = 2 * 8 * 10 * 10 * (3 * 3 * 3)  # N * Cout * Hout * Wout * Cin*kh*kw = 43,200
    conv2 = 2 * 4 * 8 * 8 * (8 * 3 * 3)  # 36,864
    fc = 2 * 10 * 256  # N * out * in = 5,120
    assert [rows[k].macs for k in ("0", "2", "4")] == [conv1, conv2, fc]
    # conv1 reads the image, which needs no gradient: only its weight gradient is computed.
    assert rows["0"].backward_macs == conv1
    # conv2 and fc: the input gradient and the weight gradient, each the forward's size.
    assert rows["2"].backward_macs == 2 * conv2
    assert rows["4"].backward_macs == 2 * fc
    assert rows["1"].backward_macs == 0  # ReLU: 0 MACs, as in the forward convention
    total = conv1 + 2 * conv2 + 2 * fc
    assert report.total.backward_macs == total
    assert report.total.train_step_macs == report.total.macs + total


def test_frozen_layers_need_no_gradients():
    net = small_net()
    for p in net[:3].parameters():
        p.requires_grad_(False)
    rows = {r.name: r for r in analyze(net, (3, 10, 10)).layers}
    # Nothing below fc is trainable: the convolutions compute no gradient at all, and fc only its
    # weight gradient (its input depends on no trainable parameter).
    assert rows["0"].backward_macs == rows["2"].backward_macs == 0
    assert rows["4"].backward_macs == rows["4"].macs == 10 * 256


def test_functional_matmul_of_two_activations():
    class Gram(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(6, 5)

        def forward(self, x):
            y = self.proj(x)  # N x 4 x 5
            return y @ y.transpose(1, 2)  # both factors need gradients: 2 x 4*4*5 each

    rows = {r.name: r for r in analyze(Gram(), (4, 6)).layers}
    assert rows["matmul"].macs == 4 * 4 * 5
    assert rows["matmul"].backward_macs == 2 * 4 * 4 * 5
    assert rows["proj"].backward_macs == 4 * 5 * 6  # the input x needs no gradient


# PyTorch's counter names each op; these are the convolutions and linear layers, both passes.
MATRIX_OPS = ("convolution", "convolution_backward", "addmm", "mm")


def counted_flops(model: nn.Module, size=(3, 224, 224)) -> int:
    """FLOPs of one forward + backward as torch.utils.flop_counter counts them (on meta tensors)."""
    x = torch.empty(1, *size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    ops = counter.get_flop_counts()["Global"]
    return sum(n for op, n in ops.items() if str(op).split(".")[1] in MATRIX_OPS)


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_training_step_against_flop_counter(name):
    model = cnnzoo.create_model(name, device="meta")
    report = analyze(model, (3, 224, 224))
    theirs = counted_flops(model)
    # Every MAC the analyzer counts in these nets is a convolution's or a linear layer's.
    assert set(report.total.uncounted) & {"matmul", "einsum"} == set()
    ours = 2 * report.total.train_step_macs
    assert abs(ours - theirs) <= 0.01 * theirs, (ours, theirs)
