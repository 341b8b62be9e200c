"""Pictures of what a CNN learned, as PNG files (matplotlib, Agg backend: no display needed).

- ``plot_filters``: the first convolution's filters as an image grid (the AlexNet conv1 picture).
- ``plot_activations``: one layer's activation maps for one image, beside the image.
- ``plot_neighbors``: each query image followed by its nearest neighbours in feature space.

Every figure has a fixed size in inches and is saved without "tight" cropping, so its pixel size
is known in advance: ``figure_pixels`` of the layout.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import CnnzooError

DPI = 100
TITLE_IN = 0.5  # inches kept above the grid for the title


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never try to open a window
    import matplotlib.pyplot as plt

    return plt


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) for ``n`` tiles: the smallest divisor of ``n`` in [sqrt(n), 2 sqrt(n)] as the
    column count when there is one (96 filters -> 8 x 12, as the AlexNet picture), else a
    near-square grid."""
    if n < 1:
        raise ValueError(f"need at least one tile, got {n}")
    root = math.sqrt(n)
    for cols in range(math.ceil(root), int(2 * root) + 1):
        if n % cols == 0:
            return n // cols, cols
    cols = math.ceil(root)
    return math.ceil(n / cols), cols


def figure_pixels(rows: int, cols: int, tile_in: float, dpi: int = DPI) -> tuple[int, int]:
    """(width, height) in pixels of a grid figure of ``rows x cols`` square tiles of ``tile_in``
    inches with a title band of ``TITLE_IN`` inches."""
    return round(cols * tile_in * dpi), round((rows * tile_in + TITLE_IN) * dpi)


def _grid_figure(rows: int, cols: int, tile_in: float, title: str, dpi: int = DPI):
    plt = _plt()
    width, height = cols * tile_in, rows * tile_in + TITLE_IN
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 * TITLE_IN / height)
    axes = []
    pad = 0.06  # of a tile, each side
    for r in range(rows):
        for c in range(cols):
            left = (c + pad) * tile_in / width
            bottom = (rows - r - 1 + pad) * tile_in / height
            size_w = (1 - 2 * pad) * tile_in / width
            size_h = (1 - 2 * pad) * tile_in / height
            ax = fig.add_axes((left, bottom, size_w, size_h))
            ax.set_xticks([])
            ax.set_yticks([])
            axes.append(ax)
    return fig, axes


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi, format="png")
    _plt().close(fig)
    return path


def _unit(t: torch.Tensor) -> torch.Tensor:
    """Scale to [0, 1] (a constant tensor becomes mid-grey)."""
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.full_like(t, 0.5)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``nn.Conv2d`` in module order: the layer that looks at the pixels."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise CnnzooError(f"{type(model).__name__} has no Conv2d layer to draw")


