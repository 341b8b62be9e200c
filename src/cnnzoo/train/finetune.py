"""Fine-tuning as a run: what ``cnnzoo finetune`` does, from Python.

``FineTune.new("runs/a/best.pt", "path/to/folder", freeze="until:layer3")`` resolves the starting
weights (a cnnzoo checkpoint, or a torchvision/timm weight file with ``model_name``), the data at
the model's input size with the statistics the weights were trained with, and the
``TrainConfig``; ``.train()`` runs ``cnnzoo.transfer.finetune`` (a linear probe or ``fit``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import check_data_spec
from ..errors import CnnzooError
from ..notation import image_hw
from ..runs import (
    DataSpec,
    ModelSource,
    Preprocess,
    RunLock,
    check_new_run_dir,
    resolve_checkpoint,
    resolve_model,
)
from .config import TrainConfig, check_fields


def _not_a_start(weights: str) -> str:
    """Why ``finetune`` cannot start from ``weights``, which is no checkpoint file or run."""
    from ..registry import model_name_hint

    return model_name_hint(weights) or (
        f"{weights} is not a file or a run directory with a checkpoint; finetune starts from a "
        f"checkpoint, a run or a weight file (to train from scratch use `cnnzoo train`)"
    )


@dataclass
class FineTune:
    """A fine-tuning run: where the weights come from, the data, how much is frozen."""

    source: ModelSource
    data: DataSpec
    config: TrainConfig
    out: Path
    freeze: str = "backbone"  # backbone | none | until:LAYER
    backbone_lr_scale: float = 0.1  # unfrozen backbone layers' rate / the head's
    probe: bool = True  # a linear probe on features computed once (freeze="backbone" only)

    @classmethod
    def new(
        cls,
        weights: str | os.PathLike,
        data: str,
        *,
        model_name: str | None = None,
        freeze: str = "backbone",
        backbone_lr_scale: float = 0.1,
        probe: bool | None = None,
        augment: str = "none",
        img_size: int | tuple[int, int] | str | None = None,
        per_class: int | None = None,
        data_dir: str | None = None,
        limit: int | None = None,
        out: str | os.PathLike | None = None,
        pretrained: bool = False,
        **config: Any,
    ) -> FineTune:
        """``probe`` defaults to True for ``freeze="backbone"``; ``config``: TrainConfig fields.
        With ``pretrained``, ``weights`` is a model name whose published weights start it."""
        from ..transfer import check_freeze_mode

        if not pretrained and not resolve_checkpoint(weights).is_file():
            raise CnnzooError(_not_a_start(str(weights)))
        check_freeze_mode(freeze)  # before the data is loaded
        check_fields(config)
        cfg = TrainConfig(**config)
        probe = freeze == "backbone" if probe is None else probe
        if probe and augment != "none":
            raise CnnzooError(
                "a linear probe uses fixed features: drop --augment or add --no-probe"
            )
        if backbone_lr_scale < 0:
            raise CnnzooError(f"--backbone-lr-scale must be >= 0, got {backbone_lr_scale}")
        src = resolve_model(str(weights), model_name, pretrained=pretrained)
        hw = image_hw(img_size) if img_size is not None else src.input_size[1:]
        size = (src.input_size[0], *hw)
        check_data_spec(data)
        spec = DataSpec(data, size, data_dir, augment, 0.1, cfg.seed, limit, per_class)
        out = Path(out or f"runs/finetune-{src.name}-{Path(data).resolve().name}")
        spec.check_outside(out)
        return cls(src, spec, cfg, out, freeze, backbone_lr_scale, probe)

    def load_data(self, strict: bool = False, download: bool = False):
        """The data, normalised with the statistics the starting weights expect."""
        bundle = self.data.load(strict, download, interpolation=self.source.interpolation)
        bundle.set_preprocess(self.source.preprocess_for(Preprocess.from_dict(bundle.preprocess))
                              .to_dict())  # fmt: skip
        return bundle

    def train(
        self,
        strict: bool = False,
        download: bool = False,
        announce: Callable[[str], None] | None = None,
    ) -> dict:
        """Fine-tune and write ``best.pt``/``last.pt``; returns ``cnnzoo.transfer.finetune``'s
        result with ``"hint"``: a command that evaluates the result."""
        from ..models._base import check_input_size
        from ..transfer import finetune
        from .loop import apply_run_threads, seed_everything
        from .run import check_step_fits

        with RunLock(self.out):
            check_new_run_dir(self.out, resumable=False)
            seed_everything(self.config.seed)  # fit selects (and restores) deterministic kernels
            self.config = apply_run_threads(self.config)  # before the data, which it reduces
            bundle = self.load_data(strict, download)
            if announce is not None:
                how = (
                    "linear probe" if self.probe else f"fit, backbone lr x{self.backbone_lr_scale}"
                )
                announce(
                    f"{self.source.name} from {self.source.source} on {bundle.name} "
                    f"({len(bundle.train):,} train, {len(bundle.val):,} val images, "
                    f"{bundle.num_classes} classes), freeze {self.freeze}, {how} -> {self.out}"
                )
            check_input_size(self.source.model, bundle.preprocess["input_size"])
            if not self.probe:  # a probe trains a linear layer on features computed once
                check_step_fits(self.source.model, bundle, self.config, self.source.name)
            result = finetune(
                self.source.model,
                bundle,
                self.config,
                self.out,
                model_name=self.source.name,
                model_args=self.source.model_args,
                freeze_mode=self.freeze,
                backbone_lr_scale=self.backbone_lr_scale,
                probe=self.probe,
                data_args=self.data,
                started_from=self.source.started_from,
            )
        split = "test" if bundle.test is not None else "val"
        result["hint"] = f"cnnzoo evaluate {result['best']} --split {split}"
        return result
