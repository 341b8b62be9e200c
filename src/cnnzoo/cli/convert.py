"""``cnnzoo convert``: a torchvision/timm weight file -> a self-rebuilding cnnzoo checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="turn a torchvision/timm weight file into a cnnzoo checkpoint",
        description=(
            "Read a local .pth/.pt/.bin/.safetensors file saved from the torchvision or timm model "
            "of the same architecture (never executing code from it) and write a cnnzoo "
            "checkpoint that `cnnzoo.model_from_checkpoint` rebuilds by itself."
        ),
    )
    p.add_argument("src", metavar="IN", help="the peer's weight file")
    p.add_argument("dst", metavar="OUT", help="the cnnzoo checkpoint to write")
    p.add_argument("--model", required=True, help="registered cnnzoo name, e.g. resnet50")
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="class count of the new model (default: the file's classifier; another count "
        "drops the file's classifier, to fine-tune)",
    )
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..errors import CnnzooError
    from ..pretrained import convert_weights

    if args.num_classes is not None and args.num_classes < 0:
        raise CnnzooError(f"--num-classes must be 0 or more, got {args.num_classes}")
    result = convert_weights(args.src, args.dst, args.model, num_classes=args.num_classes)
    print(result.message)
    print(f"wrote {args.dst} (model {args.model!r})")
    return 0
