"""``cnnzoo train MODEL --data SPEC --out RUN_DIR``: train a zoo model (also under torchrun).

Every field of ``TrainConfig`` is an option of the same name (``--batch-size``, ``--sched``...),
with the field's comment as its help, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

from ._args import fraction, img_size, output_dir, positive_int

AUGMENT_AUTO = {"cifar10": "basic", "cifar100": "basic"}  # image folders: basic; others: none


CASTS = {"int": int, "float": float, "str": str}


def field_type(f) -> str:
    """A ``TrainConfig`` field's base type name (``"float | None"`` -> ``"float"``)."""
    return str(f.type).split(" ")[0]


def config_field_help() -> dict[str, str]:
    """The comment after each ``TrainConfig`` field, read from its source."""
    from ..train.config import TrainConfig

    src = inspect.getsource(TrainConfig)
    return dict(re.findall(r"^\s+(\w+): [^=]+= [^#\n]+# (.+)$", src, flags=re.M))


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field; defaults are None so a resume can tell what was set."""
    from ..train.config import TrainConfig

    helps = config_field_help()
    g = p.add_argument_group("training (TrainConfig)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        h = helps.get(f.name, "")
        if f.type in ("bool", bool):
            if default:  # on by default: the option turns it off
                g.add_argument(
                    "--no-" + f.name.replace("_", "-"),
                    dest=f.name,
                    action="store_false",
                    default=None,
                    help=h,
                )
            else:
                g.add_argument(flag, action="store_true", default=None, help=h)
            continue
        kind = CASTS.get(field_type(f), str)
        g.add_argument(flag, type=kind, default=None, help=f"{h} (default: {default})")


def add_data_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        required=required,
        help="fashion-mnist, mnist, cifar10, cifar100, digits, or an image folder",
    )
    g.add_argument("--data-dir", help="directory with the dataset files (IDX, CIFAR batches)")
    g.add_argument("--limit", type=positive_int, help="use at most this many images of each split")
    g.add_argument("--strict", action="store_true", help="an unreadable image is an error")
    g.add_argument("--download", action="store_true", help="let torchvision download the data")


def register(sub: argparse._SubParsersAction) -> None:
    from ..data.transforms import AUGMENTS
    from ..train.recipes import RECIPES

    p = sub.add_parser(
        "train",
        help="train a model on a dataset (checkpoints, metrics.csv, TensorBoard, curves.png)",
        description="Train MODEL on --data, writing last.pt/best.pt, metrics.csv, TensorBoard "
        "events and curves.png to --out. Under `torchrun --nproc_per_node=N -m cnnzoo train ...` "
        "it trains with DistributedDataParallel.",
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
    add_data_options(p)
    g = p.add_argument_group("model and input")
    g.add_argument(
        "--augment",
        choices=["auto", *AUGMENTS],
        default=None,
        help="training augmentation; auto: basic (random crop with padding + flip) "
        "for CIFAR and image folders, none otherwise; basic+erase adds random erasing",
    )
    g.add_argument(
        "--val-fraction",
        type=fraction,
        default=None,
        help="fraction of the training split used to validate (default 0.1)",
    )
    g.add_argument("--img-size", type=img_size, help="input H or HxW (default: the model's)")
    g.add_argument("--in-chans", type=positive_int, help="input channels (default: the model's)")
    g.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra create_model argument, e.g. drop_rate=0.2 (repeatable)",
    )
    g.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (default: torch's choice)"
    )
    add_config_options(p)
    p.set_defaults(func=cmd_train)


def one_line_warnings() -> None:
    """Warnings (a skipped image) as one ``cnnzoo: warning: ...`` line, no source line."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"cnnzoo: warning: {msg}\n"


