"""``cnnzoo evaluate CKPT [CKPT...]``: accuracy, top-5, per-class accuracy, confusion matrix.

Several checkpoints make an ensemble: their class probabilities are averaged. ``evaluate MODEL
--pretrained --data DIR`` scores a model's published ImageNet weights with their preprocessing.
The work is ``cnnzoo.train.assess.evaluate_checkpoints``; this module parses, calls it, prints.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._args import output_dir, positive_int, tta_spec


def register(sub: argparse._SubParsersAction) -> None:
    from ._options import add_data_options, add_pretrained_option

    p = sub.add_parser(
        "evaluate",
        help="accuracy, top-5, per-class accuracy and confusion matrix of checkpoints (ensemble)",
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CKPT",
        help="checkpoint(s) or run dirs (model names with --pretrained)",
    )
    add_pretrained_option(p)
    add_data_options(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--model", help="refuse checkpoints that are not of this model")
    p.add_argument(
        "--out",
        type=output_dir,
        help="folder for the confusion matrix picture (default: beside the "
        "first CKPT; named confusion.png, or confusion-tta-flip.png, ...)",
    )
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="write no confusion matrix picture (the table is still printed)",
    )
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--tta",
        default="none",
        type=tta_spec,
        help="test-time views, averaged: none, flip (each image and its mirror), translate (and "
        "shifted by one pixel down-right and up-left), or flip,translate (the six views)",
    )
    p.add_argument(
        "--backend",
        default="eager",
        choices=["eager", "auto", "torch", "onnxruntime"],
        help="eager: the model as trained; the others run cnnzoo.optimize_for_inference's "
        "backend (BN folded; torch: channels-last; onnxruntime: ONNX Runtime on the CPU); "
        "auto picks one and the output names it",
    )
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..train.assess import confusion_path, evaluate_checkpoints, evaluation_title, format_table
    from ..train.tricks.tta import parse_tta
    from ..viz import plot_confusion
    from ._options import one_line_warnings

    one_line_warnings()
    result = evaluate_checkpoints(
        args.checkpoints,
        args.split,
        data=args.data,
        data_dir=args.data_dir,
        limit=args.limit,
        expect_model=args.model,
        tta=",".join(parse_tta(args.tta)) or "none",
        backend=args.backend,
        device=args.device,
        batch_size=args.batch_size,
        strict=args.strict,
        download=args.download,
        pretrained=args.pretrained,
    )
    if not args.no_plot:
        path = confusion_path(result, args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_confusion(result["confusion"], result["classes"], path, evaluation_title(result))
        result["confusion_png"] = str(path)
    if args.format == "json":
        json.dump(result, sys.stdout)
        print()
    else:
        print(format_table(result))
    return 0
