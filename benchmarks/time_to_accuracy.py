"""Time to accuracy on Fashion-MNIST: the speedrun recipes against the round-1 ones.

Three parts, each timed side by side in one run, rounds alternating between the contestants:

- the race: ``cnnzoo train --recipe fashion-94-5min`` against ``--recipe fashion-fast``, each a
  process of its own, timed from process start to the final test figure (with the recipe's
  test-time views); medians over the rounds (seeds 0, 1, ...) and their ratio;
- the curve: test accuracy after every epoch of each recipe (seed 0), with the wall time at that
  point (the scoring itself left out), which gives the time to 0.94;
- LeNet-5 as a user runs it: ``cnnzoo train --recipe lenet-91`` (which ends with its flip-TTA test
  figure) against the plain PyTorch script ``python -m benchmarks.plain_loop``, both as processes.

``python -m benchmarks.time_to_accuracy --race --rounds 2 --write`` runs the race alone and writes
its section of docs/benchmarks.md (``python -m benchmarks.run --only time_to_accuracy`` runs all
three parts, three rounds each, about two hours on a 2-core CPU).

``python -m benchmarks.time_to_accuracy --ablation`` measures the ablation of docs/results.md
instead: the round-1 recipe, then one trick added at a time, epochs to 0.94 and wall time each.
Test accuracy is reported, never used to choose: the recipes were chosen on validation splits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Section

RACE = ("fashion-fast", "fashion-94-5min")
TARGET = 0.94
QUICK_LIMIT = 128  # images of each split in a --quick run (one epoch, one round)
SILENT = ["--no-progress", "--no-tensorboard", "--no-plots"]


def _process(argv: list[str]) -> tuple[float, str]:
    """Run ``python ARGV`` to the end; (wall seconds from process start, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=os.environ)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{' '.join(argv[:4])}... failed: {last}")
    return wall, proc.stdout


def train_process(recipe: str, seed: int, quick: bool) -> dict:
    """``cnnzoo train --recipe RECIPE`` as a user types it; its wall time and final test figure."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--limit", str(QUICK_LIMIT), "--epochs", "1"] if quick else []
        argv = ["-m", "cnnzoo", "train", "--recipe", recipe, "--seed", str(seed)]
        wall, _ = _process([*argv, *extra, "--no-progress", "--out", f"{tmp}/run"])
        test = json.loads(Path(tmp, "run", "test.json").read_text())
    views = f", {test['tta']} TTA" if test["tta"] != "none" else ""
    return {"run": f"--recipe {recipe}{views}", "test accuracy": test["accuracy"], "wall s": wall}


def plain_process(seed: int, quick: bool) -> dict:
    """The plain PyTorch script, as a process."""
    epochs = 1 if quick else 5
    argv = ["-m", "benchmarks.plain_loop", "--seed", str(seed), "--epochs", str(epochs)]
    wall, out = _process(argv + (["--limit", str(QUICK_LIMIT)] if quick else []))
    acc = float(out.split("test accuracy")[-1].split()[0])
    run = f"plain loop script (tanh LeNet-5, {epochs} epochs)"
    return {"run": run, "test accuracy": acc, "wall s": wall}


def _shown(rows: list[dict]) -> list[dict]:
    """The rows with their test accuracy written to four places, for the table."""
    return [{**row, "test accuracy": f"{row['test accuracy']:.4f}"} for row in rows]


def alternate(contestants: dict, rounds: int) -> tuple[list[dict], dict]:
    """Every contestant once per round, the order reversed every other round (the machine's
    speed drifts); the rows and each one's medians."""
    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    for seed in range(rounds):
        order = list(contestants.items())
        for name, fn in order[::-1] if seed % 2 else order:
            runs[name].append({"round": seed, **fn(seed)})
            print(f"[time_to_accuracy] {name} round {seed}: {runs[name][-1]}", flush=True)
    medians = {
        name: {
            "round": "median",
            "run": mine[0]["run"],
            "test accuracy": statistics.median(r["test accuracy"] for r in mine),
            "wall s": statistics.median(r["wall s"] for r in mine),
        }
        for name, mine in runs.items()
    }
    rows = [row for group in zip(*runs.values(), strict=True) for row in group]
    return rows + list(medians.values()), medians


