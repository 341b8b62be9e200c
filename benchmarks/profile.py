"""Measured anatomy: where a training step's time goes, beside where the lecture's MACs go.

Two pairs the lecture compares by MACs (three 3x3 convolutions against one 7x7; ResNet's basic
block against the bottleneck of "similar complexity"), then VGG16, ResNet-50 and MobileNet v1 with
the time and the MACs of their rows gathered by kind of layer. Everything is ``cnnzoo.profile``
(training steps: forward and backward); the machine's ceilings come from
``cnnzoo.analysis.ceilings``.

    python -m benchmarks.profile            # the figures quoted in docs/anatomy.md
    python -m benchmarks.profile --rf-table # every model's receptive field, beside Araujo et al.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze
from cnnzoo.analysis.ceilings import measure
from cnnzoo.analysis.profile import Profile
from cnnzoo.models.resnet import BasicBlock, Bottleneck

from .common import Section

# Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill
# 2019, table of published fields (TF-slim models).
PUBLISHED_RF = {
    "alexnet": 195,
    "vgg16": 212,
    "resnet50": 483,
    "inception_v3": 1311,
    "inception_v4": 2071,
    "inception_resnet_v2": 3039,
    "mobilenet_v1": 315,
}


def conv_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.ReLU(inplace=True)]


def pairs(c: int) -> dict[str, nn.Module]:
    """The lecture's two comparisons at width ``c``."""
    return {
        "one 7x7": nn.Sequential(*conv_relu(c, c, 7)),
        "three 3x3": nn.Sequential(*conv_relu(c, c, 3), *conv_relu(c, c, 3), *conv_relu(c, c, 3)),
        "basic block (64-d)": BasicBlock(c, c),
        "bottleneck (256-d)": Bottleneck(4 * c, c),
    }


def kind_of(model: nn.Module, name: str, type_: str) -> str:
    """A row's kind, finer than its type for convolutions: 1x1, kxk, depthwise."""
    try:
        conv = model.get_submodule(name.split("#")[0])
    except AttributeError:  # a functional op's row (``layer1.0.add``)
        conv = None
    if not isinstance(conv, nn.Conv2d):
        return {"BatchNorm2d": "batch norm", "ReLU": "ReLU", "add": "residual add",
                "Linear": "linear", "MaxPool2d": "pooling", "AdaptiveAvgPool2d": "pooling",
                "Dropout": "dropout"}.get(type_, type_)  # fmt: skip
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return "conv depthwise"
    k = conv.kernel_size
    return f"conv {k[0]}x{k[1]}"


def by_kind(model: nn.Module, prof: Profile, report) -> list[dict]:
    """Time and MACs of a profile gathered by kind of layer, largest time first."""
    total_macs = max(report.total.train_step_macs, 1)
    kinds: dict[str, dict] = {}
    for r, layer in zip(prof.rows, report.layers, strict=True):
        k = kinds.setdefault(kind_of(model, layer.name, layer.type), {"ms": 0.0, "macs": 0})
        k["ms"] += r.ms
        k["macs"] += layer.macs + layer.backward_macs
    rows = []
    for name, k in sorted(kinds.items(), key=lambda kv: -kv[1]["ms"]):
        rows.append({
            "kind": name,
            "time %": 100 * k["ms"] / prof.total_ms,
            "MACs %": 100 * k["macs"] / total_macs,
            "GFLOP/s": 2 * k["macs"] / (k["ms"] * 1e6) if k["macs"] else "",
        })  # fmt: skip
    rows.append({"kind": "outside layers", "time %": 100 * prof.outside_layers_ms / prof.total_ms,
                 "MACs %": 0.0, "GFLOP/s": ""})  # fmt: skip
    return rows


def compare_pairs(c: int, size: int, batch: int, repeats: int) -> list[dict]:
    rows = []
    for label, net in pairs(c).items():
        chans = net[0].in_channels if isinstance(net, nn.Sequential) else net.conv1.in_channels
        prof = cnnzoo.profile(net, (chans, size, size), batch=batch, train=True, repeats=repeats)
        report = analyze(net, (chans, size, size), batch_size=batch)
        zero = sum(r.ms for r, layer in zip(prof.rows, report.layers, strict=True)
                   if not layer.macs)  # fmt: skip
        traffic = sum(r.bytes for r in prof.rows)
        rows.append({
            "variant": label,
            "step MACs (M)": report.total.train_step_macs / 1e6,
            "forward ms": sum(r.forward_ms for r in prof.rows),
            "backward ms": sum(r.backward_ms or 0.0 for r in prof.rows),
            "step ms": prof.total_ms,
            "GFLOP/s": 2 * report.total.train_step_macs / (prof.total_ms * 1e6),
            "forward MB moved": traffic / 1e6,
            "time in 0-MAC rows %": 100 * zero / prof.total_ms,
        })  # fmt: skip
    return rows


def model_profiles(names, size: int, batch: int, repeats: int) -> list[Section]:
    sections = []
    for name in names:
        model = cnnzoo.create_model(name)
        prof = cnnzoo.profile(model, (3, size, size), batch=batch, train=True, repeats=repeats,
                              warmup=1, name=name)  # fmt: skip
        report = analyze(model, (3, size, size), batch_size=batch)
        notes = [f"training step {prof.total_ms:.0f} ms (interquartile range "
                 f"{prof.total_spread_ms:.0f} ms), batch {batch}, {size}x{size}, "
                 f"{repeats} repeats, medians; load average {os.getloadavg()[0]:.1f} on "
                 f"{os.cpu_count()} CPUs"]  # fmt: skip
        sections.append(Section(f"Profile: {name}", by_kind(model, prof, report), notes))
    return sections


def rf_table() -> list[dict]:
    """Every registered model's receptive field and effective stride (final feature map)."""
    rows = []
    for name in cnnzoo.list_models():
        info = cnnzoo.get_model_info(name)
        report = analyze(cnnzoo.create_model(name, device="meta"), info.input_size)
        last = next(r for r in reversed(report.layers) if len(r.output) >= 3)
        rows.append({
            "model": name,
            "input": "x".join(map(str, info.input_size[1:])),
            "RF": "global (SE)" if report.total.rf_global else report.total.rf,
            "stride": last.stride,
            "published": PUBLISHED_RF.get(name, ""),
        })  # fmt: skip
    return rows


def run(quick: bool = False) -> Section:
    """The pairs and the three networks; ``quick`` shrinks everything to a smoke run."""
    torch.manual_seed(0)
    c, size, batch, reps = (16, 14, 2, 2) if quick else (64, 56, 4, 5)
    ceilings = measure(quick=quick)
    notes = [f"ceilings: matmul {ceilings.gflops:.0f} GFLOP/s, copy {ceilings.gbps:.1f} GB/s "
             f"(ridge {ceilings.ridge:.1f} FLOP/B) on {ceilings.machine}",
             f"training steps, batch {batch}, {size}x{size}x{c}; times are medians over {reps} "
             f"repeats on a shared machine"]  # fmt: skip
    return Section(
        "Measured anatomy: MACs against time", compare_pairs(c, size, batch, reps), notes
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--rf-table", action="store_true", help="print the receptive fields")
    parser.add_argument("--models", default="vgg16,resnet50,mobilenet_v1")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.rf_table:
        print(Section("Receptive fields", rf_table()).to_markdown())
        return
    print(run(quick=args.quick).to_markdown())
    names = [n for n in args.models.split(",") if n]
    for section in model_profiles(names, args.size, args.batch, args.repeats):
        print(section.to_markdown(), flush=True)


if __name__ == "__main__":
    main()
