"""The model registry: ``register_model``, ``create_model``, ``list_models``, ``is_model``,
``list_pretrained``.

Builders register themselves with a decorator; ``cnnzoo.models`` imports every family module
explicitly, and the look-ups below import ``cnnzoo.models`` on first use, so the registry is
complete whenever it is read (and ``import cnnzoo`` need not load the zoo).
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import inspect
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ModelArgumentError, UnknownModelError


@dataclass(frozen=True)
class ModelInfo:
    name: str  # registered name, e.g. "resnet50"
    builder: Callable[..., nn.Module]  # the function that builds it
    input_size: tuple[int, int, int]  # (C, H, W) the architecture was designed for
    family: str  # module the builder lives in, e.g. "resnet"
    paper: str  # first line of the builder's docstring
    # training defaults the model declares over the general ones (``register_model``), as pairs
    train_defaults: tuple[tuple[str, object], ...] = ()

    @property
    def default_num_classes(self) -> int | None:
        return _default_arg(self.builder, "num_classes")

    @property
    def default_in_chans(self) -> int | None:
        return _default_arg(self.builder, "in_chans")


_MODELS: dict[str, ModelInfo] = {}


def _zoo() -> dict[str, ModelInfo]:
    """The registry, with the zoo's own families imported (once; a no-op afterwards)."""
    from . import models  # noqa: F401  (registers every architecture)

    return _MODELS


def _default_arg(fn: Callable, name: str):
    param = inspect.signature(fn).parameters.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return None
    return param.default


def register_model(
    fn: Callable | None = None,
    *,
    input_size: tuple[int, int, int] = (3, 224, 224),
    train_defaults: dict | None = None,
):
    """Register a model builder under its function name.

    Use bare (``@register_model``) for 224x224 RGB models, or with the architecture's input size
    (``@register_model(input_size=(1, 32, 32))``). ``train_defaults`` are training settings the
    model is measured to want instead of the general defaults (``augment`` and ``TrainConfig``
    fields; an ``lr`` is an SGD rate at batch 128): ``cnnzoo train`` and ``Run.new`` take them
    where neither the caller nor a recipe says otherwise. A name registered twice is an error.
    """

    def decorate(builder: Callable) -> Callable:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].family}")
        doc = inspect.getdoc(builder) or ""
        _MODELS[name] = ModelInfo(
            name=name,
            builder=builder,
            input_size=tuple(input_size),
            family=builder.__module__.rsplit(".", 1)[-1],
            paper=doc.splitlines()[0] if doc else "",
            train_defaults=tuple(sorted((train_defaults or {}).items())),
        )
        return builder

    return decorate(fn) if fn is not None else decorate


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching a shell wildcard (``"res*"``, ``"*_bn"``), sorted; with
    ``pretrained=True`` only those with published weights (``list_pretrained`` gives their tags)."""
    names = sorted(n for n in _zoo() if fnmatch.fnmatchcase(n, pattern))
    if pretrained:
        from .hub import weights_table

        names = [n for n in names if n in weights_table()]
    return names


def list_pretrained(pattern: str = "*") -> list[str]:
    """The published weights as timm names them, ``"name.tag"`` (``"resnet50.tv_in1k"``), for the
    names matching ``pattern``; each name's default weights come first."""
    from .hub import weights_table

    table = weights_table()
    return [
        f"{name}.{entry['tag']}"
        for name in sorted(table)
        if fnmatch.fnmatchcase(name, pattern) and name in _zoo()
        for entry in table[name]
    ]


def is_model(name: str) -> bool:
    """Whether ``name`` (or ``"name.tag"`` of published weights) builds a registered model."""
    base, _, tag = name.partition(".")
    if base not in _zoo():
        return False
    return not tag or f"{base}.{tag}" in list_pretrained(base)


def model_name_hint(name: str) -> str | None:
    """What to do when ``name`` was given where a checkpoint or weight file belongs, if it is a
    model name (``"resnet18"``, ``"resnet18.tv_in1k"``): None when it is not one."""
    if os.sep in name or not is_model(name):
        return None
    base = name.partition(".")[0]
    if list_pretrained(base):
        return (
            f"{name} is a model name, not a checkpoint: add --pretrained for its published weights"
        )
    return (
        f"{name} is a model name, not a checkpoint, and has no published weights: train it with "
        f"`cnnzoo train {base}`"
    )


