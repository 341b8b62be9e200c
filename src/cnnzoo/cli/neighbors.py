"""``cnnzoo neighbors FEATS --query IMAGE_OR_INDEX [-k 8] [--grid out.png]``: nearest images in
feature space, printed and drawn as the lecture's grid, with precision@k against the labels."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ._args import nonneg_int, output_file, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "neighbors",
        help="nearest neighbours in feature space (exact, L2 or cosine), as a list and a grid",
        description="Exact nearest-neighbour search in a features file written by `cnnzoo "
        "features`. A query is a row index of the file or an image file (embedded with the "
        "checkpoint the features came from). Prints each query's neighbours and precision@k "
        "(the fraction of neighbours of the query's class), and draws them with --grid.",
    )
    p.add_argument("features", metavar="FEATS", help="a .npz written by `cnnzoo features`")
    p.add_argument(
        "--query",
        action="append",
        required=True,
        metavar="IMAGE_OR_INDEX",
        help="row index in FEATS or an image file (repeatable)",
    )
    p.add_argument("-k", type=positive_int, default=8, help="neighbours per query (default: 8)")
    p.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    p.add_argument(
        "--grid", type=output_file, metavar="PNG", help="draw each query and its neighbours"
    )
    p.add_argument(
        "--eval-queries",
        type=nonneg_int,
        default=1000,
        metavar="N",
        help="precision@k over N random rows, each left out of its own search "
        "(default 1000; 0: skip)",
    )
    p.set_defaults(func=cmd_neighbors)


def _query_features(feats: dict, image: Path) -> torch.Tensor:
    from ..data import load_image
    from ..errors import CnnzooError
    from ..runs import resolve_model
    from ..transfer import extract_features

    meta = feats["meta"]
    if meta.get("pretrained") and not meta.get("model_source"):
        src = resolve_model(meta["model"], pretrained=True)  # the same published weights
    elif not meta.get("model_source"):
        raise CnnzooError(
            f"{image}: the features were computed by a randomly initialised {meta['model']}, so "
            f"an image cannot be embedded the same way; query by row index, or make the "
            f"features from a checkpoint or with --pretrained"
        )
    else:
        src = resolve_model(meta["model_source"], meta["model"])
    x = load_image(image, meta["preprocess"])
    f, _ = extract_features(
        src.model,
        [x[None]],
        layer=meta["layer"] or None,
        pool=meta.get("pool", "flatten"),
        progress=False,
    )
    return f, x


def cmd_neighbors(args: argparse.Namespace) -> int:
    from ..errors import CnnzooError
    from ..runs import load_features
    from ..transfer import knn, precision_at_k

    feats = load_features(args.features)
    bank, labels, classes = feats["features"], feats["labels"], feats["classes"]
    n = bank.shape[0]
    queries, exclude, shown = [], [], []
    for q in args.query:
        if q.lstrip("-").isdigit():
            i = int(q)
            if not -n <= i < n:
                raise CnnzooError(f"--query {i} is not a row of {args.features} (0..{n - 1})")
            i %= n
            queries.append(bank[i])
            exclude.append(i)
            shown.append(("row", i))
        elif Path(q).is_file():
            f, x = _query_features(feats, Path(q))
            if f.shape[1] != bank.shape[1]:
                raise CnnzooError(f"{q} gives {f.shape[1]} features, the file has {bank.shape[1]}")
            queries.append(f[0])
            exclude.append(-1)
            shown.append(("image", x))
        else:
            raise CnnzooError(f"--query {q!r} is neither a row index nor an image file")
    dist, idx = knn(torch.stack(queries), bank, args.k, args.metric, torch.tensor(exclude))

    def where(i: int) -> str:
        return (
            f"{classes[labels[i]] if classes else int(labels[i])}  ({feats['split'][i]} "
            f"#{int(feats['index'][i])})"
        )

    hits = []
    for qi, (kind, what) in enumerate(shown):
        head = f"row {what}: {where(what)}" if kind == "row" else f"image {args.query[qi]}"
        print(f"query {head}")
        for r in range(args.k):
            j = int(idx[qi, r])
            print(f"  {r + 1:>2}. row {j:<7} {where(j)}  {args.metric} {float(dist[qi, r]):.4g}")
        if kind == "row":
            hits.append(precision_at_k(labels[[what]], labels[idx[qi : qi + 1]]))
    if hits:
        print(f"precision@{args.k} of the queries: {sum(hits) / len(hits):.3f}")
    if args.eval_queries > 0 and n > args.k:
        m = min(args.eval_queries, n)
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:m]
        _, eidx = knn(bank[rows], bank, args.k, args.metric, rows)
        p = precision_at_k(labels[rows], labels[eidx])
        chance = (torch.bincount(labels).double() / n).pow(2).sum().item()
        print(
            f"precision@{args.k} over {m:,} random rows (each left out of its own search): "
            f"{p:.3f} (chance: {chance:.3f})"
        )
    if args.grid:
        _draw(args, feats, shown, dist, idx)
    return 0


def _draw(args, feats, shown, dist, idx) -> None:
    from ..errors import CnnzooError
    from ..runs import load_rows
    from ..viz import plot_neighbors

    meta = feats["meta"]
    ds, _, _, _ = load_rows(
        meta["data"],
        meta["split"],
        tuple(meta["input_size"]),
        meta["data_dir"] or None,
        meta["limit"],
        meta["preprocess"],
    )
    if len(ds) != feats["features"].shape[0]:
        raise CnnzooError(
            f"{meta['data']} now has {len(ds)} images where the features file has "
            f"{feats['features'].shape[0]}; recompute the features to draw the grid"
        )
    ds.preprocess = meta["preprocess"]
    labels = feats["labels"]
    q_imgs, q_labels = [], []
    for kind, what in shown:
        if kind == "row":
            q_imgs.append(ds.get_batch([what])[0][0])
            q_labels.append(int(labels[what]))
        else:
            q_imgs.append(what)
            q_labels.append(None)
    n_imgs = [list(ds.get_batch(row)[0]) for row in idx]
    out = plot_neighbors(
        q_imgs,
        n_imgs,
        args.grid,
        distances=dist,
        query_labels=q_labels,
        neighbour_labels=labels[idx].tolist(),
        class_names=feats["classes"],
        preprocess=meta["preprocess"],
        title=f"{args.k} nearest neighbours ({args.metric}) in {meta['model']} "
        f"{meta['layer'] or 'pre-logits'} features",
    )
    print(f"grid -> {out}")
