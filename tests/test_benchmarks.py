"""The benchmarks are not timed tests: the suite checks that the quick smoke run of every
benchmark completes and writes its report, that a quick run never touches the tracked
docs/benchmarks.md, and that a full run replaces only its own sections of it."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.run import BENCHMARKS, begin_marker, end_marker, merge_sections

ROOT = Path(__file__).resolve().parents[1]
TRACKED = ROOT / "docs" / "benchmarks.md"


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # every benchmark, quick: over three minutes on 2 cores
def test_quick_benchmarks_write_report(tmp_path):
    out = tmp_path / "bench.md"
    proc = _bench("--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    assert report.count("\n## ") == len(BENCHMARKS)
    assert all(begin_marker(n) in report and end_marker(n) in report for n in BENCHMARKS)
    assert "FAILED" not in report
    assert "torch" in report and "--quick" in report


def test_a_quick_run_leaves_the_tracked_report_byte_identical():
    before = hashlib.sha256(TRACKED.read_bytes()).hexdigest()
    proc = _bench("--quick", "--only", "matmul_peak")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert hashlib.sha256(TRACKED.read_bytes()).hexdigest() == before
    written = Path(proc.stdout.strip().splitlines()[-1].removeprefix("[benchmarks] wrote "))
    assert written.resolve() != TRACKED and begin_marker("matmul_peak") in written.read_text()
    proc = _bench("--quick", "--only", "matmul_peak", "--out", str(TRACKED))
    assert proc.returncode == 2 and "docs/benchmarks.md" in proc.stderr
    assert hashlib.sha256(TRACKED.read_bytes()).hexdigest() == before


def test_a_full_run_replaces_only_its_own_sections():
    doc = (
        "# Benchmarks\n\nhand-written header\n\n"
        f"{begin_marker('a')}\n## A\n\nold a\n{end_marker('a')}\n\n"
        f"{begin_marker('b')}\n## B\n\nold b\n{end_marker('b')}\n\n"
        "## Reading this run\n\nhand-written analysis\n"
    )
    new = merge_sections(doc, {"a": "## A\n\nnew a\n", "c": "## C\n\nnew c\n"})
    assert "old a" not in new and "new a" in new
    b = doc[doc.index(begin_marker("b")) : doc.index(end_marker("b"))]
    assert b in new  # the other benchmark's section, byte for byte
    assert new.startswith("# Benchmarks\n\nhand-written header\n\n")
    assert new.endswith("## Reading this run\n\nhand-written analysis\n")
    assert new.index(end_marker("b")) < new.index("## C") < new.index("## Reading this run")
    assert merge_sections(new, {"a": "## A\n\nnew a\n", "c": "## C\n\nnew c\n"}) == new


def test_the_tracked_report_has_one_marked_section_per_benchmark_at_most():
    text = TRACKED.read_text()
    for name in BENCHMARKS:
        assert text.count(begin_marker(name)) == text.count(end_marker(name)) <= 1, name


def test_the_race_alternates_who_goes_first_and_takes_medians():
    from benchmarks.time_to_accuracy import alternate

    calls = []

    def contestant(name, accs):
        def fn(seed):
            calls.append((seed, name))
            return {"run": name, "test accuracy": accs[seed], "wall s": 10.0 * (seed + 1)}

        return fn

    rows, med = alternate({"a": contestant("a", [0.1, 0.5, 0.3]),
                           "b": contestant("b", [0.9, 0.7, 0.8])}, rounds=3)  # fmt: skip
    assert calls == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]
    assert med["a"]["test accuracy"] == 0.3 and med["b"]["test accuracy"] == 0.8
    assert med["a"]["wall s"] == med["b"]["wall s"] == 20.0
    assert [r["round"] for r in rows] == [0, 0, 1, 1, 2, 2, "median", "median"]


def test_a_quick_race_is_refused_a_place_in_the_tracked_report():
    before = hashlib.sha256(TRACKED.read_bytes()).hexdigest()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.time_to_accuracy", "--quick", "--race", "--write"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and "docs/benchmarks.md" in proc.stderr
    assert hashlib.sha256(TRACKED.read_bytes()).hexdigest() == before