def closest_models(name: str, n: int = 5) -> list[str]:
    """The registered names most like ``name``: prefix matches first, then by similarity."""
    prefix = [m for m in sorted(_zoo()) if m.startswith(name) or name.startswith(m)]
    similar = difflib.get_close_matches(name, list(_MODELS), n=n, cutoff=0.5)
    out: list[str] = []
    for m in prefix + similar:
        if m not in out:
            out.append(m)
    return out[:n]


def get_model_infos() -> dict[str, ModelInfo]:
    """Every registered name and its entry (a copy of the registry)."""
    return dict(_zoo())


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name raises with the closest names."""
    try:
        return _zoo()[name]
    except KeyError:
        close = closest_models(name)
        hint = f"did you mean {', '.join(close)}?" if close else "see `cnnzoo list`."
        raise UnknownModelError(f"unknown model {name!r}; {hint}") from None


# create_model's own arguments, which every family takes (timm's names)
COMMON_ARGS = (
    "pretrained",
    "num_classes",
    "in_chans",
    "device",
    "features_only",
    "out_indices",
    "checkpoint_path",
    "pretrained_num_classes",
)
# timm's constructor arguments that only some families have
TIMM_ARGS = ("drop_rate", "drop_path_rate", "global_pool")
# timm's name -> the one a family uses for the same thing, tried when the family lacks timm's
ALIASES = {"drop_rate": "dropout"}  # GoogLeNet, BN-Inception, Inception v3: head dropout


class _NoRandomFillOnMeta(torch.overrides.TorchFunctionMode):
    """Random initialisation of a meta tensor does nothing (it holds no values), yet meta's
    ``normal_`` runs through a Python decomposition whose first call imports ``torch._dynamo``:
    2 s of every ``summary``. This mode answers those calls with the tensor itself."""

    FILLS = frozenset(
        (torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.erfinv_, torch.Tensor.bernoulli_)
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # torch.nn.init's functions dispatch themselves first (and the tensor methods they call
        # then bypass this mode), so they are answered here too
        fill = func in self.FILLS or getattr(func, "__module__", None) == "torch.nn.init"
        target = args[0] if args else (kwargs or {}).get("tensor")
        if fill and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **(kwargs or {}))


def _skip_random_fills(device: torch.device):
    return _NoRandomFillOnMeta() if device.type == "meta" else contextlib.nullcontext()


def create_model(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: torch.device | str | None = None,
    *,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    pretrained_num_classes: int | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model, as ``timm.create_model`` does.

    ``pretrained=True`` loads the published ImageNet weights (``cnnzoo.hub``; ``"name.tag"``
    picks weights other than the default), ``checkpoint_path`` a local weight file or cnnzoo
    checkpoint; with another ``num_classes`` the backbone loads and the classifier is new.
    ``num_classes`` and ``in_chans`` default to the architecture's own (1000 classes and RGB for
    the ImageNet models, 10 classes of 32x32x1 for LeNet-5, 361 moves of 19x19x48 for AlphaGo);
    ``num_classes=0`` gives a model whose output is the pooled pre-logits features.
    ``features_only=True`` gives timm's feature extractor: ``forward`` returns the feature maps
    at ``out_indices`` (default: all), described by ``model.feature_info``.
    Other keywords go to the family's constructor (``drop_rate``, ``global_pool``,
    ``drop_path_rate``, ...); one it does not take is a ``ModelArgumentError`` (a ``TypeError``)
    naming the closest valid argument. ``device="meta"`` builds it without allocating weights.
    ``pretrained_num_classes=K`` says the weight file's classifier has K classes (a model
    fine-tuned to K classes, in ``checkpoint_path``): ``num_classes`` defaults to K and the head
    is loaded; another ``num_classes`` gets a new head. A file whose head is not K classes is
    refused. (timm: ``pretrained=True, pretrained_cfg_overlay=dict(file=..., num_classes=K)``.)
    """
    if not isinstance(name, str):
        raise ModelArgumentError(
            f"create_model needs a model name (a string such as 'resnet50'), got {name!r}; "
            f"see cnnzoo.list_models()"
        )
    base, _, tag = name.partition(".")
    info = get_model_info(base)
    kwargs = _family_kwargs(info, kwargs)
    if out_indices is not None and not features_only:
        raise ModelArgumentError("out_indices selects feature maps: use it with features_only=True")
    entry = None
    if pretrained:
        from .hub import published_weights

        entry = published_weights(base, tag or None)
        kwargs = _with_weight_args(base, entry, kwargs)
    elif tag:
        raise ModelArgumentError(f"{name!r} names published weights: add pretrained=True")
    if pretrained_num_classes is not None:
        _check_pretrained_num_classes(pretrained_num_classes, entry, checkpoint_path)
        num_classes = pretrained_num_classes if num_classes is None else num_classes
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if device is None:
        model = info.builder(**kwargs)
    else:
        with torch.device(device), _skip_random_fills(torch.device(device)):
            model = info.builder(**kwargs)
    if entry is not None:
        from .hub import load_published

        load_published(model, entry)
    elif "_pretrained_cfg" not in getattr(model, "__dict__", {}) and hasattr(model, "in_chans"):
        from .models._base import generic_cfg

        # no weights: the architecture's own input size (the registry's), not timm's 224
        model.pretrained_cfg = generic_cfg(
            model, getattr(model, "input_size", None) or info.input_size
        )
    if checkpoint_path:
        from .pretrained import load_pretrained

        same = pretrained_num_classes is not None and num_classes == pretrained_num_classes
        result = load_pretrained(
            model, checkpoint_path, num_classes_mismatch="error" if same else "drop"
        )
        file_nc = result.file_num_classes
        if pretrained_num_classes is not None and file_nc not in (None, pretrained_num_classes):
            from .errors import CheckpointError

            raise CheckpointError(
                f"{checkpoint_path}: its classifier has {file_nc} classes, not "
                f"pretrained_num_classes={pretrained_num_classes}"
            )
    if features_only:
        if not hasattr(model, "as_features"):
            raise ModelArgumentError(f"{base} has no feature maps to give (features_only)")
        model.as_features(out_indices)
    return model


