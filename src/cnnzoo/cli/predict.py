"""``cnnzoo predict CKPT IMAGE...``: top-k classes of image files, with the checkpoint's own
preprocessing and class names."""

from __future__ import annotations

import argparse
import json
import sys

from ._args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k classes with probabilities for image files")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or directories")
    p.add_argument("--topk", type=positive_int, default=5)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--model", help="refuse a checkpoint that is not of this model")
    p.add_argument("--strict", action="store_true", help="an unreadable image is an error")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from ..errors import CheckpointError
    from ..train.distributed import resolve_device
    from ..train.predict import predict
    from .evaluate import load_models
    from .train import one_line_warnings

    one_line_warnings()
    device = resolve_device(args.device)
    (model,), (ckpt,) = load_models([args.checkpoint], args.model, device)
    if not ckpt.get("preprocess"):
        raise CheckpointError(f"{args.checkpoint} has no preprocessing description; cannot predict")
    results = predict(
        model,
        args.images,
        ckpt["preprocess"],
        ckpt.get("classes"),
        args.topk,
        device,
        strict=args.strict,
    )
    if args.format == "json":
        json.dump(results, sys.stdout)
        print()
        return 0
    for r in results:
        top = ", ".join(f"{name} {p:.3f}" for name, p in r["top"])
        print(f"{r['path']}: {top}")
    return 0
