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


def load_published(names: list, expect_model: str | None = None) -> list[tuple]:
    """``(checkpoint, model)`` of each model name (``"name.tag"`` too) with its published
    ImageNet weights, as ``load_checkpoints`` gives them: the checkpoint holds no weights, only
    the weights' preprocessing (their ``pretrained_cfg``), class names and tag."""
    from ..runs import resolve_model

    members = []
    for name in names:
        if Path(name).exists():
            raise CnnzooError(
                f"{name} is a checkpoint or weight file; --pretrained takes model names "
                f"(leave it out to evaluate the file)"
            )
        if expect_model is not None and str(name).partition(".")[0] != expect_model:
            raise CnnzooError(f"{name} is not model {expect_model!r}")
        src = resolve_model(str(name), pretrained=True)
        cfg = src.model.pretrained_cfg
        ckpt = Checkpoint(
            src.name, src.model_args, {}, src.classes, src.preprocess, config={"weights": cfg}
        )
        members.append((ckpt, src.model))
    return members


def published_tag(ckpt: Checkpoint) -> str | None:
    """``"resnet18.tv_in1k"`` for a member of ``load_published``, else None."""
    cfg = (ckpt.config or {}).get("weights")
    return f"{ckpt.model}.{cfg['tag']}" if cfg else None


def _norm(name: str) -> str:
    return name.lower().replace("_", " ").strip()


def class_columns(data_classes: list[str], ckpt: Checkpoint, spec: str) -> list[int] | None:
    """The model's output column of each of the data's classes: None when they are the model's
    own classes in its order. For published ImageNet weights, an image folder named by ImageNet
    classes (all or some: ``tench/``, ``goldfish/``, spaces or underscores, any case) is scored
    among those classes only (timm's ``--valid-labels``); any other class name is an error, as
    an ImageNet head's accuracy on it would mean nothing."""
    model_classes = list(ckpt.classes or [])
    if not model_classes or list(data_classes) == model_classes:
        return None
    if published_tag(ckpt) is None:
        raise CnnzooError(
            f"{spec} has classes {data_classes[:5]}... but the checkpoint was trained "
            f"on {model_classes[:5]}...; evaluate on data with the same classes"
        )
    index: dict[str, int] = {}
    for i, name in enumerate(model_classes):
        index.setdefault(_norm(name), i)
    unknown = [c for c in data_classes if _norm(c) not in index]
    if unknown:
        raise CnnzooError(
            f"{spec}'s classes are not ImageNet's ({len(unknown)} of {len(data_classes)} are "
            f"not among its {len(model_classes)}, e.g. {unknown[0]!r}): {published_tag(ckpt)} "
            f"predicts ImageNet classes, so its accuracy there means nothing; name the folders as "
            f"cnnzoo.hub.imagenet_classes() does, or fine-tune it (cnnzoo finetune)"
        )
    return [index[_norm(c)] for c in data_classes]


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
        if published_tag(ckpt):
            raise CnnzooError("published weights need data to evaluate on: pass --data DIR")
        raise CnnzooError("the checkpoint does not say which data it was trained on; pass --data")
    base = stored if stored is not None and spec == stored.spec else DataSpec(spec, seed=0)
    pre = ckpt.preprocess
    # published weights' evaluation transform: images fitted to H / crop_pct, then the centre H
    size = (pre.input_size[0], *pre.source_size) if pre.spatial == "crop" else pre.input_size
    return DataSpec(
        spec,
        size,
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
    pretrained: bool = False,
) -> dict:
    """``metrics_from_probs``'s dict for the members' averaged probabilities, plus
    ``checkpoints``, ``models`` (their names), ``split``, ``tta``, ``backend`` (the one used:
    ``auto`` resolved), ``data`` and, for an ensemble, ``members`` (each one's accuracy).
    ``pretrained``: ``paths`` are model names, with their published weights (``weights``: their
    tags; ``among``: how many ImageNet classes the data has, when not all)."""
    from ..paths import as_list
    from .distributed import resolve_device
    from .evaluate import metrics_from_probs, predict_probs

    paths = as_list(paths)
    if not paths:
        raise CnnzooError("give at least one checkpoint (or run directory) to evaluate")
    dev = resolve_device(device)
    load = load_published if pretrained else load_checkpoints
    members = load([str(p) for p in paths], expect_model)
    probs, labels, bundle, cache, used, cols = [], None, None, {}, set(), None
    for ckpt, model in members:
        spec = data_spec_for(ckpt, data, data_dir, limit)
        key = (spec, ckpt.preprocess.interpolation)
        if key not in cache:
            cache[key] = spec.load(strict, download, interpolation=ckpt.preprocess.interpolation)
        bundle = cache[key]
        cols = class_columns(list(bundle.classes), ckpt, spec.spec)
        ds = copy.copy(bundle.split(split))  # shares the images; its own preprocess
        pre = Preprocess.from_dict(ds.preprocess)
        if ckpt.preprocess.spatial == "crop" and pre.source_size == ckpt.preprocess.source_size:
            pre = ckpt.preprocess  # the weights' own transform: the centre of the fitted image
        else:  # the data's own pipeline at the model's size, with the model's statistics
            pre = pre.with_stats_of(ckpt.preprocess)
        ds.preprocess = pre.to_dict()
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
        if cols is not None:  # scored among the data's classes only
            p = p[:, cols] / p[:, cols].sum(1, keepdim=True).clamp_min(1e-12)
        if labels is not None and not (len(y) == len(labels) and (y == labels).all()):
            raise CnnzooError("the checkpoints' datasets differ; an ensemble needs the same data")
        probs.append(p)
        labels = y
    result = metrics_from_probs(torch.stack(probs).mean(0), labels, bundle.classes)
    result["checkpoints"] = [str(resolve_checkpoint(p)) for p in paths]
    result["models"] = [c.model for c, _ in members]
    if any(c.started_from for c, _ in members):  # fine-tuned from published weights
        result["started_from"] = [c.started_from for c, _ in members]
    if pretrained:
        result["weights"] = [published_tag(c) for c, _ in members]
        if cols is not None and len(cols) < len(members[0][0].classes):
            result["among"] = len(cols)
    result.update(split=split, tta=tta, backend="+".join(sorted(used)), data=bundle.name)
    if len(probs) > 1:
        result["members"] = [metrics_from_probs(p, labels)["accuracy"] for p in probs]
    return result


