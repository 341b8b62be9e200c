"""Training, evaluation and prediction: ``TrainConfig``, ``fit``, ``train_one_epoch``,
``evaluate`` (and ensembles), ``predict``."""

from .config import OPTIMIZERS, SCHEDULES, TrainConfig
from .distributed import cleanup_distributed, dist_info, resolve_device, setup_distributed
from .evaluate import evaluate, evaluate_ensemble, metrics_from_probs, predict_probs
from .loop import AUX_WEIGHTS, compute_loss, fit, seed_everything, train_one_epoch
from .schedule import LRSchedule, build_optimizer

__all__ = [
    "AUX_WEIGHTS",
    "LRSchedule",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "build_optimizer",
    "cleanup_distributed",
    "compute_loss",
    "dist_info",
    "evaluate",
    "evaluate_ensemble",
    "fit",
    "metrics_from_probs",
    "predict_probs",
    "resolve_device",
    "seed_everything",
    "setup_distributed",
    "train_one_epoch",
]
