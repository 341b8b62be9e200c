"""Training memory: the analyzer's autograd term against what autograd really saves on real
tensors (unique storages, parameters left out), and a small network worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze


def autograd_saved_bytes(model: nn.Module, shape: tuple[int, ...]) -> int:
    """The oracle: run a real training-mode forward and add up the distinct storages autograd
    keeps for backward, leaving out the model's own parameters and buffers."""
    model.train()
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}
    keep: list[torch.Tensor] = []  # hold every saved tensor so no storage address is reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in own:
            seen[s.data_ptr()] = s.nbytes()
        keep.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(torch.rand(shape))
    del out
    return sum(seen.values())


def test_training_memory_by_hand():
    """conv -> in-place ReLU -> max-pool, batch 2 of 3x8x8, float32."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
    report = analyze(model, (3, 8, 8), batch_size=2)
    x = 2 * 3 * 8 * 8 * 4  # the conv saves its input
    y = 2 * 4 * 8 * 8 * 4  # ReLU saves its output, the same storage the pool saves as input
    idx = 2 * 4 * 4 * 4 * 8  # max-pool indices, int64
    assert report.total.saved_bytes == x + y + idx == 4608
    weights = ((3 * 3 * 3 + 1) * 4) * 4
    assert report.total.weight_bytes == weights
    assert report.total.training_bytes == x + y + idx + 3 * weights  # + gradients + momentum
    # Forward memory: the input and the conv/ReLU output (in place) and the pool output.
    assert report.total.forward_bytes == x + y + 2 * 4 * 4 * 4 * 4


def test_frozen_parameters_have_no_gradient_or_momentum():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    for p in model[0].parameters():
        p.requires_grad_(False)
    report = analyze(model, (3, 8, 8))
    conv, fc = (27 + 1) * 4 * 4, (144 + 1) * 2 * 4
    assert report.total.weight_bytes == conv + fc
    assert report.total.grad_bytes == report.total.optimizer_bytes == fc


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet_v1"])
def test_autograd_term_matches_real_autograd_small_input(name):
    model = cnnzoo.create_model(name)
    flags = [m.training for m in model.modules()]
    estimate = analyze(model, (3, 32, 32), batch_size=2).total.saved_bytes
    assert [m.training for m in model.modules()] == flags
    real = autograd_saved_bytes(model, (2, 3, 32, 32))
    assert abs(estimate - real) / real < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet50", "mobilenet_v1"])
def test_autograd_term_matches_real_autograd_224(name):
    model = cnnzoo.create_model(name)
    estimate = analyze(model, (3, 224, 224), batch_size=2).total.saved_bytes
    real = autograd_saved_bytes(model, (2, 3, 224, 224))
    assert abs(estimate - real) / real < 0.15


def test_batch_of_one_that_cannot_train_is_extrapolated():
    """Batch norm over a 1x1 map cannot train on one sample; the autograd term for batch 1 is
    then extrapolated from batches 2 and 3, and matches the same extrapolation of real autograd."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    report = analyze(model, (3, 8, 8), batch_size=1)
    assert any("extrapolated" in note for note in report.total.notes)
    real = 2 * autograd_saved_bytes(model, (2, 3, 8, 8)) - autograd_saved_bytes(model, (3, 3, 8, 8))
    assert report.total.saved_bytes == real


def test_one_value_per_channel_is_told_apart_from_a_small_map_and_from_other_errors():
    """The extrapolation is for exactly the batch norm that would see one value per channel:
    a flat batch norm after a linear layer at batch 1 is extrapolated; one over a 1x2 map (two
    values per channel) trains on one sample and is measured as it is; another error that a
    batch of one raises is not taken for it."""
    from cnnzoo.analysis.memory import training_memory

    flat = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    one = training_memory(flat, (1, 3, 2, 2), torch.float32)
    two, three = (training_memory(flat, (n, 3, 2, 2), torch.float32) for n in (2, 3))
    assert one.extrapolated and not two.extrapolated and not three.extrapolated
    assert one.saved_bytes == 2 * two.saved_bytes - three.saved_bytes
    real_two, real_three = (autograd_saved_bytes(flat, (n, 3, 2, 2)) for n in (2, 3))
    assert one.saved_bytes == 2 * real_two - real_three

    wide = nn.Sequential(nn.Conv2d(3, 4, (3, 2)), nn.BatchNorm2d(4))  # 3x3 in: a 1x2 map
    measured = training_memory(wide, (1, 3, 3, 3), torch.float32)
    assert not measured.extrapolated
    assert measured.saved_bytes == autograd_saved_bytes(wide, (1, 3, 3, 3))

    class RefusesOne(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] == 1:
                raise ValueError("this layer wants more than 1 value per channel")
            return x

    with pytest.raises(ValueError):
        training_memory(nn.Sequential(nn.BatchNorm2d(3), RefusesOne()), (1, 3, 4, 4), torch.float32)


@pytest.mark.slow
def test_every_zoo_model_analyses_and_its_rows_add_up():
    for name in cnnzoo.list_models():
        info = cnnzoo.get_model_info(name)
        model = cnnzoo.create_model(name, device="meta")
        report = analyze(model, info.input_size, name=name)
        unused = sum(
            p.numel() for n, p in model.named_parameters() if n in report.total.unused_params
        )
        assert sum(r.params for r in report.layers) + unused == report.total.params, name
        assert report.total.params == sum(p.numel() for p in model.parameters()), name
        assert report.total.macs > 0 and report.total.training_bytes > report.total.weight_bytes


def test_half_precision_halves_the_bytes_not_the_counts():
    model = cnnzoo.create_model("vgg11", device="meta")
    full = analyze(model, (3, 64, 64)).total
    half = analyze(model, (3, 64, 64), dtype=torch.float16).total
    assert half.activations == full.activations and half.macs == full.macs
    assert 2 * half.forward_bytes == full.forward_bytes
    assert 2 * half.weight_bytes == full.weight_bytes
    # Max-pool indices stay int64, so the autograd term shrinks by a little less than half.
    assert full.saved_bytes / 2 < half.saved_bytes < full.saved_bytes
    assert next(model.parameters()).dtype == torch.float32  # the model itself is not converted


def test_training_memory_of_a_model_that_draws_is_the_same_on_every_call():
    """FractalNet drops joins at random in training mode: the figure is one fixed draw, and the
    caller's random stream is left as it was."""
    model = cnnzoo.create_model("fractalnet", device="meta")
    figures = set()
    for seed in range(4):
        torch.manual_seed(seed)
        expected = torch.rand(3)
        torch.manual_seed(seed)
        figures.add(cnnzoo.analyze(model, input_size=(3, 32, 32)).total.saved_bytes)
        assert torch.equal(torch.rand(3), expected)
    assert len(figures) == 1
