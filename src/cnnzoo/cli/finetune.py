"""``cnnzoo finetune CKPT_OR_WEIGHTS [--model NAME] --data DIR --freeze backbone|none|until:LAYER``:
a trained or downloaded model adapted to new classes (a linear probe, or training with ``fit``)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ._args import img_size, nonneg_float, output_dir, positive_int

IMAGENET_MEAN = [0.485, 0.456, 0.406]  # what torchvision's and timm's ImageNet weights expect
IMAGENET_STD = [0.229, 0.224, 0.225]


def register(sub: argparse._SubParsersAction) -> None:
    from .train import add_config_options, add_data_options

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
        help="a cnnzoo checkpoint, or a torchvision/timm weight file with --model",
    )
    p.add_argument("--model", dest="model_name", help="architecture (required for weight files)")
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
        help="with --freeze backbone, train the head by SGD epochs, not a linear probe",
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
    from ..data import load_data
    from ..data.transforms import make_preprocess
    from ..errors import CnnzooError
    from ..train import TrainConfig, seed_everything
    from ..transfer import finetune, subsample_per_class
    from .features import resolve_model
    from .train import one_line_warnings, parse_img_size

    one_line_warnings()
    if not Path(args.weights).is_file():
        raise CnnzooError(
            f"{args.weights} is not a file; finetune starts from a checkpoint or weight file "
            f"(to train from scratch use `cnnzoo train`)"
        )
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    try:
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as err:
        raise CnnzooError(str(err)) from None
    probe = args.freeze == "backbone" and not args.no_probe
    if probe and args.augment != "none":
        raise CnnzooError("a linear probe uses fixed features: drop --augment or add --no-probe")
    if args.backbone_lr_scale < 0:
        raise CnnzooError(f"--backbone-lr-scale must be >= 0, got {args.backbone_lr_scale}")
    src = resolve_model(args.weights, args.model_name)
    hw = parse_img_size(args.img_size)
    if hw is not None:
        src.input_size = (src.input_size[0], *hw)
    seed_everything(config.seed, config.deterministic)
    data_args = {
        "spec": args.data,
        "data_dir": args.data_dir,
        "input_size": list(src.input_size),
        "augment": args.augment,
        "seed": config.seed,
        "limit": args.limit,
    }
    bundle = load_data(
        args.data,
        data_dir=args.data_dir,
        input_size=src.input_size,
        augment=args.augment,
        seed=config.seed,
        limit=args.limit,
        strict=args.strict,
        download=args.download,
    )
    # The pretrained layers expect the statistics they were trained with, not the new data's.
    mean, std = None, None
    if src.preprocess and len(src.preprocess.get("mean", [])) == src.input_size[0]:
        mean, std = src.preprocess["mean"], src.preprocess["std"]
    elif src.preprocess is None and src.input_size[0] == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if mean is not None:
        pre = make_preprocess(src.input_size, bundle.preprocess["source_size"], mean, std)
        bundle.preprocess = pre
        for split in (bundle.train, bundle.val, bundle.test):
            if split is not None:
                split.preprocess = pre
    if args.per_class:
        bundle.train = subsample_per_class(bundle.train, args.per_class, config.seed)
        data_args["per_class"] = args.per_class
    out = Path(args.out or f"runs/finetune-{src.name}-{Path(args.data).name}")
    if (out / "last.pt").exists():
        raise CnnzooError(f"{out} already holds a run; choose another --out")
    how = "linear probe" if probe else f"fit, backbone lr x{args.backbone_lr_scale}"
    print(
        f"cnnzoo finetune: {src.name} from {args.weights} on {bundle.name} "
        f"({len(bundle.train):,} train, {len(bundle.val):,} val images, {bundle.num_classes} "
        f"classes), freeze {args.freeze}, {how} -> {out}",
        flush=True,
    )
    result = finetune(
        src.model,
        bundle,
        config,
        out,
        model_name=src.name,
        model_args=src.model_args,
        freeze_mode=args.freeze,
        backbone_lr_scale=args.backbone_lr_scale,
        probe=probe,
        data_args=data_args,
    )
    print(f"  {result['freeze']}")
    if "probe" in result:
        r = result["probe"]
        print(
            f"  linear probe: C={r.C:g}, train accuracy {r.train_accuracy:.4f}, "
            f"val accuracy {result['best_val_acc']:.4f}"
        )
    else:
        print(f"  best val accuracy {result['best_val_acc']:.4f} (epoch {result['best_epoch']})")
    print(f"  checkpoint: {result['best']}  (try: cnnzoo evaluate {result['best']} ...)")
    return 0
