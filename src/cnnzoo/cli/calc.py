"""``cnnzoo calc ...``: the lecture's formulas on the command line (see ``cnnzoo.calc``).

Pure Python, like ``cnnzoo.calc``: no torch, so every calculator answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._args import nonneg_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calc",
        help="the lecture's calculators: conv, pool, fc, rf, stack, separable, inception",
        description="The lecture's formulas, with the arithmetic written out. "
        "Volumes are HxWxC, depth last, as in the notes (227x227x3).",
    )
    calc = p.add_subparsers(dest="calc", metavar="CALCULATOR")
    p.set_defaults(func=lambda args: p.print_help() or 1)

    def add(name: str, function: str, help: str, example: str) -> argparse.ArgumentParser:
        """A calculator that calls ``cnnzoo.calc.<function>``; option dests are its parameters."""
        q = calc.add_parser(name, help=help, description=f"{help}. Example: cnnzoo calc {example}")
        q.add_argument("--format", choices=("text", "json"), default="text")
        q.set_defaults(func=run, function=function)
        return q

    def opt(q: argparse.ArgumentParser, flag: str, help: str, default=None, kind=positive_int):
        q.add_argument(flag, type=kind, default=default, required=default is None, help=help)

    def flag(q: argparse.ArgumentParser, name: str, help: str) -> None:
        negative = name.startswith("--no-")  # --no-bias stores False into bias
        q.add_argument(name, dest=name[5 if negative else 2 :], help=help,
                       action="store_false" if negative else "store_true")  # fmt: skip

    q = add("conv", "conv_output",
            "output size (W - F + 2P)/S + 1, parameters and MACs of a convolution layer",
            "conv --input 227x227x3 --filters 96 --kernel 11 --stride 4 --pad 0")  # fmt: skip
    q.add_argument("--input", required=True, help="HxWxC, e.g. 227x227x3")
    opt(q, "--filters", "K, the number of filters")
    opt(q, "--kernel", "F, the filter size")
    opt(q, "--stride", "S (default 1)", 1)
    opt(q, "--pad", "P, zero padding on each side (default 0)", 0, nonneg_int)
    opt(q, "--groups", "grouped convolution (AlexNet's 2 GPUs)", 1)
    opt(q, "--dilation", "spacing of the filter taps (default 1)", 1)
    flag(q, "--no-bias", "count weights only, as the VGG slide")
    flag(q, "--floor", "accept PyTorch's rounding down")

    q = add("pool", "pool_output",
            "output size of a pooling layer (no parameters)",
            "pool --input 55x55x96 --kernel 3 --stride 2")  # fmt: skip
    q.add_argument("--input", required=True, help="HxWxC or HxW, e.g. 55x55x96")
    opt(q, "--kernel", "F, the window size")
    q.add_argument("--stride", type=positive_int, help="S (default: the window size)")
    opt(q, "--pad", "P (default 0)", 0, nonneg_int)
    flag(q, "--floor", "accept PyTorch's rounding down")

    q = add("fc", "fc_layer",
            "parameters and MACs of a fully-connected layer on a flattened volume",
            "fc --input 6x6x256 --out 4096")  # fmt: skip
    q.add_argument("--input", required=True, help="HxWxC or a count, e.g. 6x6x256 or 4096")
    q.add_argument("--out", dest="out_features", type=positive_int, required=True, help="neurons")
    flag(q, "--no-bias", "count weights only")

    q = add("rf", "receptive_field",
            "receptive field and effective stride of a stack of layers",
            "rf 3/1 3/1 3/1  (AlexNet conv1..pool3: 11/4 3/2 5/1 3/2 3/1 3/1 3/1 3/2)")  # fmt: skip
    q.add_argument("layers", nargs="+", metavar="K/S", help="kernel/stride of each layer (K/S/D)")

    q = add("stack", "stack_vs_single",
            "n stacked kxk layers against one layer with the same receptive field",
            "stack --channels 256  (three 3x3 vs one 7x7)")  # fmt: skip
    opt(q, "--channels", "C, depth in and out (default 256)", 256)
    opt(q, "--n", "number of stacked layers (default 3)", 3)
    opt(q, "--kernel", "their size (default 3)", 3)

    q = add("separable", "separable_conv",
            "standard against depthwise-separable convolution (MobileNet)",
            "separable --in 512 --out 512 --kernel 3 --size 14x14")  # fmt: skip
    q.add_argument("--in", dest="c_in", type=positive_int, required=True, help="C, input depth")
    q.add_argument("--out", dest="c_out", type=positive_int, required=True, help="C', output")
    opt(q, "--kernel", "k (default 3)", 3)
    q.add_argument("--size", help="output HxW at which to count MACs, e.g. 14x14")
    flag(q, "--bias", "count biases too (the notes do not)")

    q = add("inception", "inception_module",
            "naive against bottleneck Inception module: MACs per branch, totals",
            "inception --input 28x28x256")  # fmt: skip
    q.add_argument("--input", default="28x28x256", help="HxWxC (default the notes' 28x28x256)")
    for name, default, what in (
        ("ch1x1", 128, "1x1 branch"),
        ("ch3x3", 192, "3x3 branch"),
        ("ch5x5", 96, "5x5 branch"),
        ("reduce3x3", 64, "1x1 bottleneck before the 3x3"),
        ("reduce5x5", 64, "1x1 bottleneck before the 5x5"),
        ("pool-proj", 64, "1x1 after the pool"),
    ):
        opt(q, f"--{name}", f"{what} (default {default})", default)
    flag(q, "--bias", "count biases in the weights")


def _note(text: str) -> None:
    """A size read as C x H x W, said on stderr."""
    print(f"cnnzoo calc: note: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from .. import calc

    skip = ("func", "command", "calc", "format", "function")
    options = {k: v for k, v in vars(args).items() if k not in skip}
    result = calc.calculate(args.function, options, note=_note)
    print(json.dumps(result.to_dict(), indent=2) if args.format == "json" else result.to_text())
    return 0