def accuracy_curve(
    recipe: str,
    seed: int,
    limit: int | None = None,
    model: str | None = None,
    model_args: dict | None = None,
    score_from: float = 0.0,
    also_views: str | None = None,
    **config,
) -> list[dict]:
    """Test accuracy (with the recipe's test-time views) after every epoch of one in-process run,
    with the wall time since the data started loading, the scoring left out. ``model``,
    ``model_args`` and ``config`` change the recipe (the ablation's steps).

    The test set is scored as the run's own final figure is (``final_test``: the run's precision
    and memory format), on the epochs whose validation accuracy reaches ``score_from`` and on the
    last one (elsewhere ``"test acc"`` is None); ``also_views`` scores a second set of test-time
    views on the same weights as ``"test acc, also"``."""
    from cnnzoo.runs import Checkpoint
    from cnnzoo.train import Run
    from cnnzoo.train.loop import final_test, fit, seed_everything

    with tempfile.TemporaryDirectory() as tmp:
        over = {**config, "progress": False, "tensorboard": False, "plots": False, "seed": seed}
        out = Path(tmp, "run")
        run = Run.new(model, recipe=recipe, out=out, model_args=model_args, limit=limit, **over)
        start, scoring, rows = time.perf_counter(), 0.0, []
        seed_everything(run.config.seed, run.config.deterministic)
        bundle = run.load_data()
        net = run.build_model(bundle.num_classes)
        args = {**run.model_args, "num_classes": bundle.num_classes}
        cfg = run.config

        def test(net, views: str) -> float:  # the run's own final figure, under ``views``
            config = dataclasses.replace(cfg, test_tta=views)
            return final_test(net, bundle, config, run.out)["test_acc_last"]

        def score(epoch: int, row: dict) -> None:
            nonlocal scoring
            t = time.perf_counter()
            wall = t - start - scoring
            result = {"epoch": epoch, "val acc": row["val_acc"], "test acc": None, "wall s": wall}
            if row["val_acc"] >= score_from or epoch == cfg.epochs:
                saved = Checkpoint.load(run.out / "last.pt").build_model()  # the averaged weights
                result["test acc"] = test(saved, cfg.test_tta)
                if also_views:
                    result["test acc, also"] = test(saved, also_views)
            rows.append(result)
            scoring += time.perf_counter() - t

        fit(net, bundle, cfg, run.out, model_name=run.model_name, model_args=args,
            data_args=run.data, on_epoch_end=score)  # fmt: skip
    return rows


def time_to(
    rows: list[dict], target: float = TARGET, key: str = "test acc"
) -> tuple[int | None, float | None]:
    """(epochs, wall s) at the first epoch whose test accuracy reaches ``target``."""
    hit = next((r for r in rows if r.get(key) is not None and r[key] >= target), None)
    return (hit["epoch"], hit["wall s"]) if hit else (None, None)


