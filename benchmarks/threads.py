"""CPU threads on a busy machine: LeNet-5 training steps with torch's default thread count, with
one thread, and with the count ``cnnzoo.threads.apply_threads`` picks, on the machine as it is and
with a competing busy loop on every core that the benchmark starts and stops itself.

Why torch's default suffers: its OpenMP runtime (GNU libgomp in the PyPI wheels) ends every
parallel region at a barrier, and a thread that reaches it first spin-waits for the others
(``OMP_WAIT_POLICY=ACTIVE`` behaviour, libgomp's default spin count) before it sleeps. When another
process holds a core, one of torch's threads is descheduled for a whole time slice and its
partner burns its own core spinning, for every small operation of the step. Each thread-count
setting is therefore also run under ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once),
and under ``KMP_BLOCKTIME=0``, the Intel OpenMP knob, which libgomp ignores: a control.

The OpenMP settings are read when the runtime starts, so each environment is its own process;
inside it the thread counts take turns in alternating rounds (``torch.set_num_threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import Section

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENVIRONMENTS = {  # label -> extra environment of the worker process
    "default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "KMP_BLOCKTIME=0": {"KMP_BLOCKTIME": "0"},
}
SETTINGS = ["torch default", "--threads 1", "cnnzoo default"]
WARMUP = 10  # untimed steps after each change of thread count
MIN_SECONDS = 1.5  # each timed window lasts at least this long (and at least --steps steps)


def worker(steps: int, rounds: int, batch: int = 64, min_seconds: float = MIN_SECONDS) -> dict:
    """Milliseconds per LeNet-5 training step (SGD, batch ``batch`` of 1x32x32) for each thread
    setting, medians over ``rounds`` alternating rounds of ``steps`` steps each."""
    import torch

    import cnnzoo
    from cnnzoo.threads import apply_threads

    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 1, 32, 32), torch.randint(0, 10, (batch,))
    torch_default = torch.get_num_threads()  # one per core, as torch starts

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    counts = {
        "torch default": lambda: torch.set_num_threads(torch_default) or torch_default,
        "--threads 1": lambda: apply_threads(1),
        "cnnzoo default": lambda: apply_threads(None),
    }
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    used: dict[str, list[int]] = {s: [] for s in SETTINGS}
    for _ in range(rounds):
        for setting in SETTINGS:
            used[setting].append(counts[setting]())
            for _ in range(WARMUP):  # at this count: OpenMP starts its new team of threads
                step()
            start, done = time.perf_counter(), 0
            while done < steps or time.perf_counter() - start < min_seconds:
                step()  # an idle machine's 5-ms steps: a 150-ms window was mostly noise
                done += 1
            times[setting].append((time.perf_counter() - start) / done * 1e3)
    return {
        s: {"ms": statistics.median(times[s]), "threads": sorted(set(used[s]))} for s in SETTINGS
    }


def _run_worker(extra_env: dict, steps: int, rounds: int, min_seconds: float) -> dict:
    env = {**os.environ, **extra_env}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # torch's own default, not the caller's
        env.pop(key, None)
    argv = [sys.executable, "-m", "benchmarks.threads", "--worker"]
    argv += ["--steps", str(steps), "--rounds", str(rounds), "--min-seconds", str(min_seconds)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _busy_loops(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep one core busy until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def run(quick: bool = False) -> Section:
    steps, rounds, min_seconds = (3, 1, 0.0) if quick else (30, 3, MIN_SECONDS)
    environments = {"default": {}} if quick else ENVIRONMENTS  # a smoke run: one of each
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows, loads = [], {}
    for machine_state in ("as found", f"busy: {cores} competing busy loops"):
        hogs = _busy_loops(cores) if machine_state.startswith("busy") else []
        try:
            time.sleep(1.0 if hogs else 0.0)  # let the loops reach the run queue
            before = os.getloadavg()[0]
            results = {
                name: _run_worker(env, steps, rounds, min_seconds)
                for name, env in environments.items()
            }
            loads[machine_state] = (before, os.getloadavg()[0])
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        for label, result in results.items():
            best = min(r["ms"] for r in result.values())
            row = {"machine": machine_state, "OpenMP environment": label}
            for setting in SETTINGS:
                threads = "/".join(str(t) for t in result[setting]["threads"])
                row[f"{setting} ms/step (threads)"] = f"{result[setting]['ms']:.1f} ({threads})"
                row[f"{setting} / best"] = result[setting]["ms"] / best
            rows.append(row)
    notes = [_reading(results)]  # the busy state's, the last one measured
    notes += [
        f"LeNet-5 training steps, SGD, batch 64 of 1x32x32, at least {steps} timed steps and "
        f"{min_seconds} s per setting after {WARMUP} warm-up steps, median of {rounds} "
        f"alternating round(s) inside each worker process; "
        f"{cores} cores",
        "1-minute load average before/after each state (the machine is shared with other work): "
        + "; ".join(f"{state}: {a:.2f} -> {b:.2f}" for state, (a, b) in loads.items()),
        "`cnnzoo default` = cnnzoo.threads.default_threads(): the usable cores less the other "
        "runnable tasks at that moment (/proc/loadavg)",
    ]
    return Section("Threads on a shared machine: LeNet-5 training steps", rows, notes)


def _reading(busy: dict) -> str:
    """What the busy machine's figures say about spin-waiting, in one sentence."""
    spin, one = busy["default"]["torch default"]["ms"], busy["default"]["--threads 1"]["ms"]
    text = f"busy machine: torch's default threads {spin:.0f} ms/step, one thread {one:.0f}"
    if "OMP_WAIT_POLICY=PASSIVE" in busy:
        passive = busy["OMP_WAIT_POLICY=PASSIVE"]["torch default"]["ms"]
        blocktime = busy["KMP_BLOCKTIME=0"]["torch default"]["ms"]
        verdict = (
            "so the loss is OpenMP spin-waiting"
            if passive < 0.5 * spin
            else "so spin-waiting is not what is lost here"
        )
        text += (
            f"; the same threads under OMP_WAIT_POLICY=PASSIVE {passive:.0f} ms/step, {verdict} "
            f"(KMP_BLOCKTIME=0, a knob libgomp does not read: {blocktime:.0f} ms/step)"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help="time the settings in this process")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--min-seconds", type=float, default=MIN_SECONDS)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.steps, args.rounds, min_seconds=args.min_seconds)))
    else:
        print(run(quick=args.quick).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