def plot_filters(
    model: nn.Module,
    path: str | os.PathLike,
    layer: str | None = None,
    scale: str = "filter",
    title: str | None = None,
) -> Path:
    """Draw a convolution's filters as an image grid and save it as PNG; returns the path.

    ``layer`` defaults to the first convolution. A filter over 3 input channels is drawn in
    colour (the channels as RGB), one over another number of channels as the grey mean over
    them. ``scale="filter"`` stretches each filter to the full range (shows every filter's
    pattern), ``"global"`` uses one range for all (shows which filters are strong).
    """
    if scale not in ("filter", "global"):
        raise ValueError(f"scale must be 'filter' or 'global', got {scale!r}")
    if layer is None:
        layer, conv = first_conv(model)
    else:
        from .transfer import _get_layer

        conv = _get_layer(model, layer)
        if not isinstance(conv, nn.Conv2d):
            raise CnnzooError(f"layer {layer!r} is a {type(conv).__name__}, not a Conv2d")
    w = conv.weight.detach().float().cpu()  # out x in/groups x kh x kw
    if w.is_meta:
        raise CnnzooError("the model has no weights (meta device); load a checkpoint")
    rgb = w.shape[1] == 3
    w = w if rgb else w.mean(1, keepdim=True)
    if scale == "global":
        w = _unit(w)
    rows, cols = grid_shape(w.shape[0])
    kh, kw = w.shape[-2:]
    tile = max(0.45, min(1.0, 9.0 / cols))
    what = "RGB" if rgb else f"mean over {conv.weight.shape[1]} input channels"
    fig, axes = _grid_figure(
        rows,
        cols,
        tile,
        title or f"{layer}: {w.shape[0]} filters {kh}x{kw} ({what}, {scale} scale)",
    )
    for i, ax in enumerate(axes):
        if i >= w.shape[0]:
            ax.axis("off")
            continue
        f = w[i] if scale == "global" else _unit(w[i])
        if rgb:
            ax.imshow(f.permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            ax.imshow(f[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    return _save(fig, path)


def to_display(image: torch.Tensor, preprocess: dict | None = None) -> torch.Tensor:
    """A normalised C x H x W image back to H x W x C (or H x W for grey) values in [0, 1]."""
    x = image.detach().float().cpu()
    mean = std = None
    if preprocess and preprocess.get("mean") is not None and preprocess.get("std") is not None:
        mean = torch.tensor(preprocess["mean"], dtype=x.dtype)
        std = torch.tensor(preprocess["std"], dtype=x.dtype)
    if mean is not None and mean.numel() == x.shape[0]:
        x = x * std[:, None, None] + mean[:, None, None]
    else:  # statistics unknown: stretch to the full range
        x = _unit(x)
    x = x.clamp(0, 1)
    if x.shape[0] == 1:
        return x[0]
    if x.shape[0] == 3:
        return x.permute(1, 2, 0)
    return x.mean(0)  # many planes (AlphaGo): their mean


def _show(ax, img: torch.Tensor) -> None:
    if img.dim() == 2:
        ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img.numpy(), interpolation="nearest")


@torch.no_grad()
def layer_output(model: nn.Module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of module ``layer`` when ``model`` (in eval mode) sees one C x H x W image."""
    from .transfer import _Captured, _get_layer

    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _args: tuple, out: torch.Tensor) -> None:
        captured.append(out)
        raise _Captured  # the rest of the network is not needed

    handle = _get_layer(model, layer).register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        model(image[None])
    except _Captured:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    if not captured or not isinstance(captured[0], torch.Tensor):
        raise CnnzooError(f"layer {layer!r} did not produce a tensor in the forward pass")
    return captured[0][0]


def plot_activations(
    model: nn.Module,
    image: torch.Tensor,
    path: str | os.PathLike,
    layer: str | None = None,
    max_maps: int = 64,
    preprocess: dict | None = None,
    title: str | None = None,
) -> Path:
    """Draw a layer's activation maps for one (normalised, C x H x W) image; returns the path.

    The first tile is the image itself, then up to ``max_maps`` channels in order, each with its
    own colour range (viridis: bright is strong). ``layer`` defaults to the first convolution.
    """
    if image.dim() != 3:
        raise CnnzooError(f"expected one C x H x W image, got shape {tuple(image.shape)}")
    if max_maps < 1:
        raise ValueError(f"max_maps must be at least 1, got {max_maps}")
    if layer is None:
        layer, _ = first_conv(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = layer_output(model, image.to(device), layer).float().cpu()
    if out.dim() != 3:
        raise CnnzooError(
            f"layer {layer!r} gives a {tuple(out.shape)} output, not C x H x W maps; choose a "
            f"convolutional layer"
        )
    n = min(max_maps, out.shape[0])
    rows, cols = grid_shape(n + 1)
    tile = max(0.7, min(1.4, 12.0 / cols))
    shape = "x".join(str(s) for s in (out.shape[1], out.shape[2], out.shape[0]))
    fig, axes = _grid_figure(
        rows,
        cols,
        tile,
        title or f"{layer}: {shape} activations ({n} of {out.shape[0]} maps shown)",
    )
    _show(axes[0], to_display(image, preprocess))
    axes[0].set_title("input", fontsize=7, pad=2)
    for i, ax in enumerate(axes[1:]):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(out[i].numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(str(i), fontsize=6, pad=1)
    return _save(fig, path)


def plot_neighbors(
    queries: Sequence[torch.Tensor],
    neighbours: Sequence[Sequence[torch.Tensor]],
    path: str | os.PathLike,
    distances: torch.Tensor | None = None,
    query_labels: Sequence[int | None] | None = None,
    neighbour_labels: Sequence[Sequence[int]] | None = None,
    class_names: Sequence[str] | None = None,
    preprocess: dict | None = None,
    title: str = "nearest neighbours in feature space",
) -> Path:
    """The lecture's grid: each row a query image, then its neighbours nearest first.

    With labels, a neighbour of the query's class is framed green and one of another class red,
    and each tile is captioned with its class (and its distance when given). A query label may
    be None (an image from outside the dataset): its neighbours are then captioned, not framed.
    """
    if len(queries) != len(neighbours) or not queries:
        raise ValueError(f"need one neighbour list per query, got {len(queries)} and "
                         f"{len(neighbours)}")  # fmt: skip
    k = max(len(row) for row in neighbours)
    rows, cols = len(queries), k + 1
    tile = 1.1
    fig, axes = _grid_figure(rows, cols, tile, title)

    def caption(label: int | None, extra: str = "") -> str:
        name = "" if label is None else (
            class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        )  # fmt: skip
        return " ".join(s for s in (name, extra) if s)

    for r in range(rows):
        ql = None if query_labels is None or query_labels[r] is None else int(query_labels[r])
        ax = axes[r * cols]
        _show(ax, to_display(queries[r], preprocess))
        _frame(ax, "black", 2.5)
        ax.set_title(caption(ql, "(query)"), fontsize=6, pad=2)
        for c in range(k):
            ax = axes[r * cols + c + 1]
            if c >= len(neighbours[r]):
                ax.axis("off")
                continue
            _show(ax, to_display(neighbours[r][c], preprocess))
            nl = None if neighbour_labels is None else int(neighbour_labels[r][c])
            dist = "" if distances is None else f"{float(distances[r][c]):.3g}"
            ax.set_title(caption(nl, dist), fontsize=6, pad=2)
            if ql is not None and nl is not None:
                _frame(ax, "#1a9641" if nl == ql else "#d7191c", 2.5)
    return _save(fig, path)


def _frame(ax, color: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)
