"""Initialisations of the speedruns: a whitening first convolution and dirac (identity) filters.

Both work on any zoo model and on whatever device its weights are on.

- ``whiten_conv_`` sets a convolution's filters from the eigenvectors of the data's patch
  covariance, scaled by ``1 / sqrt(eigenvalue + eps)``, so that its outputs are decorrelated with
  unit variance (Page's "input patch whitening", airbench's frozen 2x2 first layer, which also
  keeps each filter's negation so that a following ReLU/GELU loses nothing). The filters are
  frozen by default.
- ``dirac_`` turns a convolution into the identity on the channels it shares with its input; the
  filters past the input's channel count keep their random initialisation (airbench's
  ``dirac_(w[:in_channels])``), so every layer starts as an implicit residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CnnzooError

WHITEN_EPS = 5e-4  # airbench's regulariser of the eigenvalues (normalised-pixel units)


def patch_statistics(
    images: torch.Tensor, kernel_size: tuple[int, int], chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d) and covariance (d x d) of every ``kernel_size`` patch of ``images`` (N x C x H x W,
    no padding, stride 1), d = C * kh * kw, accumulated in float64 over chunks of images."""
    if images.dim() != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    kh, kw = kernel_size
    d = images.shape[1] * kh * kw
    total = torch.zeros(d, dtype=torch.float64, device=images.device)
    outer = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        cols = F.unfold(part.float(), (kh, kw))  # n x d x L
        flat = cols.transpose(1, 2).reshape(-1, d).double()
        total += flat.sum(0)
        outer += flat.T @ flat
        count += flat.shape[0]
    if count < 2:
        raise ValueError(f"need at least two patches to estimate a covariance, got {count}")
    mean = total / count
    cov = (outer - count * torch.outer(mean, mean)) / (count - 1)
    return mean, cov


def whitening_filters(
    images: torch.Tensor, kernel_size: tuple[int, int], eps: float = WHITEN_EPS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(filters d x C x kh x kw, eigenvalues d, patch mean d), in float64, largest variance first.

    Filter i is eigenvector i of the patch covariance divided by ``sqrt(eigenvalue_i + eps)``:
    applied to the patches it gives outputs of covariance ``diag(l / (l + eps))``, the identity
    wherever an eigenvalue is large against ``eps``."""
    c = images.shape[1]
    kh, kw = kernel_size
    mean, cov = patch_statistics(images, (kh, kw))
    values, vectors = torch.linalg.eigh(cov)  # ascending
    values, vectors = values.flip(0).clamp_min(0.0), vectors.flip(1)
    filters = (vectors / (values + eps).sqrt()).T.reshape(-1, c, kh, kw)
    return filters, values, mean


def whiten_conv_(
    conv: nn.Conv2d, images: torch.Tensor, eps: float = WHITEN_EPS, freeze: bool = True
) -> nn.Conv2d:
    """Set ``conv``'s filters to the whitening filters of ``images`` (what the layer receives:
    normalised model inputs, no augmentation; a few thousand images are plenty).

    With d = C * kh * kw patch dimensions, the filters are the d whitening filters followed by
    their negations, cut to ``out_channels``: fewer than d keep the components of largest variance,
    2d is airbench's layer, and filters past 2d keep their initialisation. A bias, if the layer has
    one, is set so that the outputs have zero mean on ``images``. ``freeze`` stops the weight's
    gradient (the bias stays trainable)."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"whiten_conv_ needs an nn.Conv2d, got {type(conv).__name__}")
    if conv.groups != 1 or conv.dilation != (1, 1):
        raise ValueError(
            f"whitening needs a dense, undilated convolution, got groups={conv.groups}, "
            f"dilation={conv.dilation}"
        )
    if images.dim() != 4 or images.shape[1] != conv.in_channels:
        raise CnnzooError(
            f"whitening images must be N x {conv.in_channels} x H x W for this layer, got shape "
            f"{tuple(images.shape)}"
        )
    filters, _, mean = whitening_filters(images.to(conv.weight.device), conv.kernel_size, eps)
    both = torch.cat([filters, -filters])[: conv.out_channels]
    with torch.no_grad():
        conv.weight[: len(both)] = both.to(conv.weight.dtype)
        if conv.bias is not None:
            conv.bias[: len(both)] = -(both.flatten(1) @ mean).to(conv.bias.dtype)
    if freeze:
        conv.weight.requires_grad_(False)
    return conv


def first_conv(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Conv2d]:
    """The name and module of the first ``nn.Conv2d`` that ``model`` runs on ``example`` (a batch
    of one or two inputs), found with forward hooks; the model is run in eval mode under
    ``no_grad`` and left in the mode it was in."""
    names = {m: n for n, m in model.named_modules()}
    seen: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: seen.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    if not seen:
        raise CnnzooError(f"{type(model).__name__} has no 2-d convolution to whiten")
    return names[seen[0]], seen[0]


def whiten_first_conv_(
    model: nn.Module, images: torch.Tensor, eps: float = WHITEN_EPS, freeze: bool = True
) -> str:
    """Whiten the first convolution ``model`` applies (see ``whiten_conv_``); returns its name.
    ``images``: normalised training inputs in the model's input format, on its device."""
    name, conv = first_conv(model, images[:2])
    whiten_conv_(conv, images, eps, freeze)
    return name


def dirac_(conv: nn.Conv2d) -> nn.Conv2d:
    """Identity initialisation: output channel ``o`` copies input channel ``o`` (within its group
    for a grouped convolution: group g's j-th output copies its j-th input) through the kernel's
    centre tap, so with 'same' padding the layer returns its input on those channels. Filters
    beyond the input's channel count keep their values; the bias is zeroed. Kernels must be odd."""
    kh, kw = conv.kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"dirac init needs an odd kernel (a centre tap), got {kh}x{kw}")
    out_chs, in_per_group = conv.weight.shape[:2]
    out_per_group = out_chs // conv.groups
    with torch.no_grad():
        o = torch.arange(out_chs, device=conv.weight.device)
        j = o % out_per_group
        keep = j < in_per_group
        conv.weight[keep] = 0.0
        conv.weight[o[keep], j[keep], kh // 2, kw // 2] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


def dirac_init_(model: nn.Module) -> list[str]:
    """``dirac_`` on every trainable ``nn.Conv2d`` of ``model`` with an odd kernel; frozen ones (a
    whitening layer) and even kernels are left alone. Returns the names of the layers changed."""
    done = []
    for name, m in model.named_modules():
        trainable = isinstance(m, nn.Conv2d) and m.weight.requires_grad
        if trainable and m.kernel_size[0] % 2 and m.kernel_size[1] % 2:
            dirac_(m)
            done.append(name)
    return done
