"""Start-up: the wall time of a fresh process for the commands a newcomer types first.

Each contestant is a new Python process (``python -m cnnzoo ...``, the same as the ``cnnzoo``
script), timed from spawn to exit; the contestants take turns within each round and the table
gives medians. ``python -c pass`` is the interpreter's own floor, ``import torch`` what any
command that builds a model pays, and timm's ``list_models`` the yardstick for ``cnnzoo list``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Section

SRC = str(Path(__file__).resolve().parents[1] / "src")

# (label, argv after the interpreter, target seconds or None)
CONTESTANTS = [
    ("python -c pass (the interpreter alone)", ["-c", "pass"], None),
    ('python -c "import cnnzoo"', ["-c", "import cnnzoo"], None),
    ("cnnzoo --help", ["-m", "cnnzoo", "--help"], 0.5),
    (
        "cnnzoo calc conv --input 227x227x3 --filters 96 --kernel 11 --stride 4",
        ["-m", "cnnzoo", "calc", "conv", "--input", "227x227x3", "--filters", "96"]
        + ["--kernel", "11", "--stride", "4"],
        0.5,
    ),
    ("cnnzoo list", ["-m", "cnnzoo", "list"], 1.5),
    (
        'python -c "import timm; timm.list_models()"',
        ["-c", "import timm; timm.list_models()"],
        None,
    ),
    ('python -c "import torch" (what summary must load)', ["-c", "import torch"], None),
    ("cnnzoo summary alexnet", ["-m", "cnnzoo", "summary", "alexnet"], 2.0),
]


def wall_time(argv: list[str]) -> float:
    """Seconds from spawning ``python argv`` (this tree's cnnzoo first on the path) to its exit;
    a failing command is an error, not a fast time."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, timeout=300)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return seconds


def _has_timm() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def run(quick: bool = False) -> Section:
    contestants = [c for c in CONTESTANTS if "timm" not in c[0] or _has_timm()]
    rounds = 1 if quick else 5
    times: dict[str, list[float]] = {label: [] for label, _, _ in contestants}
    for _label, argv, _ in contestants:  # warm the file cache and the byte-code once
        wall_time(argv)
    load = [os.getloadavg()[0]]
    for _ in range(rounds):
        for label, argv, _ in contestants:
            times[label].append(wall_time(argv))
        load.append(os.getloadavg()[0])
    rows = []
    for label, _, target in contestants:
        median = statistics.median(times[label])
        rows.append(
            {
                "command (fresh process)": f"`{label}`",
                "median s": median,
                "min s": min(times[label]),
                "max s": max(times[label]),
                "target s": "" if target is None else target,
                "holds": "" if target is None else ("yes" if median <= target else "NO"),
            }
        )
    by_label = {r["command (fresh process)"].strip("`"): r["median s"] for r in rows}
    notes = [
        f"medians of {rounds} alternating rounds after one warm-up run each; "
        f"1-minute load average {min(load):.2f}-{max(load):.2f} on {os.cpu_count()} cores "
        "during the rounds (the machine is shared: compare with the interpreter's floor)",
    ]
    timm_label = 'python -c "import timm; timm.list_models()"'
    if timm_label in by_label:
        ratio = by_label["cnnzoo list"] / by_label[timm_label]
        notes.append(f"`cnnzoo list` / timm's `list_models`: {ratio:.2f}")
    return Section("Start-up: fresh processes (targets of the first-contact issue)", rows, notes)
