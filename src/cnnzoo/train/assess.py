"""Evaluating checkpoints on their data: what ``cnnzoo evaluate`` does, from Python.

``evaluate_checkpoints(["runs/a", "runs/b"], split="test")`` loads each checkpoint (a run
directory stands for its best.pt), reloads the data it was trained on (or ``data``) at its input
size with its training statistics, and scores the average of the members' probabilities.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ..errors import CheckpointError, CnnzooError
from ..runs import Checkpoint, DataSpec, Preprocess, resolve_checkpoint


def load_checkpoints(paths: list, expect_model: str | None = None) -> list[tuple]:
    """``(checkpoint, model)`` of each of ``paths``, all of one set of class names, the weights
    loaded; ``expect_model`` refuses other architectures. Errors name the file."""
    ckpts, models = [], []
    for path in paths:
        try:
            ckpt = Checkpoint.load(path)
            models.append(ckpt.build_model())  # before any data loads
        except CheckpointError as err:
            if str(path) in str(err):
                raise
            raise CheckpointError(f"{path}: {err}") from None
        if expect_model is not None and ckpt.model != expect_model:
            raise CheckpointError(
                f"{path}: checkpoint is for model {ckpt.model!r}, not {expect_model!r}"
            )
        ckpts.append(ckpt)
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        if ckpt.classes != ckpts[0].classes:
            raise CheckpointError(f"{path} was trained on other classes than {paths[0]}")
    return list(zip(ckpts, models, strict=True))


def data_spec_for(
    ckpt: Checkpoint, data: str | None = None, data_dir: str | None = None, limit: int | None = None
) -> DataSpec:
    """The data to evaluate ``ckpt`` on: its own (same split, same seed), or ``data`` at its
    input size."""
    if ckpt.preprocess is None:
        raise CnnzooError("the checkpoint has no preprocessing description; it cannot evaluate")
    stored = ckpt.data
    spec = data or (stored.spec if stored else None)
    if not spec:
        raise CnnzooError("the checkpoint does not say which data it was trained on; pass --data")
    base = stored if stored is not None and spec == stored.spec else DataSpec(spec, seed=0)
    return DataSpec(
        spec,
        ckpt.preprocess.input_size,
        data_dir or base.data_dir,
        "none",
        base.val_fraction,
        base.seed,
        limit,
        None,
        base.stratify,
    )


def evaluate_checkpoints(
    paths: list[str | os.PathLike],
    split: str = "test",
    *,
    data: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    expect_model: str | None = None,
    tta: str = "none",
    backend: str = "eager",
    device: str = "auto",
    batch_size: int = 256,
    strict: bool = False,
    download: bool = False,
) -> dict:
    """``metrics_from_probs``'s dict for the members' averaged probabilities, plus
    ``checkpoints``, ``models`` (their names), ``split``, ``tta``, ``backend`` (the one used:
    ``auto`` resolved), ``data`` and, for an ensemble, ``members`` (each one's accuracy)."""
    from .distributed import resolve_device
    from .evaluate import metrics_from_probs, predict_probs

    dev = resolve_device(device)
    members = load_checkpoints([str(p) for p in paths], expect_model)
    probs, labels, bundle, cache, used = [], None, None, {}, set()
    for ckpt, model in members:
        spec = data_spec_for(ckpt, data, data_dir, limit)
        if spec not in cache:
            cache[spec] = spec.load(strict=strict, download=download)
        bundle = cache[spec]
        if ckpt.classes and list(bundle.classes) != list(ckpt.classes):
            raise CnnzooError(
                f"{spec.spec} has classes {bundle.classes[:5]}... but the checkpoint was trained "
                f"on {ckpt.classes[:5]}...; evaluate on data with the same classes"
            )
        ds = copy.copy(bundle.split(split))  # shares the images; its own preprocess
        # the data's own pipeline at the model's size, with the statistics it was trained with
        ds.preprocess = Preprocess.from_dict(ds.preprocess).with_stats_of(ckpt.preprocess).to_dict()
        model = model.to(dev).eval()
        used_backend = "eager"
        if backend != "eager":
            from ..inference import optimize_for_inference

            model = optimize_for_inference(
                model, input_size=ckpt.preprocess.input_size, backend=backend
            )
            used_backend = getattr(model, "backend", backend)
        used.add(used_backend)
        p, y = predict_probs(model, ds, dev, batch_size, tta=tta)
        if labels is not None and not (len(y) == len(labels) and (y == labels).all()):
            raise CnnzooError("the checkpoints' datasets differ; an ensemble needs the same data")
        probs.append(p)
        labels = y
    result = metrics_from_probs(torch.stack(probs).mean(0), labels, bundle.classes)
    result["checkpoints"] = [str(resolve_checkpoint(p)) for p in paths]
    result["models"] = [c.model for c, _ in members]
    result.update(split=split, tta=tta, backend="+".join(sorted(used)), data=bundle.name)
    if len(probs) > 1:
        result["members"] = [metrics_from_probs(p, labels)["accuracy"] for p in probs]
    return result


def confusion_path(result: dict, out: str | os.PathLike | None = None) -> Path:
    """Where an evaluation's confusion matrix picture goes: beside the first checkpoint (or in
    ``out``), named for what was evaluated, so that an ensemble, a TTA or a validation-split
    evaluation never replaces a run's own ``confusion.png``."""
    folder = Path(out) if out else Path(result["checkpoints"][0]).parent
    name = "confusion"
    if len(result["checkpoints"]) > 1:
        name += f"-ensemble-of-{len(result['checkpoints'])}"
    if result.get("tta", "none") != "none":
        name += f"-tta-{result['tta']}"
    if result.get("split", "test") != "test":
        name += f"-{result['split']}"
    return folder / f"{name}.png"


def evaluation_title(result: dict) -> str:
    """What an evaluation scored, for its pictures: "lenet5 on fashion-mnist (test split)", or
    "ensemble of 2 (lenet5, resnet20) on ... (test split, flip TTA)"."""
    names = ", ".join(sorted(set(result["models"])))
    n = len(result["checkpoints"])
    what = f"ensemble of {n} ({names})" if n > 1 else names
    tta = f", {result['tta']} TTA" if result.get("tta", "none") != "none" else ""
    return f"{what} on {result['data']} ({result['split']} split{tta})"
