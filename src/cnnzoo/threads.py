"""How many CPU threads torch uses: a default that survives a busy machine.

torch's default is one OpenMP thread per core. Every operation then ends at a barrier where all
threads meet; when other processes keep the cores busy, one of the threads is often descheduled
and the others spin-wait for it a whole scheduler time slice, for every small operation. Measured
on a 2-core machine (LeNet-5 training steps, batch 64, medians of alternating rounds, see
docs/benchmarks.md): idle, 2 threads 4.5 ms/step against 6.6 ms with 1; with both cores busy,
2 threads 50 ms/step against 11-25 ms with 1.

So the default counts the cores this process may use and leaves out those that other runnable
processes occupy at the start (``/proc/loadavg``'s running count): all cores when the machine
is idle, fewer when it is busy. An explicit count always wins.
"""

from __future__ import annotations

import os

__all__ = ["apply_threads", "default_threads"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _others_running() -> int | None:
    """Runnable tasks other than this one right now, or None where the system does not say."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)  # this process is running while it reads the file


def default_threads() -> int:
    """The cores this process may use, less those other runnable processes hold now."""
    cpus, others = _cpus(), _others_running()
    if others is None:
        return cpus
    return max(1, min(cpus, cpus - others))


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
