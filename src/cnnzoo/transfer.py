"""Transfer learning: features of a trained CNN as a representation, and reusing its weights.

- ``extract_features``: pre-logits features (AlexNet/VGG FC7, ResNet's pooled vector) or the
  output of any named module, for every batch of a loader.
- ``knn`` / ``precision_at_k``: exact nearest neighbours in feature space (L2 or cosine) with
  ``torch.cdist``, chunked so that memory stays bounded.
- ``freeze``: freeze the backbone, nothing, or everything before a named layer, batch-norm
  statistics included; ``param_groups``: a lower learning rate for the unfrozen backbone than for
  the head; ``linear_probe``: a logistic-regression head fitted on features computed once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import CnnzooError

METRICS = ("l2", "cosine")


# ------------------------------------------------------------------------------------ features


class _Captured(Exception):
    """Raised by the feature hook to stop the forward pass once the wanted layer has run.

    Not a ``RuntimeError``, so the models' "input too small" diagnosis lets it through.
    """


def _unpack(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], y
    raise CnnzooError(
        f"a loader for extract_features must yield images or (images, labels), got {type(batch)}"
    )


def _pool(y: torch.Tensor, pool: str) -> torch.Tensor:
    if y.dim() > 2 and pool == "avg":
        y = y.flatten(2).mean(2)
    elif y.dim() > 2 and pool == "max":
        y = y.flatten(2).amax(2)
    return y.flatten(1)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable,
    layer: str | None = None,
    pool: str = "flatten",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features of every image a loader yields: ``(features N x D float32, labels N or None)``.

    ``layer=None`` takes the pre-logits features, ``forward_head(forward_features(x),
    pre_logits=True)``: FC7's 4,096 values for AlexNet/VGG, the pooled vector for ResNet. Any
    module name (as in ``model.named_modules()``, e.g. ``"layer3"`` or ``"classifier.4"``) takes
    that module's output instead, via a forward hook that is removed afterwards; the forward
    pass stops there (a module called several times, such as torchvision's shared ``relu`` in a
    residual block, gives its first call's output: name a module used once). A 4-D map is
    flattened (``pool="flatten"``) or reduced per channel (``"avg"``, ``"max"``). The model runs
    in eval mode without gradients and is put back in its previous mode.
    """
    if not isinstance(model, nn.Module):
        raise CnnzooError(f"extract_features needs an nn.Module, got {type(model).__name__}")
    if pool not in ("flatten", "avg", "max"):
        raise ValueError(f"pool must be 'flatten', 'avg' or 'max', got {pool!r}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    handle = None
    captured: list[torch.Tensor] = []
    if layer is not None:
        module = _get_layer(model, layer)

        def hook(_m: nn.Module, _args: tuple, out) -> None:
            if not isinstance(out, torch.Tensor):
                raise CnnzooError(f"layer {layer!r} returns {type(out).__name__}, not a tensor")
            captured.append(out)
            raise _Captured

        handle = module.register_forward_hook(hook)
    elif not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise CnnzooError(
            f"{type(model).__name__} has no forward_features/forward_head; name a layer "
            f"(--layer) whose output to use as features"
        )
    feats, labels = [], []
    try:
        for batch in _progress(loader, progress, "features"):
            x, y = _unpack(batch)
            x = x.to(device)
            if layer is None:
                f = model.forward_head(model.forward_features(x), pre_logits=True)
            else:
                captured.clear()
                with contextlib.suppress(_Captured):
                    model(x)
                if not captured:
                    raise CnnzooError(f"layer {layer!r} is not used by the forward pass")
                f = captured[0]
            feats.append(_pool(f, pool).float().cpu())
            if y is not None:
                labels.append(y.cpu())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    if not feats:
        raise CnnzooError("the loader yielded no images")
    return torch.cat(feats), (torch.cat(labels).long() if labels else None)


def _get_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    import difflib

    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    top = ", ".join(n for n, _ in model.named_children())
    hint = f"did you mean {', '.join(close)}?" if close else f"top-level modules: {top}"
    raise CnnzooError(f"{type(model).__name__} has no layer {name!r}; {hint}")


def _progress(it: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    total = len(it) if hasattr(it, "__len__") else None
    return tqdm(it, desc=desc, total=total, unit="batch", leave=False)


# ---------------------------------------------------------------------------- nearest neighbours


@torch.no_grad()
def knn(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int = 8,
    metric: str = "l2",
    exclude: torch.Tensor | None = None,
    chunk_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of each query row in ``bank``: (distances, indices), Q x k each.

    ``metric="l2"`` is the Euclidean distance, ``"cosine"`` is ``1 - cos(q, b)``. Distances are
    computed for ``chunk_size`` queries against ``chunk_size`` bank rows at a time and merged into
    a running top-k, so memory is ``O(chunk_size^2)`` whatever the bank's size; the cost is
    ``O(Q * N * D)``. ``exclude[i]`` is a bank index never returned for query i (the query itself
    when the queries are taken from the bank; -1 for none).
    """
    if metric not in METRICS:
        raise CnnzooError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if queries.dim() != 2 or bank.dim() != 2 or queries.shape[1] != bank.shape[1]:
        raise CnnzooError(
            f"queries and bank must be N x D with the same D, got {tuple(queries.shape)} and "
            f"{tuple(bank.shape)}"
        )
    available = bank.shape[0] - (1 if exclude is not None else 0)
    if not 1 <= k <= available:
        raise CnnzooError(f"k must be between 1 and {available} (the bank's size), got {k}")
    queries, bank = queries.float(), bank.float()
    if metric == "cosine":
        queries = nn.functional.normalize(queries, dim=1)
        bank = nn.functional.normalize(bank, dim=1)
    all_d, all_i = [], []
    for q0 in range(0, queries.shape[0], chunk_size):
        q = queries[q0 : q0 + chunk_size]
        best_d = torch.full((q.shape[0], 0), float("inf"))
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long)
        for b0 in range(0, bank.shape[0], chunk_size):
            b = bank[b0 : b0 + chunk_size]
            d = torch.cdist(q, b) if metric == "l2" else (1.0 - q @ b.T).clamp_min(0.0)
            idx = torch.arange(b0, b0 + b.shape[0]).expand(q.shape[0], -1)
            if exclude is not None:
                d = d.masked_fill(idx == exclude[q0 : q0 + chunk_size, None], float("inf"))
            d, idx = torch.cat([best_d, d], 1), torch.cat([best_i, idx], 1)
            best_d, pos = d.topk(min(k, d.shape[1]), dim=1, largest=False)
            best_i = idx.gather(1, pos)
        all_d.append(best_d)
        all_i.append(best_i)
    return torch.cat(all_d), torch.cat(all_i)


def precision_at_k(query_labels: torch.Tensor, neighbour_labels: torch.Tensor) -> float:
    """Fraction of the neighbours that share their query's label, averaged over the queries."""
    if neighbour_labels.dim() != 2 or neighbour_labels.shape[0] != query_labels.shape[0]:
        raise ValueError(
            f"expected Q labels and Q x k neighbour labels, got {tuple(query_labels.shape)} and "
            f"{tuple(neighbour_labels.shape)}"
        )
    return (neighbour_labels == query_labels[:, None]).float().mean().item()


# ------------------------------------------------------------------------------------- freezing


class _FrozenNorm:
    """Batch norm that stays in eval mode: ``train()`` cannot switch it back, so its running
    statistics never move, and its affine parameters do not require grad.

    Unlike ``torchvision.ops.FrozenBatchNorm2d`` it keeps ``BatchNorm``'s state-dict keys
    (``num_batches_tracked`` included), so a fine-tuned checkpoint loads into the plain model.
    """

    def train(self, mode: bool = True):
        super().train(mode)
        self.training = False
        return self

    @classmethod
    def from_bn(cls, bn: nn.modules.batchnorm._BatchNorm):
        frozen = cls(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
            device=bn.running_mean.device if bn.running_mean is not None else None,
            dtype=bn.running_mean.dtype if bn.running_mean is not None else None,
        )  # fmt: skip
        frozen.load_state_dict(bn.state_dict())
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen.eval()


class FrozenBatchNorm2d(_FrozenNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` frozen for fine-tuning (see ``freeze``)."""


class FrozenBatchNorm1d(_FrozenNorm, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` frozen for fine-tuning (see ``freeze``)."""


@dataclass
class FreezeSummary:
    """What ``freeze`` did."""

    mode: str  # "none", "backbone" or "until:LAYER"
    trainable: int  # parameters (elements) left trainable
    frozen: int  # parameters (elements) frozen
    frozen_norms: int  # batch norms whose statistics are frozen

    def __str__(self) -> str:
        return (
            f"freeze {self.mode}: {self.trainable:,} trainable parameters, {self.frozen:,} "
            f"frozen, {self.frozen_norms} batch norms with frozen statistics"
        )


def check_freeze_mode(mode: str) -> str:
    """``mode`` if it has the form ``freeze`` takes (the layer of ``until:`` is checked there)."""
    if mode in ("none", "backbone") or (mode.startswith("until:") and len(mode) > 6):
        return mode
    raise CnnzooError(f"unknown freeze mode {mode!r}; use backbone, none or until:LAYER")


def freeze(model: nn.Module, mode: str = "backbone") -> FreezeSummary:
    """Freeze part of ``model`` in place for fine-tuning.

    ``mode``: ``"none"`` (everything trains), ``"backbone"`` (only ``get_classifier()`` trains:
    the classic last-layer fine-tune), or ``"until:LAYER"`` (every module that comes before
    ``LAYER`` in ``named_modules()`` order is frozen; ``LAYER`` and what follows train, e.g.
    ``until:layer4`` fine-tunes ResNet's last stage and the head). Frozen means
    ``requires_grad=False`` and, for batch norms, running statistics that do not change in
    training mode (each frozen ``BatchNorm2d`` is swapped for a ``FrozenBatchNorm2d``).
    The classifier always trains.
    """
    if not hasattr(model, "get_classifier"):
        raise CnnzooError(f"{type(model).__name__} has no get_classifier(); cannot find its head")
    head = {id(m) for m in model.get_classifier().modules()}
    names = [n for n, _ in model.named_modules()]
    if mode == "none":
        boundary = 0
    elif mode == "backbone":
        boundary = len(names)
    else:
        layer = check_freeze_mode(mode).split(":", 1)[1]
        _get_layer(model, layer)  # a clear error for an unknown name
        boundary = names.index(layer)

    frozen_norms = []
    for i, (name, module) in enumerate(model.named_modules()):
        is_frozen = i < boundary and id(module) not in head
        for p in module.parameters(recurse=False):
            p.requires_grad_(not is_frozen)
        is_norm = isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        if is_frozen and is_norm and not isinstance(module, _FrozenNorm):
            frozen_norms.append(name)
    for name in frozen_norms:
        bn = model.get_submodule(name)
        cls = FrozenBatchNorm2d if isinstance(bn, nn.BatchNorm2d) else FrozenBatchNorm1d
        _set_module(model, name, cls.from_bn(bn).train(model.training))
    params = list({id(p): p for p in model.parameters()}.values())
    return FreezeSummary(
        mode=mode,
        trainable=sum(p.numel() for p in params if p.requires_grad),
        frozen=sum(p.numel() for p in params if not p.requires_grad),
        frozen_norms=sum(isinstance(m, _FrozenNorm) for m in model.modules()),
    )


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def param_groups(
    model: nn.Module, lr: float | None = None, backbone_lr_scale: float = 0.1
) -> list[dict[str, object]]:
    """Optimizer groups: the head at ``lr``, the unfrozen rest at ``lr * backbone_lr_scale``.

    Pretrained layers need only small corrections while the new head starts from random weights,
    hence the lower rate on the backbone. With ``lr=None`` the groups carry ``lr_mult`` (1 and
    ``backbone_lr_scale``) instead, which ``cnnzoo.train.fit`` multiplies by its configured rate.
    Frozen parameters are left out; a group with no parameters is left out.
    """
    if backbone_lr_scale < 0.0:
        raise ValueError(f"backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    head, backbone, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (head if id(p) in head_ids else backbone).append(p)
    key = "lr_mult" if lr is None else "lr"
    base = 1.0 if lr is None else lr
    groups = [
        {"name": "head", "params": head, key: base},
        {"name": "backbone", "params": backbone, key: base * backbone_lr_scale},
    ]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------------- linear probe


@dataclass
class ProbeResult:
    """A linear probe's fit: the regularisation chosen and the accuracies on cached features."""

    C: float  # inverse L2 strength of the logistic regression chosen
    train_accuracy: float
    val_accuracy: float | None  # None without a validation set


def linear_probe(
    model: nn.Module,
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    val_feats: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    Cs: tuple[float, ...] | None = None,
    max_iter: int = 2000,
) -> ProbeResult:
    """Fit the model's linear head on cached pre-logits features (multinomial logistic regression).

    The features are computed once (``extract_features`` with a frozen backbone), standardised,
    and scikit-learn's L-BFGS solves the convex problem for each regularisation in ``Cs``; the
    best on the validation features (or the largest without them) is written into
    ``model.get_classifier()``, the standardisation folded into its weights, so the model then
    classifies images directly. The head must be an ``nn.Linear`` over ``num_features`` inputs
    with one output per class (call ``reset_classifier`` first).
    """
    from sklearn.linear_model import LogisticRegression

    head = model.get_classifier()
    n_classes = int(train_labels.max()) + 1
    if not isinstance(head, nn.Linear) or head.in_features != train_feats.shape[1]:
        raise CnnzooError(
            f"a linear probe needs an nn.Linear head over the {train_feats.shape[1]} features, "
            f"got {type(head).__name__}; train the head with --no-probe instead"
        )
    if head.out_features < n_classes:
        raise CnnzooError(
            f"the head has {head.out_features} outputs but the labels go up to {n_classes - 1}; "
            f"call reset_classifier({n_classes}) first"
        )
    x = train_feats.double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-8
    xs = (x - mean) / std
    y = train_labels.numpy()
    if Cs is None:
        Cs = (0.01, 0.1, 1.0, 10.0) if val_feats is not None else (1.0,)
    best = None
    for C in Cs:
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(xs, y)
        train_acc = float(clf.score(xs, y))
        val_acc = None
        if val_feats is not None and val_labels is not None:
            val_acc = float(clf.score((val_feats.double().numpy() - mean) / std, val_labels))
        key = val_acc if val_acc is not None else train_acc
        if best is None or key > best[0]:
            best = (key, clf, ProbeResult(C, train_acc, val_acc))
    _, clf, result = best
    # Logits w.(x - mean)/std + b = (w/std).x + (b - w.(mean/std)) for every class.
    coef = torch.zeros(head.out_features, x.shape[1], dtype=torch.float64)
    bias = torch.full((head.out_features,), -1e4, dtype=torch.float64)  # classes never seen
    w = torch.from_numpy(clf.coef_) / torch.from_numpy(std)
    rows = torch.from_numpy(clf.classes_).long()
    if len(rows) == 2:  # scikit-learn stores one row for two classes: p(class 1)
        w = torch.cat([-w / 2, w / 2])
        b0 = torch.from_numpy(clf.intercept_)
        b = torch.cat([-b0 / 2, b0 / 2])
    else:
        b = torch.from_numpy(clf.intercept_)
    coef[rows] = w
    bias[rows] = b - w @ torch.from_numpy(mean)
    with torch.no_grad():
        head.weight.copy_(coef.to(head.weight.dtype))
        head.bias.copy_(bias.to(head.bias.dtype))
    return result


# ---------------------------------------------------------------------------------- fine-tuning


def subsample_per_class(dataset, per_class: int, seed: int = 0):
    """A copy of a cnnzoo dataset (one with ``labels`` and ``subset``) keeping ``per_class``
    random images of each class (all of a class that has fewer): the few-labels setting."""
    if per_class < 1:
        raise CnnzooError(f"images per class must be positive, got {per_class}")
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(dataset.labels):
        rows = torch.nonzero(dataset.labels == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=g)[:per_class]])
    return dataset.subset(torch.cat(keep).sort().values)


def finetune(
    model: nn.Module,
    bundle,
    config,
    out_dir,
    *,
    model_name: str,
    model_args: dict,
    freeze_mode: str = "backbone",
    backbone_lr_scale: float = 0.1,
    probe: bool | None = None,
    data_args=None,
    started_from: dict | None = None,
) -> dict:
    """Fine-tune ``model`` on ``bundle`` (a ``cnnzoo.data.DataBundle``) and write checkpoints.

    The head is replaced for the bundle's classes (``reset_classifier``), ``freeze_mode`` is
    applied (``freeze``), and then either

    - a linear probe (``freeze_mode="backbone"`` and ``probe`` not False): the frozen backbone's
      features of the training and validation images are computed once, the head is fitted on
      them by ``linear_probe``, and the whole model is saved as ``best.pt`` and ``last.pt``;
    - or ``cnnzoo.train.fit`` with ``config``: the head at ``config.lr``, unfrozen backbone
      layers at ``config.lr * backbone_lr_scale``, frozen ones never touched.

    ``model_args`` is updated with the new ``num_classes`` (the checkpoints rebuild the model);
    ``data_args`` (a ``cnnzoo.runs.DataSpec``) says how ``bundle`` was loaded;
    ``started_from`` (``cnnzoo.hub.weights_provenance``) the published weights behind ``model``.
    Returns ``fit``'s result dict (``best_val_acc``, ``best``, ...), with ``"freeze"`` (the
    ``FreezeSummary``) and, for a probe, ``"probe"`` (the ``ProbeResult``).
    """
    from pathlib import Path

    from .data import make_loader
    from .runs import Checkpoint, DataSpec, Preprocess, RunLock
    from .train import evaluate, fit
    from .train.distributed import resolve_device

    model.reset_classifier(bundle.num_classes)
    model_args = {**model_args, "num_classes": bundle.num_classes}
    summary = freeze(model, freeze_mode)
    if probe is None:
        probe = freeze_mode == "backbone"
    if probe and freeze_mode != "backbone":
        raise CnnzooError(f"a linear probe needs --freeze backbone, got {freeze_mode!r}")
    how = {"freeze": freeze_mode, "backbone_lr_scale": backbone_lr_scale, "probe": bool(probe)}
    if not probe:  # fit records how the model was fine-tuned in every checkpoint it writes
        result = fit(
            model, bundle, config, out_dir, model_name=model_name, model_args=model_args,
            param_groups=param_groups(model, None, backbone_lr_scale), data_args=data_args,
            extra_meta={"finetune": how, "started_from": started_from},
        )  # fmt: skip
        return {**result, "freeze": summary, "model_args": model_args}
    from .data import check_trainable

    check_trainable(bundle)
    device = resolve_device(config.device)
    model.to(device)
    train = bundle.train.subset(torch.arange(len(bundle.train)), augment="none")
    bs = config.eval_batch_size
    xtr, ytr = extract_features(model, make_loader(train, bs), progress=config.progress)
    xva, yva = extract_features(model, make_loader(bundle.val, bs), progress=config.progress)
    result = linear_probe(model, xtr, ytr, xva, yva)
    val = evaluate(model, bundle.val, bundle.classes, device, bs)
    out = Path(out_dir)
    metrics = {"train_acc": result.train_accuracy, "val_acc": val["accuracy"],
               "val_top5": val["top5"], "val_loss": val["loss"], "C": result.C}  # fmt: skip
    if isinstance(data_args, dict):
        data_args = DataSpec.from_dict(data_args) if data_args else None
    ckpt = Checkpoint(
        model_name, model_args, {k: v.detach().cpu() for k, v in model.state_dict().items()},
        classes=list(bundle.classes), preprocess=Preprocess.from_dict(bundle.preprocess),
        data=data_args, config=config.to_dict(), metrics=metrics, finetune=how,
        started_from=started_from, kind="probe", extra={"best_val_acc": val["accuracy"]},
    )  # fmt: skip
    with RunLock(out):
        for name in ("best.pt", "last.pt"):
            ckpt.save(out / name)
    return {
        "best_val_acc": val["accuracy"],
        "best": str(out / "best.pt"),
        "last": str(out / "last.pt"),
        "history": [metrics],
        "freeze": summary,
        "probe": result,
        "model_args": model_args,
    }
