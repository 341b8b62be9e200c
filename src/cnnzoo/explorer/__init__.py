"""The architecture explorer: the lecture's arithmetic for any model, as a static web site.

``explore(["alexnet", "googlenet"], out="site")`` writes ``site/index.html`` (the models and
their totals), one page per model (the lecture's table with bars, the graph with a shape on every
edge, the receptive field over a sample image, the training memory) and, for several models,
``site/compare.html`` (side by side, with the complexity chart). Every figure is computed by
``cnnzoo.analyze`` and embedded as JSON; the pages' script only draws. The pages load nothing
from the network and work from ``file://``. See docs/explorer.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from ..errors import CnnzooError
from .chart import complexity_svg
from .data import comparison_row, load_profile, model_page, resolve
from .html import page
from .image import sample_image

__all__ = ["explore"]


def explore(
    models: nn.Module | str | Sequence[nn.Module | str],
    input_size: Sequence[int] | None = None,
    out: str | os.PathLike = "explore",
    batch: int = 1,
    profile: str | os.PathLike | Mapping | None = None,
    pretrained: bool = False,
) -> Path:
    """Write the explorer's site for ``models`` into the folder ``out``; returns its index page.

    Each model is a registered name (analysed at its own input size unless ``input_size`` is
    given) or any ``nn.Module`` (``input_size`` (C, H, W) required). ``batch`` is the batch of the
    training-memory breakdown. ``profile`` (one model only) is a ``cnnzoo profile --format json``
    result, as a path or a dictionary, shown as a measured-time column.
    """
    from ..analysis import analyze

    items = list(models) if isinstance(models, (list, tuple)) else [models]
    odd = [m for m in items if not isinstance(m, (str, nn.Module))]
    if odd:
        raise CnnzooError(
            f"explore takes model names or nn.Modules, got {type(odd[0]).__name__} {odd[0]!r}"
        )
    if not items:
        raise CnnzooError("name at least one model to explore, e.g. alexnet")
    if profile is not None and len(items) != 1:
        raise CnnzooError("a profile is of one model: explore that model alone with it")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CnnzooError(f"cannot write the site into {out}: it is a file; name a folder")
    measured = load_profile(profile) if profile is not None else None
    resolved, hrefs = [resolve(item, input_size, pretrained) for item in items], {}
    for _, name, _, _ in resolved:
        hrefs[name] = _slug(name, hrefs.values())
    compare = "compare.html" if len(items) > 1 else None
    _check_own(out, [*hrefs.values(), "index.html", *([compare] if compare else [])])
    # every model is analysed before the folder is made: one that cannot run leaves nothing
    reports = [
        analyze(model, size, batch_size=batch, name=name) for model, name, _, size in resolved
    ]
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for report, (_, name, paper, size) in zip(reports, resolved, strict=True):
        image = sample_image(size[1], size[2]) if len(size) == 3 else ""
        data = model_page(report, name, paper, measured, image)
        href = hrefs[name]
        data["links"] = {"compare": compare}
        (out / href).write_text(page(name, data), encoding="utf-8")
        rows.append(comparison_row(report))
    index = {"kind": "index", "models": rows, "pages": hrefs, "links": {"compare": compare}}
    (out / "index.html").write_text(page("cnnzoo explorer", index), encoding="utf-8")
    if compare:
        chart, left_out = complexity_svg(rows, hrefs)
        data = {**index, "kind": "compare", "left_out": left_out}
        (out / compare).write_text(page("models compared", data, chart), encoding="utf-8")
    return out / "index.html"


# how a page of the explorer is known again: the generator line (older pages: the body's kind)
OWN_MARKS = ('<meta name="generator" content="cnnzoo explore">', '<body data-kind="')


def _check_own(out: Path, files: list[str]) -> None:
    """Refuse to write the site over a file of the same name that the explorer did not write
    (someone's own ``index.html`` in ``--out .``); its own pages are replaced, so a site can be
    written again in place."""
    for name in files:
        path = out / name
        if not path.exists():
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                head = f.read(1 << 20)  # the body starts after the inlined style sheet
        except OSError as err:
            raise CnnzooError(f"cannot write {path}: {err.strerror}") from None
        if not path.is_file() or not any(mark in head for mark in OWN_MARKS):
            raise CnnzooError(
                f"{path} exists and is not a page of cnnzoo's explorer; choose another --out, "
                f"or move it away"
            )


def _slug(name: str, taken) -> str:
    """A file name for a model's page, unlike those already ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "model"
    if base in ("index", "compare"):
        base += "_model"
    slug, k = f"{base}.html", 2
    while slug in taken:
        slug, k = f"{base}-{k}.html", k + 1
    return slug