def _check_pretrained_num_classes(k: int, entry: dict | None, checkpoint_path) -> None:
    """``pretrained_num_classes`` describes a weight file: one must be given, and it must agree
    with published weights' own head."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ModelArgumentError(f"pretrained_num_classes must be a positive int, got {k!r}")
    if not checkpoint_path and entry is None:
        raise ModelArgumentError(
            "pretrained_num_classes is the class count of a weight file's classifier: use it "
            "with checkpoint_path (or pretrained=True)"
        )
    if not checkpoint_path and entry["num_classes"] != k:
        raise ModelArgumentError(
            f"the published weights ({entry['tag']}) have {entry['num_classes']} classes, not "
            f"pretrained_num_classes={k}"
        )


def constructor_args(info: ModelInfo) -> list[str]:
    """The keyword arguments a family's builder accepts: its own, then those of the class it
    returns (its return annotation), following ``**kwargs`` up the class hierarchy."""
    names: list[str] = []

    def collect(fn: Callable) -> bool:  # True: fn passes **kwargs on
        more = False
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in ("self", *names):
                names.append(p.name)
        return more

    if collect(info.builder):
        cls = typing.get_type_hints(info.builder).get("return")
        for klass in getattr(cls, "__mro__", ()):
            if "__init__" in vars(klass) and not collect(vars(klass)["__init__"]):
                break
    return names


def _family_kwargs(info: ModelInfo, kwargs: dict) -> dict:
    """``kwargs`` checked against what the family takes (timm's names translated by ALIASES);
    an unknown one raises naming the closest valid argument."""
    valid = constructor_args(info)
    out = {}
    for key, value in kwargs.items():
        alias = ALIASES.get(key)
        if key not in valid and alias in valid:
            key = alias
        if key not in valid:
            choices = sorted({*valid, *COMMON_ARGS})
            close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(choices)}"
            what = "timm's argument, but the family has no such setting" if key in TIMM_ARGS else ""
            raise ModelArgumentError(
                f"{info.name} ({info.family}) has no argument {key!r}"
                + (f" ({what})" if what else "")
                + f"; {hint}"
            )
        out[key] = value
    return out


def _with_weight_args(name: str, entry: dict, kwargs: dict) -> dict:
    """The constructor arguments the published weights were trained with (GoogLeNet's
    ``transform_input=True``, MobileNet's ``act="relu6"``), refusing a contradicting one."""
    for key, value in entry.get("model_args", {}).items():
        if key in kwargs and kwargs[key] != value:
            raise ModelArgumentError(
                f"{name}'s published weights ({entry['tag']}) need {key}={value!r}, got "
                f"{key}={kwargs[key]!r}; leave {key} out"
            )
    return {**entry.get("model_args", {}), **kwargs}
