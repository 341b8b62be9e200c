"""Nearest neighbours in a features file (the lecture's transfer-learning slide): queries by row
or by image, exact k-NN, precision@k with each query left out of its own search, and the grid.

``cnnzoo neighbors`` is a thin face over ``find_neighbors`` and ``draw_neighbors``::

    feats = cnnzoo.runs.load_features("feats.npz")
    result = find_neighbors(feats, ["0", "photo.jpg"], k=8, metric="l2")
    result.lines()                      # what the command prints
    draw_neighbors(feats, result, "grid.png")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CnnzooError
from .paths import as_list


@dataclass
class Query:
    text: str  # as given: a row index or an image path
    row: int | None  # the row of the features file, or None for an image
    image: torch.Tensor | None = field(default=None, repr=False)  # the preprocessed image


@dataclass
class Neighbors:
    feats: dict = field(repr=False)  # what ``load_features`` returned
    queries: list[Query]
    k: int
    metric: str
    distances: torch.Tensor  # Q x k
    index: torch.Tensor  # Q x k rows of the features file
    precision: float | None  # precision@k of the row queries (None: no row query)
    sampled: tuple[int, float, float] | None = None  # (rows, precision@k, chance) if measured

    def describe(self, row: int) -> str:
        f = self.feats
        label = int(f["labels"][row])
        name = f["classes"][label] if f["classes"] else label
        return f"{name}  ({f['split'][row]} #{int(f['index'][row])})"

    def lines(self) -> list[str]:
        out = []
        for qi, q in enumerate(self.queries):
            head = (
                f"row {q.row}: {self.describe(q.row)}" if q.row is not None else f"image {q.text}"
            )
            out.append(f"query {head}")
            for r in range(self.k):
                j, d = int(self.index[qi, r]), float(self.distances[qi, r])
                out.append(f"  {r + 1:>2}. row {j:<7} {self.describe(j)}  {self.metric} {d:.4g}")
        if self.precision is not None:
            out.append(f"precision@{self.k} of the queries: {self.precision:.3f}")
        if self.sampled is not None:
            m, p, chance = self.sampled
            out.append(
                f"precision@{self.k} over {m:,} random rows (each left out of its own search): "
                f"{p:.3f} (chance: {chance:.3f})"
            )
        return out


def _embed_image(feats: dict, image: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """An image's features, computed as the file's were (same checkpoint, layer and pooling)."""
    from .data import load_image
    from .runs import resolve_model
    from .transfer import extract_features

    meta = feats["meta"]
    if meta.get("model_source"):
        src = resolve_model(meta["model_source"], meta["model"])
    elif meta.get("pretrained"):
        src = resolve_model(meta["model"], pretrained=True)  # the same published weights
    else:
        raise CnnzooError(
            f"{image}: the features were computed by a randomly initialised {meta['model']}, so "
            f"an image cannot be embedded the same way; query by row index, or make the "
            f"features from a checkpoint or with --pretrained"
        )
    x = load_image(image, meta["preprocess"])
    f, _ = extract_features(
        src.model,
        [x[None]],
        layer=meta["layer"] or None,
        pool=meta.get("pool", "flatten"),
        progress=False,
    )
    return f[0], x


def resolve_queries(feats: dict, queries) -> tuple[list[Query], torch.Tensor]:
    """Each query (a row index, negative from the end, or an image file; ``12``, ``"12"`` and
    ``Path("shoe.png")`` alike, alone or in a list) and its vector."""
    bank = feats["features"]
    n = bank.shape[0]
    resolved, vectors = [], []
    for q in map(str, [queries] if isinstance(queries, int) else as_list(queries)):
        if q.lstrip("-").isdigit():
            i = int(q)
            if not -n <= i < n:
                raise CnnzooError(f"--query {i} is not a row of the features file (0..{n - 1})")
            resolved.append(Query(q, i % n))
            vectors.append(bank[i % n])
        elif Path(q).is_file():
            f, x = _embed_image(feats, Path(q))
            if f.shape[0] != bank.shape[1]:
                raise CnnzooError(f"{q} gives {f.shape[0]} features, the file has {bank.shape[1]}")
            resolved.append(Query(q, None, x))
            vectors.append(f)
        else:
            raise CnnzooError(f"--query {q!r} is neither a row index nor an image file")
    return resolved, torch.stack(vectors)


def find_neighbors(
    feats: dict,
    queries: list[str | int] | str | int,
    k: int = 8,
    metric: str = "l2",
    sample: int = 1000,
) -> Neighbors:
    """The ``k`` nearest rows of each query (a row is never its own neighbour), precision@k of
    the row queries, and, with ``sample`` > 0, precision@k over that many random rows, each
    searched with itself left out (with the chance level: the sum of squared class shares)."""
    from .transfer import knn, precision_at_k

    bank, labels = feats["features"], feats["labels"]
    resolved, vectors = resolve_queries(feats, queries)
    exclude = torch.tensor([-1 if q.row is None else q.row for q in resolved])
    dist, idx = knn(vectors, bank, k, metric, exclude)
    rows = [(qi, q.row) for qi, q in enumerate(resolved) if q.row is not None]
    precision = None
    if rows:
        hits = [precision_at_k(labels[[r]], labels[idx[qi : qi + 1]]) for qi, r in rows]
        precision = sum(hits) / len(hits)
    result = Neighbors(feats, resolved, k, metric, dist, idx, precision)
    n = bank.shape[0]
    if sample > 0 and n > k:
        m = min(sample, n)
        picked = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:m]
        _, sidx = knn(bank[picked], bank, k, metric, picked)
        chance = (torch.bincount(labels).double() / n).pow(2).sum().item()
        result.sampled = (m, precision_at_k(labels[picked], labels[sidx]), chance)
    return result


def draw_neighbors(feats: dict, result: Neighbors, path: str | os.PathLike) -> Path:
    """The lecture's grid: each query and its neighbours, read back from the features' dataset."""
    from .runs import load_rows
    from .viz import plot_neighbors

    meta = feats["meta"]
    ds, _, _, _ = load_rows(
        meta["data"],
        meta["split"],
        tuple(meta["input_size"]),
        meta["data_dir"] or None,
        meta["limit"],
        meta["preprocess"],
    )
    n = feats["features"].shape[0]
    if len(ds) != n:
        raise CnnzooError(
            f"{meta['data']} now has {len(ds)} images where the features file has {n}; "
            f"recompute the features to draw the grid"
        )
    ds.preprocess = meta["preprocess"]
    labels = feats["labels"]
    images = [ds.get_batch([q.row])[0][0] if q.row is not None else q.image for q in result.queries]
    return plot_neighbors(
        images,
        [list(ds.get_batch(row)[0]) for row in result.index],
        path,
        distances=result.distances,
        query_labels=[int(labels[q.row]) if q.row is not None else None for q in result.queries],
        neighbour_labels=labels[result.index].tolist(),
        class_names=feats["classes"],
        preprocess=meta["preprocess"],
        title=f"{result.k} nearest neighbours ({result.metric}) in {meta['model']} "
        f"{meta['layer'] or 'pre-logits'} features",
    )


__all__ = ["Neighbors", "Query", "draw_neighbors", "find_neighbors", "resolve_queries"]
