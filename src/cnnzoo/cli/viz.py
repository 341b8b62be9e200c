"""``cnnzoo viz filters|activations``: pictures of what a network learned (PNG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import nonneg_int, output_file, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("viz", help="pictures: first-layer filters, activation maps (PNG)")
    vsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    f = vsub.add_parser("filters", help="a convolution's filters as an image grid")
    f.add_argument(
        "model",
        metavar="CKPT_OR_MODEL",
        help="a cnnzoo checkpoint, a weight file (with --model), or a model name",
    )
    f.add_argument("--model", dest="model_name", help="architecture of a torchvision/timm file")
    f.add_argument("--layer", help="a Conv2d module name (default: the first convolution)")
    f.add_argument(
        "--scale",
        choices=["filter", "global"],
        default="filter",
        help="filter: each filter stretched to full contrast; global: one range",
    )
    f.add_argument(
        "--out", type=output_file, default="filters.png", help="PNG file (default: filters.png)"
    )
    f.set_defaults(func=cmd_filters)

    a = vsub.add_parser("activations", help="a layer's activation maps for one image")
    a.add_argument(
        "model",
        metavar="CKPT_OR_MODEL",
        help="a cnnzoo checkpoint, a weight file (with --model), or a model name",
    )
    a.add_argument("image", nargs="?", metavar="IMAGE", help="an image file (or use --data)")
    a.add_argument("--model", dest="model_name", help="architecture of a torchvision/timm file")
    a.add_argument("--data", help="take the image from this dataset instead (with --index)")
    a.add_argument("--data-dir", help="directory with the dataset files (IDX, CIFAR batches)")
    a.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="split of --data (default: test)",
    )
    a.add_argument("--index", type=nonneg_int, default=0, help="image of --data (default: 0)")
    a.add_argument("--layer", help="a module name (default: the first convolution)")
    a.add_argument(
        "--max-maps", type=positive_int, default=64, help="maps drawn at most (default: 64)"
    )
    a.add_argument(
        "--out",
        type=output_file,
        default="activations.png",
        help="PNG file (default: activations.png)",
    )
    a.set_defaults(func=cmd_activations)


def cmd_filters(args: argparse.Namespace) -> int:
    from ..runs import resolve_model
    from ..viz import plot_filters

    src = resolve_model(args.model, args.model_name)
    out = plot_filters(src.model, args.out, layer=args.layer, scale=args.scale)
    random = "" if src.source else " (random weights: no checkpoint given)"
    print(f"cnnzoo viz filters: {src.name}{random} -> {out}")
    return 0


def cmd_activations(args: argparse.Namespace) -> int:
    from ..data import load_data, load_image
    from ..data.transforms import make_preprocess
    from ..errors import CnnzooError
    from ..runs import Preprocess, resolve_model
    from ..viz import plot_activations

    src = resolve_model(args.model, args.model_name)
    if args.max_maps < 1:
        raise CnnzooError(f"--max-maps must be at least 1, got {args.max_maps}")
    if (args.image is None) == (args.data is None):
        raise CnnzooError("give either an IMAGE file or --data DATASET [--index N]")
    if args.image is not None:
        if not Path(args.image).is_file():
            raise CnnzooError(f"image {args.image} does not exist")
        if src.preprocess is not None:
            pre = src.preprocess.to_dict()
        else:  # no training statistics: fit to the model's size, mid-grey at zero
            c, h, w = src.input_size
            pre = make_preprocess((c, h, w), (h, w), [0.5] * c, [0.25] * c)
        image = load_image(args.image, pre)
        what = args.image
    else:
        bundle = load_data(args.data, data_dir=args.data_dir, input_size=src.input_size)
        ds = bundle.split(args.split)
        if not 0 <= args.index < len(ds):
            raise CnnzooError(f"--index must be in 0..{len(ds) - 1}, got {args.index}")
        pre = Preprocess.from_dict(bundle.preprocess).with_stats_of(src.preprocess).to_dict()
        ds.preprocess = pre
        image = ds.get_batch([args.index])[0][0]
        what = f"{args.data} {args.split} #{args.index} ({bundle.classes[ds.labels[args.index]]})"
    out = plot_activations(
        src.model, image, args.out, layer=args.layer, max_maps=args.max_maps, preprocess=pre
    )
    print(f"cnnzoo viz activations: {src.name}, {what} -> {out}")
    return 0
