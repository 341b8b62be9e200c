"""The degradation experiment of the ResNet paper (He et al. 2015, Fig. 1 and 6), on Fashion-MNIST.

plain20, plain56, resnet20 and resnet56 train on the same images with the same recipe and budget;
their training-error curves go into one picture. The paper's claim: the deeper plain net trains
*worse* than the shallower one, while the deeper residual net trains better.

    python -m benchmarks.degradation [--quick] [--epochs 4] [--limit 10000] [--img-size 32] [--amp]

writes docs/img/degradation.png and prints a Markdown table for docs/results.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import cnnzoo  # noqa: E402
from cnnzoo.data import load_data  # noqa: E402
from cnnzoo.train import TrainConfig, evaluate, fit  # noqa: E402

MODELS = ["plain20", "plain56", "resnet20", "resnet56"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 epoch on 1,000 images")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--limit", type=int, default=10000, help="training images used")
    p.add_argument("--img-size", type=int, default=32, help="28 skips the zero padding")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (about 1.9x on ResNet-20)")
    p.add_argument("--out", default="docs/img/degradation.png")
    args = p.parse_args(argv)
    epochs, limit = (1, 1000) if args.quick else (args.epochs, args.limit)
    bundle = load_data(
        "fashion-mnist", input_size=(1, args.img_size, args.img_size), augment="none", limit=limit
    )
    config = TrainConfig(
        epochs=epochs, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4, sched="cosine",
        warmup_epochs=0.5, seed=0, progress=False, tensorboard=False, plots=False, amp=args.amp,
    )  # fmt: skip
    rows, curves = [], {}
    for name in MODELS:
        torch.manual_seed(0)
        model = cnnzoo.create_model(name, num_classes=10, in_chans=1)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = fit(model, bundle, config, tmp, model_name=name, model_args={"in_chans": 1})
        wall = time.perf_counter() - start
        hist = out["history"]
        curves[name] = [1 - h["train_acc"] for h in hist]
        test = evaluate(model, bundle.test, bundle.classes)["accuracy"]
        rows.append((name, curves[name][-1], 1 - test, wall))
        print(f"{name}: final train error {curves[name][-1]:.4f}, test error {1 - test:.4f}, "
              f"{wall:.0f} s", flush=True)  # fmt: skip

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, err in curves.items():
        style = "--" if name.startswith("plain") else "-"
        ax.plot(range(1, len(err) + 1), [100 * e for e in err], style, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error (%)")
    ax.set_title(f"Fashion-MNIST, {len(bundle.train):,} training images, same recipe")
    ax.legend()
    ax.grid(alpha=0.3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"\nwrote {args.out}\n")
    print("| model | final training error | test error | wall time (s) |")
    print("|---|---|---|---|")
    for name, tr, te, wall in rows:
        print(f"| {name} | {tr:.4f} | {te:.4f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
