"""``cnnzoo features CKPT_OR_MODEL --data DIR_OR_DATASET --out feats.npz``: an embedding per image.
The work is ``cnnzoo.runs.embed`` and the file ``cnnzoo.runs.save_features``."""

from __future__ import annotations

import argparse

from ..runs import SPLITS
from ._args import img_size, output_file, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ._options import add_pretrained_option

    p = sub.add_parser(
        "features",
        help="embed every image of a dataset with a model (pre-logits or any layer) into a .npz",
        description="Embed every image of a dataset or image folder: the pre-logits features by "
        "default (AlexNet/VGG FC7, ResNet's pooled vector) or the output of --layer, with labels, "
        "split and index of each image and the class names, saved with numpy.savez.",
    )
    p.add_argument(
        "model",
        metavar="CKPT_OR_MODEL",
        help="a cnnzoo checkpoint, a weight file (with --model), or a model name",
    )
    p.add_argument("--model", dest="model_name", help="architecture of a torchvision/timm file")
    add_pretrained_option(p)
    p.add_argument(
        "--data",
        required=True,
        help="fashion-mnist, mnist, cifar10, cifar100, digits, or an image folder",
    )
    p.add_argument("--data-dir", help="directory with the dataset files (IDX, CIFAR batches)")
    p.add_argument("--split", choices=SPLITS, default="all", help="which images (default: all)")
    p.add_argument("--limit", type=positive_int, help="at most this many images of each split")
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads (default: the cores no other process is using)",
    )
    p.add_argument("--layer", help="a module name (see `cnnzoo show`); default: pre-logits")
    p.add_argument(
        "--pool",
        choices=["flatten", "avg", "max"],
        default="flatten",
        help="how a --layer feature map becomes a vector (default: flatten)",
    )
    p.add_argument(
        "--img-size", type=img_size, help="input H or HxW (default: the checkpoint's or model's)"
    )
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument(
        "--out",
        type=output_file,
        default="features.npz",
        help="output file (default: features.npz)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (the closing summary line is still printed)",
    )
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from ..runs import embed, save_features
    from ._options import parse_img_size

    feats, src = embed(
        args.model,
        args.data,
        model_name=args.model_name,
        split=args.split,
        layer=args.layer,
        pool=args.pool,
        img_size=parse_img_size(args.img_size),
        data_dir=args.data_dir,
        limit=args.limit,
        batch_size=args.batch_size,
        pretrained=args.pretrained,
        progress=not args.no_progress,
    )
    out = save_features(args.out, **feats)
    n, d = feats["features"].shape
    where = args.layer or "pre-logits"
    random = " (random weights: no checkpoint given)" if src.random else ""
    print(f"cnnzoo features: {n:,} images x {d:,} features ({src.name} {where}{random}) -> {out}")
    return 0
