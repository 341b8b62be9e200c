"""Feature pyramids as timm gives them: ``FeatureInfo`` and the points a family declares.

A family lists its feature points (``ZooModel.feature_points()``: module path and reduction, the
effective stride of that module's output in input pixels); the channels are measured by one pass
on the meta device. ``FeatureInfo`` answers ``channels()``, ``reduction()`` and ``module_name()``
for the selected ``out_indices``, as ``timm.models.FeatureInfo`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..errors import ModelArgumentError


class FeatureInfo:
    """Channels, reduction and module name of each feature map (timm's ``FeatureInfo``).

    ``info`` holds one dict per feature point, in forward order (``num_chs``, ``reduction``,
    ``module``, ``index``); ``out_indices`` are the points a features-only model returns.
    """

    def __init__(self, info: list[dict], out_indices: Sequence[int] | None = None) -> None:
        self.info = [dict(d, index=i) for i, d in enumerate(info)]
        self.out_indices = tuple(range(len(info)) if out_indices is None else out_indices)

    def _select(self, key: str, idx: int | Sequence[int] | None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def channels(self, idx: int | Sequence[int] | None = None):
        """Channels of the selected maps (all of ``out_indices`` when ``idx`` is None)."""
        return self._select("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        """Reduction (effective stride, input pixels per map pixel) of the selected maps."""
        return self._select("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        """Module path whose output is the selected map (``"layer1"``, ``"features.3"``)."""
        return self._select("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None) -> list[dict]:
        """The selected points as dicts (only ``keys`` of each, when given)."""
        rows = [self.info[i] for i in self.out_indices]
        return [dict(r) if keys is None else {k: r[k] for k in keys} for r in rows]

    def __len__(self) -> int:
        return len(self.out_indices)

    def __getitem__(self, i: int) -> dict:
        return self.info[self.out_indices[i]]

    def __repr__(self) -> str:
        return f"FeatureInfo({self.get_dicts(('module', 'num_chs', 'reduction'))})"


def resolve_indices(indices: int | Sequence[int] | None, count: int, what: str) -> list[int]:
    """timm's convention: None = every point, an int n = the last n, a sequence = those (negative
    counts from the end). Returns sorted, non-negative indices."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, bool):
        raise ModelArgumentError(f"{what} must be an int or a sequence of ints, got {indices!r}")
    if isinstance(indices, int):
        if not 1 <= indices <= count:
            raise ModelArgumentError(
                f"{what}={indices} asks for the last {indices} feature maps; this model has "
                f"{count} (indices 0..{count - 1})"
            )
        return list(range(count - indices, count))
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count:
            raise ModelArgumentError(
                f"{what} must hold feature indices in [{-count}, {count - 1}] (the model has "
                f"{count} feature maps), got {tuple(indices)}"
            )
        out.append(i % count)
    if len(set(out)) != len(out):
        raise ModelArgumentError(f"{what} repeats an index: {tuple(indices)}")
    return sorted(out)


def _stride(module: nn.Module) -> int:
    """The stride a layer (or a chain of them) applies to the map, along the height."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        s = module.stride
        return int(s[0] if isinstance(s, tuple) else s)
    total = 1
    for child in module.children():
        total *= _stride(child)
    return total


def sequential_points(seq: nn.Sequential, prefix: str) -> list[tuple[str, int]]:
    """Feature points of a plain chain of layers, as timm picks them for VGG: the layer before
    each pooling layer (the map at full resolution of its stage) and the chain's last layer, with
    the reduction (product of the strides before it)."""
    points, reduction = [], 1
    names = list(seq._modules)
    for i, name in enumerate(names):
        module = seq[i]
        reduction *= _stride(module)
        nxt = seq[i + 1] if i + 1 < len(seq) else None
        if nxt is None or (isinstance(nxt, (nn.MaxPool2d, nn.AvgPool2d)) and i > 0):
            points.append((f"{prefix}.{name}", reduction))
    return points
