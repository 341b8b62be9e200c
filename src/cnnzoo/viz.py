"""Pictures of what a CNN learned, as PNG files (matplotlib, Agg backend: no display needed).

- ``plot_filters``: the first convolution's filters as an image grid (the AlexNet conv1 picture).
- ``plot_activations``: one layer's activation maps for one image, beside the image.
- ``plot_neighbors``: each query image followed by its nearest neighbours in feature space.
- ``plot_curves``: a run's loss and accuracy per epoch (its ``curves.png``).
- ``plot_confusion``: an evaluation's confusion matrix, with its accuracy and a colour bar.

Each ``plot_X`` saves the matplotlib Figure that ``X_figure`` builds (to show in a notebook or
to edit). Every function takes ``title=``. The grids have a fixed size in inches and are saved
without "tight" cropping, so their pixel size is known in advance: ``figure_pixels`` of the
layout. A title too long for a narrow grid is wrapped and shrunk until it fits (never cut off).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import CnnzooError

DPI = 100
TITLE_IN = 0.5  # inches kept above the grid for the title
TILE_CAPTION_IN = 0.14  # of the title band, the bottom part that tile captions may reach
KEY_IN = 0.3  # inches kept below the neighbour grid for its colour key
SAME_CLASS, OTHER_CLASS, QUERY = "#1a9641", "#d7191c", "black"  # neighbour frames


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


def figure_pixels(
    rows: int, cols: int, tile_in: float, dpi: int = DPI, key_in: float = 0.0
) -> tuple[int, int]:
    """(width, height) in pixels of a grid figure of ``rows x cols`` square tiles of ``tile_in``
    inches with a title band of ``TITLE_IN`` inches (and a key band of ``key_in`` below)."""
    return round(cols * tile_in * dpi), round((rows * tile_in + TITLE_IN + key_in) * dpi)


def fit_title(fig, text: str, band_in: float, fontsize: float = 10):
    """Put ``text`` as the figure's title in its top ``band_in`` inches, wrapped onto more lines
    and shrunk (down to 6 pt) until it lies inside the figure: a layer name and shape over a
    three-tile grid is wider than the grid. Returns the title's Text."""
    renderer = fig.canvas.get_renderer()
    width, band = fig.bbox.width, band_in * fig.dpi
    top = 1 - 0.06 * fig.dpi / fig.bbox.height  # 0.06 in below the top edge
    for size in (fontsize, fontsize - 1, fontsize - 2, 7, 6):
        for lines in (1, 2, 3):
            wrapped = "\n".join(_wrap(text, lines))
            t = fig.suptitle(wrapped, fontsize=size, y=top, va="top")
            box = t.get_window_extent(renderer)
            if box.x0 >= 0 and box.x1 <= width and box.height <= band:
                return t
    return t  # 6 pt on three lines: the longest text a grid can be given still shows


def _wrap(text: str, lines: int) -> list[str]:
    """``text`` broken at spaces into at most ``lines`` lines of about equal length."""
    width = math.ceil(len(text) / lines)
    while len(out := textwrap.wrap(text, width, break_long_words=False)) > lines:
        width += 1
    return out


def _grid_figure(
    rows: int, cols: int, tile_in: float, title: str, dpi: int = DPI, key_in: float = 0.0
):
    plt = _plt()
    width, height = cols * tile_in, rows * tile_in + TITLE_IN + key_in
    fig = plt.figure(figsize=(width, height), dpi=dpi)
    fit_title(fig, title, TITLE_IN - TILE_CAPTION_IN)
    axes = []
    pad = 0.06  # of a tile, each side
    for r in range(rows):
        for c in range(cols):
            left = (c + pad) * tile_in / width
            bottom = (key_in + (rows - r - 1 + pad) * tile_in) / height
            size_w = (1 - 2 * pad) * tile_in / width
            size_h = (1 - 2 * pad) * tile_in / height
            ax = fig.add_axes((left, bottom, size_w, size_h))
            ax.set_xticks([])
            ax.set_yticks([])
            axes.append(ax)
    return fig, axes


