"""``cnnzoo demo``: the README's main job. Trains LeNet-5 on Fashion-MNIST (scikit-learn's digits
when Fashion-MNIST is not installed) for a short run with the progress bar, evaluates it on the test
split and predicts a few test images from PNG files, the way a user would, in about a minute on a
CPU."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ._args import output_dir, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train LeNet-5 on Fashion-MNIST (or digits), evaluate, predict")
    p.add_argument(
        "--data",
        choices=("fashion-mnist", "digits"),
        help="fashion-mnist or digits (default: fashion-mnist if installed)",
    )
    p.add_argument("--data-dir", help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--epochs", type=positive_int, default=None, help="default 2 (digits: 15)")
    p.add_argument("--limit", type=positive_int, help="use at most this many images of each split")
    p.add_argument(
        "--out", type=output_dir, help="run directory (default: a new temporary directory)"
    )
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (each epoch's one-line summary is still printed)",
    )
    p.set_defaults(func=cmd_demo)


def pick_data(args: argparse.Namespace):
    """Fashion-MNIST when its files are found, else the digits bundled with scikit-learn."""
    from ..data import load_data
    from ..errors import DataError

    size = (1, 32, 32)  # LeNet-5's input: 28x28 images are zero-padded to 32x32, as in the paper
    if args.data in (None, "fashion-mnist"):
        try:
            return load_data("fashion-mnist", args.data_dir, size, limit=args.limit)
        except DataError as err:
            if args.data == "fashion-mnist":
                raise
            print(f"(Fashion-MNIST not available: {err}\n using scikit-learn's digits instead)\n")
    return load_data("digits", None, size, limit=args.limit)


def cmd_demo(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from ..registry import create_model, list_models
    from ..runs import Checkpoint, DataSpec
    from ..train import TrainConfig, evaluate, fit, seed_everything
    from ..train.predict import predict

    names = list_models()
    print(f"cnnzoo: {len(names)} architectures ({', '.join(names[:8])}, ...); `cnnzoo list`\n")
    # LeNet-5's layers are too small to gain from intra-op threads, and on a busy machine idle
    # spinning threads cost far more than they give (measured: 9x slower with 2 threads on a
    # loaded 2-core machine); --threads overrides
    torch.set_num_threads(args.threads)
    seed_everything(0)
    bundle = pick_data(args)
    digits = bundle.name == "digits"
    epochs = args.epochs or (15 if digits else 2)
    out = Path(args.out or tempfile.mkdtemp(prefix="cnnzoo-demo-"))
    model = create_model("lenet5", num_classes=bundle.num_classes)
    print(f"1. train LeNet-5 (61,706 parameters) on {bundle.name}: {len(bundle.train):,} training "
          f"and {len(bundle.val):,} validation images, {epochs} epochs of SGD with momentum and a "
          f"cosine schedule, on the CPU -> {out}")  # fmt: skip
    config = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, momentum=0.9, nesterov=False,
                         weight_decay=5e-4, sched="cosine", label_smoothing=0.0, device="cpu",
                         progress=args.progress)  # fmt: skip
    spec = DataSpec(bundle.name, (1, 32, 32), args.data_dir, limit=args.limit)
    fit(model, bundle, config, out, model_name="lenet5",
        model_args={"num_classes": bundle.num_classes}, data_args=spec)  # fmt: skip

    best = out / "best.pt"
    print(f"\n2. evaluate the best checkpoint on the {len(bundle.test):,} test images "
          f"(`cnnzoo evaluate {best}`)")  # fmt: skip
    ckpt = Checkpoint.load(best)
    model = ckpt.build_model()
    m = evaluate(model, bundle.test, bundle.classes)
    print(f"   accuracy {m['accuracy']:.4f}   top-5 {m['top5']:.4f}   (chance: 0.10)")
    worst = sorted(m["per_class"].items(), key=lambda kv: kv[1])[:3]
    print("   hardest classes: " + ", ".join(f"{c} {a:.2f}" for c, a in worst))

    samples = out / "samples"
    samples.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(1)
    files, truth = [], []
    for i in torch.randperm(len(bundle.test), generator=g)[:5].tolist():
        f = samples / f"test_{i}.png"
        Image.fromarray(bundle.test.images[i, 0].numpy()).save(f)
        files.append(f)
        truth.append(bundle.classes[int(bundle.test.labels[i])])
    print(f"\n3. predict test images saved as PNG files (`cnnzoo predict {best} {samples}`)")
    pre = ckpt.preprocess.to_dict()
    for r, true in zip(predict(model, files, pre, ckpt.classes, topk=3), truth, strict=True):
        top = ", ".join(f"{c} {p:.2f}" for c, p in r["top"])
        mark = "ok" if r["top"][0][0] == true else "wrong"
        print(f"   {Path(r['path']).name:<16} true {true:<12} -> {top}   [{mark}]")
    print(f"\nrun directory: {out} (last.pt, best.pt, metrics.csv, curves.png, TensorBoard events)")
    return 0
