"""``cnnzoo calc ...``: the lecture's formulas on the command line (see ``cnnzoo.calc``)."""

from __future__ import annotations

import argparse
import json

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

    def add(name: str, help: str, example: str) -> argparse.ArgumentParser:
        q = calc.add_parser(name, help=help, description=f"{help}. Example: {example}")
        q.add_argument("--format", choices=("text", "json"), default="text")
        return q

    q = add(
        "conv",
        "output size (W - F + 2P)/S + 1, parameters and MACs of a convolution layer",
        "cnnzoo calc conv --input 227x227x3 --filters 96 --kernel 11 --stride 4 --pad 0",
    )
    q.add_argument("--input", required=True, help="HxWxC, e.g. 227x227x3")
    q.add_argument("--filters", type=positive_int, required=True, help="K, the number of filters")
    q.add_argument("--kernel", type=positive_int, required=True, help="F, the filter size")
    q.add_argument("--stride", type=positive_int, default=1, help="S (default 1)")
    q.add_argument(
        "--pad", type=nonneg_int, default=0, help="P, zero padding on each side (default 0)"
    )
    q.add_argument(
        "--groups", type=positive_int, default=1, help="grouped convolution (AlexNet's 2 GPUs)"
    )
    q.add_argument("--dilation", type=positive_int, default=1)
    q.add_argument("--no-bias", action="store_true", help="count weights only, as the VGG slide")
    q.add_argument("--floor", action="store_true", help="accept PyTorch's rounding down")
    q.set_defaults(func=cmd_conv)

    q = add(
        "pool",
        "output size of a pooling layer (no parameters)",
        "cnnzoo calc pool --input 55x55x96 --kernel 3 --stride 2",
    )
    q.add_argument("--input", required=True, help="HxWxC or HxW, e.g. 55x55x96")
    q.add_argument("--kernel", type=positive_int, required=True, help="F, the window size")
    q.add_argument("--stride", type=positive_int, default=None, help="S (default: the window size)")
    q.add_argument("--pad", type=nonneg_int, default=0, help="P (default 0)")
    q.add_argument("--floor", action="store_true", help="accept PyTorch's rounding down")
    q.set_defaults(func=cmd_pool)

    q = add(
        "fc",
        "parameters and MACs of a fully-connected layer on a flattened volume",
        "cnnzoo calc fc --input 6x6x256 --out 4096",
    )
    q.add_argument("--input", required=True, help="HxWxC or a count, e.g. 6x6x256 or 4096")
    q.add_argument("--out", type=positive_int, required=True, help="number of neurons")
    q.add_argument("--no-bias", action="store_true", help="count weights only")
    q.set_defaults(func=cmd_fc)

    q = add(
        "rf",
        "receptive field and effective stride of a stack of layers",
        "cnnzoo calc rf 3/1 3/1 3/1  (AlexNet conv1..pool3: 11/4 3/2 5/1 3/2 3/1 3/1 3/1 3/2)",
    )
    q.add_argument(
        "layers", nargs="+", metavar="K/S", help="kernel/stride of each layer (K/S/D with dilation)"
    )
    q.set_defaults(func=cmd_rf)

    q = add(
        "stack",
        "n stacked kxk layers against one layer with the same receptive field",
        "cnnzoo calc stack --channels 256  (three 3x3 vs one 7x7)",
    )
    q.add_argument(
        "--channels", type=positive_int, default=256, help="C, depth in and out (default 256)"
    )
    q.add_argument("--n", type=positive_int, default=3, help="number of stacked layers (default 3)")
    q.add_argument("--kernel", type=positive_int, default=3, help="their size (default 3)")
    q.set_defaults(func=cmd_stack)

    q = add(
        "separable",
        "standard against depthwise-separable convolution (MobileNet)",
        "cnnzoo calc separable --in 512 --out 512 --kernel 3 --size 14x14",
    )
    q.add_argument("--in", dest="c_in", type=positive_int, required=True, help="C, input depth")
    q.add_argument("--out", dest="c_out", type=positive_int, required=True, help="C', output depth")
    q.add_argument("--kernel", type=positive_int, default=3, help="k (default 3)")
    q.add_argument("--size", default=None, help="output HxW at which to count MACs, e.g. 14x14")
    q.add_argument("--bias", action="store_true", help="count biases too (the notes do not)")
    q.set_defaults(func=cmd_separable)

    q = add(
        "inception",
        "naive against bottleneck Inception module: MACs per branch, totals, output depth",
        "cnnzoo calc inception --input 28x28x256",
    )
    q.add_argument("--input", default="28x28x256", help="HxWxC (default the notes' 28x28x256)")
    for opt, default, what in (
        ("--ch1x1", 128, "1x1 branch"),
        ("--ch3x3", 192, "3x3 branch"),
        ("--ch5x5", 96, "5x5 branch"),
        ("--reduce3x3", 64, "1x1 bottleneck before the 3x3"),
        ("--reduce5x5", 64, "1x1 bottleneck before the 5x5"),
        ("--pool-proj", 64, "1x1 after the pool"),
    ):
        q.add_argument(opt, type=positive_int, default=default, help=f"{what} (default {default})")
    q.add_argument("--bias", action="store_true", help="count biases in the weights")
    q.set_defaults(func=cmd_inception)


def _emit(result, args: argparse.Namespace) -> int:
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.to_text())
    return 0


def cmd_conv(args: argparse.Namespace) -> int:
    from ..calc import conv_output

    result = conv_output(
        args.input,
        args.filters,
        args.kernel,
        args.stride,
        args.pad,
        bias=not args.no_bias,
        groups=args.groups,
        dilation=args.dilation,
        floor=args.floor,
    )
    return _emit(result, args)


def cmd_pool(args: argparse.Namespace) -> int:
    from ..calc import pool_output

    return _emit(
        pool_output(args.input, args.kernel, args.stride, args.pad, floor=args.floor), args
    )


def cmd_fc(args: argparse.Namespace) -> int:
    from ..calc import fc_layer

    return _emit(fc_layer(args.input, args.out, bias=not args.no_bias), args)


def cmd_rf(args: argparse.Namespace) -> int:
    from ..calc import receptive_field

    return _emit(receptive_field(args.layers), args)


def cmd_stack(args: argparse.Namespace) -> int:
    from ..calc import stack_vs_single

    return _emit(stack_vs_single(args.channels, args.n, args.kernel), args)


def cmd_separable(args: argparse.Namespace) -> int:
    from ..calc import parse_volume, separable_conv

    size = None
    if args.size is not None:
        h, w, _ = parse_volume(args.size, need_depth=False)
        size = (h, w)
    return _emit(separable_conv(args.c_in, args.c_out, args.kernel, size, bias=args.bias), args)


def cmd_inception(args: argparse.Namespace) -> int:
    from ..calc import inception_module

    result = inception_module(
        args.input,
        ch1x1=args.ch1x1,
        ch3x3=args.ch3x3,
        ch5x5=args.ch5x5,
        reduce3x3=args.reduce3x3,
        reduce5x5=args.reduce5x5,
        pool_proj=args.pool_proj,
        bias=args.bias,
    )
    return _emit(result, args)