def confusion_path(result: dict, out: str | os.PathLike | None = None) -> Path:
    """Where an evaluation's confusion matrix picture goes: beside the first checkpoint (or in
    ``out``), named for what was evaluated, so that an ensemble, a TTA or a validation-split
    evaluation never replaces a run's own ``confusion.png``."""
    if out:
        folder = Path(out)
    elif result.get("weights"):  # published weights: no checkpoint folder to put it beside
        folder = Path("runs") / f"evaluate-{result['weights'][0]}"
    else:
        folder = Path(result["checkpoints"][0]).parent
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


def format_table(r: dict) -> str:
    """``cnnzoo evaluate``'s table of an ``evaluate_checkpoints`` result."""
    names = sorted(set(r.get("models", [])))
    n = len(r["checkpoints"])
    if n > 1:
        what = f"ensemble of {n} ({', '.join(r.get('weights') or names)})"
    elif r.get("weights"):
        what = f"{names[0]} (published weights {r['weights'][0]})"
    else:
        what = f"{names[0] if names else 'model'} ({r['checkpoints'][0]})"
    tta = f", {r['tta']} test-time views" if r.get("tta", "none") != "none" else ""
    backend = f", {r['backend']} backend" if r.get("backend", "eager") != "eager" else ""
    among = f", scored among its {r['among']} ImageNet classes" if r.get("among") else ""
    lines = [f"{what} on {r['data']} ({r['split']}, {r['n']:,} images{tta}{backend}{among})"]
    starts = {s["name"]: s for s in r.get("started_from") or [] if s}
    if starts:  # the published weights the run began from, and their licence when it is known
        lines.append("  trained from " + ", ".join(
            f"{name} ({s['license']})" if s.get("license") else name for name, s in starts.items()
        ))  # fmt: skip
    lines += [f"  accuracy  {r['accuracy']:.4f}", f"  top-5     {r['top5']:.4f}"]
    lines.append(f"  loss      {r['loss']:.4f}")
    if "members" in r:
        lines.append("  members   " + ", ".join(f"{a:.4f}" for a in r["members"]))
    width = max(len(c) for c in r["per_class"]) if r["per_class"] else 5
    lines.append("\nper-class accuracy")
    lines += [f"  {name:<{width}}  {acc:.4f}" for name, acc in r["per_class"].items()]
    if len(r["classes"]) <= 20:
        lines.append("\nconfusion matrix (rows: true, columns: predicted)")
        cells = max(len(str(v)) for row in r["confusion"] for v in row) + 1
        for name, row in zip(r["classes"], r["confusion"], strict=True):
            lines.append(f"  {name:<{width}} " + "".join(f"{v:>{cells}}" for v in row))
    if "confusion_png" in r:
        lines.append(f"\nconfusion matrix picture: {r['confusion_png']}")
    return "\n".join(lines)
