"""The training loop: ``train_one_epoch`` and ``fit`` (epochs, validation, checkpoints, resume).

Exact resumption rests on three things: every source of randomness is re-seeded from
``(seed, epoch)`` at the start of an epoch (shuffling, augmentation, dropout), the optimiser,
schedule and scaler states are in the checkpoint, and ``last.pt`` is written only at the end of an
epoch. A run stopped after epoch 2 and resumed therefore repeats epochs 3.. exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..checkpoint import load_checkpoint, load_state_dict_checked
from ..data import DataBundle, check_trainable, make_loader
from ..errors import CheckpointError, CnnzooError
from ..paths import write_error
from ..runs import TRAIN_STATE_KEYS, Checkpoint, DataSpec, Preprocess, RunLock, check_new_run_dir
from ..viz import plot_curves
from .config import TrainConfig
from .distributed import all_reduce_sum, broadcast_object, dist_info, resolve_device
from .evaluate import autocast, evaluate
from .report import TensorBoardLog, write_metrics_csv
from .schedule import LRSchedule, build_optimizer
from .tricks import WeightEMA
from .tricks.apply import device_batches, prepare_model, trick_param_groups

DEFAULT_AUX_WEIGHT = 0.3  # GoogLeNet's; a model says its own with ``aux_loss_weight``


class DivergedError(CnnzooError):
    """The loss or the weights stopped being finite: the run cannot continue."""


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
    after_step: Callable[[], None] | None = None,
) -> dict:
    """One pass over ``loader``; returns ``{"loss", "accuracy", "n", "images_per_s", "time_s"}``
    (summed over all processes under torchrun). ``after_step()`` runs after every optimiser step
    (the weight average's update)."""
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
    with bar:  # closed on an error too, so that the error does not land on the bar's line
        for i, (x, y) in enumerate(loader):
            if schedule is not None:
                schedule.step(start_step + i)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                out = model(x)
                loss, logits = compute_loss(out, y, config.label_smoothing, aux_weight)
            if not torch.isfinite(loss):  # also catches the previous step's poisoned weights
                raise DivergedError(
                    f"training diverged: the loss is {loss.item()} at step {start_step + i} "
                    f"({desc}, batch {i + 1}); lower --lr or add --grad-clip"
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
            if after_step is not None:
                after_step()
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


@dataclass
class TrainState:
    """Everything that changes as a run trains, beside the weights, and that ``last.pt`` holds so
    that a resume continues exactly: the epoch count, the history, the best epoch, the optimiser,
    schedule and grad-scaler states and the random generator. ``state_dict`` is what is saved,
    ``load_state_dict`` what a resume restores, and ``cnnzoo.runs.TRAIN_STATE_KEYS`` (checked by
    ``Checkpoint.resumable``) is the part of it a resume needs: one list for all three."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler | None = None
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # one row per completed epoch
    best_val_acc: float = -1.0
    best_epoch: int = 0  # 0: none yet

    def state_dict(self) -> dict:
        state = {
            "epoch": self.epoch,
            "history": list(self.history),
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_state(),
        }
        return state

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in TRAIN_STATE_KEYS if state.get(k) is None]
        if missing:
            raise CheckpointError(f"cannot resume: no {missing[0]!r} state (not a last.pt)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best_val_acc = float(state["best_val_acc"])
        self.best_epoch = int(state["best_epoch"])

    def record(self, row: dict) -> bool:
        """Add a finished epoch's row; True when it is the best so far."""
        self.history.append(row)
        self.epoch = int(row["epoch"])
        if row["val_acc"] > self.best_val_acc:
            self.best_val_acc, self.best_epoch = row["val_acc"], self.epoch
            return True
        return False


# keys of ``extra_meta`` that are ``Checkpoint`` fields of their own, not extra keys
HEADER_FIELDS = ("finetune", "started_from")


@dataclass
class Session:
    """A run set up for training: the model on its device, the loader, the state, the files."""

    raw: nn.Module  # the model itself (what is saved)
    net: nn.Module  # what is called: raw, or raw wrapped by DDP / torch.compile
    loader: Any
    bundle: DataBundle
    config: TrainConfig
    device: torch.device
    state: TrainState
    aux_weight: float
    out: Path
    header: dict  # what every checkpoint of the run records beside the weights and the state
    rank: int = 0
    world: int = 1
    ema: WeightEMA | None = None  # the weight average (``TrainConfig.ema``)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def averaged(self):
        """A block in which ``raw`` holds the weights to validate and save: the average under
        ``ema``, else its own."""
        return self.ema.averaged(self.raw) if self.ema is not None else contextlib.nullcontext()

    def checkpoint(self, kind: str, state: dict | None = None, metrics: dict | None = None):
        h = self.header
        return Checkpoint(
            h["model"],
            h["model_args"],
            {k: v.detach().cpu() for k, v in self.raw.state_dict().items()},
            classes=h["classes"],
            preprocess=h["preprocess"],
            data=h["data"],
            config=h["config"],
            metrics=metrics,
            train_state=state,
            finetune=h["extra"].get("finetune"),
            started_from=h["extra"].get("started_from"),
            kind=kind,
            extra={k: v for k, v in h["extra"].items() if k not in HEADER_FIELDS},
        )


def setup(
    model: nn.Module,
    bundle: DataBundle,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    model_name: str,
    model_args: dict[str, Any],
    param_groups: Iterable[dict] | None = None,
    lr_mult: dict[str, float] | None = None,
    resume: dict | str | os.PathLike | Checkpoint | None = None,
    data: DataSpec | dict | None = None,
    extra_meta: dict | None = None,
) -> Session:
    """Everything ``fit`` does before its first epoch (see ``fit`` for the arguments)."""
    check_trainable(bundle)
    rank, world, _ = dist_info()
    device = resolve_device(config.device)
    ckpt = _resume_checkpoint(resume)
    if ckpt is not None:
        load_state_dict_checked(model, ckpt.state_dict, source="resume checkpoint")
    if world > 1 and config.sync_bn:
        if device.type != "cuda":  # PyTorch's SyncBatchNorm has no CPU implementation
            raise CnnzooError("--sync-bn needs CUDA devices (SyncBatchNorm is GPU-only); drop it")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    raw = model.to(device)
    if config.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    prepare_model(raw, bundle.train, config, ckpt is None, device)
    ema = _weight_average(raw, config, ckpt)
    param_groups = trick_param_groups(raw, config, param_groups, lr_mult)
    optimizer = build_optimizer(raw, config, param_groups, lr_mult)
    if config.batch_augment != "none":
        loader = device_batches(bundle.train, config, device, rank, world)
    else:
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
    fp16 = amp_dtype_of(config, device) == torch.float16
    scaler = torch.amp.GradScaler(device.type) if fp16 else None
    state = TrainState(optimizer, LRSchedule(optimizer, config, len(loader)), scaler)
    if ckpt is not None:
        state.load_state_dict(ckpt.train_state or {})
        _adopt_newer_best(state, Path(out_dir))
    net = raw
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
    if config.compile:
        net = torch.compile(net)
    if isinstance(data, dict):
        data = DataSpec.from_dict(data) if data else None
    header = {
        "model": model_name,
        "model_args": dict(model_args),
        "classes": list(bundle.classes),
        "preprocess": Preprocess.from_dict(bundle.preprocess),
        "config": config.to_dict(),
        "data": data,
        "extra": dict(extra_meta or {}),
    }
    if ckpt is not None and ckpt.started_from and "started_from" not in header["extra"]:
        header["extra"]["started_from"] = ckpt.started_from  # a resumed run keeps where it began
    return Session(
        raw,
        net,
        loader,
        bundle,
        config,
        device,
        state,
        _aux_weight(config, raw),
        Path(out_dir),
        header,
        rank,
        world,
        ema,
    )


def _weight_average(raw: nn.Module, config: TrainConfig, ckpt: Checkpoint | None):
    """The run's ``WeightEMA`` (None without ``config.ema``). A checkpoint of a run with one
    holds the averaged weights (what evaluation and prediction load) and, under ``"ema"`` in its
    train state, the training weights and the update count: a resume takes the average from the
    former (already in ``raw``) and then puts the training weights back."""
    saved = (ckpt.train_state or {}).get("ema") if ckpt is not None else None
    ema = WeightEMA(raw, config.ema, config.ema_every) if config.ema is not None else None
    if ckpt is not None and ema is not None and saved is None:
        raise CheckpointError("the checkpoint was trained without ema; resume it without ema")
    if saved is not None:
        load_state_dict_checked(raw, saved["weights"], source="resume checkpoint (ema)")
        if ema is not None:
            ema.calls = int(saved["calls"])
    return ema


def run_epoch(session: Session, epoch: int) -> dict:
    """Train one epoch (0-based ``epoch``) and validate; returns the epoch's row."""
    s, config = session, session.config
    # dropout and other in-model randomness: a fresh, per-epoch (and per-rank) stream
    torch.manual_seed(config.seed * 1_000_003 + epoch * 7919 + s.rank)
    s.loader.set_epoch(epoch)
    tr = train_one_epoch(
        s.net,
        s.loader,
        s.state.optimizer,
        config,
        s.device,
        s.state.schedule,
        epoch * len(s.loader),
        s.state.scaler,
        s.aux_weight,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        after_step=(lambda: s.ema.update(s.raw)) if s.ema is not None else None,
    )
    va = None
    if s.main or s.world == 1:
        with s.averaged():
            va = evaluate(
                s.raw,
                s.bundle.val,
                s.bundle.classes,
                s.device,
                config.eval_batch_size,
                amp_dtype_of(config, s.device),
                config.channels_last,
            )
    va = broadcast_object(
        {k: va[k] for k in ("loss", "accuracy", "top5")} if va is not None else None
    )
    s.state.schedule.epoch_end(va["accuracy"])
    return {
        "epoch": epoch + 1,
        "lr": s.state.optimizer.param_groups[0]["lr"],
        "train_loss": tr["loss"],
        "train_acc": tr["accuracy"],
        "val_loss": va["loss"],
        "val_acc": va["accuracy"],
        "val_top5": va["top5"],
        "images_per_s": tr["images_per_s"],
        "time_s": tr["time_s"],
    }


def save_epoch(session: Session, row: dict, improved: bool, tb: TensorBoardLog) -> None:
    """The end of an epoch on disk: ``best.pt`` first when the epoch is the best so far, then
    ``last.pt`` (a kill between the two leaves a best.pt newer than last.pt, which a resume
    adopts: the best weights are never lost), then metrics.csv, TensorBoard and curves.png.
    Weights that are not finite are never written."""
    s = session
    _check_finite(s, f"after epoch {row['epoch']}")
    state = s.state.state_dict()
    if s.ema is not None:  # the checkpoint's weights are the average; these are to resume
        weights = {k: v.detach().cpu().clone() for k, v in s.raw.state_dict().items()}
        state["ema"] = {"calls": s.ema.calls, "weights": weights}
    with s.averaged():
        ckpt = s.checkpoint("last", state, row)
        if improved:
            replace(ckpt, kind="best").save(s.out / "best.pt")
            _fault_point("between-best-and-last")
        ckpt.save(s.out / "last.pt")
    saved = f"; epoch {row['epoch']}'s checkpoints are saved"
    with _reported_write(s.out / "metrics.csv", saved):
        write_metrics_csv(s.state.history, s.out / "metrics.csv")
    tb.log(row)
    if s.config.plots:
        title = f"{s.header['model']} on {s.bundle.name}"
        with _reported_write(s.out / "curves.png", saved):
            plot_curves(s.state.history, s.out / "curves.png", title=title)


@contextlib.contextmanager
def _reported_write(path: Path, saved: str = ""):
    """A failed write of one of a run's side files (metrics.csv, curves.png, test.json) as one
    line naming the file and the device, as a failed checkpoint write is; ``saved`` says what is
    safe on disk. An OSError without an errno keeps its traceback."""
    try:
        yield
    except OSError as err:
        new = write_error(err, path)
        if new is err:
            raise
        raise CnnzooError(f"{new}{saved}") from err


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
    resume: dict | str | os.PathLike | Checkpoint | None = None,
    data_args: DataSpec | dict | None = None,
    extra_meta: dict | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> dict:
    """Train ``model`` on ``bundle.train``, validating on ``bundle.val`` after every epoch.

    Writes to ``out_dir`` (locked against a second writer, see ``cnnzoo.runs.RunLock``):
    ``best.pt`` (best validation accuracy) and ``last.pt`` (every epoch), ``metrics.csv``,
    TensorBoard events and ``curves.png``. Only parameters with ``requires_grad`` are optimised;
    ``param_groups``/``lr_mult`` give groups their own rates (see ``build_optimizer``); the model
    is used as given (frozen or FrozenBatchNorm layers stay so). ``resume``: a checkpoint written
    by ``fit`` (or its path, or the run directory) to continue from; without it, ``out_dir`` must
    hold no run and none of a run's files (``cnnzoo.runs.check_new_run_dir``). ``data_args`` (a
    ``DataSpec``: how ``bundle`` was loaded) is stored so that a resume can reload it;
    ``extra_meta`` (JSON-like) is stored in every checkpoint too (``cnnzoo finetune`` records how
    it froze the model; ``started_from``, ``cnnzoo.hub.weights_provenance``, names the published
    weights the model started from, and a resumed run keeps its checkpoint's).
    ``on_epoch_end(epoch, row)`` runs after each epoch's files are on disk.
    Under torchrun, call it in every process with the process group initialised.

    A loss or weights that stop being finite end the run with ``DivergedError`` naming the step;
    the checkpoints already written are left as they were. A KeyboardInterrupt (or SIGTERM under
    the command line) saves ``interrupted.pt`` (the weights mid-epoch) and is re-raised.

    The speedrun fields of ``config`` are applied here (``cnnzoo.train.tricks.apply``): ``init``
    and the frozen BN scales before the optimiser is built, ``bn_bias_lr_mult`` as its groups,
    ``batch_augment`` as the loader (``DeviceBatches``); with ``ema`` the averaged weights are
    validated, saved as the checkpoints' weights and left in ``model`` at the end.

    Returns ``{"history": [...], "best_val_acc", "best_epoch", "last", "best", "epochs_run"}``.
    """
    out = Path(out_dir)
    rank = dist_info()[0]
    lock = RunLock(out) if rank == 0 else contextlib.nullcontext()
    with lock, _deterministic_mode(config):
        resume = _resume_checkpoint(resume)
        if resume is None and rank == 0:  # a new run: never over another run or someone's files
            check_new_run_dir(out, resumable=False)
        config = apply_run_threads(config, resume)
        s = setup(
            model,
            bundle,
            config,
            out,
            model_name=model_name,
            model_args=model_args,
            param_groups=param_groups,
            lr_mult=lr_mult,
            resume=resume,
            data=data_args,
            extra_meta=extra_meta,
        )
        start_epoch = s.state.epoch
        tb = TensorBoardLog(out, config.tensorboard and s.main, start_epoch)
        try:
            for epoch in range(start_epoch, config.epochs):
                try:
                    row = run_epoch(s, epoch)
                except DivergedError as err:
                    raise DivergedError(f"{err}; {_last_good(out)}") from None
                improved = s.state.record(row)
                if s.main:
                    # Ctrl-C waits until the epoch's files are whole and no writer holds a lock
                    with _signals_deferred():
                        _print_epoch(row, config, improved)
                        save_epoch(s, row, improved, tb)
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, row)
            if s.ema is not None:  # hand back the weights the checkpoints hold
                s.ema.copy_to(s.raw)
        except KeyboardInterrupt:
            if s.main and _weights_finite(s.raw):
                s.checkpoint(
                    "interrupted", {"epoch": s.state.epoch, "history": s.state.history}
                ).save(out / "interrupted.pt")
            raise
        finally:
            with _signals_deferred():
                tb.close()
            if config.channels_last:  # hand the model back in the layout it came in
                s.raw.to(memory_format=torch.contiguous_format)
        return {
            "history": s.state.history,
            "best_val_acc": s.state.best_val_acc,
            "best_epoch": s.state.best_epoch,
            "last": str(out / "last.pt"),
            "best": str(out / "best.pt"),
            "epochs_run": config.epochs - start_epoch,
        }


def final_test(model: nn.Module, bundle: DataBundle, config: TrainConfig, out: Path) -> dict:
    """The final weights' test accuracy under ``config.test_tta``'s views, in the run's precision
    and memory format, also written to ``out/test.json``: the figure a run ends with, so that no
    separate ``cnnzoo evaluate`` process is needed. Returns ``{"test_acc_last", "test_tta"}``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    test = evaluate(
        model,
        bundle.test,
        bundle.classes,
        device,
        config.eval_batch_size,
        amp_dtype_of(config, device),
        config.channels_last,
        config.test_tta,
    )
    record = {"accuracy": test["accuracy"], "loss": test["loss"], "n": test["n"]}
    text = json.dumps({**record, "tta": config.test_tta}, indent=1) + "\n"
    with _reported_write(out / "test.json", "; the run's checkpoints are saved"):
        _write_whole(out / "test.json", text)
    return {"test_acc_last": test["accuracy"], "test_tta": config.test_tta}


def _write_whole(path: Path, text: str) -> None:
    """``text`` to a temporary file renamed over ``path``: no half-written file, even on a full
    disk (the temporary file goes)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _check_finite(s: Session, when: str) -> None:
    if not _weights_finite(s.raw):
        raise DivergedError(
            f"training diverged: the weights are not finite {when} (step "
            f"{s.state.epoch * len(s.loader)}); lower --lr or add --grad-clip; "
            f"{_last_good(s.out)}"
        )


def _last_good(out: Path) -> str:
    last = out / "last.pt"
    if last.is_file():
        return f"{last} (the last finished epoch) is left as it was"
    return "no checkpoint was written"


def _adopt_newer_best(state: TrainState, out: Path) -> None:
    """A kill after best.pt and before last.pt leaves a best.pt one epoch ahead of last.pt: keep
    its record, so that the resumed run compares against it and does not replace it with worse."""
    best = out / "best.pt"
    if not best.is_file():
        return
    try:
        ckpt = Checkpoint.load(best)
    except CheckpointError:
        return  # a damaged best.pt: the next best epoch replaces it
    if ckpt.epoch > state.epoch and ckpt.best_val_acc > state.best_val_acc:
        state.best_val_acc, state.best_epoch = ckpt.best_val_acc, ckpt.best_epoch


FAULT_ENV = "CNNZOO_FAULT_PAUSE"  # test-only fault injection: "POINT:SECONDS"


def _fault_point(name: str) -> None:
    """A fault-injection point, for the crash tests only: with ``CNNZOO_FAULT_PAUSE=NAME:SECONDS``
    the process writes NAME to the file ``$CNNZOO_FAULT_FLAG`` (when set) and sleeps here, so that
    a test can kill it at exactly this moment. Without the variable it does nothing."""
    spec = os.environ.get(FAULT_ENV, "")
    point, _, seconds = spec.partition(":")
    if point != name:
        return
    flag = os.environ.get("CNNZOO_FAULT_FLAG")
    if flag:
        Path(flag).write_text(name)
    time.sleep(float(seconds or 30))


def apply_run_threads(config: TrainConfig, resume: Checkpoint | None = None) -> TrainConfig:
    """Set the run's CPU thread count before anything computes, and return the config that
    records it: the config's own count, or on a resume the count the checkpoint ran with, or
    else the default policy's choice (``cnnzoo.threads``).

    The data's mean and std and every reduction of training have last bits that follow the
    thread count: a resume that computed with another count than its run (one loaded with all
    idle cores, the run trained with ``--threads 1``) drifted from it in the 7th digit. Stored in
    the checkpoints, the count makes a resume compute as the run did without being repeated."""
    n = config.threads
    if n is None and resume is not None:
        n = (resume.config or {}).get("threads")
    _apply_threads(n)
    return replace(config, threads=torch.get_num_threads())


def _apply_threads(n: int | None) -> None:
    """Set the CPU thread count: ``n``, or the default policy's (``cnnzoo.threads``) for None."""
    try:
        from ..threads import apply_threads  # the library's thread policy, where it exists
    except ImportError:
        if n is not None:
            torch.set_num_threads(n)
        return
    apply_threads(n)


@contextlib.contextmanager
def _signals_deferred():
    """Hold a Ctrl-C (SIGINT) or SIGTERM until the block is done, then raise KeyboardInterrupt.

    A KeyboardInterrupt raised inside a writer can leave it broken: inside TensorBoard's queue
    bookkeeping it makes the final ``close()`` wait forever. Only the main thread can take
    signals; elsewhere the block runs as is. SIGTERM is held only where a handler of Python's is
    installed for it (the command line's, which turns it into a KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):  # None: not installed from Python; SIG_DFL/SIG_IGN: leave them
            previous[sig] = handler
    caught: list[int] = []
    for sig in previous:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


_sigint_deferred = _signals_deferred  # the older name


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


def _resume_checkpoint(resume) -> Checkpoint | None:
    if resume is None or isinstance(resume, Checkpoint):
        return resume
    if isinstance(resume, dict):
        return Checkpoint.from_dict(resume)
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pt"
    ckpt = Checkpoint.from_dict(load_checkpoint(path))
    missing = [k for k in TRAIN_STATE_KEYS if (ckpt.train_state or {}).get(k) is None]
    if missing or ckpt.kind == "interrupted":
        raise CheckpointError(
            f"{path} cannot be resumed: it has no {(missing or ['optimizer'])[0]!r} state "
            f"(not a last.pt)"
        )
    return ckpt


def _aux_weight(config: TrainConfig, model: nn.Module) -> float:
    """The config's weight of the auxiliary losses, else the model's own (``aux_loss_weight``:
    0.3 for GoogLeNet, 0.4 for Inception v3), else 0.3."""
    if config.aux_weight is not None:
        return config.aux_weight
    return float(getattr(model, "aux_loss_weight", DEFAULT_AUX_WEIGHT))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _print_epoch(row: dict, config: TrainConfig, improved: bool) -> None:
    """The epoch's one-line summary (also with ``progress=False``, which drops only the bar)."""
    mark = " *" if improved else ""
    print(
        f"epoch {row['epoch']:>3}/{config.epochs}  lr {row['lr']:.3g}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}  "
        f"{row['images_per_s']:,.0f} img/s{mark}",
        flush=True,
    )


__all__ = [
    "DivergedError",
    "Session",
    "TrainState",
    "compute_loss",
    "fit",
    "run_epoch",
    "save_epoch",
    "seed_everything",
    "setup",
    "final_test",
    "train_one_epoch",
]
