"""The benchmarks are not timed tests: the suite only checks that the quick smoke run of every
benchmark completes and writes its report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmarks_write_report(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    from benchmarks.run import BENCHMARKS

    assert report.count("\n## ") == len(BENCHMARKS)
    assert "FAILED" not in report
    assert "machine:" in report and "torch" in report
