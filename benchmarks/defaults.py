"""Defaults that win: `cnnzoo train MODEL --data fashion-mnist --epochs 5` with no other option,
against a 60-line plain PyTorch loop (SGD Nesterov, one-cycle, flips, label smoothing 0.1,
batch 128) given the same epochs.

Both run as the processes a user starts, timed from process start to the final test figure on the
10,000 test images (start-up, data loading and the test pass count on both sides). The contestants
alternate within each round; the table gives each run and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from .common import Section, fashion_tensors

# the plain loop as a script of its own: load, train, score, print one JSON line
PLAIN = """
import json, sys, torch
import cnnzoo
from benchmarks import plain_loop
from benchmarks.common import fashion_tensors
model_name, epochs, seed, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
xtr, ytr, xte, yte = fashion_tensors()
if limit:
    xtr, ytr, xte, yte = xtr[:limit], ytr[:limit], xte[:limit], yte[:limit]
torch.manual_seed(seed)
model = cnnzoo.create_model(model_name, in_chans=1)
plain_loop.train(model, xtr, ytr, epochs=epochs, batch=128, max_lr=0.1)
print(json.dumps({"test_acc": plain_loop.accuracy(model, xte, yte)}))
"""


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {proc.stderr[-2000:]}")
    return wall, proc.stdout


def plain(model: str, epochs: int, seed: int, limit: int) -> dict:
    wall, out = _timed([sys.executable, "-c", PLAIN, model, str(epochs), str(seed), str(limit)])
    return {"test accuracy": json.loads(out.strip().splitlines()[-1])["test_acc"], "wall s": wall}


def cnnzoo_default(model: str, epochs: int, seed: int, limit: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cnnzoo", "train", model, "--data", "fashion-mnist",
               "--epochs", str(epochs), "--out", f"{tmp}/run", "--no-progress"]  # fmt: skip
        if seed:
            cmd += ["--seed", str(seed)]
        if limit:
            cmd += ["--limit", str(limit)]
        wall, out = _timed(cmd)
    done = [line for line in out.splitlines() if line.startswith("cnnzoo train: done ")][-1]
    result = json.loads(done.removeprefix("cnnzoo train: done "))
    return {"test accuracy": result["test_acc_last"], "wall s": wall}


def run(
    quick: bool = False,
    models: tuple[str, ...] = ("lenet5", "resnet20"),
    epochs: int = 5,
    rounds: int = 3,
) -> Section:
    """The race; ``epochs`` and ``rounds`` shorten it for a slow model (the issue's figure is 5
    epochs, 3 rounds)."""
    if quick:
        epochs, rounds = 1, 1
    title = f"Defaults against the plain loop (Fashion-MNIST, {epochs} epochs)"
    if fashion_tensors() is None:
        return Section(title, [], ["skipped: Fashion-MNIST not installed"])
    limit = 2000 if quick else 0
    rows, summary = [], []
    for model in models:
        results: dict[str, list[dict]] = {"plain loop": [], "cnnzoo default": []}
        for seed in range(rounds):
            order = [("plain loop", plain), ("cnnzoo default", cnnzoo_default)]
            if seed % 2:
                order.reverse()  # alternate who goes first: the machine's speed drifts
            for label, contestant in order:
                r = contestant(model, epochs, seed, limit)
                results[label].append(r)
                rows.append({"model": model, "round": seed, "run": label, **r})
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("test accuracy", "wall s")}
               for k, v in results.items()}  # fmt: skip
        summary.append(
            {
                "model": model,
                "plain loop accuracy": med["plain loop"]["test accuracy"],
                "cnnzoo default accuracy": med["cnnzoo default"]["test accuracy"],
                "plain loop wall s": med["plain loop"]["wall s"],
                "cnnzoo default wall s": med["cnnzoo default"]["wall s"],
                "wall ratio (default / plain)": med["cnnzoo default"]["wall s"]
                / med["plain loop"]["wall s"],
            }
        )
    notes = [
        f"Medians of {rounds} rounds (seeds 0..{rounds - 1}), {epochs} epochs each; each run is a "
        "fresh process timed from start to its test figure. Per run:",
        "",
        *_table(rows),
    ]
    return Section(title, summary, notes)


def _table(rows: list[dict]) -> list[str]:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.defaults", description=__doc__)
    parser.add_argument("models", nargs="*", default=["lenet5", "resnet20"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(run(models=tuple(args.models), epochs=args.epochs, rounds=args.rounds).to_markdown())
