"""Training recipes: named sets of ``cnnzoo train`` options that reproduce a result of
docs/results.md (``cnnzoo train --recipe fashion-fast``), or the same keys in a JSON/TOML file.

A recipe only fills in what the command line leaves out: ``--recipe fashion-fast --epochs 30``
trains the recipe for 30 epochs. Keys are option names with ``_`` or ``-``: ``model``, ``data``,
``in_chans``, ``img_size``, ``augment``, ``val_fraction``, ``model_arg`` (a table of create_model
arguments) and every ``TrainConfig`` field.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from ..errors import CnnzooError
from .config import TrainConfig

# Where each figure comes from: docs/results.md (2-core CPU, torch 2.14.1).
FASHION_FAST = {  # fashion-95 is this recipe trained longer with random erasing
    "about": "ResNet-20 on Fashion-MNIST at 1x28x28: 0.94 test accuracy in under 15 minutes",
    "model": "resnet20",
    "data": "fashion-mnist",
    "in_chans": 1,
    "img_size": "28",
    "augment": "basic",
    "epochs": 22,
    "batch_size": 128,
    "opt": "sgd",
    "lr": 0.1,
    "nesterov": True,
    "weight_decay": 5e-4,
    "sched": "onecycle",
    "label_smoothing": 0.1,
    "amp": True,
}

LENET_FASHION = {  # lenet-91 is this recipe with six changes
    "about": "LeNet-5 with ReLU on Fashion-MNIST: 0.906 test accuracy in about 17 s",
    "model": "lenet5",
    "data": "fashion-mnist",
    "model_arg": {"act": "relu"},
    "epochs": 7,
    "batch_size": 128,
    "opt": "sgd",
    "lr": 0.1,
    "nesterov": True,
    "sched": "onecycle",
    "label_smoothing": 0.1,
    "augment": "flip",
}

# The speedrun tricks (docs/training.md, "Speedrun tricks") on a ResNet-9 cut to 16..128 channels
# for 28x28 grey images: bf16 autocast (1.75x fp32 on a CPU with bf16 instructions; on one without
# them give --no-amp), data and augmentation on the batch, no TensorBoard or curves. The epochs
# were chosen on the validation split (docs/results.md: 8 epochs 0.940, 10 epochs 0.947).
FASHION_SPEEDRUN = {
    "about": "ResNet-9 (16..128 channels) with the speedrun tricks on Fashion-MNIST, 12 epochs, "
    "bf16 autocast: 0.94 test accuracy (flip+translate TTA) within 5 minutes of a 2-core CPU",
    "model": "resnet9",
    "data": "fashion-mnist",
    "in_chans": 1,
    "img_size": "28",
    "model_arg": {"widths": (16, 32, 64, 128), "pool_before_bn": True},
    "val_fraction": 0.05,
    "epochs": 12,
    "batch_size": 256,
    "opt": "sgd",
    "lr": 0.2,
    "nesterov": True,
    "weight_decay": 5e-4,
    "sched": "warmup-linear",
    "warmup_epochs": 1.0,
    "label_smoothing": 0.2,
    "amp": True,
    "init": "whiten",
    "freeze_bn_scales": True,
    "bn_bias_lr_mult": 64.0,
    "ema": 0.98,
    "ema_every": 5,
    "batch_augment": "flip-alt+translate",
    "test_tta": "flip,translate",
    "tensorboard": False,
    "plots": False,
}

RECIPES: dict[str, dict] = {
    "lenet-fashion": LENET_FASHION,
    "lenet-91": {
        **LENET_FASHION,
        "about": "LeNet-5 with ReLU on Fashion-MNIST, 6 epochs, bf16 autocast: 0.91 test accuracy "
        "(flip TTA) in less time than a plain PyTorch loop's 5 epochs",
        "epochs": 6,
        "lr": 0.2,
        "weight_decay": 1e-4,
        "label_smoothing": 0.05,
        "amp": True,
        "val_fraction": 0.005,
        "test_tta": "flip",
        "tensorboard": False,
        "plots": False,
    },
    "fashion-fast": FASHION_FAST,
    "fashion-95": {
        **FASHION_FAST,
        "about": "ResNet-20 on Fashion-MNIST, random erasing, 80 epochs: 0.95 test accuracy (flip "
        "TTA) in under an hour",
        "augment": "basic+erase",
        "epochs": 80,
        "val_fraction": 0.02,
    },
    "fashion-94-5min": FASHION_SPEEDRUN,
    "fashion-95-20min": {
        **FASHION_SPEEDRUN,
        # 24..192 for 22 epochs fits the budget (18.8 min); 32..256 for 16 took 20.5 (results.md)
        "about": "ResNet-9 (24..192 channels) with the speedrun tricks on Fashion-MNIST, 22 "
        "epochs, bf16 autocast: 0.95 test accuracy (flip+translate TTA) within 20 minutes of a "
        "2-core CPU",
        "model_arg": {"widths": (24, 48, 96, 192), "pool_before_bn": True},
        "epochs": 22,
        "warmup_epochs": 2.0,
    },
    "cifar10-94": {  # airbench's and Page's target; not measured here (no GPU)
        "about": "ResNet-9 with the speedrun tricks on CIFAR-10 (python batches in --data-dir), "
        "for a GPU: aims at 0.94 (flip+translate TTA); not measured here",
        "model": "resnet9",
        "data": "cifar10",
        "model_arg": {"act": "celu", "pool_before_bn": True},
        "augment": "none",
        "val_fraction": 0.02,
        "epochs": 10,
        "batch_size": 512,
        "opt": "sgd",
        "lr": 0.4,
        "nesterov": True,
        "weight_decay": 5e-4,
        "sched": "warmup-linear",
        "warmup_epochs": 2.0,
        "label_smoothing": 0.2,
        "amp": True,
        "init": "whiten",
        "freeze_bn_scales": True,
        "bn_bias_lr_mult": 64.0,
        "ema": 0.99,
        "ema_every": 5,
        "batch_augment": "flip-alt+translate",
        "test_tta": "flip,translate",
        "tensorboard": False,
        "plots": False,
    },
}

DATA_KEYS = ("model", "data", "data_dir", "in_chans", "img_size", "augment", "val_fraction")
KEYS = {*DATA_KEYS, "model_arg", "about"} | {f.name for f in fields(TrainConfig)}


def load_recipe(name_or_path: str) -> dict:
    """A built-in recipe by name, or a ``.json``/``.toml`` file of the same keys, checked: an
    unknown key is an error naming it (a typo must not silently train something else)."""
    path = Path(name_or_path)
    if name_or_path in RECIPES:
        recipe = dict(RECIPES[name_or_path])
    elif path.suffix.lower() in (".json", ".toml"):
        if not path.is_file():
            raise CnnzooError(f"recipe file {path} does not exist")
        try:
            if path.suffix.lower() == ".json":
                recipe = json.loads(path.read_text())
            else:
                import tomllib  # Python 3.11+

                recipe = tomllib.loads(path.read_text())
        except ImportError:
            raise CnnzooError("TOML recipes need Python 3.11 or later; use a .json file") from None
        except ValueError as err:  # JSONDecodeError and TOMLDecodeError are ValueErrors
            raise CnnzooError(f"recipe file {path} is not valid {path.suffix[1:]}: {err}") from None
        if not isinstance(recipe, dict):
            raise CnnzooError(f"recipe file {path} must hold a table of options")
    else:
        known = ", ".join(sorted(RECIPES))
        raise CnnzooError(
            f"unknown recipe {name_or_path!r}; built-in recipes: {known} "
            f"(or give a .json or .toml file)"
        )
    recipe = {k.replace("-", "_"): v for k, v in recipe.items()}
    unknown = sorted(set(recipe) - KEYS)
    if unknown:
        raise CnnzooError(
            f"recipe {name_or_path}: unknown option(s) {', '.join(unknown)}; "
            f"a recipe takes {', '.join(sorted(KEYS - {'about'}))}"
        )
    if not isinstance(recipe.get("model_arg", {}), dict):
        raise CnnzooError(f"recipe {name_or_path}: model_arg must be a table, e.g. {{act='relu'}}")
    return recipe


def _field_kind(f) -> str:
    """A ``TrainConfig`` field's base type name (``"float | None"`` -> ``"float"``)."""
    return str(f.type).split(" ")[0]


