"""Evaluation: class probabilities of a model (or the average of several, an ensemble), and the
metrics computed from them: accuracy, top-5, per-class accuracy, confusion matrix, loss."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import make_loader
from .tricks.tta import parse_tta, tta_views


def main_output(out) -> torch.Tensor:
    """The main logits of a model's output: models with auxiliary heads return a tuple (or a
    namedtuple) in training mode whose first element is the main classifier's."""
    return out[0] if isinstance(out, (tuple, list)) else out


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    data: Dataset | Sequence,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: str = "none",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N x K, float32, on the CPU) and labels of a dataset or a loader.

    ``tta`` names test-time views (``cnnzoo.train.tricks.tta``): ``"flip"`` averages the
    probabilities of each image and its mirror image (twice the compute; it helps models trained
    with horizontal flips), ``"flip,translate"`` six views weighted as airbench does."""
    views = parse_tta(tta)
    if device is None:  # the model's own device (CPU for a parameterless wrapper)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    loader = make_loader(data, batch_size) if isinstance(data, Dataset) else data
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                p = sum(
                    w * main_output(model(v)).float().softmax(1) for _, v, w in tta_views(x, views)
                )
            probs.append(p.cpu())
            labels.append(torch.as_tensor(y).cpu())
    finally:
        model.train(was_training)
    return torch.cat(probs), torch.cat(labels)


def metrics_from_probs(
    probs: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] | None = None
) -> dict:
    """``{"accuracy", "top5", "n", "loss", "per_class", "confusion", "classes"}`` (fractions in
    [0, 1]; ``confusion[true][predicted]`` counts; top-5 is top-k for k = min(5, classes))."""
    n, k = probs.shape
    pred = probs.argmax(1)
    topk = probs.topk(min(5, k), dim=1).indices
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    support = confusion.sum(1)
    per_class = (confusion.diag().double() / support.clamp_min(1)).tolist()
    loss = -probs[torch.arange(n), labels].clamp_min(1e-12).log().mean().item()
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    return {
        "accuracy": (pred == labels).double().mean().item(),
        "top5": (topk == labels[:, None]).any(1).double().mean().item(),
        "n": int(n),
        "loss": loss,
        "per_class": {names[i]: per_class[i] for i in range(k) if support[i] > 0},
        "confusion": confusion.tolist(),
        "classes": names,
    }


def evaluate(
    model: nn.Module,
    data: Dataset | Sequence,
    classes: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: str = "none",
) -> dict:
    """Metrics of ``model`` on a dataset (or an iterable of ``(images, labels)`` batches);
    ``tta`` averages each image over test-time views (see ``predict_probs``)."""
    probs, labels = predict_probs(model, data, device, batch_size, amp_dtype, channels_last, tta)
    return metrics_from_probs(probs, labels, classes)


def evaluate_ensemble(
    models: Sequence[nn.Module],
    data: Dataset,
    classes: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    tta: str = "none",
) -> dict:
    """Metrics of the average of the models' probabilities (each model's own metrics under
    ``"members"``)."""
    if not models:
        raise ValueError("an ensemble needs at least one model")
    outs = [predict_probs(m, data, device, batch_size, tta=tta) for m in models]
    labels = outs[0][1]
    mean = torch.stack([p for p, _ in outs]).mean(0)
    result = metrics_from_probs(mean, labels, classes)
    if len(models) > 1:
        result["members"] = [metrics_from_probs(p, labels, classes)["accuracy"] for p, _ in outs]
    return result
