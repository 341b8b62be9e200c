"""One Fashion-MNIST run per family of the zoo, each given about five minutes of this CPU.

    python -m benchmarks.families [--only resnet56,wrn16_4] [--out runs/families]

Every run is a plain ``cnnzoo train`` command (printed, and repeated in docs/results.md), so the
table can be reproduced one row at a time. The recipe is the same for all: SGD with Nesterov
momentum, a one-cycle schedule, label smoothing 0.1, bf16 autocast, one input channel, flips;
the epochs differ so that each run takes roughly the same wall time. The published figures
beside them were trained for 100+ epochs on GPUs; these rows are what five minutes of a 2-core
CPU buys.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

COMMON = ["--data", "fashion-mnist", "--in-chans", "1", "--batch-size", "128", "--opt", "sgd",
          "--nesterov", "--sched", "onecycle", "--label-smoothing", "0.1", "--amp",
          "--no-progress", "--no-tensorboard"]  # fmt: skip

# name -> (extra arguments, the published Fashion-MNIST figure to show beside it)
RUNS: dict[str, tuple[list[str], str]] = {
    "resnet56": (["--img-size", "28", "--epochs", "3", "--lr", "0.1", "--augment", "flip"], ""),
    "wrn16_4": (["--img-size", "28", "--epochs", "1", "--lr", "0.1", "--augment", "flip"],
                "WRN-28-10: 0.959 (benchmark table)"),
    # no batch norm in NiN, and a ReLU on its class maps: with SGD at lr 0.05 every unit died in
    # the first epoch (loss stuck at ln 10); AdamW (later options win) learned fastest in a probe
    "nin_cifar": (["--img-size", "28", "--epochs", "2", "--opt", "adamw", "--lr", "0.002",
                   "--weight-decay", "0.05", "--augment", "flip"], ""),
    "googlenet": (["--img-size", "32", "--epochs", "3", "--lr", "0.05", "--augment", "flip"],
                  "GoogLeNet: 0.937 (benchmark table)"),
    "mobilenet_v1": (["--img-size", "32", "--epochs", "4", "--lr", "0.1", "--augment", "flip"],
                     "MobileNet: 0.950 (benchmark table)"),
    "vgg11_bn": (["--img-size", "32", "--epochs", "1", "--lr", "0.02", "--augment", "flip"],
                 "VGG16: 0.935 (benchmark table)"),
}  # fmt: skip


def command(name: str, out: Path) -> list[str]:
    extra, _ = RUNS[name]
    return ["cnnzoo", "train", name, *COMMON, *extra, "--out", str(out / name)]


def run_one(name: str, out: Path) -> dict:
    argv = command(name, out)
    print("$ " + " ".join(argv), flush=True)
    exe = [sys.executable, "-m", "cnnzoo", *argv[1:]]
    start = time.perf_counter()
    proc = subprocess.run(exe, capture_output=True, text=True)
    wall = time.perf_counter() - start
    done = [line for line in proc.stdout.splitlines() if line.startswith("cnnzoo train: done ")]
    if proc.returncode or not done:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", flush=True)
        return {"model": name, "error": proc.stderr.strip().splitlines()[-1:], "wall_s": wall}
    summary = json.loads(done[0].removeprefix("cnnzoo train: done "))
    return {
        "model": name,
        "epochs": int(argv[argv.index("--epochs") + 1]),
        "test_acc": summary.get("test_acc_last"),
        "best_val_acc": summary["best_val_acc"],
        "wall_s": wall,
        "published": RUNS[name][1],
        "command": " ".join(argv),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.families", description=__doc__)
    p.add_argument("--only", default="", help="comma-separated model names")
    p.add_argument("--out", default="runs/families", help="run directories and results.json")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        p.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        results.append(run_one(name, out))
        print(json.dumps(results[-1]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print("| model | epochs | test accuracy | wall time | published (GPU, long schedules) |")
    print("|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['model']} | - | failed: {r['error']} | {r['wall_s']:.0f} s | |")
            continue
        print(f"| {r['model']} | {r['epochs']} | {r['test_acc']:.4f} | "
              f"{r['wall_s'] / 60:.1f} min | {r['published']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
