"""``cnnzoo compare``: several models side by side, and the notes' complexity chart."""

from __future__ import annotations

import argparse
import sys

from ._args import output_file, plot_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare models: parameters, MACs, memory, receptive field, published ImageNet top-1",
        description="Analyse each model at its own input size and set it beside its published "
        "ImageNet top-1 accuracy and ILSVRC result. Example: cnnzoo compare alexnet vgg16 "
        "googlenet resnet50 mobilenet_v1 --plot chart.png",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="registered names or wildcards")
    p.add_argument(
        "--format", choices=("table", "markdown", "csv", "json"), default="table", help="output"
    )
    p.add_argument(
        "--input",
        metavar="HxWxC",
        default=None,
        help="analyse every model at this size, e.g. 224x224x3 (default: each model's own)",
    )
    p.add_argument(
        "--plot",
        type=output_file,
        metavar="PNG",
        default=None,
        help="also draw the complexity chart",
    )
    p.add_argument(
        "--plot-size",
        type=plot_size,
        metavar="WxH",
        default="1000x650",
        help="chart size in pixels (1000x650)",
    )
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..compare import compare, plot_complexity
    from ..errors import CnnzooError
    from ..notation import parse_size

    try:
        w, h = (int(v) for v in args.plot_size.lower().split("x"))
    except ValueError:
        raise CnnzooError(
            f"--plot-size is WIDTHxHEIGHT in pixels, got {args.plot_size!r}"
        ) from None
    size = None
    if args.input:
        given = parse_size(args.input)
        if given.note:  # 3x224x224: read as C x H x W, and said so
            print(f"cnnzoo compare: note: {given.note}", file=sys.stderr)
        size = given.chw
    result = compare(args.models, input_size=size)
    text = {
        "table": result.to_table,
        "markdown": result.to_markdown,
        "csv": result.to_csv,
        "json": result.to_json,
    }[args.format]()
    print(text.rstrip("\n"))
    if args.plot:
        skipped = plot_complexity(result, args.plot, size=(w, h))
        note = f" (not plotted, no ImageNet figure: {', '.join(skipped)})" if skipped else ""
        print(f"wrote {args.plot}{note}", file=sys.stderr)
    return 0
