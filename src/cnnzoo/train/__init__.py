"""Training, evaluation and prediction: ``Run`` and ``FineTune`` (what ``cnnzoo train`` and
``cnnzoo finetune`` do), ``TrainConfig``, ``fit`` (``setup``, ``run_epoch``, ``TrainState``),
``evaluate`` (and ensembles), ``predict``."""

from . import assess, predict  # the modules the README calls, cnnzoo.train.assess...
from .config import OPTIMIZERS, SCHEDULES, TrainConfig
from .distributed import cleanup_distributed, dist_info, resolve_device, setup_distributed
from .evaluate import evaluate, evaluate_ensemble, metrics_from_probs, predict_probs
from .finetune import FineTune
from .loop import (
    DivergedError,
    TrainState,
    compute_loss,
    fit,
    run_epoch,
    seed_everything,
    setup,
    train_one_epoch,
)
from .run import Run
from .schedule import LRSchedule, build_optimizer

__all__ = [
    "DivergedError",
    "FineTune",
    "LRSchedule",
    "OPTIMIZERS",
    "Run",
    "SCHEDULES",
    "TrainConfig",
    "assess",
    "build_optimizer",
    "cleanup_distributed",
    "compute_loss",
    "dist_info",
    "evaluate",
    "evaluate_ensemble",
    "fit",
    "metrics_from_probs",
    "predict",
    "predict_probs",
    "resolve_device",
    "seed_everything",
    "setup_distributed",
    "TrainState",
    "run_epoch",
    "setup",
    "train_one_epoch",
]
