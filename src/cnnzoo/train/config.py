"""The training configuration: one dataclass, stored in every checkpoint as a dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

OPTIMIZERS = ("sgd", "rmsprop", "adamw", "adam")
SCHEDULES = ("none", "step", "cosine", "plateau", "onecycle")


@dataclass
class TrainConfig:
    """How to train; every field has the command-line option of the same name (``--lr`` ...)."""

    epochs: int = 10  # passes over the training split
    batch_size: int = 64  # images per step (per process under torchrun)
    opt: str = "sgd"  # sgd | rmsprop | adamw | adam
    lr: float = 0.01  # peak learning rate (each param group may scale it)
    momentum: float = 0.9  # SGD momentum; RMSProp momentum too
    nesterov: bool = False  # Nesterov momentum for SGD
    weight_decay: float = 5e-4  # L2 (SGD, RMSProp) or decoupled (AdamW) weight decay
    sched: str = "none"  # none | step | cosine | plateau | onecycle
    step_size: int = 30  # step schedule: epochs between decays
    gamma: float = 0.1  # step and plateau schedules: the decay factor ("divide by 10")
    patience: int = 2  # plateau: decay after more than this many epochs without a better val acc
    warmup_epochs: float = 0.0  # linear warm-up from lr/100 to lr over this many epochs
    min_lr: float = 0.0  # floor of the cosine and one-cycle schedules
    label_smoothing: float = 0.0  # cross-entropy label smoothing (Inception v3 used 0.1)
    aux_weight: float | None = None  # weight of auxiliary-classifier losses; None: the paper's
    grad_clip: float | None = None  # clip the gradient norm to this value
    amp: bool = False  # mixed precision: bf16 on CPU, fp16 (with a grad scaler) on CUDA
    amp_dtype: str | None = None  # "bfloat16" or "float16" to override the default above
    channels_last: bool = True  # NHWC memory format: 1.0-1.26x faster training (benchmarks)
    compile: bool = False  # torch.compile the model
    fused: bool = True  # one fused optimiser step for all parameters (torch's CPU default loops)
    seed: int = 0  # seeds initialisation, shuffling, augmentation and dropout
    deterministic: bool = False  # deterministic kernels: a rerun gives the same weights
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:1 ...
    sync_bn: bool = False  # under torchrun, convert BatchNorm to SyncBatchNorm
    eval_batch_size: int = 256  # images per step when evaluating
    num_workers: int = 0  # loader processes for datasets read from disk (in-memory ones need none)
    progress: bool = True  # a tqdm progress bar
    tensorboard: bool = True  # write TensorBoard events to the run directory
    plots: bool = True  # write curves.png every epoch

    def __post_init__(self) -> None:
        if self.opt not in OPTIMIZERS:
            raise ValueError(f"opt must be one of {', '.join(OPTIMIZERS)}, got {self.opt!r}")
        if self.sched not in SCHEDULES:
            raise ValueError(f"sched must be one of {', '.join(SCHEDULES)}, got {self.sched!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "step_size", "patience"):
            if getattr(self, name) < (0 if name == "patience" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.amp_dtype not in (None, "bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be bfloat16 or float16, got {self.amp_dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from ``to_dict()``; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
