"""cnnzoo: the classic convolutional network architectures, built exactly and explained."""

from . import (
    calc,  # noqa: F401  (cnnzoo.calc.conv_output and the other calculators)
    models,  # noqa: F401  (registers every architecture)
)
from .analysis import analyze
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .errors import CheckpointError, CnnzooError, DataError, InputTooSmallError, UnknownModelError
from .inference import optimize_for_inference
from .pretrained import LoadResult, load_pretrained
from .registry import create_model, get_model_info, list_models, register_model
from .transfer import extract_features

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CnnzooError",
    "DataError",
    "InputTooSmallError",
    "LoadResult",
    "UnknownModelError",
    "analyze",
    "create_model",
    "extract_features",
    "get_model_info",
    "list_models",
    "load_pretrained",
    "load_checkpoint",
    "model_from_checkpoint",
    "optimize_for_inference",
    "register_model",
    "save_checkpoint",
]
