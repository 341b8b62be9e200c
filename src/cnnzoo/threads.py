"""How many CPU threads torch uses: a default that survives a busy machine.

torch's default is one OpenMP thread per core. Every operation then ends at a barrier where all
threads meet; when other processes keep the cores busy, one of the threads is often descheduled
and the others spin-wait for it a whole scheduler time slice, for every small operation. Measured
on a 2-core machine (LeNet-5 training steps, batch 64, medians of alternating rounds, see
docs/benchmarks.md): idle, 2 threads 4.5 ms/step against 6.6 ms with 1; with both cores busy,
2 threads 50 ms/step against 11-25 ms with 1.

So the default counts the cores this process may use and leaves out those that other runnable
processes occupy at the start (``/proc/loadavg``'s running count): all cores when the machine
is idle, fewer when it is busy. An explicit count always wins: ``--threads``, and else an
``OMP_NUM_THREADS`` in the environment, as torch itself takes it.
"""

from __future__ import annotations

import os
import time

__all__ = ["apply_threads", "default_threads"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _own_running() -> int:
    """This process's threads that are runnable now (at least the one reading this).

    torch's OpenMP workers spin for a while after each parallel region, so they show as running
    tasks in ``/proc/loadavg``: counted as "other" processes, an idle machine looked busy to a
    process that had already computed with two threads, and the default alternated between 2
    and 1 from one call to the next."""
    running = 0
    try:
        for task in os.scandir("/proc/self/task"):
            with open(os.path.join(task.path, "stat")) as f:
                # the state follows the command name, which is in parentheses and may hold spaces
                if f.read().rpartition(")")[2].split()[0] == "R":
                    running += 1
    except (OSError, IndexError):
        pass
    return max(1, running)


def _others_running() -> int | None:
    """Runnable tasks of other processes right now, or None where the system does not say."""
    before = _own_running()  # a spinning worker may stop between the two reads: count it
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - max(before, _own_running()))


SAMPLES = 5  # reads of the running count, SAMPLE_GAP seconds apart: the least is the load
SAMPLE_GAP = 0.002


def default_threads() -> int:
    """The cores this process may use, less those other runnable processes hold now.

    The running count is a snapshot: a task that runs for a millisecond shows in one read in
    twenty on an idle machine, so the count is read a few times and the least taken. Processes
    that keep cores busy show in every read. ``OMP_NUM_THREADS``, where it holds a positive
    whole number, is taken as it is, as torch takes it."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = _cpus()
    reads = []
    for i in range(SAMPLES):
        if i:
            time.sleep(SAMPLE_GAP)
        reads.append(_others_running())
    if None in reads:
        return cpus
    return max(1, min(cpus, cpus - min(reads)))


def apply_threads(n: int | None) -> int:
    """Set torch's intra-op thread count: ``n``, or :func:`default_threads` when None.

    Returns the count used. ``n`` below 1 is an error.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    import torch

    count = n if n is not None else default_threads()
    torch.set_num_threads(count)
    return count
