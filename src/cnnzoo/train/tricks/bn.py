"""Batch-norm parameters the speedrun way: frozen scales, and biases at a higher learning rate.

Page ("How to train your ResNet") and airbench fix every BN scale at 1 and train only the biases;
airbench gives the biases 64x the learning rate and divides their weight decay by the same factor,
so the decay per step (lr x wd) stays what the other parameters get. ``bn_param_groups`` returns
groups in the form ``cnnzoo.train.schedule.build_optimizer`` takes (``lr_mult``) or, given
``base_lr``, in torch's own form.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BN_BIAS_LR_MULT = 64.0  # airbench's bias_scaler


def bn_modules(model: nn.Module) -> list[_BatchNorm]:
    """The affine batch-norm layers of ``model`` (BatchNorm1d/2d/3d, SyncBatchNorm)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.affine]


def freeze_bn_scales_(model: nn.Module, value: float | None = None) -> int:
    """Stop the gradient of every BN scale (``weight``); with ``value``, set them to it first.
    Frozen parameters are left out of ``build_optimizer``'s groups, so weight decay and momentum
    never touch them either. Returns the number of layers frozen."""
    layers = bn_modules(model)
    for m in layers:
        if value is not None:
            m.weight.data.fill_(value)
        m.weight.requires_grad_(False)
    return len(layers)


def bn_param_groups(
    model: nn.Module,
    bias_lr_mult: float = BN_BIAS_LR_MULT,
    weight_decay: float | None = None,
    base_lr: float | None = None,
) -> list[dict]:
    """Two parameter groups: every trainable parameter except the BN biases, then the BN biases
    with ``bias_lr_mult`` times the rate.

    ``weight_decay`` (the optimiser's): the bias group gets ``weight_decay / bias_lr_mult``, so
    its decay per step is unchanged (airbench's decoupling); None leaves both groups on the
    optimiser's default. ``base_lr`` None: the bias group carries ``"lr_mult"`` for
    ``build_optimizer``; a number: both groups carry an absolute ``"lr"`` for a torch optimiser.
    Frozen parameters (frozen BN scales, a whitening layer) are in neither group."""
    if bias_lr_mult <= 0:
        raise ValueError(f"bias_lr_mult must be positive, got {bias_lr_mult}")
    biases = {id(m.bias): m.bias for m in bn_modules(model) if m.bias.requires_grad}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in biases]
    rest: dict = {"params": others}
    bias: dict = {"params": list(biases.values())}
    if base_lr is None:
        bias["lr_mult"] = bias_lr_mult
    else:
        rest["lr"], bias["lr"] = base_lr, base_lr * bias_lr_mult
    if weight_decay is not None:
        rest["weight_decay"], bias["weight_decay"] = weight_decay, weight_decay / bias_lr_mult
    return [g for g in (rest, bias) if g["params"]]
