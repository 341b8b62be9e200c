"""A run as one object: what ``cnnzoo train`` does, from Python.

``Run.new("lenet5", "fashion-mnist", epochs=5)`` or ``Run.new(recipe="fashion-fast")`` resolves
the model, the data description, the input size and augmentation and the ``TrainConfig`` exactly
as the command line does; ``Run.resume("runs/x", epochs=30)`` continues a run as it was
configured; ``run.train()`` loads the data, builds the model, trains with ``fit`` and scores the
final weights on the test split.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data import check_data_spec
from ..errors import CheckpointError, CnnzooError
from ..notation import image_hw
from ..runs import Checkpoint, DataSpec, Preprocess, RunLock, check_new_run_dir, default_augment
from .config import TrainConfig, check_fields, with_declared_defaults


def _model_defaults(declared: tuple, augment: str | None, config: dict) -> tuple:
    """A run without a recipe: the augmentation, the ``TrainConfig`` values and what of the
    model's declared training defaults they took (shown when the run starts)."""
    declared, took = dict(declared), {}
    if augment is None and "augment" in declared:
        augment = took["augment"] = declared["augment"]
    declared.pop("augment", None)
    values = with_declared_defaults(declared, config)
    took.update({k: values[k] for k in declared if k in values and k not in config})
    return augment, values, took


# what a resume may change: how long, where, and what is shown; everything else is the run's
RESUME_MAY_CHANGE = ("epochs", "device", "progress", "tensorboard", "plots", "threads")


