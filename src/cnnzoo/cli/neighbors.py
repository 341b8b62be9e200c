"""``cnnzoo neighbors FEATS --query IMAGE_OR_INDEX [-k 8] [--grid out.png]``: nearest images in
feature space, printed and drawn as the lecture's grid, with precision@k against the labels."""

from __future__ import annotations

import argparse

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


def cmd_neighbors(args: argparse.Namespace) -> int:
    from ..neighbors import draw_neighbors, find_neighbors
    from ..runs import load_features

    feats = load_features(args.features)
    result = find_neighbors(feats, args.query, args.k, args.metric, sample=args.eval_queries)
    print("\n".join(result.lines()))
    if args.grid:
        print(f"grid -> {draw_neighbors(feats, result, args.grid)}")
    return 0