CASTS = {"int": int, "float": float, "str": str}
DATA_KINDS = {"in_chans": "int", "val_fraction": "float", "img_size": "str", "model": "str",
              "data": "str", "data_dir": "str", "augment": "str"}  # fmt: skip


def checked_values(recipe: dict, name: str) -> dict:
    """The recipe's values converted to each option's type (``"32"`` -> 32 for an int), the
    ``about`` line and the ``model_arg`` table left as they are; a value of the wrong kind raises
    ``CnnzooError`` naming the recipe and the key."""
    kinds = {f.name: _field_kind(f) for f in fields(TrainConfig)} | DATA_KINDS
    out = {}
    for key, value in recipe.items():
        kind = kinds.get(key)
        if kind is None or value is None:  # about, model_arg
            out[key] = value
        elif kind == "bool":
            if not isinstance(value, bool):
                raise CnnzooError(f"recipe {name}: {key} must be true or false, got {value!r}")
            out[key] = value
        else:
            try:
                if isinstance(value, bool):
                    raise TypeError
                out[key] = CASTS.get(kind, str)(value)
            except (TypeError, ValueError):
                article = "an" if kind == "int" else "a"
                raise CnnzooError(
                    f"recipe {name}: {key} must be {article} {kind}, got {value!r}"
                ) from None
    return out


def config_values(recipe: dict, name: str) -> dict:
    """The ``TrainConfig`` fields a recipe sets, checked (see ``checked_values``)."""
    known = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in checked_values(recipe, name).items() if k in known}


def recipe_as_args(recipe: dict) -> list[str]:
    """The recipe as ``cnnzoo train`` arguments (for docs and for checking the two agree)."""
    out = [recipe["model"]] if "model" in recipe else []
    for key, value in recipe.items():
        if key in ("model", "about"):
            continue
        flag = "--" + key.replace("_", "-")
        if key == "model_arg":
            for k, v in value.items():
                if isinstance(v, (list, tuple)):  # widths=16,32: a tuple, and no space to quote
                    v = ",".join(str(i) for i in v)
                out += ["--model-arg", f"{k}={v}"]
        elif isinstance(value, bool):  # spelled out even where it is the default
            out.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out
