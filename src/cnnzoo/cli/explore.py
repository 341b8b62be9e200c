"""``cnnzoo explore MODEL ...``: the architecture explorer, a static site that works offline."""

from __future__ import annotations

import argparse
import sys

from ._args import input_file, output_dir, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="write web pages to explore models: table, graph, receptive fields, memory",
        description="Write a static site (open its index.html in a browser; no network needed): "
        "a page per model with the lecture's table and per-layer bars, the graph with the tensor "
        "shape on every edge, the receptive field over a sample image and the training memory, "
        "and a comparison page with the complexity chart. Example: cnnzoo explore alexnet vgg16 "
        "googlenet resnet50 --out site",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="registered names or wildcards")
    p.add_argument("--all", action="store_true", help="explore every registered model")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="site folder")
    p.add_argument(
        "--input",
        default=None,
        metavar="HxWxC",
        help="analyse at this size, e.g. 227x227x3 (default: each model's own)",
    )
    p.add_argument(
        "--batch", type=positive_int, default=1, help="batch of the training memory (default 1)"
    )
    p.add_argument(
        "--profile",
        type=input_file,
        default=None,
        metavar="FILE.json",
        help="measured times from `cnnzoo profile MODEL --format json` (one model)",
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="analyse each model at its published ImageNet weights' input size (models without "
        "weights are refused; the pages list every model's weights either way)",
    )
    p.set_defaults(func=cmd_explore)


def cmd_explore(args: argparse.Namespace) -> int:
    from ..errors import CnnzooError
    from ..explorer import explore
    from ..explorer.data import load_profile
    from ..notation import parse_size
    from ..registry import get_model_info, list_models

    if args.all == bool(args.models):
        raise CnnzooError("name the models to explore, or give --all (not both)")
    names: list[str] = []
    for pattern in list_models() if args.all else args.models:
        matches = list_models(pattern) if any(ch in pattern for ch in "*?[") else [pattern]
        if not matches:
            raise CnnzooError(f"no model matches {pattern!r}; see `cnnzoo list`")
        for name in matches:
            get_model_info(name)  # an unknown name fails before anything is analysed
            names += [name] if name not in names else []
    size = None
    if args.input:
        given = parse_size(args.input, chans=get_model_info(names[0]).input_size[0])
        if given.note:  # 3x227x227: read as C x H x W, and said so
            print(f"cnnzoo explore: note: {given.note}", file=sys.stderr)
        size = given.chw
    # read before the site folder is made: a bad profile leaves nothing behind
    profile = load_profile(args.profile) if args.profile else None
    index = explore(names, input_size=size, out=args.out, batch=args.batch, profile=profile,
                    pretrained=args.pretrained)  # fmt: skip
    print(f"wrote {len(names)} model page(s) to {index.parent}; open {index}")
    return 0
