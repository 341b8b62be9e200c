"""torchrun / DistributedDataParallel plumbing: which process am I, and start/stop the group."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..errors import CnnzooError


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process; (0, 1, 0) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def is_main_process() -> bool:
    """Rank 0 of the group; before the group starts or after it ends, torchrun's ``RANK``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def setup_distributed() -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1):
    NCCL when CUDA is present, gloo on CPU. Returns whether this is a distributed run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return True


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: this process's GPU (its ``LOCAL_RANK`` under torchrun) when CUDA is present,
    else the CPU; anything else is passed to ``torch.device``."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise CnnzooError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnzooError(f"device {spec!r} asked for but CUDA is not available; use --device cpu")
    return device


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers across processes (identity outside a process group)."""
    if dist_info()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (identity outside a process group)."""
    if dist_info()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