@dataclass
class Run:
    """A training run: a model, its data, its configuration and its directory."""

    out: Path  # the run directory (last.pt, best.pt, metrics.csv, ...)
    model_name: str  # registered model name
    model_args: dict  # create_model arguments (num_classes is added from the data)
    data: DataSpec
    config: TrainConfig
    resume_from: Checkpoint | None = None  # the last.pt a resumed run continues
    pretrained: bool = False  # start from the model's published weights
    # the model's declared training defaults the run took (``register_model(train_defaults=)``)
    model_defaults: dict = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        model: str | None = None,
        data: str | None = None,
        *,
        out: str | os.PathLike | None = None,
        recipe: str | None = None,
        model_args: dict | None = None,
        in_chans: int | None = None,
        img_size: int | tuple[int, int] | str | None = None,
        augment: str | None = None,
        val_fraction: float | None = None,
        data_dir: str | None = None,
        limit: int | None = None,
        pretrained: bool = False,
        **config: Any,
    ) -> Run:
        """A new run. Left-out arguments come from ``recipe`` (a name of
        ``cnnzoo.train.recipes.RECIPES`` or a .json/.toml file), then from the defaults: the
        model's own input size, without a recipe the training defaults the model declares
        (``ModelInfo.train_defaults``, LeNet-5's), ``augment="auto"`` (``default_augment``), 10%
        validation and ``TrainConfig``'s defaults. ``config`` holds ``TrainConfig`` fields
        (``epochs=5``...)."""
        from ..registry import create_model, get_model_info
        from .recipes import checked_values, load_recipe

        r = checked_values(load_recipe(recipe), recipe) if recipe else {}
        model, data = model or r.get("model"), data or r.get("data")
        if not model or not data:
            raise CnnzooError("give a model and data (or a recipe that names them)")
        check_data_spec(data)  # a misspelt name or folder: now, not once train() loads it
        info = get_model_info(model)
        args = {**dict(r.get("model_arg") or {}), **dict(model_args or {})}
        if img_size is None and r.get("img_size"):
            img_size = image_hw(r["img_size"], option=f"recipe {recipe}: img_size")
        if "num_classes" in args:  # build_model would replace it with the data's class count
            raise CnnzooError(
                f"num_classes comes from the data's classes, got model argument "
                f"num_classes={args['num_classes']!r}; leave it out"
            )
        # in_chans as a model argument means the same as in_chans here: the data follows the model
        given = (in_chans, args.get("in_chans"), r.get("in_chans"))
        chans = next((c for c in given if c is not None), info.input_size[0])
        if isinstance(chans, bool) or not isinstance(chans, int) or chans < 1:
            raise CnnzooError(f"in_chans must be an integer >= 1, got {chans!r}")
        hw = image_hw(img_size) if img_size is not None else tuple(info.input_size[1:])
        check_fields(config)
        took: dict = {}  # a recipe is a whole design; without one, the model's own defaults
        if recipe:
            augment, values = augment or r.get("augment"), config
        else:
            augment, values, took = _model_defaults(info.train_defaults, augment, config)
        augment = augment or "auto"
        if val_fraction is None:
            val_fraction = r.get("val_fraction", 0.1)
        try:
            spec = DataSpec(
                spec=data,
                input_size=(int(chans), *hw),
                data_dir=data_dir or r.get("data_dir"),
                augment=default_augment(data) if augment == "auto" else augment,
                val_fraction=val_fraction,
                seed=0,
                limit=limit,
            )
        except CnnzooError as err:  # a recipe's value: say which recipe
            if recipe and r.get("val_fraction") == val_fraction:
                raise CnnzooError(f"recipe {recipe}: {err}") from None
            raise
        cfg = TrainConfig.from_recipe(recipe, **config) if recipe else TrainConfig(**values)
        spec = replace(spec, seed=cfg.seed)
        out = Path(out or f"runs/{model}-{Path(data).resolve().name}")
        spec.check_outside(out)
        args = {**args, "in_chans": int(chans)}
        create_model(model, device="meta", **args)  # a misspelt or invalid argument: now
        return cls(out, model, args, spec, cfg, None, pretrained, model_defaults=took)

    @classmethod
    def resume(cls, path: str | os.PathLike, **changes: Any) -> Run:
        """Continue the run in ``path`` (its directory or its ``last.pt``) as it was configured;
        ``changes`` may set only ``RESUME_MAY_CHANGE`` (``epochs=30``, ``device="cuda"``...)."""
        refused = sorted(set(changes) - set(RESUME_MAY_CHANGE))
        if refused:
            flags = ", ".join("--" + c.replace("_", "-") for c in refused)
            raise CnnzooError(
                f"--resume continues the run as it was configured; only --epochs, --device, "
                f"--threads and the display options may change, got {flags}"
            )
        path = Path(path)
        if not path.exists():
            raise CheckpointError(
                f"{path} does not exist; --resume takes a run directory or its last.pt"
            )
        file = path / "last.pt" if path.is_dir() else path
        if path.is_dir() and not file.is_file():
            raise CheckpointError(
                f"{path} holds no last.pt: no epoch of it finished, so there is nothing to resume"
            )
        ckpt = Checkpoint.from_dict(_load(file))
        why = ckpt.why_not_resumable()
        if why is not None:
            raise CheckpointError(f"{file} cannot be resumed: {why}")
        config = TrainConfig.from_dict({**(ckpt.config or {}), **changes})
        if config.epochs <= ckpt.epoch:  # fit would run no epoch and report the run as done
            asked = f"--epochs {config.epochs}" if "epochs" in changes else "its own --epochs"
            done = f"{ckpt.epoch} epoch" + ("s" if ckpt.epoch != 1 else "")
            raise CnnzooError(
                f"{file.parent} has already trained {done}, so resuming with "
                f"{asked} trains nothing; --epochs counts from the run's start: give --epochs "
                f"{ckpt.epoch + 1} or more to train further"
            )
        return cls(file.parent, ckpt.model, dict(ckpt.model_args), ckpt.data, config, ckpt)

    def load_data(self, strict: bool = False, download: bool = False, data_dir: str | None = None):
        """The run's ``DataBundle``. A run from published weights is resized with their filter
        and normalised with their mean and std (as ``finetune`` does); a resumed run with the
        preprocessing its checkpoint recorded."""
        trained = self.trained_preprocess()
        if trained is None:
            return self.data.load(strict=strict, download=download, data_dir=data_dir)
        bundle = self.data.load(strict, download, data_dir, interpolation=trained.interpolation)
        own = Preprocess.from_dict(bundle.preprocess)
        bundle.set_preprocess(own.with_stats_of(trained).to_dict())
        return bundle

    def trained_preprocess(self) -> Preprocess | None:
        """The preprocessing the starting weights expect: the checkpoint's when resuming, the
        published weights' (their ``pretrained_cfg``) with ``pretrained``, else None."""
        if self.resume_from is not None:
            return self.resume_from.preprocess
        if self.pretrained:
            from ..hub import published_weights

            return Preprocess.from_pretrained_cfg(published_weights(self.model_name))
        return None

    def build_model(self, num_classes: int):
        from ..registry import create_model

        args = {**self.model_args, "num_classes": num_classes}
        if self.pretrained:
            model = create_model(self.model_name, pretrained=True, **args)
            # what the weights were built with (GoogLeNet's transform_input): the checkpoint's too
            self.model_args.update(model.pretrained_cfg["model_args"])
            return model
        return create_model(self.model_name, **args)

    def train(
        self,
        strict: bool = False,
        download: bool = False,
        data_dir: str | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> dict:
        """Load the data, build the model, ``fit`` it and score the final weights on the test
        split. ``announce`` receives a line saying what is being trained (main process only).
        Returns ``fit``'s result with ``"test_acc_last"`` when the data has a test split.
        Under torchrun every process calls it; the process group is set up and torn down here."""
        from ..models._base import check_input_size
        from .distributed import cleanup_distributed, is_main_process, setup_distributed
        from .loop import apply_run_threads, final_test, fit, seed_everything

        distributed = setup_distributed()
        try:
            main = is_main_process()
            with RunLock(self.out) if main else contextlib.nullcontext(), _sigterm_as_sigint():
                seed_everything(self.config.seed)  # fit selects and restores deterministic kernels
                self.config = apply_run_threads(self.config)  # before the data: kept for resume
                bundle = self.load_data(strict, download, data_dir)
                if self.resume_from is None:
                    check_new_run_dir(self.out)
                model = self.build_model(bundle.num_classes)
                meta = None  # a new run from published weights records which (resumes keep it)
                if self.pretrained:
                    from ..hub import weights_provenance

                    started = weights_provenance(self.model_name, model.pretrained_cfg)
                    meta = {"started_from": started}
                args = {**self.model_args, "num_classes": bundle.num_classes}
                if main and announce is not None:
                    what = "resuming" if self.resume_from else "training"
                    c, h, w = bundle.preprocess["input_size"]
                    announce(
                        f"{what} {self.model_name} on {bundle.name} from {bundle.source} "
                        f"({len(bundle.train):,} train, {len(bundle.val):,} val images, "
                        f"{bundle.num_classes} classes, input {h}x{w}x{c}) -> {self.out}"
                    )
                    if self.model_defaults:
                        own = ", ".join(f"{k} {v}" for k, v in self.model_defaults.items())
                        announce(f"{self.model_name}'s own training defaults: {own}")
                check_input_size(model, bundle.preprocess["input_size"])
                check_step_fits(model, bundle, self.config, self.model_name)
                result = fit(
                    model,
                    bundle,
                    self.config,
                    self.out,
                    model_name=self.model_name,
                    model_args=args,
                    resume=self.resume_from,
                    data_args=self.data,
                    extra_meta=meta,
                )
                if main and bundle.test is not None and result["history"]:
                    # the final weights, not best.pt, with the config's test-time views
                    result.update(final_test(model, bundle, self.config, self.out))
                return result
        finally:
            if distributed:
                cleanup_distributed()

    def interrupted_advice(self) -> str:
        """What a user can do after an interruption: only what works."""
        done = self.out / "interrupted.pt"
        saved = f"weights so far in {done}" if done.is_file() else "no weights were saved"
        if (self.out / "last.pt").is_file():
            return (
                f"interrupted; {saved}; `cnnzoo train --resume {self.out}` restarts from the "
                f"last completed epoch ({self.out / 'last.pt'})"
            )
        return (
            f"interrupted before the first epoch finished; {saved}; there is nothing to "
            f"resume: run the same command again to start over"
        )


def check_step_fits(model, bundle, config: TrainConfig, name: str) -> None:
    """``cnnzoo.analysis.memory.check_training_fits`` for ``config``'s batch of ``bundle``'s
    images on its device, at its precision: one line instead of the system killing the process."""
    import torch

    from ..analysis.memory import check_training_fits
    from .distributed import resolve_device
    from .loop import amp_dtype_of

    device = resolve_device(config.device)
    dtype = amp_dtype_of(config, device) or torch.float32  # amp: a lower bound still
    batch = min(config.batch_size, len(bundle.train))
    shape = (batch, *bundle.preprocess["input_size"])
    check_training_fits(model, shape, dtype, device, name)


def _load(path: Path) -> dict:
    from ..checkpoint import load_checkpoint

    return load_checkpoint(path)


@contextlib.contextmanager
def _sigterm_as_sigint():
    """SIGTERM (a scheduler or `kill`) ends a run as Ctrl-C does: interrupted.pt, a clean exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
