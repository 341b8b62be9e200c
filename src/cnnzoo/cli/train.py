"""``cnnzoo train MODEL --data SPEC --out RUN_DIR``: train a zoo model (also under torchrun).

Every field of ``TrainConfig`` is an option of the same name (``--batch-size``, ``--sched``...),
with the field's comment as its help, so the two cannot drift apart. The run itself is
``cnnzoo.train.Run``: this module parses, calls it once, and prints.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._args import output_dir
from ._options import (
    add_data_options,
    add_pretrained_option,
    one_line_warnings,
    parse_img_size,
    parse_model_args,
)
from ._train_options import RESUME_REFUSES, add_config_options, add_input_options, config_overrides


def register(sub: argparse._SubParsersAction) -> None:
    from ..train.recipes import RECIPES

    p = sub.add_parser(
        "train",
        help="train a model on a dataset (checkpoints, metrics.csv, TensorBoard, curves.png)",
        description="Train MODEL on --data, writing best.pt/last.pt, metrics.csv, TensorBoard "
        "events and curves.png to --out. With no other option it trains with the default recipe "
        "of docs/training.md (SGD Nesterov, one-cycle, label smoothing, flips where they are "
        "safe). Under `torchrun --nproc_per_node=N -m cnnzoo train ...` it trains with "
        "DistributedDataParallel.",
    )
    p.add_argument("model", nargs="?", help="registered model name (not needed with --resume)")
    p.add_argument("--out", type=output_dir, help="run directory (default: runs/MODEL-DATA)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    p.add_argument(
        "--recipe",
        metavar="NAME_OR_FILE",
        help="fill in the options this command leaves out from a recipe of docs/results.md "
        f"({', '.join(RECIPES)}) or a .json/.toml file of option names",
    )
    add_pretrained_option(p)
    add_data_options(p)
    add_input_options(p)
    add_config_options(p, model_defaults=True)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    one_line_warnings()
    run = _resumed(args) if args.resume else _new(args)
    from ..train.distributed import is_main_process

    say = print if is_main_process() else (lambda *a, **k: None)
    try:
        result = run.train(
            args.strict,
            args.download,
            args.data_dir,
            announce=lambda line: say(f"cnnzoo train: {line}", flush=True),
        )
    except KeyboardInterrupt:
        say(f"cnnzoo train: {run.interrupted_advice()}", file=sys.stderr)
        return 130
    keys = ("best_val_acc", "best_epoch", "last", "best", "test_acc_last", "test_tta")
    say("cnnzoo train: done " + json.dumps({k: result[k] for k in keys if k in result}))
    return 0


def _resumed(args: argparse.Namespace):
    """``Run.resume`` of ``--resume``, refusing the options a resume cannot change."""
    from ..errors import CnnzooError
    from ..train.run import Run

    given = [k for k in RESUME_REFUSES if getattr(args, k) not in (None, False, [])]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise CnnzooError(f"--resume continues a run as it was configured; drop {flags}")
    run = Run.resume(args.resume, **config_overrides(args))
    if args.model and args.model != run.model_name:
        raise CnnzooError(f"{args.resume} is a run of {run.model_name!r}, not {args.model!r}")
    return run


def _new(args: argparse.Namespace):
    """``Run.new`` from the command line's options."""
    from ..train.run import Run

    return Run.new(
        args.model,
        args.data,
        out=args.out,
        recipe=args.recipe,
        model_args=parse_model_args(args.model_arg),
        in_chans=args.in_chans,
        img_size=parse_img_size(args.img_size),
        augment=args.augment,
        val_fraction=args.val_fraction,
        data_dir=args.data_dir,
        limit=args.limit,
        pretrained=args.pretrained,
        **config_overrides(args),
    )
