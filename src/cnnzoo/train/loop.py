"""The training loop: ``train_one_epoch`` and ``fit`` (epochs, validation, checkpoints, resume).

Exact resumption rests on three things: every source of randomness is re-seeded from
``(seed, epoch)`` at the start of an epoch (shuffling, augmentation, dropout), the optimiser,
schedule and scaler states are in the checkpoint, and ``last.pt`` is written only at the end of an
epoch. A run stopped after epoch 2 and resumed therefore repeats epochs 3.. exactly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, load_state_dict_checked, save_checkpoint
from ..data import DataBundle, make_loader
from ..errors import CheckpointError, CnnzooError
from .config import TrainConfig
from .distributed import all_reduce_sum, broadcast_object, dist_info, resolve_device
from .evaluate import autocast, evaluate
from .report import TensorBoardLog, plot_curves, write_metrics_csv
from .schedule import LRSchedule, build_optimizer

# Weights of the auxiliary classifiers' losses, from the papers: GoogLeNet adds each with 0.3;
# the Inception v3 paper gives none, 0.4 is the weight of PyTorch's fine-tuning tutorial.
AUX_WEIGHTS = {"googlenet": 0.3, "inception_v3": 0.4}
DEFAULT_AUX_WEIGHT = 0.3


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch (CPU and CUDA); ``deterministic`` also selects deterministic kernels."""
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def compute_loss(
    out, y: torch.Tensor, label_smoothing: float = 0.0, aux_weight: float = DEFAULT_AUX_WEIGHT
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, main logits). A tuple output is (main, aux1, aux2, ...): the auxiliary
    classifiers' cross-entropies are added with ``aux_weight`` each (None entries are skipped)."""
    if isinstance(out, (tuple, list)):
        main, aux = out[0], [a for a in out[1:] if a is not None]
    else:
        main, aux = out, []
    loss = F.cross_entropy(main, y, label_smoothing=label_smoothing)
    for a in aux:
        loss = loss + aux_weight * F.cross_entropy(a, y, label_smoothing=label_smoothing)
    return loss, main


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    device: torch.device,
    schedule: LRSchedule | None = None,
    start_step: int = 0,
    scaler: torch.amp.GradScaler | None = None,
    aux_weight: float = DEFAULT_AUX_WEIGHT,
    desc: str = "train",
) -> dict:
    """One pass over ``loader``; returns ``{"loss", "accuracy", "n", "images_per_s", "time_s"}``
    (summed over all processes under torchrun)."""
    model.train()
    amp_dtype = amp_dtype_of(config, device)
    rank = dist_info()[0]
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(
        total=total,
        desc=desc,
        disable=not config.progress or rank != 0,
        leave=False,
        dynamic_ncols=True,
    )
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if schedule is not None:
            schedule.step(start_step + i)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            out = model(x)
            loss, logits = compute_loss(out, y, config.label_smoothing, aux_weight)
        if not torch.isfinite(loss):
            raise CnnzooError(
                f"loss is {loss.item()} at step {i} of {desc}; lower --lr or add --grad-clip"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        n = len(y)
        loss_sum += loss.item() * n
        correct += int((logits.argmax(1) == y).sum())
        seen += n
        bar.update(1)
        if i % 10 == 0 or i + 1 == total:
            rate = seen / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.4f}",
                acc=f"{correct / seen:.3f}",
                img_s=f"{rate:,.0f}",
                refresh=False,
            )
    bar.close()
    elapsed = time.perf_counter() - start
    loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], device)
    return {
        "loss": loss_sum / max(seen, 1),
        "accuracy": correct / max(seen, 1),
        "n": int(seen),
        "images_per_s": seen / max(elapsed, 1e-9),
        "time_s": elapsed,
    }


