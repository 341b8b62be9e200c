"""The analyzer's training-memory estimate against what autograd really keeps, and torchinfo's.

Truth: a real training-mode forward pass under ``saved_tensors_hooks``, adding up the distinct
storages autograd saves for backward (the model's own weights left out), plus weights, gradients
and one SGD momentum buffer. cnnzoo's figure comes from a meta-device pass (no memory used);
torchinfo's "forward/backward pass size" is its estimate of the same activation term.
"""

from __future__ import annotations

import torch
from torch import nn

import cnnzoo

from .common import Section


def autograd_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # hold every saved tensor so no address is reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            seen[s.data_ptr()] = s.nbytes()
        keep.append(t)
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    keep.clear()
    return sum(seen.values())


def run(quick: bool = False) -> Section:
    import torchinfo

    size, batch = (64, 2) if quick else (224, 8)
    names = ["mobilenet_v1"] if quick else ["vgg16", "resnet50", "mobilenet_v1"]
    rows = []
    for name in names:
        model = cnnzoo.create_model(name)
        shape = (batch, 3, size, size)
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        trainable = sum(p.numel() * p.element_size() for p in model.parameters())
        truth_saved = autograd_saved_bytes(model, torch.randn(shape))
        truth_total = truth_saved + weights + 2 * trainable
        report = cnnzoo.analyze(model, input_size=shape[1:], batch_size=batch)
        stats = torchinfo.summary(model, input_size=shape, verbose=0, mode="train")
        ti_saved = stats.total_output_bytes  # its "Forward/backward pass size"
        ti_total = stats.total_input + stats.total_output_bytes + stats.total_param_bytes
        rows.append(
            {
                "model": name,
                "input": f"{batch}x3x{size}x{size}",
                "autograd saved (MB)": truth_saved / 2**20,
                "cnnzoo saved / truth": report.total.saved_bytes / truth_saved,
                "torchinfo fwd/bwd / truth": ti_saved / truth_saved,
                "truth training (MB)": truth_total / 2**20,
                "cnnzoo training / truth": report.total.training_bytes / truth_total,
                "torchinfo total / truth": ti_total / truth_total,
            }
        )
        del model
    return Section(
        "Training memory: the analyzer vs autograd vs torchinfo",
        rows,
        [
            "truth = distinct storages autograd saves in a real training-mode forward, plus "
            "weights, gradients and one SGD momentum buffer; a ratio of 1.000 is exact",
            "torchinfo counts each layer's output once (x2 for 'forward/backward'), whatever "
            "autograd really keeps: in-place ReLUs, max-pool indices, BN inputs are not modelled",
        ],
    )
