"""``cnnzoo evaluate CKPT [CKPT...]``: accuracy, top-5, per-class accuracy, confusion matrix.

Several checkpoints make an ensemble: their class probabilities are averaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._args import output_dir, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from .train import add_data_options

    p = sub.add_parser(
        "evaluate",
        help="accuracy, top-5, per-class accuracy and confusion matrix of checkpoints (ensemble)",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint(s) or run dirs")
    add_data_options(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.add_argument("--model", help="refuse checkpoints that are not of this model")
    p.add_argument(
        "--out",
        type=output_dir,
        help="where to write confusion.png (default: beside the first CKPT)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write confusion.png")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--tta",
        default="none",
        choices=["none", "flip"],
        help="test-time augmentation: flip averages each image with its mirror image",
    )
    p.add_argument(
        "--backend",
        default="eager",
        choices=["eager", "auto", "torch", "onnxruntime"],
        help="eager: the model as trained; the others run cnnzoo.optimize_for_inference's "
        "backend (BN folded; torch: channels-last; onnxruntime: ONNX Runtime on the CPU)",
    )
    p.set_defaults(func=cmd_evaluate)


def resolve_checkpoint(path: str) -> Path:
    """A run directory stands for its best.pt (else last.pt)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
    return p


def load_models(paths: list[str], expect_model: str | None, device):
    """(models, checkpoints); all must share class names."""
    from ..checkpoint import model_from_checkpoint
    from ..errors import CheckpointError

    models, ckpts = [], []
    for path in paths:
        try:
            model, ckpt = model_from_checkpoint(resolve_checkpoint(path), expect_model)
        except CheckpointError as err:
            if str(path) in str(err):
                raise
            raise CheckpointError(f"{path}: {err}") from None
        models.append(model.to(device).eval())
        ckpts.append(ckpt)
    first = ckpts[0].get("classes")
    for path, ckpt in zip(paths[1:], ckpts[1:], strict=True):
        if ckpt.get("classes") != first:
            raise CheckpointError(f"{path} was trained on other classes than {paths[0]}")
    return models, ckpts


def data_for(ckpt: dict, args: argparse.Namespace, cache: dict | None = None):
    """The checkpoint's dataset (or ``--data``) at its input size, with its preprocessing.
    ``cache`` keeps loaded bundles so that an ensemble reads its data once."""
    import copy

    from ..data import load_data
    from ..errors import CnnzooError

    stored = ckpt.get("data") or {}
    spec = args.data or stored.get("spec")
    if not spec:
        raise CnnzooError("the checkpoint does not say which data it was trained on; pass --data")
    pre = ckpt.get("preprocess")
    if not pre:
        raise CnnzooError("the checkpoint has no preprocessing description; it cannot evaluate")
    same = spec == stored.get("spec")
    kw = dict(
        data_dir=args.data_dir or (stored.get("data_dir") if same else None),
        input_size=tuple(pre["input_size"]),
        val_fraction=stored.get("val_fraction", 0.1) if same else 0.1,
        seed=stored.get("seed", 0) if same else 0,
        strict=args.strict,
        download=args.download,
        limit=args.limit,
    )
    cache = {} if cache is None else cache
    key = (spec, *(str(v) for v in kw.values()))
    if key not in cache:
        cache[key] = load_data(spec, **kw)
    bundle = cache[key]
    classes = ckpt.get("classes")
    if classes and list(bundle.classes) != list(classes):
        raise CnnzooError(
            f"{spec} has classes {bundle.classes[:5]}... but the checkpoint was trained on "
            f"{classes[:5]}...; evaluate on data with the same classes"
        )
    ds = copy.copy(bundle.split(args.split))  # shares the images; its own preprocess
    if list(ds.preprocess["source_size"]) == list(pre["source_size"]):
        ds.preprocess = pre  # the training statistics, not this data's own
    return bundle, ds


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..train import metrics_from_probs, predict_probs
    from ..train.distributed import resolve_device
    from ..train.evaluate import plot_confusion
    from .train import one_line_warnings

    one_line_warnings()
    device = resolve_device(args.device)
    models, ckpts = load_models(args.checkpoints, args.model, device)
    probs, labels, bundle, cache = [], None, None, {}
    for model, ckpt in zip(models, ckpts, strict=True):
        bundle, ds = data_for(ckpt, args, cache)
        if args.backend != "eager":
            from ..inference import optimize_for_inference

            pre = ckpt["preprocess"]["input_size"]
            model = optimize_for_inference(model, input_size=tuple(pre), backend=args.backend)
        p, y = predict_probs(model, ds, device, args.batch_size, tta=args.tta)
        if labels is not None and not (len(y) == len(labels) and (y == labels).all()):
            from ..errors import CnnzooError

            raise CnnzooError("the checkpoints' datasets differ; an ensemble needs the same data")
        probs.append(p)
        labels = y
    import torch

    result = metrics_from_probs(torch.stack(probs).mean(0), labels, bundle.classes)
    result["checkpoints"] = [str(resolve_checkpoint(c)) for c in args.checkpoints]
    result["split"] = args.split
    result["tta"] = args.tta
    result["backend"] = args.backend
    result["data"] = bundle.name
    if len(probs) > 1:
        result["members"] = [metrics_from_probs(p, labels)["accuracy"] for p in probs]
    if not args.no_plot:
        out = Path(args.out) if args.out else resolve_checkpoint(args.checkpoints[0]).parent
        out.mkdir(parents=True, exist_ok=True)
        plot_confusion(result["confusion"], result["classes"], out / "confusion.png")
        result["confusion_png"] = str(out / "confusion.png")
    if args.format == "json":
        json.dump(result, sys.stdout)
        print()
    else:
        print_table(result)
    return 0


def print_table(r: dict) -> None:
    what = "ensemble of " + str(len(r["checkpoints"])) if len(r["checkpoints"]) > 1 else "model"
    tta = ", flip test-time augmentation" if r.get("tta") == "flip" else ""
    print(f"{what} on {r['data']} ({r['split']}, {r['n']:,} images{tta})")
    print(f"  accuracy  {r['accuracy']:.4f}")
    print(f"  top-5     {r['top5']:.4f}")
    print(f"  loss      {r['loss']:.4f}")
    if "members" in r:
        print("  members   " + ", ".join(f"{a:.4f}" for a in r["members"]))
    width = max(len(c) for c in r["per_class"]) if r["per_class"] else 5
    print("\nper-class accuracy")
    for name, acc in r["per_class"].items():
        print(f"  {name:<{width}}  {acc:.4f}")
    k = len(r["classes"])
    if k <= 20:
        print("\nconfusion matrix (rows: true, columns: predicted)")
        cells = max(len(str(v)) for row in r["confusion"] for v in row) + 1
        for name, row in zip(r["classes"], r["confusion"], strict=True):
            print(f"  {name:<{width}} " + "".join(f"{v:>{cells}}" for v in row))
    if "confusion_png" in r:
        print(f"\nconfusion matrix picture: {r['confusion_png']}")
