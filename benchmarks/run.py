"""Run every benchmark side by side and write docs/benchmarks.md.

    python -m benchmarks.run            # the full set (tens of minutes on a 2-core CPU)
    python -m benchmarks.run --quick    # a smoke run: small sizes, few steps (about a minute)
    python -m benchmarks.run --only matmul_peak,memory

This machine is shared and noisy: each benchmark times its contestants in the same run, repeats,
and reports medians and ratios rather than absolute figures alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
import time
import traceback
from pathlib import Path

from .common import Section, machine

BENCHMARKS = [
    "matmul_peak",
    "train_throughput",
    "inference",
    "memory",
    "savings",
    "loader",
    "fashion",
    "time_to_accuracy",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", default="docs/benchmarks.md", help="where to write the report")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")

    sections: list[Section] = []
    failed = 0
    for name in names:
        start = time.perf_counter()
        print(f"[benchmarks] {name} ...", flush=True)
        try:
            section = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception:  # a broken benchmark is reported, the others still run
            failed += 1
            trace = traceback.format_exc().strip().splitlines()[-1]
            section = Section(name, [], [f"FAILED: {trace}"])
        section.notes.append(f"({time.perf_counter() - start:.0f} s)")
        sections.append(section)
        print(section.to_markdown(), flush=True)

    mode = "quick smoke run: figures are indicative only" if args.quick else "full run"
    header = [
        "# Benchmarks",
        "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}",
        f"- command: `python -m benchmarks.run{' --quick' if args.quick else ''}` ({mode})",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(header) + "\n" + "\n".join(s.to_markdown() for s in sections))
    print(f"[benchmarks] wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
