"""What a run is made of, as typed records: the data (``DataSpec``), the preprocessing
(``Preprocess``), the checkpoint (``Checkpoint``), where a model comes from (``ModelSource``), the
run directory's lock (``RunLock``) and the features file (``save_features``/``load_features``).

These are the library's own words for a run; the training loop writes them and the command line
only prints them. ``cnnzoo.train.Run`` puts them together (``Run.new(...)``, ``Run.resume(...)``).
Nothing here imports ``cnnzoo.train`` or ``cnnzoo.cli``: the layers above use this one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import VERSION, load_checkpoint, save_checkpoint
from .errors import CheckpointError, CnnzooError, DataError
from .paths import written

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what torchvision's and timm's ImageNet weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("all", "train", "val", "test")
WEIGHT_SUFFIXES = {".pt", ".pth", ".pt2", ".ckpt", ".safetensors", ".bin", ".tar"}
FLIP_SAFE = {"fashion-mnist", "cifar10", "cifar100"}  # clothing and photos: a mirror is the same
NO_AUGMENT = {"mnist", "digits"}  # a mirrored 2 or 7 is not a digit


# --- preprocessing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model's input: size, normalisation, and how it was resized.

    Stored in checkpoints as ``to_dict()`` (the ``preprocess`` dict of ``cnnzoo.data``)."""

    input_size: tuple[int, int, int]  # (C, H, W) the model takes
    source_size: tuple[int, int]  # (H, W) images are first fitted to (the dataset's own size)
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    spatial: str | None = None  # none | pad | resize | crop (None: from the two sizes)
    interpolation: str = "bilinear"  # resize filter of pretrained weights (timm's key)
    crop_pct: float = 1.0  # centre-crop fraction of pretrained weights (timm's key)

    def to_dict(self) -> dict:
        from .data.transforms import make_preprocess

        extra = {}
        if self.interpolation != "bilinear":
            extra["interpolation"] = self.interpolation
        if self.crop_pct != 1.0:
            extra["crop_pct"] = self.crop_pct
        d = make_preprocess(self.input_size, self.source_size, list(self.mean), list(self.std))
        if self.spatial is not None:
            d["spatial"] = self.spatial
        return {**d, **extra}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        try:
            c, h, w = (int(v) for v in d["input_size"])
            source = d.get("source_size") or (h, w)
            return cls(
                (c, h, w),
                (int(source[0]), int(source[1])),
                tuple(float(m) for m in d["mean"]),
                tuple(float(s) for s in d["std"]),
                d.get("spatial"),
                str(d.get("interpolation", "bilinear")),
                float(d.get("crop_pct", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"preprocessing description {d!r} is damaged: {err}") from None

    @classmethod
    def from_pretrained_cfg(cls, cfg: dict, source_size: tuple[int, int] | None = None):
        """From a model's timm-style ``pretrained_cfg`` (``input_size``, ``mean``, ``std``,
        ``interpolation``, ``crop_pct``). ``source_size`` defaults to the size an image is
        resized to before the centre crop (``H / crop_pct``), as timm's eval transform does, and
        the input is then its centre (``spatial="crop"``)."""
        c, h, w = (int(v) for v in cfg["input_size"])
        crop = float(cfg.get("crop_pct") or 1.0)
        if source_size is None:
            source_size = (int(round(h / crop)), int(round(w / crop)))
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        return cls(
            (c, h, w),
            tuple(source_size),
            tuple(mean),
            tuple(std),
            "crop" if tuple(source_size) != (h, w) else None,
            str(cfg.get("interpolation", "bilinear")),
            crop,
        )

    def with_stats_of(self, trained: Preprocess | dict | None) -> Preprocess:
        """This preprocessing with the resize filter a model was trained with (a checkpoint's, or
        published weights' ``interpolation``) and its mean and std, when it has them for this
        channel count. The one place that rule lives: a trained model expects its own
        statistics and resampling, not the new data's."""
        if trained is None:
            return self
        if isinstance(trained, dict):
            trained = Preprocess.from_dict(trained)
        out = replace(self, interpolation=trained.interpolation)
        if len(trained.mean) != self.input_size[0]:
            return out
        return replace(out, mean=trained.mean, std=trained.std)

    def with_size(self, hw: tuple[int, int] | None) -> Preprocess:
        """The same statistics at another input height and width (``--img-size``)."""
        if hw is None:
            return self
        return replace(self, input_size=(self.input_size[0], *hw), spatial=None)


# --- the data ----------------------------------------------------------------------------------


def default_augment(data: str) -> str:
    """The augmentation ``augment="auto"`` picks: flips for clothing and photos, random crops with
    them for CIFAR and image folders, nothing for digits (a mirrored digit is another symbol)."""
    key = data.lower()
    if key in ("cifar10", "cifar100") or Path(data).is_dir():
        return "basic"
    if key in FLIP_SAFE:
        return "flip"
    return "none"


@dataclass(frozen=True)
class DataSpec:
    """Which data a run trains on and how it was split: enough to load the same images again."""

    spec: str  # a dataset name (fashion-mnist, ...) or an image folder
    input_size: tuple[int, int, int] | None = None  # (C, H, W) the model takes; None: the data's
    data_dir: str | None = None  # where the dataset files are
    augment: str = "none"  # training augmentation (none, crop, flip, basic, basic+erase)
    val_fraction: float = 0.1  # of the training split, when the data has no validation split
    seed: int = 0  # seeds the split and the subsampling
    limit: int | None = None  # at most this many images of each split (train, val and test)
    per_class: int | None = None  # keep this many training images per class (fine-tuning)
    stratify: bool = True  # the validation split is drawn per class (older runs: False)

    def __post_init__(self) -> None:
        from .data import check_split_args

        check_split_args(self.augment, self.val_fraction, self.limit, self.per_class)
        size = self.input_size
        if size is not None and (
            len(size) != 3
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size)
        ):
            raise DataError(f"input_size must be three positive integers (C, H, W), got {size!r}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DataSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown or "spec" not in d:
            raise CheckpointError(f"data description {d!r} has unknown keys {sorted(unknown)}")
        d = {"stratify": False, **d}  # written before per-class splits
        size = d.get("input_size")
        return cls(**{**d, "input_size": tuple(int(v) for v in size) if size else None})

    def check_outside(self, out: str | os.PathLike) -> None:
        """Refuse a run directory inside the folders of images it trains on: its pictures
        (``curves.png``) would be read as images of a class the next time the folder loads."""
        from .data import folder_splits

        if not Path(self.spec).is_dir():
            return
        where = Path(out).resolve()
        for folder in filter(None, folder_splits(Path(self.spec)).values()):
            if where.is_relative_to(folder.resolve()):
                raise CnnzooError(
                    f"the run directory {out} is inside the image folder {folder}, whose next "
                    f"load would read the run's pictures as training images; give an --out "
                    f"outside it"
                )

    def load(
        self,
        strict: bool = False,
        download: bool = False,
        data_dir: str | None = None,
        interpolation: str = "bilinear",
    ):
        """The ``DataBundle`` this describes (``data_dir`` overrides where the files are;
        ``interpolation`` is the resize filter of the model it is for, ``Preprocess``'s)."""
        from .data import load_data

        bundle = load_data(
            self.spec,
            data_dir=data_dir or self.data_dir,
            input_size=self.input_size,
            augment=self.augment,
            val_fraction=self.val_fraction,
            seed=self.seed,
            strict=strict,
            download=download,
            limit=self.limit,
            stratify=self.stratify,
            interpolation=interpolation,
        )
        if self.per_class:
            from .transfer import subsample_per_class

            bundle.train = subsample_per_class(bundle.train, self.per_class, self.seed)
        return bundle


# --- checkpoints -------------------------------------------------------------------------------

TRAIN_STATE_KEYS = ("epoch", "history", "best_val_acc", "best_epoch", "optimizer", "scheduler")
OPTIONAL_STATE_KEYS = ("scaler", "rng", "ema")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's contents. ``to_dict``/``from_dict`` are the file format (the keys of
    ``cnnzoo.checkpoint``); nothing else reads a checkpoint's dict by its keys."""

    model: str  # registered model name
    model_args: dict  # create_model arguments that rebuild it
    state_dict: dict = field(repr=False)  # the weights
    classes: list[str] | None = None  # class names, index = label
    preprocess: Preprocess | None = None
    data: DataSpec | None = None  # None: the data is not known (a converted weight file)
    config: dict | None = None  # the TrainConfig as a dict
    metrics: dict | None = None  # the last epoch's row
    train_state: dict | None = field(default=None, repr=False)  # TRAIN_STATE_KEYS: to resume
    finetune: dict | None = None  # how ``cnnzoo finetune`` adapted the model
    # the published weights the run (or a run it continues) started from: ``hub.weights_provenance``
    started_from: dict | None = None
    kind: str = "last"  # last | best | interrupted | probe
    extra: dict = field(default_factory=dict, repr=False)  # any other keys, kept as they are
    version: int = VERSION

    KINDS = ("last", "best", "interrupted", "probe")

    @property
    def epoch(self) -> int:
        """Epochs completed (0 when not recorded)."""
        return int((self.train_state or {}).get("epoch") or self.extra.get("epoch") or 0)

    @property
    def best_epoch(self) -> int:
        return int((self.train_state or {}).get("best_epoch") or 0)

    @property
    def best_val_acc(self) -> float:
        state = self.train_state or {}
        return float(state.get("best_val_acc", self.extra.get("best_val_acc", -1.0)))

    @property
    def history(self) -> list[dict]:
        return list((self.train_state or {}).get("history") or self.extra.get("history") or [])

    @property
    def resumable(self) -> bool:
        """Whether ``cnnzoo train --resume`` can continue from it: a ``last.pt`` of ``train``."""
        return self.why_not_resumable() is None

    def why_not_resumable(self) -> str | None:
        if self.finetune is not None:
            return "it was made by `cnnzoo finetune`, which cannot be resumed"
        if self.kind == "interrupted":
            return "it holds the weights of an interrupted epoch, not a finished one"
        if self.kind == "best":  # resuming it would overwrite the run's later last.pt
            return "it is the run's best epoch, not its last; resume the run's last.pt"
        missing = [k for k in TRAIN_STATE_KEYS if (self.train_state or {}).get(k) is None]
        if missing:
            return f"it has no {missing[0]!r} state (not a last.pt)"
        if self.data is None:
            return "it holds no data description"
        return None

    def to_dict(self) -> dict:
        d = {
            **self.extra,
            "model": self.model,
            "model_args": dict(self.model_args),
            "state_dict": self.state_dict,
            "run_kind": self.kind,
        }
        optional = {
            "classes": list(self.classes) if self.classes is not None else None,
            "preprocess": self.preprocess.to_dict() if self.preprocess else None,
            "data": self.data.to_dict() if self.data else None,
            "config": self.config,
            "metrics": self.metrics,
            "finetune": self.finetune,
            "started_from": self.started_from,
        }
        d.update({k: v for k, v in optional.items() if v is not None})
        d.update(self.train_state or {})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Checkpoint:
        """From a loaded checkpoint dict (``cnnzoo.load_checkpoint``), older ones included."""
        d = dict(d)
        version = d.pop("version", VERSION)
        d.pop("format", None)
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(
                f"checkpoint format version {version!r} is newer than this cnnzoo's {VERSION}; "
                f"upgrade cnnzoo"
            )
        state = {k: d.pop(k) for k in (*TRAIN_STATE_KEYS, *OPTIONAL_STATE_KEYS) if k in d}
        pre, data = d.pop("preprocess", None), d.pop("data", None)
        try:
            data = DataSpec.from_dict(data) if data else None
        except (CheckpointError, TypeError):
            data = None  # a data description this version cannot read: not resumable
        classes = d.pop("classes", None)
        if classes is not None and not (
            isinstance(classes, list) and all(isinstance(c, str) for c in classes)
        ):
            raise CheckpointError(f"the checkpoint's class names are damaged: {classes!r:.80}")
        kind = d.pop("run_kind", None) or ("last" if "optimizer" in state else "best")
        return cls(
            model=d.pop("model"),
            model_args=dict(d.pop("model_args")),
            state_dict=d.pop("state_dict"),
            classes=classes,
            preprocess=Preprocess.from_dict(pre) if pre else None,
            data=data,
            config=d.pop("config", None),
            metrics=d.pop("metrics", None),
            train_state=state or None,
            finetune=d.pop("finetune", None),
            started_from=d.pop("started_from", None),
            kind=kind if kind in cls.KINDS else "last",
            extra=d,
            version=version,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read ``path`` (a run directory stands for its ``best.pt``, else its ``last.pt``)."""
        return cls.from_dict(load_checkpoint(resolve_checkpoint(path)))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (``cnnzoo.checkpoint.save_checkpoint``)."""
        d = self.to_dict()
        save_checkpoint(path, d.pop("model"), d.pop("model_args"), d.pop("state_dict"), **d)

    def build_model(self, **overrides: Any) -> nn.Module:
        """The model, rebuilt by ``create_model`` with these weights loaded."""
        from .checkpoint import load_state_dict_checked
        from .registry import create_model

        try:
            model = create_model(self.model, **{**self.model_args, **overrides})
        except (TypeError, ValueError) as err:  # the file's arguments: data, not code
            raise CheckpointError(f"the checkpoint's model cannot be built: {err}") from None
        load_state_dict_checked(model, self.state_dict, source=f"checkpoint of {self.model!r}")
        return model


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory stands for its best.pt (else last.pt); a file for itself."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
    return p


# --- where a model comes from ------------------------------------------------------------------


@dataclass
class ModelSource:
    """A model ready to use, and where it came from."""

    model: nn.Module
    name: str  # registered name
    model_args: dict  # create_model arguments that rebuild it
    input_size: tuple[int, int, int]  # (C, H, W) it expects
    preprocess: Preprocess | None  # the preprocessing it was trained with (None: unknown)
    classes: list[str] | None  # the checkpoint's (or the published weights') class names
    source: str  # checkpoint or weight-file path, "pretrained", or "" for fresh random weights
    checkpoint: Checkpoint | None = None
    started_from: dict | None = None  # the published weights behind it (``Checkpoint``'s)

    @property
    def random(self) -> bool:
        return not self.source

    @property
    def interpolation(self) -> str:
        """The resize filter the model's weights expect (bilinear unless they say otherwise)."""
        return self.preprocess.interpolation if self.preprocess is not None else "bilinear"

    def preprocess_for(self, data_pre: Preprocess | dict) -> Preprocess:
        """The new data's preprocessing with the statistics this model expects: a checkpoint's
        own, ImageNet's for an RGB weight file from elsewhere, the data's for random weights."""
        if isinstance(data_pre, dict):
            data_pre = Preprocess.from_dict(data_pre)
        if self.preprocess is not None:
            return data_pre.with_stats_of(self.preprocess)
        if self.source and data_pre.input_size[0] == 3:
            return replace(data_pre, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        return data_pre


def resolve_model(
    spec: str,
    model_name: str | None = None,
    num_classes: int | None = None,
    pretrained: bool = False,
) -> ModelSource:
    """``spec`` is a cnnzoo checkpoint or run directory, a torchvision/timm weight file (then
    ``model_name`` says which architecture to build), or a registered model name (random
    weights, or the published ones with ``pretrained=True``)."""
    from .registry import create_model, get_model_info

    path = Path(spec)
    if path.is_dir() and resolve_checkpoint(path) != path:
        path = resolve_checkpoint(path)
    if path.is_file():
        try:
            ckpt = Checkpoint.load(path)
        except CheckpointError:
            if model_name is None:
                raise
            ckpt = None  # not a cnnzoo checkpoint: a torchvision/timm weight file
        if ckpt is not None:
            if model_name is not None and ckpt.model != model_name:
                raise CheckpointError(f"checkpoint is for model {ckpt.model!r}, not {model_name!r}")
            model = ckpt.build_model()
            size = (
                ckpt.preprocess.input_size if ckpt.preprocess else _default_size(ckpt.model, model)
            )
            return ModelSource(
                model,
                ckpt.model,
                dict(ckpt.model_args),
                tuple(size),
                ckpt.preprocess,
                ckpt.classes,
                str(path),
                ckpt,
                ckpt.started_from,
            )
        from .pretrained import load_pretrained

        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        model = create_model(model_name, **kwargs)
        load_pretrained(model, path)
        size = _default_size(model_name, model)
        return ModelSource(model, model_name, kwargs, size, None, None, str(path))
    if path.suffix.lower() in WEIGHT_SUFFIXES or "/" in spec:
        raise CheckpointError(f"{spec} does not exist (or is not a file)")
    name = model_name or spec
    if model_name is not None and spec != model_name:
        get_model_info(spec)  # an unknown name: the registry's message with suggestions
    get_model_info(name)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if pretrained:
        kwargs["pretrained"] = True
    model = create_model(name, **kwargs)
    kwargs.pop("pretrained", None)
    pre, classes = None, None
    cfg = getattr(model, "pretrained_cfg", None) if pretrained else None
    if cfg:  # the published weights' preprocessing, class names and construction
        pre = Preprocess.from_pretrained_cfg(cfg)
        classes = cfg.get("label_names")
        kwargs = {**cfg.get("model_args", {}), **kwargs}
    size = pre.input_size if pre else _default_size(name, model)
    if not pretrained:
        return ModelSource(model, name, kwargs, size, pre, classes, "")
    from .hub import weights_provenance

    started = weights_provenance(name, cfg) if cfg else None
    return ModelSource(model, name, kwargs, size, pre, classes, "pretrained", None, started)


def _default_size(name: str, model: nn.Module) -> tuple[int, int, int]:
    from .registry import get_model_info

    c, h, w = get_model_info(name).input_size
    return (getattr(model, "in_chans", c), h, w)


# --- the run directory's lock ------------------------------------------------------------------

_HELD: dict[str, list] = {}  # run directory -> [lock file, holders in this process, created it]


class RunLock:
    """An exclusive lock on a run directory (``fcntl.flock`` on ``RUN/.lock``), held while a
    process writes the run. A second process fails at once with a ``CnnzooError`` naming the
    holder's PID. The kernel drops the lock when its holder dies, so a killed run's directory is
    free again at once: a stale lock file never blocks a resume. Re-entrant within a process.

    The lock file goes on release (while the lock is still held, so no one else can start; a
    process that opened the old file meanwhile sees it is gone and locks a new one), and a
    directory the lock created goes too when nothing else was written: a finished run holds only
    what it wrote, and a run that fails before writing anything leaves nothing behind. Only a
    killed holder leaves its lock file: stale, and no obstacle."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.dir = Path(run_dir)
        self.key = str(self.dir.resolve())

    def __enter__(self) -> RunLock:
        held = _HELD.get(self.key)
        if held is not None:
            held[1] += 1
            return self
        try:
            import fcntl
        except ImportError:  # no flock (Windows): no lock
            _HELD[self.key] = [None, 1, False]
            return self
        created = not self.dir.exists()
        for _attempt in range(100):
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                f = open(self.dir / ".lock", "a+")  # noqa: SIM115  (held until __exit__)
            except FileNotFoundError:  # the folder was tidied away after our mkdir: again
                continue
            except OSError as err:
                raise CnnzooError(
                    f"cannot write the run directory {self.dir}: {err.strerror}"
                ) from None
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                pid = f.read().strip() or "unknown"
                f.close()
                raise CnnzooError(
                    f"{self.dir} is in use by another cnnzoo process (PID {pid}); wait for it to "
                    f"finish or choose another --out"
                ) from None
            if self._still_there(f):
                break
            # the file was tidied away (its holder failed before writing) between our open and
            # our lock, and another process may hold a new one: lock what is there now
            f.close()
        else:
            raise CnnzooError(
                f"{self.dir} keeps changing under cnnzoo; is another process tidying it?"
            )
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _HELD[self.key] = [f, 1, created]
        return self

    def __exit__(self, *exc) -> None:
        held = _HELD[self.key]
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.key]
            if held[0] is not None:
                self._tidy(created=held[2])  # still holding the lock: no one else can start
                held[0].close()  # closing the file releases the flock

    def _still_there(self, f) -> bool:
        """Whether the locked file is still the run's ``.lock`` (not one unlinked by ``_tidy``)."""
        try:
            return os.stat(self.dir / ".lock").st_ino == os.fstat(f.fileno()).st_ino
        except OSError:
            return False

    def _tidy(self, created: bool) -> None:
        try:
            (self.dir / ".lock").unlink()
            if created and not any(self.dir.iterdir()):
                self.dir.rmdir()
        except OSError:
            pass  # tidying is a courtesy: a folder that cannot be tidied stays as it is


# what a run writes beside last.pt (interrupted.pt and TensorBoard's files aside): a folder that
# holds one of these but no last.pt holds files a new run would write over (someone else's, or
# what is left of a run), so a new run does not start there
RUN_OUTPUTS = ("best.pt", "metrics.csv", "curves.png", "test.json")


def check_new_run_dir(out: str | os.PathLike, resumable: bool = True) -> None:
    """Raise ``CnnzooError`` unless a new run may write into ``out``: it holds no run
    (``last.pt``; ``resumable``: say that ``--resume`` continues it) and no file a run writes."""
    out = Path(out)
    if (out / "last.pt").exists():
        how = f"use --resume {out} or another --out" if resumable else "choose another --out"
        raise CnnzooError(f"{out} already holds a run; {how}")
    clash = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if clash:
        raise CnnzooError(
            f"{out} already holds {', '.join(clash)} (but no last.pt), which a new run would "
            f"write over; choose another --out, or move those files away"
        )


# --- the images of a dataset, in a fixed order -------------------------------------------------


def load_rows(
    data: str,
    split: str,
    input_size: tuple[int, int, int],
    data_dir: str | None = None,
    limit: int | None = None,
    preprocess: Preprocess | dict | None = None,
):
    """The images of ``split`` (or of every split, in train, val, test order, for ``"all"``) as one
    dataset, with the split name and the index within the split of each row, and the class names.

    With a trained model's ``preprocess``, the images are normalised with the statistics the model
    was trained with rather than the new data's own.
    """
    from .data import TensorImageDataset, load_data

    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if isinstance(preprocess, dict):
        preprocess = Preprocess.from_dict(preprocess)
    resize = preprocess.interpolation if preprocess is not None else "bilinear"
    bundle = load_data(
        data, data_dir=data_dir, input_size=tuple(input_size), limit=limit, interpolation=resize
    )
    parts = [s for s in ("train", "val", "test") if getattr(bundle, s) is not None]
    if split != "all":
        bundle.split(split)  # a clear error for a missing split
        parts = [split]
    pre = Preprocess.from_dict(bundle.preprocess).with_stats_of(preprocess).to_dict()
    sets = [getattr(bundle, s) for s in parts]
    images = torch.cat([d.images for d in sets])
    labels = torch.cat([d.labels for d in sets])
    ds = TensorImageDataset(images, labels, pre, name=f"{data}:{split}")
    split_of = [s for s, d in zip(parts, sets, strict=True) for _ in range(len(d))]
    index = torch.cat([torch.arange(len(d)) for d in sets])
    return ds, split_of, index, list(bundle.classes)


def embed(
    model: str,
    data: str,
    *,
    model_name: str | None = None,
    split: str = "all",
    layer: str | None = None,
    pool: str = "flatten",
    img_size: int | tuple[int, int] | str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    batch_size: int = 128,
    pretrained: bool = False,
    progress: bool = True,
) -> tuple[dict, ModelSource]:
    """Features of every image of ``data``'s ``split`` by ``model`` (a checkpoint, a weight file
    with ``model_name``, or a registered name): the keys of ``save_features``, and the source."""
    from .data import make_loader
    from .models._base import check_input_size
    from .notation import image_hw
    from .transfer import extract_features

    src = resolve_model(model, model_name, pretrained=pretrained)
    if img_size is not None:
        src.input_size = (src.input_size[0], *image_hw(img_size))
    if layer is None:  # the whole network runs (a layer's features stop at that layer)
        check_input_size(src.model, src.input_size)
    ds, split_of, index, classes = load_rows(
        data, split, src.input_size, data_dir, limit, src.preprocess
    )
    feats, labels = extract_features(
        src.model, make_loader(ds, batch_size), layer=layer, pool=pool, progress=progress
    )
    meta = {
        "model": src.name,
        "model_source": str(Path(src.source).resolve()) if Path(src.source).is_file() else "",
        "pretrained": pretrained,
        "layer": layer or "",
        "pool": pool,
        "data": data,
        "data_dir": data_dir or "",
        "split": split,
        "limit": limit,
        "input_size": list(src.input_size),
        "preprocess": ds.preprocess,
    }
    out = dict(features=feats, labels=labels, split=split_of, index=index, classes=classes)
    return {**out, "meta": meta}, src


# --- the features file -------------------------------------------------------------------------

FEATURE_KEYS = ("features", "labels", "split", "index", "classes", "meta")


def save_features(
    path: str | os.PathLike,
    features: torch.Tensor,
    labels: torch.Tensor,
    split: list[str],
    index: torch.Tensor,
    classes: list[str],
    meta: dict,
) -> Path:
    """Write a features file (``numpy.savez``): one row per image, with its label, split and index
    in that split, the class names, and ``meta`` (how the features were made) as JSON."""
    import numpy as np

    path = Path(path)
    # savez would append .npz to a name without it; a full disk leaves no half-written file
    with written(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            features=features.numpy(),
            labels=labels.numpy(),
            split=np.array(split),
            index=index.numpy(),
            classes=np.array(classes),
            meta=np.array(json.dumps(meta)),
        )
    return path


def load_features(path: str | os.PathLike) -> dict:
    """A file written by ``save_features`` as a dict of tensors, lists and the ``meta`` dict."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise CnnzooError(f"features file {path} does not exist; make one with `cnnzoo features`")
    if not zipfile.is_zipfile(path):  # else numpy guesses a pickle and suggests loading unsafely
        raise CnnzooError(
            f"{path} is not a features .npz file (no whole zip archive: truncated, or another "
            f"kind of file); make one with `cnnzoo features`"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CnnzooError(f"{path} is not a whole features .npz file: {err}") from None
    missing = set(FEATURE_KEYS) - set(data)
    if missing:
        raise CnnzooError(
            f"{path} is not a `cnnzoo features` file: no {', '.join(sorted(missing))}"
        )
    return {
        "features": torch.from_numpy(data["features"]),
        "labels": torch.from_numpy(data["labels"]).long(),
        "split": [str(s) for s in data["split"]],
        "index": torch.from_numpy(data["index"]).long(),
        "classes": [str(c) for c in data["classes"]],
        "meta": json.loads(str(data["meta"])),
    }


__all__ = [
    "Checkpoint",
    "DataSpec",
    "ModelSource",
    "Preprocess",
    "RunLock",
    "check_new_run_dir",
    "default_augment",
    "load_features",
    "embed",
    "load_rows",
    "resolve_checkpoint",
    "resolve_model",
    "save_features",
]
