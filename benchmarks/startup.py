"""Start-up: the wall time of a fresh process for the commands a newcomer types first.

Each contestant is a new Python process (``python -m cnnzoo ...``, the same as the ``cnnzoo``
script), timed from spawn to exit; the contestants take turns within each round and the table
gives medians. ``python -c pass`` is the interpreter's own floor, ``import torch`` what any
command that builds a model pays, and timm's ``list_models`` the yardstick for ``cnnzoo list``.
``summary alexnet`` with its default options prints a stored, tested table (cnnzoo.summarytable);
with ``--format json`` it builds the model and analyses it live, the path of every other option.
"""

from __future__ import annotations

import importlib.util
import os
import resource
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
    ('python -c "import torch" (what building a model must load)', ["-c", "import torch"], None),
    ("cnnzoo summary alexnet", ["-m", "cnnzoo", "summary", "alexnet"], 2.0),
    (
        "cnnzoo summary alexnet --format json (analysed live)",
        ["-m", "cnnzoo", "summary", "alexnet", "--format", "json"],
        None,
    ),
]


def wall_time(argv: list[str]) -> tuple[float, float]:
    """Seconds from spawning ``python argv`` (this tree's cnnzoo first on the path) to its exit,
    and the CPU seconds (user + system) it used: on a shared machine the wall time grows with
    the load, the CPU time much less. A failing command is an error, not a fast time."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, timeout=300)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def run(quick: bool = False) -> Section:
    has_timm = importlib.util.find_spec("timm") is not None
    contestants = [c for c in CONTESTANTS if "timm" not in c[0] or has_timm]
    rounds = 1 if quick else 3
    times: dict[str, list[float]] = {label: [] for label, _, _ in contestants}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in contestants}
    for _label, argv, _ in [] if quick else contestants:  # warm the caches once
        wall_time(argv)
    load = [os.getloadavg()[0]]
    for _ in range(rounds):
        for label, argv, _ in contestants:
            wall, used = wall_time(argv)
            times[label].append(wall)
            cpu[label].append(used)
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
                "median CPU s": statistics.median(cpu[label]),
                "target s": "" if target is None else target,
                "holds": "" if target is None else ("yes" if median <= target else "NO"),
            }
        )
    by_label = {r["command (fresh process)"].strip("`"): r["median s"] for r in rows}
    warm = "" if quick else " after one warm-up run each"
    notes = [
        f"medians of {rounds} alternating round(s){warm}; "
        f"1-minute load average {min(load):.2f}-{max(load):.2f} on {os.cpu_count()} cores "
        "during the rounds (the machine is shared: compare with the interpreter's floor); CPU s "
        "= user + system time of the process, which a loaded machine inflates far less than "
        "the wall time",
    ]
    timm_label = 'python -c "import timm; timm.list_models()"'
    if timm_label in by_label:
        ratio = by_label["cnnzoo list"] / by_label[timm_label]
        notes.append(f"`cnnzoo list` / timm's `list_models`: {ratio:.2f}")
    return Section("Start-up: fresh processes (targets of the first-contact issue)", rows, notes)
