"""The training configuration: one dataclass, stored in every checkpoint as a dict.

The defaults are a recipe, not placeholders: SGD with Nesterov momentum, a one-cycle schedule
(a warm-up over the first 30% of the steps, then a cosine descent), a learning rate that follows
the batch size (0.1 at batch 128), label smoothing 0.1. docs/training.md says why.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

from ..errors import CnnzooError

OPTIMIZERS = ("sgd", "rmsprop", "adamw", "adam")
SCHEDULES = ("none", "step", "cosine", "plateau", "onecycle", "warmup-linear")
INITS = ("default", "whiten", "dirac", "whiten+dirac")
BASE_BATCH = 128  # the batch size at which the default learning rates below hold
BASE_LR = {"sgd": 0.1, "rmsprop": 0.01, "adamw": 1e-3, "adam": 1e-3}

# field: (low, high, low_open) -- every number a field may hold; None: no bound on that side
RANGES = {
    "epochs": (1, None, False),
    "batch_size": (1, None, False),
    "eval_batch_size": (1, None, False),
    "step_size": (1, None, False),
    "patience": (0, None, False),
    "lr": (0.0, None, True),
    "momentum": (0.0, 1.0, False),
    "weight_decay": (0.0, None, False),
    "gamma": (0.0, 1.0, True),
    "warmup_epochs": (0.0, None, False),
    "min_lr": (0.0, None, False),
    "aux_weight": (0.0, None, False),
    "grad_clip": (0.0, None, True),
    "num_workers": (0, None, False),
    "threads": (1, None, False),
    "bn_bias_lr_mult": (0.0, None, True),
    "ema": (0.0, 1.0, True),
    "ema_every": (1, None, False),
}


class ConfigError(CnnzooError):
    """A ``TrainConfig`` value no training can use (a negative rate, NaN, an unknown optimiser)."""


class ConfigArgumentError(ConfigError, TypeError):
    """A keyword that is no ``TrainConfig`` field (``epoch=5``); a ``TypeError`` as Python's own."""


