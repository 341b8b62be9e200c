"""``cnnzoo finetune CKPT_OR_WEIGHTS [--model NAME] --data DIR --freeze backbone|none|until:LAYER``:
a trained or downloaded model adapted to new classes (a linear probe, or training with ``fit``).
The run is ``cnnzoo.train.FineTune``; this module parses, calls it once, and prints."""

from __future__ import annotations

import argparse

from ._args import img_size, nonneg_float, output_dir, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from ._options import add_data_options, add_pretrained_option
    from ._train_options import add_config_options

    p = sub.add_parser(
        "finetune",
        help="fine-tune a checkpoint or torchvision/timm weights on new classes (or linear probe)",
        description="Replace the head for --data's classes and train: --freeze backbone (the "
        "default) fits only the head, as a linear probe on features computed once (--no-probe: "
        "train the head with the training loop instead); --freeze until:LAYER also trains LAYER "
        "and what follows, at --backbone-lr-scale times the head's learning rate; --freeze none "
        "trains everything. Frozen batch norms keep their statistics.",
    )
    p.add_argument(
        "weights",
        metavar="CKPT_OR_WEIGHTS",
        help="a cnnzoo checkpoint, a torchvision/timm weight file with --model, or a model name "
        "with --pretrained",
    )
    p.add_argument("--model", dest="model_name", help="architecture (required for weight files)")
    add_pretrained_option(p)
    p.add_argument(
        "--freeze",
        default="backbone",
        metavar="backbone|none|until:LAYER",
        help="what stays fixed (default: backbone)",
    )
    p.add_argument(
        "--backbone-lr-scale",
        type=nonneg_float,
        default=0.1,
        help="learning rate of unfrozen backbone layers / the head's (default 0.1)",
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="with --freeze backbone, train the head by SGD epochs with the training loop "
        "instead of fitting it as a linear probe on features computed once",
    )
    p.add_argument(
        "--per-class",
        type=positive_int,
        metavar="N",
        help="keep N random training images per class (few-label experiments)",
    )
    p.add_argument(
        "--augment",
        choices=["none", "crop", "flip", "basic"],
        default="none",
        help="training augmentation (not with a linear probe; default: none)",
    )
    p.add_argument(
        "--img-size", type=img_size, help="input H or HxW (default: the checkpoint's or model's)"
    )
    p.add_argument(
        "--out", type=output_dir, help="run directory (default: runs/finetune-MODEL-DATA)"
    )
    add_data_options(p, required=True)
    add_config_options(p)
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..train.finetune import FineTune
    from ._options import one_line_warnings, parse_img_size
    from ._train_options import config_overrides

    one_line_warnings()
    run = FineTune.new(
        args.weights,
        args.data,
        model_name=args.model_name,
        freeze=args.freeze,
        backbone_lr_scale=args.backbone_lr_scale,
        probe=False if args.no_probe else None,
        augment=args.augment,
        img_size=parse_img_size(args.img_size),
        per_class=args.per_class,
        data_dir=args.data_dir,
        limit=args.limit,
        out=args.out,
        pretrained=args.pretrained,
        **config_overrides(args),
    )
    result = run.train(args.strict, args.download, lambda line: print(f"cnnzoo finetune: {line}"))
    print(f"  {result['freeze']}")
    if "probe" in result:
        r = result["probe"]
        print(
            f"  linear probe: C={r.C:g}, train accuracy {r.train_accuracy:.4f}, "
            f"val accuracy {result['best_val_acc']:.4f}"
        )
    else:
        print(f"  best val accuracy {result['best_val_acc']:.4f} (epoch {result['best_epoch']})")
    print(f"  checkpoint: {result['best']}  (try: {result['hint']})")
    return 0
