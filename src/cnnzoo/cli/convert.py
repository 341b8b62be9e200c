"""``cnnzoo convert``: a torchvision/timm weight file -> a self-rebuilding cnnzoo checkpoint."""

from __future__ import annotations

import argparse

from ._args import nonneg_int, weights_file
from ._options import parse_model_args


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
    p.add_argument("dst", type=weights_file, metavar="OUT", help="the cnnzoo checkpoint to write")
    p.add_argument("--model", required=True, help="registered cnnzoo name, e.g. resnet50")
    p.add_argument(
        "--num-classes",
        type=nonneg_int,
        default=None,
        help="class count of the new model (default: the file's classifier; another count "
        "drops the file's classifier, to fine-tune)",
    )
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another argument of the model's builder, repeatable (e.g. --arg act=relu6 for "
        "timm's MobileNet, --arg width_mult=0.5)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write OUT even over a training checkpoint or another file that is not a bare "
        "weight file, or inside a training run's directory (refused by default)",
    )
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..errors import CnnzooError
    from ..pretrained import convert_weights

    model_args = parse_model_args(args.arg, option="--arg")
    if "num_classes" in model_args:
        raise CnnzooError("give the class count with --num-classes, not --arg num_classes=N")
    result = convert_weights(
        args.src, args.dst, args.model, num_classes=args.num_classes, force=args.force, **model_args
    )
    print(result.message)
    print(f"wrote {args.dst} (model {args.model!r})")
    return 0