def parse_model_args(items: list[str]) -> dict:
    from ..errors import CnnzooError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CnnzooError(f"--model-arg takes KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare word: a string
    return out


def parse_img_size(text: str | None) -> tuple[int, int] | None:
    from ..errors import CnnzooError

    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(s.isdigit() and int(s) > 0 for s in parts):
        raise CnnzooError(f"--img-size takes H or HxW (e.g. 32 or 224x224), got {text!r}")
    return (int(parts[0]), int(parts[-1]))


def apply_recipe(args: argparse.Namespace) -> dict:
    """Fill the options left out on the command line from ``--recipe``; returns its model
    arguments (the command line's ``--model-arg`` win over them)."""
    from ..errors import CnnzooError
    from ..train.config import TrainConfig
    from ..train.recipes import load_recipe

    if args.resume:
        raise CnnzooError("--resume continues a run as it was configured; drop --recipe")
    recipe = load_recipe(args.recipe)
    types = {f.name: field_type(f) for f in fields(TrainConfig)}
    types.update(in_chans="int", val_fraction="float", img_size="str")
    for key, value in recipe.items():
        if key in ("about", "model_arg") or getattr(args, key, None) is not None:
            continue  # the command line wins
        kind = types.get(key, "str")
        if kind == "bool":
            if not isinstance(value, bool):
                raise CnnzooError(
                    f"recipe {args.recipe}: {key} must be true or false, got {value!r}"
                )
        elif not isinstance(value, bool):
            try:
                value = CASTS.get(kind, str)(value)
            except (TypeError, ValueError):
                raise CnnzooError(
                    f"recipe {args.recipe}: {key} must be a{'n' if kind == 'int' else ''} "
                    f"{kind}, got {value!r}"
                ) from None
        setattr(args, key, value)
    return dict(recipe.get("model_arg", {}))


def cmd_train(args: argparse.Namespace) -> int:
    from ..checkpoint import load_checkpoint
    from ..data import load_data
    from ..errors import CnnzooError
    from ..registry import create_model, get_model_info
    from ..train import TrainConfig, fit, seed_everything
    from ..train.distributed import cleanup_distributed, is_main_process, setup_distributed

    one_line_warnings()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    recipe_model_args = apply_recipe(args) if args.recipe else {}
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.resume:
        run = Path(args.resume)
        ckpt = load_checkpoint(run / "last.pt" if run.is_dir() else run)
        name, model_args, data_args = ckpt["model"], dict(ckpt["model_args"]), ckpt.get("data")
        if not data_args:
            raise CnnzooError(f"{args.resume} holds no data description; it cannot be resumed")
        if args.model and args.model != name:
            raise CnnzooError(f"{args.resume} is a run of {name!r}, not {args.model!r}")
        changed = set(overrides) - {"epochs", "progress", "tensorboard", "plots", "device"}
        if changed:
            raise CnnzooError(
                f"--resume continues the run as it was configured; only --epochs and --device "
                f"may change, got {', '.join('--' + c.replace('_', '-') for c in sorted(changed))}"
            )
        try:
            config = TrainConfig.from_dict({**ckpt["config"], **overrides})
        except ValueError as err:
            raise CnnzooError(str(err)) from None
        out = run if run.is_dir() else run.parent
        resume = ckpt
    else:
        if not args.model or not args.data:
            raise CnnzooError("give a MODEL and --data (or --resume RUN_DIR)")
        name = args.model
        info = get_model_info(name)
        try:
            config = TrainConfig(**overrides)
        except ValueError as err:
            raise CnnzooError(str(err)) from None
        extra_args = {**recipe_model_args, **parse_model_args(args.model_arg)}
        # --model-arg in_chans=1 means the same as --in-chans 1: the data follows the model
        chans = args.in_chans or extra_args.get("in_chans") or info.input_size[0]
        hw = parse_img_size(args.img_size) or info.input_size[1:]
        augment = args.augment or "auto"
        if augment == "auto":
            is_folder = Path(args.data).is_dir()
            augment = "basic" if is_folder else AUGMENT_AUTO.get(args.data.lower(), "none")
        data_args = {
            "spec": args.data,
            "data_dir": args.data_dir,
            "input_size": [chans, *hw],
            "augment": augment,
            "val_fraction": args.val_fraction or 0.1,
            "seed": config.seed,
            "limit": args.limit,
        }
        model_args = {**extra_args, "in_chans": chans}
        out = Path(args.out or f"runs/{name}-{Path(args.data).name}")
        resume = None
    distributed = setup_distributed()
    try:
        seed_everything(config.seed, config.deterministic)
        unknown = set(data_args) - set(inspect.signature(load_data).parameters)
        if unknown:  # e.g. a `cnnzoo finetune` run's per-class subsampling
            raise CnnzooError(
                f"{out} was not made by `cnnzoo train` (its data has {sorted(unknown)}); "
                f"resume it with the command that made it"
            )
        bundle = load_data(
            **{**data_args, "input_size": tuple(data_args["input_size"])},
            strict=args.strict,
            download=args.download,
        )
        if resume is None:
            model_args["num_classes"] = bundle.num_classes
            if (out / "last.pt").exists():
                raise CnnzooError(f"{out} already holds a run; use --resume {out} or another --out")
        model = create_model(name, **model_args)
        main = is_main_process()
        if main:
            what = "resuming" if resume else "training"
            print(
                f"cnnzoo train: {what} {name} on {bundle.name} from {bundle.source} "
                f"({len(bundle.train):,} train, "
                f"{len(bundle.val):,} val images, {bundle.num_classes} classes, input "
                f"{'x'.join(map(str, bundle.preprocess['input_size']))}) -> {out}",
                flush=True,
            )
        try:
            result = fit(
                model,
                bundle,
                config,
                out,
                model_name=name,
                model_args=model_args,
                resume=resume,
                data_args=data_args,
            )
        except KeyboardInterrupt:
            if main:
                print(
                    f"cnnzoo train: interrupted; weights so far in {out / 'interrupted.pt'}; "
                    f"`cnnzoo train --resume {out}` restarts from the last completed epoch "
                    f"({out / 'last.pt'})",
                    file=sys.stderr,
                )
            return 130
        if main:
            summary = {k: result[k] for k in ("best_val_acc", "best_epoch", "last", "best")}
            if bundle.test is not None and result["history"]:
                from ..train import evaluate

                test = evaluate(model, bundle.test, bundle.classes, batch_size=256)
                summary["test_acc_last"] = test["accuracy"]  # the final weights, not best.pt
            print("cnnzoo train: done " + json.dumps(summary), flush=True)
        return 0
    finally:
        if distributed:
            cleanup_distributed()