@dataclass
class TrainConfig:
    """How to train; every field has the command-line option of the same name (``--lr`` ...)."""

    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # images per step (per process under torchrun)
    opt: str = "sgd"  # sgd | rmsprop | adamw | adam
    lr: float | None = None  # peak learning rate; None: 0.1 x batch/128 for SGD (Adam 1e-3 x ...)
    momentum: float = 0.9  # SGD momentum; RMSProp momentum too
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = 5e-4  # L2 (SGD, RMSProp) or decoupled (AdamW) weight decay
    sched: str = "onecycle"  # none|step|cosine|plateau|onecycle|warmup-linear (linear up, down)
    step_size: int = 30  # step schedule: epochs between decays
    gamma: float = 0.1  # step and plateau schedules: the decay factor ("divide by 10")
    patience: int = 2  # plateau: decay after more than this many epochs without a better val acc
    warmup_epochs: float = 0.0  # linear warm-up from lr/100 to lr over this many epochs
    min_lr: float = 0.0  # floor of the cosine and one-cycle schedules
    label_smoothing: float = 0.1  # cross-entropy label smoothing (Inception v3 used 0.1)
    aux_weight: float | None = None  # weight of auxiliary-classifier losses; None: the model's
    grad_clip: float | None = None  # clip the gradient norm to this value
    amp: bool = False  # mixed precision: bf16 on CPU, fp16 (with a grad scaler) on CUDA
    amp_dtype: str | None = None  # "bfloat16" or "float16" to override the default above
    channels_last: bool = True  # NHWC memory format: 1.0-1.26x faster training (benchmarks)
    compile: bool = False  # torch.compile the model
    fused: bool = True  # one fused optimiser step for all parameters (torch's CPU default loops)
    seed: int = 0  # seeds initialisation, shuffling, augmentation and dropout
    deterministic: bool = False  # deterministic kernels: a rerun gives the same weights
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1 ...
    sync_bn: bool = False  # under torchrun, convert BatchNorm to SyncBatchNorm
    eval_batch_size: int = 256  # images per step when evaluating
    num_workers: int = 0  # loader processes for datasets read from disk (in-memory ones need none)
    threads: int | None = None  # torch CPU threads (None: the default policy); kept for resume
    progress: bool = True  # a tqdm progress bar (the one-line epoch summaries stay)
    tensorboard: bool = True  # write TensorBoard events to the run directory
    plots: bool = True  # write curves.png every epoch
    # the speedrun tricks (docs/training.md, "Speedrun tricks"); the defaults leave them all off
    init: str = "default"  # default | whiten (first conv from data patches) | dirac | whiten+dirac
    bn_bias_lr_mult: float = 1.0  # BN biases train at this times the rate (decay divided by it)
    freeze_bn_scales: bool = False  # BN scales (weights) stay at their initial value
    ema: float | None = None  # average the weights with this decay; validate and save the average
    ema_every: int = 1  # fold the weights into the average every this many steps
    batch_augment: str = "none"  # on the batch, data on the device: flip-alt, flip, translate[:N]
    test_tta: str = "none"  # views of the final test figure: none, or flip and/or translate

    def __post_init__(self) -> None:
        if self.opt not in OPTIMIZERS:
            raise ConfigError(f"opt must be one of {', '.join(OPTIMIZERS)}, got {self.opt!r}")
        if self.sched not in SCHEDULES:
            raise ConfigError(f"sched must be one of {', '.join(SCHEDULES)}, got {self.sched!r}")
        _check_range("batch_size", self.batch_size, *RANGES["batch_size"])
        if self.lr is None:  # the linear scaling rule (Goyal et al. 2017) from batch 128
            self.lr = BASE_LR[self.opt] * self.batch_size / BASE_BATCH
        for name, (low, high, low_open) in RANGES.items():
            _check_range(name, getattr(self, name), low, high, low_open)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.amp_dtype not in (None, "bfloat16", "float16"):
            raise ConfigError(f"amp_dtype must be bfloat16 or float16, got {self.amp_dtype!r}")
        self._check_tricks()

    def _check_tricks(self) -> None:
        """The speedrun fields, in the canonical spelling their parsers give."""
        from .tricks import parse_augment, parse_tta

        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        try:
            parse_augment(self.batch_augment)
            self.test_tta = ",".join(parse_tta(self.test_tta)) or "none"
        except CnnzooError as err:
            raise ConfigError(str(err)) from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from ``to_dict()``; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_recipe(cls, name_or_path: str, **overrides) -> TrainConfig:
        """The configuration ``cnnzoo train --recipe NAME`` trains with; ``overrides`` win, as
        options given on the command line do. A bad value in a recipe file raises
        ``ConfigError`` naming the recipe."""
        from .recipes import config_values, load_recipe

        check_fields(overrides)
        values = config_values(load_recipe(name_or_path), name_or_path)
        own = {k: v for k, v in values.items() if k not in overrides}
        try:
            cls(**own)  # the recipe's own values, checked alone: an error here is the recipe's
        except ConfigError as err:
            raise ConfigError(f"recipe {name_or_path}: {err}") from None
        return cls(**{**values, **overrides})


def with_declared_defaults(declared: dict, given: dict) -> dict:
    """``TrainConfig`` values: ``given`` over a model's declared training defaults
    (``register_model(train_defaults=...)``), which are over the general ones. A declared ``lr``
    is an SGD rate at batch 128: it follows a given ``batch_size`` by the linear scaling rule, as
    the general default does, and is left out for another optimiser."""
    values = {k: v for k, v in declared.items() if k not in given}
    if "lr" in values:
        if given.get("opt", "sgd") != "sgd":
            del values["lr"]
        else:
            values["lr"] *= given.get("batch_size", BASE_BATCH) / BASE_BATCH
    return {**values, **given}


def check_fields(names: Iterable[str]) -> None:
    """Raise ``ConfigArgumentError`` for the first name that is no ``TrainConfig`` field, naming
    the closest field, as ``create_model`` does for a misspelt model argument."""
    valid = [f.name for f in fields(TrainConfig)]
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"its fields: {', '.join(valid)}"
            raise ConfigArgumentError(f"TrainConfig has no field {name!r}; {hint}")


def _check_range(name: str, value, low, high, low_open: bool) -> None:
    if value is None:
        if name in ("aux_weight", "grad_clip", "threads", "ema"):
            return
        raise ConfigError(f"{name} must be a number, got None")
    integral = isinstance(low, int) and not isinstance(low, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integral and not isinstance(value, int))
    ):
        kind = "an integer" if integral else "a number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else f"<= {high}"
        raise ConfigError(f"{name} must be {' and '.join(s for s in (lo, hi) if s)}, got {value}")
