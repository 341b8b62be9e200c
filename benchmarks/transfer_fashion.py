"""Does transfer learning help with few labels? Fashion-MNIST, split by classes.

1. Pretrain LeNet-5 on classes 0-4 (T-shirt, Trouser, Pullover, Dress, Coat; all 30,000 training
   images of those classes, minus the validation share).
2. On classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) keep only ``--per-class`` (100)
   labelled training images per class and compare, on the 5,000 test images of classes 5-9:
   - a linear probe on the pretrained features (``--freeze backbone``),
   - fine-tuning F6 and the head (``--freeze until:pre_logits``, backbone at 0.1x the rate),
   - fine-tuning everything (``--freeze none``, backbone at 0.1x the rate),
   - the same LeNet-5 trained from scratch on the same labelled images,
   - a linear probe on a randomly initialised LeNet-5 (are the features or the probe doing it?).
3. precision@k of nearest neighbours among the classes-5-9 test images in pretrained and random
   feature space (the pretrained net never saw these classes).

Run: ``.venv/bin/python benchmarks/transfer_fashion.py [--seeds 3]`` (a few minutes of CPU).
Needs Fashion-MNIST's IDX files (Debian: /usr/share/datasets/fashion-mnist, or --data-dir).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.data import TensorImageDataset, load_data, make_loader
from cnnzoo.train import TrainConfig, evaluate, fit
from cnnzoo.transfer import extract_features, finetune, knn, precision_at_k, subsample_per_class

QUIET = dict(progress=False, tensorboard=False, plots=False, device="cpu")


def classes_subset(ds: TensorImageDataset, lo: int, hi: int) -> TensorImageDataset:
    """The images of classes lo..hi-1, relabelled 0..hi-lo-1."""
    rows = torch.nonzero((ds.labels >= lo) & (ds.labels < hi)).flatten()
    sub = ds.subset(rows)
    sub.labels = sub.labels - lo
    return sub


def split_bundle(bundle, lo: int, hi: int):
    part = copy.copy(bundle)
    part.train = classes_subset(bundle.train, lo, hi)
    part.val = classes_subset(bundle.val, lo, hi)
    part.test = classes_subset(bundle.test, lo, hi)
    part.classes = bundle.classes[lo:hi]
    return part


def test_acc(model, bundle) -> float:
    return evaluate(model, bundle.test, bundle.classes, "cpu", 1024)["accuracy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", help="directory with Fashion-MNIST's IDX files")
    ap.add_argument("--per-class", type=int, default=100, help="labelled images per new class")
    ap.add_argument(
        "--val-per-class",
        type=int,
        default=50,
        help="validation images per new class (model selection; default 50)",
    )
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--base", help="a pretrained checkpoint from an earlier run (skips step 1)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs on the 500 images")
    ap.add_argument("--seeds", type=int, default=3, help="draws of the few labelled images")
    ap.add_argument("-k", type=int, default=10, help="neighbours for precision@k")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    start = time.perf_counter()
    data = load_data("fashion-mnist", data_dir=args.data_dir, input_size=(1, 32, 32))
    source, target = split_bundle(data, 0, 5), split_bundle(data, 5, 10)
    work = Path(tempfile.mkdtemp(prefix="cnnzoo-transfer-"))

    # 1. pretraining on classes 0-4
    if args.base:
        base, _ = cnnzoo.model_from_checkpoint(args.base, expect_model="lenet5")
    else:
        cnnzoo.train.seed_everything(0)
        base = cnnzoo.create_model("lenet5", num_classes=5)
        pre_cfg = TrainConfig(
            epochs=args.pretrain_epochs, batch_size=128, lr=0.1, sched="cosine", **QUIET
        )
        fit(
            base, source, pre_cfg, work / "base", model_name="lenet5", model_args={"num_classes": 5}
        )
        print(f"pretrained checkpoint: {work / 'base' / 'last.pt'} (reuse with --base)")
    base_acc = test_acc(base, source)
    print(
        f"pretrained LeNet-5 on classes 0-4: test accuracy {base_acc:.4f} "
        f"({len(source.train):,} training images, {time.perf_counter() - start:.0f} s)"
    )

    # 3. neighbours among the new classes' test images, in pretrained vs random feature space
    loader = make_loader(target.test, 1024)
    nn_rows = {}
    for name, model in (("pretrained", base), ("random", cnnzoo.create_model("lenet5"))):
        f, y = extract_features(model, loader, progress=False)
        _, idx = knn(f, f, args.k, exclude=torch.arange(len(f)))
        nn_rows[name] = precision_at_k(y, y[idx])
    print(
        f"precision@{args.k} on classes 5-9 test images: pretrained features "
        f"{nn_rows['pretrained']:.4f}, random features {nn_rows['random']:.4f} (chance 0.2)"
    )

    # 2. few labels on classes 5-9
    ft_cfg = dict(epochs=args.epochs, batch_size=50, lr=0.05, sched="cosine", **QUIET)
    methods = {
        "linear probe (pretrained, --freeze backbone)": ("pre", "backbone", True),
        "fine-tune F6 + head (--freeze until:pre_logits)": ("pre", "until:pre_logits", False),
        "fine-tune all (--freeze none)": ("pre", "none", False),
        "from scratch (the same labelled images)": ("scratch", None, False),
        "linear probe (random LeNet-5)": ("rand", "backbone", True),
    }
    results: dict[str, list[float]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        few = copy.copy(target)
        few.train = subsample_per_class(target.train, args.per_class, seed)
        # with 500 labels there is no 3,000-image validation set: keep a few per class
        few.val = subsample_per_class(target.val, args.val_per_class, seed)
        for label, (init, mode, probe) in methods.items():
            cnnzoo.train.seed_everything(seed)
            if init == "pre":
                model = copy.deepcopy(base)
            else:
                model = cnnzoo.create_model("lenet5", num_classes=5)
            cfg = TrainConfig(seed=seed, **ft_cfg)
            run = work / f"s{seed}-{len(results[label])}-{init}-{mode}"
            if mode is None:
                fit(model, few, cfg, run, model_name="lenet5", model_args={"num_classes": 5})
                model, _ = cnnzoo.model_from_checkpoint(run / "best.pt")
            else:
                res = finetune(
                    model,
                    few,
                    cfg,
                    run,
                    model_name="lenet5",
                    model_args={"num_classes": 5},
                    freeze_mode=mode,
                    backbone_lr_scale=0.1,
                    probe=probe,
                )
                model, _ = cnnzoo.model_from_checkpoint(res["best"])
            acc = test_acc(model, target)
            results[label].append(acc)
            print(f"  seed {seed}  {label:<50} test accuracy {acc:.4f}", flush=True)

    n = len(few.train)
    print(
        f"\nFashion-MNIST classes 5-9, {args.per_class} labelled images per class ({n} in all), "
        f"test accuracy on {len(target.test):,} images, mean +- std over {args.seeds} draws:"
    )
    print("| method | test accuracy |\n|---|---|")
    for label, accs in results.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {label} | {statistics.mean(accs):.4f} +- {sd:.4f} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s on {torch.get_num_threads()} CPU threads")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "pretrain_test_acc": base_acc,
                    f"precision_at_{args.k}": nn_rows,
                    "few_label_test_acc": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
