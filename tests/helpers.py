"""Helpers shared by the test files (imported as ``from helpers import ...``)."""

from __future__ import annotations

import torch
from torch import nn


def n_params(model: nn.Module) -> int:
    """Parameters of a model, a tensor shared by several modules counted once."""
    return sum(p.numel() for p in model.parameters())


def randomize_bn_(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters, in place.

    Freshly built norms are the identity in eval mode (mean 0, variance 1, weight 1, bias 0), so
    a parity or folding test on them could not see a misplaced, missing or misloaded norm.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model
