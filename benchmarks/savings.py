"""The notes' savings measured as wall time beside the counted MACs.

Four pairs, each built from cnnzoo's own blocks and timed side by side (alternating rounds,
medians), forward and forward+backward on the CPU:

- a stack of three 3x3 convolutions vs one 7x7 (same receptive field, C=64 at 56x56);
- the naive Inception module vs the one with 1x1 bottlenecks (the notes' 28x28x256 example);
- ResNet's bottleneck block (256 -> 64 -> 64 -> 256) vs a basic block of two 3x3 at 256
  (the same input and output, 56x56), and the paper's own pair: a 64-d basic block vs a 256-d
  bottleneck, of "similar time complexity" (sec. 4.1);
- MobileNet's depthwise-separable convolution vs a standard 3x3 (512 -> 512 at 14x14).

A time ratio below the MAC ratio means the cheaper layers also run less efficiently per MAC:
1x1 and depthwise convolutions move more memory per multiply-add than a big dense kernel.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

import cnnzoo
from cnnzoo.models.googlenet import Inception, NaiveInception
from cnnzoo.models.layers import ConvBNAct, DepthwiseSeparableConv
from cnnzoo.models.resnet import BasicBlock, Bottleneck

from .common import Section, median_time


def _stack(c: int, n: int, k: int) -> nn.Module:
    return nn.Sequential(*[ConvBNAct(c, c, k) for _ in range(n)])


Size = tuple[int, int, int]


def pairs(quick: bool) -> list[tuple[str, nn.Module, nn.Module, Size, Size]]:
    """(what, before, after, input C x H x W of each); --quick shrinks the images, not the
    blocks."""
    s = 4 if quick else 1
    same = [
        ("one 7x7 conv -> three 3x3 convs (C=64)", _stack(64, 1, 7), _stack(64, 3, 3),
         (64, 56 // s, 56 // s)),
        ("naive Inception -> 1x1 bottlenecks (the notes' module)",
         NaiveInception(256, 128, 192, 96), Inception(256, 128, 64, 192, 64, 96, 64, kernel5=5),
         (256, 28 // s, 28 // s)),
        ("basic block at 256 -> bottleneck 256-64-256", BasicBlock(256, 256),
         Bottleneck(256, 64), (256, 56 // s, 56 // s)),
        ("standard 3x3 conv -> depthwise separable (512 -> 512)", ConvBNAct(512, 512, 3),
         DepthwiseSeparableConv(512, 512), (512, 14 // s, 14 // s)),
    ]  # fmt: skip
    out = [(what, a, b, size, size) for what, a, b, size in same]
    # the ResNet paper's own pair (sec. 4.1): a 256-d bottleneck has "similar time complexity"
    # to a 64-d basic block, on four times the channels
    out.append(("paper's pair: basic block at 64 -> bottleneck at 256 (4x the channels)",
                BasicBlock(64, 64), Bottleneck(256, 64), (64, 56 // s, 56 // s),
                (256, 56 // s, 56 // s)))  # fmt: skip
    return out


def _timers(block: nn.Module, x: torch.Tensor):
    block = block.train()
    params = list(block.parameters())

    def fwd():
        with torch.no_grad():
            block(x)

    def fwd_bwd():
        return torch.autograd.grad(block(x).sum(), params)

    return fwd, fwd_bwd


def run(quick: bool = False) -> Section:
    batch, rounds, repeats = (2, 1, 2) if quick else (16, 3, 3)
    rows = []
    for what, big, small, size_big, size_small in pairs(quick):
        macs = [
            cnnzoo.analyze(big, size_big).total.macs,
            cnnzoo.analyze(small, size_small).total.macs,
        ]
        timers = [
            _timers(big, torch.randn(batch, *size_big)),
            _timers(small, torch.randn(batch, *size_small)),
        ]
        times = {(i, j): [] for i in range(2) for j in range(2)}
        for _ in range(rounds):
            for i, fns in enumerate(timers):  # alternate the two blocks in every round
                for j, fn in enumerate(fns):
                    times[i, j].append(median_time(fn, repeats=repeats, warmup=1))
        t = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            {
                "change": what,
                "MACs before (M)": macs[0] / 1e6,
                "MACs after (M)": macs[1] / 1e6,
                "MAC saving": 1 - macs[1] / macs[0],
                "forward saving (time)": 1 - t[1, 0] / t[0, 0],
                "fwd+bwd saving (time)": 1 - t[1, 1] / t[0, 1],
                "forward ms before/after": f"{t[0, 0] * 1e3:.1f} / {t[1, 0] * 1e3:.1f}",
            }
        )
    return Section(
        "The notes' savings as wall time: 3x3 stacks, bottlenecks, depthwise separable",
        rows,
        [
            f"batch {batch}, CPU fp32, training-mode BN; MACs per image from cnnzoo.analyze; "
            "saving = 1 - after/before",
            "the 7x7 -> 3x3 stack row keeps the channel count, so its MAC saving is "
            "1 - 3*9/49 = 45% (the notes' 49C^2 vs 27C^2 weights)",
        ],
    )