def amp_dtype_of(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """None without ``amp``; else bf16 on the CPU and fp16 on CUDA unless ``amp_dtype`` says."""
    if not config.amp:
        return None
    if config.amp_dtype is not None:
        return getattr(torch, config.amp_dtype)
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def fit(
    model: nn.Module,
    bundle: DataBundle,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    model_args: dict[str, Any],
    param_groups: Iterable[dict] | None = None,
    lr_mult: dict[str, float] | None = None,
    resume: dict | str | os.PathLike | None = None,
    data_args: dict | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train ``model`` on ``bundle.train``, validating on ``bundle.val`` after every epoch.

    Writes to ``out_dir``: ``last.pt`` (every epoch) and ``best.pt`` (best validation accuracy),
    ``metrics.csv``, TensorBoard events and ``curves.png``. Only parameters with
    ``requires_grad`` are optimised; ``param_groups``/``lr_mult`` give groups their own rates (see
    ``build_optimizer``); the model is used as given (frozen or FrozenBatchNorm layers stay so).
    ``resume``: a checkpoint written by ``fit`` (or its path, or the run directory) to continue
    from. ``data_args`` (how ``bundle`` was loaded) is stored so that ``--resume`` can reload it.
    ``on_epoch_end(epoch, row)`` runs after each epoch's checkpoint is on disk.
    Under torchrun, call it in every process with the process group initialised.

    Returns ``{"history": [...], "best_val_acc", "best_epoch", "last", "best", "epochs_run"}``.
    A KeyboardInterrupt saves ``interrupted.pt`` (the weights mid-epoch) and is re-raised.
    """
    out = Path(out_dir)
    with _deterministic_mode(config):
        rank, world, _ = dist_info()
        device = resolve_device(config.device)
        ckpt = _resume_checkpoint(resume)
        if ckpt is not None:
            load_state_dict_checked(model, ckpt["state_dict"], source="resume checkpoint")
        if world > 1 and config.sync_bn:
            if device.type != "cuda":  # PyTorch's SyncBatchNorm has no CPU implementation
                raise CnnzooError(
                    "--sync-bn needs CUDA devices (SyncBatchNorm is GPU-only); drop it"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        raw = model.to(device)
        if config.channels_last:
            raw = raw.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(raw, config, param_groups, lr_mult)
        loader = make_loader(
            bundle.train,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            rank=rank,
            world_size=world,
            drop_last=world > 1,
            num_workers=config.num_workers,
        )
        schedule = LRSchedule(optimizer, config, len(loader))
        fp16 = amp_dtype_of(config, device) == torch.float16
        scaler = torch.amp.GradScaler(device.type) if fp16 else None
        history: list[dict] = []
        start_epoch, best_acc, best_epoch = 0, -1.0, 0
        if ckpt is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
            schedule.load_state_dict(ckpt["scheduler"])
            if scaler is not None and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            history = list(ckpt.get("history", []))
            start_epoch = int(ckpt["epoch"])
            best_acc, best_epoch = (
                float(ckpt.get("best_val_acc", -1)),
                int(ckpt.get("best_epoch", 0)),
            )
        net = raw
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
        if config.compile:
            net = torch.compile(net)
        aux_weight = _aux_weight(config, raw, model_name)
        main = rank == 0
        if main:
            out.mkdir(parents=True, exist_ok=True)
        tb = TensorBoardLog(out, config.tensorboard and main, start_epoch)
        meta = {
            "classes": list(bundle.classes),
            "preprocess": dict(bundle.preprocess),
            "config": config.to_dict(),
            "data": dict(data_args or {}),
        }
        try:
            for epoch in range(start_epoch, config.epochs):
                # dropout and other in-model randomness: a fresh, per-epoch (and per-rank) stream
                torch.manual_seed(config.seed * 1_000_003 + epoch * 7919 + rank)
                loader.set_epoch(epoch)
                tr = train_one_epoch(
                    net,
                    loader,
                    optimizer,
                    config,
                    device,
                    schedule,
                    epoch * len(loader),
                    scaler,
                    aux_weight,
                    desc=f"epoch {epoch + 1}/{config.epochs}",
                )
                va = None
                if main or world == 1:
                    va = evaluate(
                        raw,
                        bundle.val,
                        bundle.classes,
                        device,
                        config.eval_batch_size,
                        amp_dtype_of(config, device),
                        config.channels_last,
                    )
                va = broadcast_object(
                    {k: va[k] for k in ("loss", "accuracy", "top5")} if va is not None else None
                )
                schedule.epoch_end(va["accuracy"])
                row = {
                    "epoch": epoch + 1,
                    "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": tr["loss"],
                    "train_acc": tr["accuracy"],
                    "val_loss": va["loss"],
                    "val_acc": va["accuracy"],
                    "val_top5": va["top5"],
                    "images_per_s": tr["images_per_s"],
                    "time_s": tr["time_s"],
                }
                history.append(row)
                improved = row["val_acc"] > best_acc
                if improved:
                    best_acc, best_epoch = row["val_acc"], epoch + 1
                if main:
                    # Ctrl-C waits until the epoch's files are whole and no writer holds a lock
                    with _sigint_deferred():
                        _print_epoch(row, config, improved)
                        save_checkpoint(
                            out / "last.pt",
                            model_name,
                            model_args,
                            raw.state_dict(),
                            **meta,
                            epoch=epoch + 1,
                            metrics=row,
                            history=history,
                            best_val_acc=best_acc,
                            best_epoch=best_epoch,
                            optimizer=optimizer.state_dict(),
                            scheduler=schedule.state_dict(),
                            scaler=scaler.state_dict() if scaler is not None else None,
                            rng=_rng_state(),
                        )
                        if improved:
                            _atomic_copy(out / "last.pt", out / "best.pt")
                        write_metrics_csv(history, out / "metrics.csv")
                        tb.log(row)
                        if config.plots:
                            plot_curves(history, out / "curves.png")
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, row)
        except KeyboardInterrupt:
            if main:
                save_checkpoint(
                    out / "interrupted.pt",
                    model_name,
                    model_args,
                    raw.state_dict(),
                    **meta,
                    epoch=len(history),  # epochs completed; the current one was cut short
                    history=history,
                )
            raise
        finally:
            with _sigint_deferred():
                tb.close()
            if config.channels_last:  # hand the model back in the layout it came in
                raw.to(memory_format=torch.contiguous_format)
        return {
            "history": history,
            "best_val_acc": best_acc,
            "best_epoch": best_epoch,
            "last": str(out / "last.pt"),
            "best": str(out / "best.pt"),
            "epochs_run": config.epochs - start_epoch,
        }


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it as KeyboardInterrupt.

    A KeyboardInterrupt raised inside a writer can leave it broken: inside TensorBoard's queue
    bookkeeping it makes the final ``close()`` wait forever. Only the main thread can take
    signals; elsewhere the block runs as is."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # None: a handler not installed from Python, which could not be put back
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _deterministic_mode(config: TrainConfig):
    """Deterministic kernels during ``fit`` if asked; a library call leaves no global trace."""
    was = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        seed_everything(config.seed, deterministic=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _resume_checkpoint(resume) -> dict | None:
    if resume is None or isinstance(resume, dict):
        return resume
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pt"
    ckpt = load_checkpoint(path)
    for key in ("optimizer", "scheduler", "epoch"):
        if ckpt.get(key) is None:
            raise CheckpointError(
                f"{path} cannot be resumed: it has no {key!r} state (not a last.pt)"
            )
    return ckpt


def _aux_weight(config: TrainConfig, model: nn.Module, model_name: str) -> float:
    if config.aux_weight is not None:
        return config.aux_weight
    own = getattr(model, "aux_loss_weight", None)
    return float(own) if own is not None else AUX_WEIGHTS.get(model_name, DEFAULT_AUX_WEIGHT)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _print_epoch(row: dict, config: TrainConfig, improved: bool) -> None:
    if not config.progress:
        return
    mark = " *" if improved else ""
    print(
        f"epoch {row['epoch']:>3}/{config.epochs}  lr {row['lr']:.3g}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  "
        f"{row['images_per_s']:,.0f} img/s{mark}",
        flush=True,
    )


__all__ = ["AUX_WEIGHTS", "compute_loss", "fit", "seed_everything", "train_one_epoch"]
