"""Run the benchmarks side by side and write their sections of docs/benchmarks.md.

    python -m benchmarks.run            # the full set (tens of minutes on a 2-core CPU)
    python -m benchmarks.run --quick    # a smoke run: small sizes, few steps (about a minute)
    python -m benchmarks.run --only matmul_peak,memory

A full run replaces, in docs/benchmarks.md, only the sections of the benchmarks that ran (each
sits between ``<!-- benchmark: NAME -->`` and ``<!-- end: NAME -->``, stamped with its own date,
machine and command); the other sections and the hand-written text are kept byte for byte. A
``--quick`` run's figures are indicative only: it writes a whole report to a temporary file (or
to ``--out``), never to the tracked docs/benchmarks.md.

This machine is shared and noisy: each benchmark times its contestants in the same run, repeats,
and reports medians and ratios rather than absolute figures alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import re
import sys
import tempfile
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
    "explore",
    "startup",
    "threads",
    "defaults",
    "profile",
    "time_to_accuracy",
]
TRACKED = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def begin_marker(name: str) -> str:
    return f"<!-- benchmark: {name} -->"


def end_marker(name: str) -> str:
    return f"<!-- end: {name} -->"


def marked(name: str, markdown: str) -> str:
    """One benchmark's section between its markers."""
    return f"{begin_marker(name)}\n{markdown.rstrip()}\n{end_marker(name)}\n"


def merge_sections(document: str, sections: dict[str, str]) -> str:
    """``document`` with the marked section of each name in ``sections`` replaced by the new
    text (``marked``), and those it lacks added after the last marked one (or at the end);
    everything else is left as it was."""
    for name, markdown in sections.items():
        block = marked(name, markdown)
        pattern = re.compile(
            re.escape(begin_marker(name)) + r".*?" + re.escape(end_marker(name)) + r"\n?", re.S
        )
        if found := pattern.search(document):
            document = document[: found.start()] + block + document[found.end() :]
        elif ends := list(re.finditer(r"<!-- end: [\w-]+ -->\n?", document)):
            at = ends[-1].end()  # after the last benchmark, before any hand-written text
            document = document[:at] + "\n" + block + document[at:]
        else:
            document = document.rstrip("\n") + "\n\n" + block if document.strip() else block
    return document


def stamp(command: str) -> str:
    """When, how and where a section was measured: ``run DATE (`COMMAND`) on MACHINE``."""
    when = dt.datetime.now().isoformat(timespec="minutes")
    return f"run {when} (`{command}`) on {machine()}"


def _stamp(quick: bool, names: list[str]) -> str:
    only = f" --only {','.join(names)}" if names != BENCHMARKS else ""
    return stamp(f"python -m benchmarks.run{' --quick' if quick else ''}{only}")


def write_sections(out: Path, sections: dict[str, str]) -> None:
    """Replace these marked sections of the report ``out`` (``merge_sections``), the rest kept."""
    previous = out.read_text() if out.exists() else "# Benchmarks\n"
    out.write_text(merge_sections(previous, sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument(
        "--out",
        type=Path,
        help="report file (default: docs/benchmarks.md for a full run, its sections replaced; "
        "a temporary file for --quick)",
    )
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    out = args.out or (
        Path(tempfile.gettempdir()) / "cnnzoo-benchmarks-quick.md" if args.quick else TRACKED
    )
    if args.quick and out.resolve() == TRACKED:
        parser.error("a --quick run's smoke figures do not go into docs/benchmarks.md; drop --out")

    sections: dict[str, str] = {}
    failed = 0
    stamp = _stamp(args.quick, names)
    for name in names:
        start = time.perf_counter()
        print(f"[benchmarks] {name} ...", flush=True)
        try:
            section = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception:  # a broken benchmark is reported, the others still run
            failed += 1
            trace = traceback.format_exc().strip().splitlines()[-1]
            section = Section(name, [], [f"FAILED: {trace}"])
        section.notes.append(f"({time.perf_counter() - start:.0f} s; {stamp})")
        sections[name] = section.to_markdown()
        print(sections[name], flush=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    if args.quick:  # a whole report of its own
        header = f"# Benchmarks (quick smoke run: figures are indicative only)\n\n- {stamp}\n"
        out.write_text(merge_sections(header, sections))
    else:
        write_sections(out, sections)
    print(f"[benchmarks] wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
