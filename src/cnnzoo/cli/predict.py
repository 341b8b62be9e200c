"""``cnnzoo predict CKPT IMAGE...``: top-k classes of image files, with the checkpoint's own
preprocessing and class names (``cnnzoo.train.predict.predict_checkpoint``); ``predict MODEL
--pretrained IMAGE...`` with the published weights' (their ``pretrained_cfg``)."""

from __future__ import annotations

import argparse
import json
import sys

from ._args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ._options import add_pretrained_option

    p = sub.add_parser("predict", help="top-k classes with probabilities for image files")
    p.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="checkpoint file or run directory (a model name with --pretrained)",
    )
    add_pretrained_option(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or directories")
    p.add_argument("--topk", type=positive_int, default=5)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--model", help="refuse a checkpoint that is not of this model")
    p.add_argument("--strict", action="store_true", help="an unreadable image is an error")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..train.predict import predict_checkpoint
    from ._options import one_line_warnings

    one_line_warnings()
    if args.pretrained:
        results = _predict_pretrained(args)
    else:
        results = predict_checkpoint(
            args.checkpoint, args.images, args.topk, args.device, args.strict, args.model
        )
    if args.format == "json":
        json.dump(results, sys.stdout)
        print()
        return 0
    for r in results:
        top = ", ".join(f"{name} {p:.3f}" for name, p in r["top"])
        print(f"{r['path']}: {top}")
    return 0


def _predict_pretrained(args: argparse.Namespace) -> list[dict]:
    """A model name with its published weights, their preprocessing and ImageNet's names."""
    from ..runs import resolve_model
    from ..train.distributed import resolve_device
    from ..train.predict import predict

    src = resolve_model(args.checkpoint, args.model, pretrained=True)
    dev = resolve_device(args.device)
    model = src.model.to(dev)
    pre = src.preprocess.to_dict()
    return predict(model, args.images, pre, src.classes, args.topk, dev, strict=args.strict)
