"""The interface every cnnzoo model shares (as timm's models do).

A model sets ``num_classes``, ``in_chans`` and ``num_features``, names its classifier
(``head_name``) and implements ``forward_features`` (the last feature map, before pooling) and
``forward_head``; ``forward`` is their composition, and the rest of timm's interface
(``reset_classifier``, ``pretrained_cfg``, ``feature_info``, ``forward_intermediates``,
``set_grad_checkpointing``) is written here once. An input too small for the network, or
with the wrong number of channels, raises ``InputTooSmallError`` / ``CnnzooError`` naming the layer
and the fix instead of PyTorch's bare shape error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from ..errors import CnnzooError, InputTooSmallError, ModelArgumentError
from ..notation import format_size
from .features import FeatureInfo, resolve_indices
from .layers import POOL_TYPES, GlobalPool, check_choice, check_count

# Fragments of PyTorch's messages for a layer whose output would be empty.
_SIZE_ERRORS = (
    "Kernel size can't be greater than actual input size",
    "Output size is too small",
    "non-positive",
    "output size is too small",
    "Calculated output size",
)


class ZooModel(nn.Module):
    """Base class of the zoo: ``forward(x) = forward_head(forward_features(x))``.

    The classifier is declared, not re-implemented: ``head_name`` is its module path (``"fc"``,
    ``"classifier.6"``, ``"last_linear"``) and ``new_head(n)`` builds a fresh one (a linear layer
    on ``num_features`` unless the family says otherwise); ``get_classifier`` and
    ``reset_classifier`` are written here once, and the new head takes the old one's device and
    dtype. Families with auxiliary heads extend ``reset_classifier`` for those only.
    ``feature_points()`` declares the feature maps of ``features_only`` / ``forward_intermediates``.
    """

    num_classes: int  # outputs of the classifier; 0 when the head returns pre-logits features
    in_chans: int  # channels of the input image
    num_features: int  # width of the pre-logits features (what forward_head(pre_logits=True) gives)
    head_name: ClassVar[str] = "fc"  # module path of the classifier (timm's cfg "classifier")
    grad_checkpointing: bool = False  # recompute stages in backward (set_grad_checkpointing)
    features_only: tuple[int, ...] | None = None  # set by as_features(): forward gives maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    # --- the classifier ------------------------------------------------------------------------

    def new_head(self, num_classes: int) -> nn.Module:
        """A freshly initialised classifier for ``num_classes`` (``nn.Identity`` for 0)."""
        return nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        """The classifier module (``model.get_submodule(model.head_name)``)."""
        return self.get_submodule(self.head_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a new one for ``num_classes`` (0: pre-logits output),
        on the old one's device and dtype; ``global_pool`` ("avg", "max", "") changes the
        pooling where the family has a global pool."""
        check_count("num_classes", num_classes, 0)
        if global_pool is not None:
            self._set_global_pool(global_pool, num_classes)
        ref = self._head_reference()
        with torch.device(ref.device):
            head = self.new_head(num_classes)
        head.to(dtype=ref.dtype)
        self.set_submodule(self.head_name, head)
        self.num_classes = num_classes

    def _head_reference(self) -> torch.Tensor:
        """A floating-point tensor whose device and dtype a new head takes: the old head's, else
        the last one of the network."""
        for module in (self.get_classifier(), self):
            tensors = [t for t in module.parameters() if t.is_floating_point()]
            if tensors:
                return tensors[-1]
        return torch.empty(0)

    def _set_global_pool(self, pool_type: str, num_classes: int) -> None:
        if not isinstance(getattr(self, "global_pool", None), GlobalPool):
            raise ModelArgumentError(
                f"{type(self).__name__} has no global pooling to choose (its head pools to a "
                f"fixed grid or pools after the classifier); leave global_pool out"
            )
        check_choice("global_pool", pool_type, POOL_TYPES)
        if pool_type == "" and num_classes:
            raise ModelArgumentError(
                f"global_pool='' keeps the unpooled map, which a linear classifier cannot take: "
                f"use it with num_classes=0, got num_classes={num_classes}"
            )
        self.global_pool = GlobalPool(pool_type)

    # --- timm's configuration ------------------------------------------------------------------

    @property
    def pretrained_cfg(self) -> dict:
        """timm's ``pretrained_cfg``: input size, interpolation, crop, mean/std, classes and the
        weight source. ``create_model`` fills it from the weight table; a model built directly
        gets the architecture's generic one."""
        cfg = self.__dict__.get("_pretrained_cfg")
        return cfg if cfg is not None else generic_cfg(self)

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: dict) -> None:
        self.__dict__["_pretrained_cfg"] = dict(cfg)

    @property
    def default_cfg(self) -> dict:
        """timm's older name for ``pretrained_cfg``."""
        return self.pretrained_cfg

    # --- feature maps --------------------------------------------------------------------------

    def feature_points(self) -> list[tuple[str, int]]:
        """(module path, reduction) of each feature map, in forward order; the reduction is the
        effective stride of the module's output (input pixels per output pixel)."""
        return []

    @property
    def feature_info(self) -> FeatureInfo:
        """timm's ``feature_info``: channels, reduction and module of each feature map (only the
        selected ones for a features-only model)."""
        info = self.__dict__.get("_feature_info")
        if info is None:
            info = self.__dict__["_feature_info"] = self._measure_features()
        return FeatureInfo(info, self.features_only)

    def _measure_features(self) -> list[dict]:
        points = self.feature_points()
        if not points:
            raise ModelArgumentError(f"{type(self).__name__} declares no feature maps")
        channels: dict[str, int] = {}
        handles = [
            self.get_submodule(name).register_forward_hook(_keep(channels, name, shape=True))
            for name, _ in points
        ]
        try:
            size = tuple(self.pretrained_cfg["input_size"])
            _meta_forward(_FeaturesOf(self), (2, *size))
        finally:
            for h in handles:
                h.remove()
        return [
            {"num_chs": channels[name], "reduction": red, "module": name} for name, red in points
        ]

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the feature maps at ``indices`` (None: all, an int
        n: the last n, or a sequence of indices) and the final features,
        ``(forward_features(x), [maps])``, or only the maps with ``intermediates_only``.

        ``norm`` and ``stop_early`` are accepted for timm's signature; these networks have no
        final norm, and the pass always runs to the end. Only ``output_fmt="NCHW"`` exists.
        """
        check_choice("output_fmt", output_fmt, ("NCHW",))
        points = self.feature_points()
        wanted = resolve_indices(indices, len(points), "indices")
        maps: dict[int, torch.Tensor] = {}
        handles = [
            self.get_submodule(points[i][0]).register_forward_hook(_keep(maps, i)) for i in wanted
        ]
        check_input(self, x)
        try:
            final = self.forward_features(x)
        except RuntimeError as err:
            raise_if_too_small(self, x, err)
            raise
        finally:
            for h in handles:
                h.remove()
        out = [maps[i] for i in wanted]
        return out if intermediates_only else (final, out)

    def as_features(self, out_indices: int | Sequence[int] | None = None) -> ZooModel:
        """Make this model timm's ``features_only`` model: no classifier, and ``forward``
        returns the list of feature maps at ``out_indices``. Returns the model itself."""
        self.features_only = tuple(
            resolve_indices(out_indices, len(self.feature_points()), "out_indices")
        )
        self.feature_info  # noqa: B018 - measure the channels while the head is still there
        self.reset_classifier(0)
        return self

    # --- gradient checkpointing ----------------------------------------------------------------

    def checkpoint_units(self) -> list[nn.Module]:
        """The modules recomputed in backward under ``set_grad_checkpointing``: each block of a
        stage (the feature points that are ``nn.Sequential``) or the stage module itself."""
        units: list[nn.Module] = []
        for name, _ in self.feature_points():
            module = self.get_submodule(name)
            blocks = [m for m in module.children() if list(m.children())]
            if isinstance(module, nn.Sequential) and blocks:
                units.extend(blocks)
            elif list(module.children()):
                units.append(module)
        return units

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's ``set_grad_checkpointing``: in training, recompute each unit of
        ``checkpoint_units()`` in backward instead of keeping its activations
        (``torch.utils.checkpoint``, non-reentrant; the random state is replayed, so dropout
        and drop-path draw the same masks; batch norm's running statistics see the stage
        twice, as in timm). Outputs and gradients are unchanged."""
        self.grad_checkpointing = bool(enable)
        for unit in self.checkpoint_units():
            if enable and "forward" not in unit.__dict__:
                unit.forward = _Checkpointed(type(unit).forward.__get__(unit))
            elif not enable and "forward" in unit.__dict__:
                del unit.forward

    def run_sequential(self, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """``seq(x)``, in checkpointed segments while training under grad checkpointing (for
        families whose feature points are single layers of one ``nn.Sequential``)."""
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint_sequential(seq, min(4, len(seq)), x, use_reentrant=False)
        return seq(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features_only is not None:
            return self.forward_intermediates(x, self.features_only, intermediates_only=True)
        check_input(self, x)
        try:
            return self.forward_head(self.forward_features(x))
        except RuntimeError as err:
            raise_if_too_small(self, x, err)
            raise


def _keep(store: dict, key, shape: bool = False):
    """A forward hook that records a module's first output (or its channel count) in ``store``
    and returns None, so the output itself is left alone."""

    def hook(_module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
        if key not in store:
            store[key] = int(out.shape[1]) if shape else out

    return hook


class _Checkpointed:
    """A module's forward run under ``torch.utils.checkpoint`` while training with gradients."""

    def __init__(self, forward) -> None:
        self.forward = forward

    def __call__(self, *args):
        module = self.forward.__self__
        if module.training and torch.is_grad_enabled():
            return checkpoint(self.forward, *args, use_reentrant=False)
        return self.forward(*args)


class _FeaturesOf(nn.Module):
    """Calls ``model.forward_features`` (so a meta-device pass can run it by functional_call)."""

    def __init__(self, model: ZooModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generic_cfg(model: nn.Module, input_size: Sequence[int] | None = None) -> dict:
    """The pretrained_cfg of an untrained model: its design input size, bilinear resize with
    timm's default crop (0.875), ImageNet's mean/std for RGB, 0.5/0.5 for grey images, and the
    identity (0/1) for other planes (AlphaGo's binary board features); no weight source."""
    chans = int(getattr(model, "in_chans", 3))
    size = input_size or getattr(model, "input_size", None) or (chans, 224, 224)
    if chans == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif chans == 1:
        mean, std = (0.5,), (0.5,)
    else:
        mean, std = (0.0,) * chans, (1.0,) * chans
    return {
        "input_size": (chans, *tuple(size)[1:]),
        "interpolation": "bilinear",
        "crop_pct": 0.875,
        "mean": mean,
        "std": std,
        "num_classes": int(getattr(model, "num_classes", 0)),
        "label_names": None,
        "classifier": getattr(model, "head_name", None),
        "tag": None,
        "url": None,
        "hf_hub_id": None,
        "file_name": None,
        "sha256": None,
        "license": None,
        "top1": None,
    }


def check_input(model: nn.Module, x: torch.Tensor) -> None:
    """Refuse an image batch whose channel count is not the model's ``in_chans``."""
    in_chans = getattr(model, "in_chans", None)
    if in_chans is not None and x.dim() == 4 and x.shape[1] != in_chans:
        raise CnnzooError(
            f"{type(model).__name__} expects {in_chans}-channel input, got {x.shape[1]} channels "
            f"(shape {tuple(x.shape)}); build it with in_chans={x.shape[1]} or convert the images"
        )


_diagnosing = False  # set while the diagnosis itself runs the model, so it does not recurse


def raise_if_too_small(model: nn.Module, x: torch.Tensor, err: RuntimeError) -> None:
    """If ``err`` is PyTorch's complaint about an empty output, raise one that names the layer."""
    global _diagnosing
    if _diagnosing or x.dim() != 4 or not any(s in str(err) for s in _SIZE_ERRORS):
        return
    _diagnosing = True
    try:
        _raise_too_small(model, x, err)
    finally:
        _diagnosing = False


def _raise_too_small(model: nn.Module, x: torch.Tensor, err: RuntimeError) -> None:
    layer, shape = _failing_layer(model, x)
    size = format_size(tuple(x.shape[1:]))
    where = f"layer {layer} gets a {shape} input and its output would be empty"
    smallest = _smallest_square_input(model, x)
    fix = f"; the smallest square input it accepts is {smallest}x{smallest}" if smallest else ""
    raise InputTooSmallError(
        f"input {size} is too small for {type(model).__name__}: {where}{fix}"
    ) from err


def check_input_size(model: nn.Module, input_size: Sequence[int]) -> None:
    """Refuse a ``(C, H, W)`` input size the model cannot take, with the message its forward
    pass would give (``InputTooSmallError``), before a real batch is run: a batch of two on the
    meta device, which costs no compute. Any other failure there is left to the first batch."""
    try:
        _meta_forward(model, (2, *input_size))
    except InputTooSmallError:
        raise
    except RuntimeError:  # e.g. an operation without a meta kernel: the real batch will tell
        pass


def _failing_layer(model: nn.Module, x: torch.Tensor) -> tuple[str, str]:
    """Run ``x`` on the meta device, noting the last leaf module entered before the error."""
    entered: list[tuple[str, str]] = []
    handles = []

    def note(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                shape = format_size(tuple(args[0].shape[1:]))
                entered.append((f"'{name}' ({type(_module).__name__})", shape))

        return hook

    for name, module in model.named_modules():
        if not list(module.children()):
            handles.append(module.register_forward_pre_hook(note(name)))
    try:
        _meta_forward(model, x.shape)
    except RuntimeError:
        pass
    finally:
        for h in handles:
            h.remove()
    return entered[-1] if entered else ("?", "?")


def _meta_forward(model: nn.Module, shape: torch.Size) -> None:
    """A forward pass on the meta device that neither allocates nor touches the model's tensors."""
    state = {
        k: torch.empty_like(v, device="meta")
        for k, v in list(model.named_parameters()) + list(model.named_buffers())
    }
    with torch.no_grad():
        functional_call(model, state, (torch.empty(shape, device="meta"),))


def _smallest_square_input(model: nn.Module, x: torch.Tensor, limit: int = 1024) -> int | None:
    """Bisect the smallest square side the model accepts (meta device, so it costs no compute)."""

    def fits(side: int) -> bool:
        try:
            # batch 2: a batch norm in training mode refuses a single value per channel
            _meta_forward(model, (2, x.shape[1], side, side))
        except RuntimeError as err:  # only an empty output means "too small"
            return not any(s in str(err) for s in _SIZE_ERRORS)
        return True

    lo, hi = max(x.shape[-2], x.shape[-1]), limit
    if not fits(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