def _save(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` as PNG at its own size (beside it, then renamed over it: a
    reader of a run's pictures never sees half a file) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=fig.dpi, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
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


def filters_figure(
    model: nn.Module, layer: str | None = None, scale: str = "filter", title: str | None = None
):
    """A convolution's filters as an image grid (a matplotlib Figure; ``plot_filters`` saves it).

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
    chans = conv.weight.shape[1]
    what = (
        "RGB" if rgb else "one input channel" if chans == 1 else f"mean over {chans} input channels"
    )
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
    return fig


def plot_filters(
    model: nn.Module,
    path: str | os.PathLike,
    layer: str | None = None,
    scale: str = "filter",
    title: str | None = None,
) -> Path:
    """Save ``filters_figure(model, layer, scale, title)`` as PNG; returns the path."""
    return _save(filters_figure(model, layer, scale, title), path)


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


def activations_figure(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | None = None,
    max_maps: int = 64,
    preprocess: dict | None = None,
    title: str | None = None,
):
    """A layer's activation maps for one (normalised, C x H x W) image, as a Figure.

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
    return fig


def plot_activations(
    model: nn.Module,
    image: torch.Tensor,
    path: str | os.PathLike,
    layer: str | None = None,
    max_maps: int = 64,
    preprocess: dict | None = None,
    title: str | None = None,
) -> Path:
    """Save ``activations_figure(model, image, ...)`` as PNG; returns the path."""
    return _save(activations_figure(model, image, layer, max_maps, preprocess, title), path)


def neighbors_figure(
    queries: Sequence[torch.Tensor],
    neighbours: Sequence[Sequence[torch.Tensor]],
    distances: torch.Tensor | None = None,
    query_labels: Sequence[int | None] | None = None,
    neighbour_labels: Sequence[Sequence[int]] | None = None,
    class_names: Sequence[str] | None = None,
    preprocess: dict | None = None,
    title: str = "nearest neighbours in feature space",
):
    """The lecture's grid as a Figure: each row a query image, then its neighbours nearest first.

    With labels, a neighbour of the query's class is framed green and one of another class red,
    with a key to the colours below the grid, and each tile is captioned with its class (and its
    distance when given). A query label may be None (an image from outside the dataset): its
    neighbours are then captioned, not framed.
    """
    if len(queries) != len(neighbours) or not queries:
        raise ValueError(f"need one neighbour list per query, got {len(queries)} and "
                         f"{len(neighbours)}")  # fmt: skip
    k = max(len(row) for row in neighbours)
    rows, cols = len(queries), k + 1
    tile = 1.1
    framed = neighbour_labels is not None and any(q is not None for q in query_labels or ())
    fig, axes = _grid_figure(rows, cols, tile, title, key_in=KEY_IN if framed else 0.0)

    def caption(label: int | None, extra: str = "") -> str:
        name = "" if label is None else (
            class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        )  # fmt: skip
        return " ".join(s for s in (name, extra) if s)

    for r in range(rows):
        ql = None if query_labels is None or query_labels[r] is None else int(query_labels[r])
        ax = axes[r * cols]
        _show(ax, to_display(queries[r], preprocess))
        _frame(ax, QUERY, 2.5)
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
                _frame(ax, SAME_CLASS if nl == ql else OTHER_CLASS, 2.5)
    if framed:
        _neighbour_key(fig, cols * tile)
    return fig


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
    """Save ``neighbors_figure`` of the same arguments as PNG; returns the path."""
    fig = neighbors_figure(
        queries, neighbours, distances, query_labels, neighbour_labels, class_names, preprocess,
        title,
    )  # fmt: skip
    return _save(fig, path)


def _frame(ax, color: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def _neighbour_key(fig, width_in: float) -> None:
    """The key to the neighbour grid's frames, centred in the band below the grid (one row when
    the grid is wide enough, else fewer entries per row at a smaller size)."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor="white", edgecolor=color, linewidth=2.5, label=label)
        for color, label in (
            (QUERY, "query"),
            (SAME_CLASS, "same class as the query"),
            (OTHER_CLASS, "another class"),
        )
    ]
    wide = width_in >= 4.0
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3 if wide else 1,
        fontsize=7 if wide else 5,
        frameon=False,
        handlelength=1.2,
        columnspacing=1.2,
        borderaxespad=0.2 if wide else 0.0,
        labelspacing=0.1,
    )


def curves_figure(history: Sequence[dict], title: str | None = None):
    """A run's loss and accuracy per epoch, training beside validation, as a Figure.

    ``history`` holds one dict per epoch with ``epoch``, ``train_loss``, ``val_loss``,
    ``train_acc`` and ``val_acc``; ``title`` names what was trained, e.g. "lenet5 on
    fashion-mnist"."""
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = _plt().subplots(1, 2, figsize=(10, 4.3), dpi=DPI)
    for ax, what in ((ax1, "loss"), (ax2, "acc")):
        ax.plot(epochs, [r[f"train_{what}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{what}"] for r in history], "o-", label="validation")
        ax.set(xlabel="epoch", title="loss" if what == "loss" else "accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    best = max(history, key=lambda r: r["val_acc"])
    ax2.set_title(f"accuracy (best validation {best['val_acc']:.4f}, epoch {best['epoch']})")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_curves(history: Sequence[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Save ``curves_figure(history, title)`` as PNG (a run's ``curves.png``); returns the path."""
    return _save(curves_figure(history, title), path)


def ink_colour(cmap, value: float) -> str:
    """Black or white, whichever contrasts more with ``cmap(value)``: white on a cell whose
    relative luminance (linear sRGB, ITU-R BT.709 weights) is below 0.179, where the two
    contrast ratios of WCAG 2, (L + 0.05) / 0.05 and 1.05 / (L + 0.05), are equal."""
    from matplotlib import colormaps

    cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
    r, g, b = (_linear(c) for c in cmap(float(value))[:3])
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.179 else "black"


def _linear(c: float) -> float:
    """An sRGB component in [0, 1] as linear light."""
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def confusion_figure(
    confusion: Sequence[Sequence[int]],
    classes: Sequence[str],
    title: str | None = None,
    cmap: str = "Blues",
):
    """The confusion matrix as a Figure (rows: true class, columns: predicted), each cell
    coloured by its share of its true class, with a colour bar, the overall accuracy under the
    title, and each non-zero count written in black or white by the cell's brightness."""
    cm = torch.tensor(confusion, dtype=torch.float64)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(f"a {k}-class confusion matrix is {k}x{k}, got {tuple(cm.shape)}")
    share = cm / cm.sum(1, keepdim=True).clamp_min(1)
    side = min(4 + 0.45 * k, 20)
    fig, ax = _plt().subplots(figsize=(side + 1.2, side + 0.4), dpi=DPI)
    im = ax.imshow(share.numpy(), cmap=cmap, vmin=0, vmax=1)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("share of the true class")
    if k <= 30:
        ax.set_xticks(range(k), classes, rotation=90)
        ax.set_yticks(range(k), classes)
        for i in range(k):
            for j in range(k):
                if cm[i, j] > 0:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                            color=ink_colour(im.cmap, float(share[i, j])))  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    correct = int(cm.diagonal().sum())
    accuracy = f"accuracy {correct / max(total, 1):.4f} ({correct:,} of {total:,} images)"
    ax.set_title(f"{title}\n{accuracy}" if title else accuracy, fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion(
    confusion: Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Save ``confusion_figure(confusion, classes, title)`` as PNG; returns the path. ``title``
    names the model and the data, e.g. "lenet5 on fashion-mnist (test split)"."""
    return _save(confusion_figure(confusion, classes, title), path)