def run(quick: bool = False, rounds: int | None = None, race_only: bool = False) -> Section:
    """The three parts (``race_only``: the race alone); ``rounds`` defaults to 3 (1 if quick)."""
    from .common import fashion_tensors

    if fashion_tensors() is None:
        return Section("Time to accuracy", [], ["skipped: Fashion-MNIST not installed"])
    rounds = rounds or (1 if quick else 3)
    race = {name: (lambda s, n=name: train_process(n, s, quick)) for name in RACE}
    rows, med = alternate(race, rounds)
    notes = [
        f"race: `cnnzoo train --recipe NAME --seed S` processes, {rounds} round(s), the order "
        f"reversed every other round; wall time from process start to the final test figure; "
        f"median {RACE[1]} / {RACE[0]} time: "
        f"{med[RACE[1]]['wall s'] / med[RACE[0]]['wall s']:.3f}; load average at the end: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]
    if race_only:
        return Section("Time to accuracy on Fashion-MNIST: the race", _shown(rows), notes)
    for name in RACE[1:] if quick else RACE:
        curve = accuracy_curve(name, 0, QUICK_LIMIT, epochs=1) if quick else accuracy_curve(name, 0)
        epochs, wall = time_to(curve)
        shown = ", ".join(
            f"{r['epoch']}: {r['test acc']:.4f} at {r['wall s']:.0f} s" for r in curve
        )
        reached = f"{TARGET} after {epochs} epochs, {wall:.0f} s" if epochs else f"no {TARGET}"
        notes.append(f"curve of {name} (seed 0, test accuracy by epoch): {shown}; {reached}")
    lrows, lnote = lenet_race(rounds, quick)
    notes.append(f"{lnote} (rows after the race's)")
    return Section("Time to accuracy on Fashion-MNIST", _shown(rows + lrows), notes)


def lenet_race(rounds: int, quick: bool = False) -> tuple[list[dict], str]:
    """LeNet-5 as a user runs it: ``cnnzoo train --recipe lenet-91`` (ending with its flip-TTA
    test figure) against the plain script, both processes, alternating; rows and a note."""
    lenet = {
        "plain script": lambda s: plain_process(s, quick),
        "cnnzoo train": lambda s: train_process("lenet-91", s, quick),
    }
    rows, med = alternate(lenet, rounds)
    ratio = med["cnnzoo train"]["wall s"] / med["plain script"]["wall s"]
    note = (
        f"LeNet-5 as a user runs it: median cnnzoo / plain script wall time {ratio:.3f} over "
        f"{rounds} alternating round(s), both including process start-up; target: >= 0.91 at "
        f"<= 1.0; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return rows, note


def lenet_only(quick: bool = False, rounds: int | None = None) -> Section:
    """Only the LeNet-5 race (``--lenet``): a few minutes instead of the race's hour."""
    rows, note = lenet_race(rounds or (1 if quick else 3), quick)
    return Section("Time to accuracy: LeNet-5 as a user runs it", _shown(rows), [note])


# the ablation: fashion-fast, then one change at a time, each step keeping the ones before it;
# test-time views change no weights, so their step is the step before it scored a second way
TTA = "flip,translate"
ABLATION = [
    ("round-1 recipe fashion-fast", None, {}),
    ("+ flip-alt+translate on the batch", None, {"batch_augment": "flip-alt+translate"}),
    ("+ warm-up, linear decay; smoothing 0.2", None, {"sched": "warmup-linear",
                                                     "warmup_epochs": 2.0,
                                                     "label_smoothing": 0.2}),
    ("+ frozen BN scales, BN biases at 64x", None, {"freeze_bn_scales": True,
                                                   "bn_bias_lr_mult": 64.0}),
    ("+ weight EMA 0.98 every 5 steps", None, {"ema": 0.98, "ema_every": 5}),
    (f"+ {TTA} TTA (the same weights)", None, {"test_tta": TTA}),
    ("ResNet-9 (16-128 wide, whitened, dirac) instead", "resnet9", {"init": "whiten+dirac"}),
]  # fmt: skip
SCORE_FROM = 0.93  # validation accuracy from which each epoch's weights meet the test set


def ablation(epochs: int | None = None, limit: int | None = None) -> Section:
    """The steps of ``ABLATION`` one after another (``epochs``, ``limit``: a shorter run)."""
    rows, changes = [], {}
    threads = os.cpu_count() or 1  # one thread count for every step, whatever else runs
    curves = []
    for i, (label, model, step) in enumerate(ABLATION):
        changes.update(step)
        if step.get("test_tta"):  # scored with the step before it: no training run of its own
            key, curve = "test acc, also", curves[-1]
        else:
            extra = {"epochs": epochs} if epochs else {}
            args = None
            if model == "resnet9":  # the net of the fashion-94-5min recipe, at its batch and rate
                extra.update(batch_size=256, lr=0.2)
                args = {"widths": (16, 32, 64, 128), "pool_before_bn": True}
            views = ABLATION[i + 1][2].get("test_tta") if i + 1 < len(ABLATION) else None
            curve = accuracy_curve("fashion-fast", 0, limit, model, args, SCORE_FROM, views,
                                   threads=threads, **changes, **extra)  # fmt: skip
            key = "test acc"
            curves.append(curve)
        reached, wall = time_to(curve, key=key)
        train_s = curve[-1]["wall s"]
        rows.append(
            {
                "step": label,
                f"epochs to {TARGET} (test)": reached or f"not in {len(curve)}",
                f"wall s to {TARGET}": f"{wall:.0f}" if wall else "-",
                "s / epoch": f"{train_s / len(curve):.0f}",
                "final test acc": f"{curve[-1][key]:.4f}",
                "val acc by epoch": " ".join(f"{r['val acc']:.3f}" for r in curve),
            }
        )
        print(f"[ablation] {rows[-1]}", flush=True)
        print(f"[ablation curve] {json.dumps(curve)}", flush=True)
    data = f"{limit:,} images of each split" if limit else "the full splits"
    budget = f"{epochs} epochs" if epochs else "the recipe's epochs"
    notes = [
        f"one process, steps run one after another, seed 0, {data}, {budget}, {threads} "
        f"threads; the test set scored (in the run's precision) after each epoch whose "
        f"validation accuracy reached {SCORE_FROM} and after the last; load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
    ]
    return Section("Ablation: time to 0.94 on Fashion-MNIST", rows, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.time_to_accuracy")
    parser.add_argument("--quick", action="store_true", help="a smoke run on 128 images")
    parser.add_argument("--ablation", action="store_true", help="the ablation table instead")
    parser.add_argument("--epochs", type=int, help="the ablation's epochs (default: the recipe's)")
    parser.add_argument("--limit", type=int, help="the ablation's images of each split")
    parser.add_argument("--lenet", action="store_true", help="only the LeNet-5 race (minutes)")
    parser.add_argument("--race", action="store_true", help="only the race (about 18 min a round)")
    parser.add_argument("--rounds", type=int, help="rounds of the races (default 3)")
    parser.add_argument(
        "--write", action="store_true", help="put the section into docs/benchmarks.md (not --quick)"
    )
    args = parser.parse_args(argv)
    if args.write and args.quick:
        parser.error("a --quick run's smoke figures do not go into docs/benchmarks.md")
    start = time.perf_counter()
    if args.lenet:
        section = lenet_only(args.quick, args.rounds)
    elif args.ablation:
        quick = (1, QUICK_LIMIT) if args.quick else (args.epochs, args.limit)
        section = ablation(*quick)
    else:
        section = run(args.quick, args.rounds, args.race)
    if args.write:
        from .run import TRACKED, stamp, write_sections

        command = " ".join(["python -m benchmarks.time_to_accuracy", *(argv or sys.argv[1:])])
        section.notes.append(f"({time.perf_counter() - start:.0f} s; {stamp(command)})")
        part = "-lenet" if args.lenet else "-ablation" if args.ablation else ""
        write_sections(TRACKED, {f"time_to_accuracy{part}": section.to_markdown()})
        print(f"[time_to_accuracy] wrote {TRACKED}")
    print(section.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
