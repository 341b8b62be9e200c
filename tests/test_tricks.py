"""Behaviour tests of the speedrun pieces (cnnzoo.train.tricks), each against an independent
oracle: a covariance measured on the layer's output, a hand computation, torch.flip and shifted
tensors built index by index."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import CnnzooError
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.schedule import build_optimizer
from cnnzoo.train.tricks import (
    BatchAugment,
    DeviceBatches,
    WarmupLinear,
    WeightEMA,
    alternating_flip,
    bn_param_groups,
    dirac_,
    dirac_init_,
    flip_start,
    freeze_bn_scales_,
    parse_augment,
    parse_tta,
    random_translate,
    shift,
    tta_logits,
    tta_views,
    warmup_linear_factor,
    whiten_conv_,
    whiten_first_conv_,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_images(n: int = 256, c: int = 1, size: int = 16) -> torch.Tensor:
    """Images with strongly correlated neighbouring pixels (blurred noise) and unequal channel
    scales: their patch covariance is far from the identity."""
    x = torch.randn(n, c, size + 4, size + 4)
    x = F.avg_pool2d(x, 5, stride=1)  # neighbours share most of their window
    return x * torch.arange(1, c + 1).view(1, c, 1, 1) + 0.3


def output_covariance(y: torch.Tensor) -> torch.Tensor:
    flat = y.transpose(0, 1).reshape(y.shape[1], -1).double()  # channels x samples
    return torch.cov(flat)


# --- whitening -------------------------------------------------------------------------------


@pytest.mark.parametrize("c, k", [(1, 2), (3, 2), (1, 3)])
def test_whitening_filters_whiten_the_first_layers_output(c, k):
    x = smooth_images(c=c)
    d = c * k * k
    raw = output_covariance(F.unfold(x, k).transpose(1, 2).reshape(-1, d)[:, :, None, None])
    assert (raw - torch.diag(raw.diag())).abs().max() > 0.3 * raw.diag().max()  # correlated input
    conv = nn.Conv2d(c, d, k, bias=True)
    whiten_conv_(conv, x, eps=1e-9)
    cov = output_covariance(conv(x).detach())
    assert torch.allclose(cov, torch.eye(d, dtype=cov.dtype), atol=2e-3), cov
    means = conv(x).detach().mean((0, 2, 3))
    assert means.abs().max() < 1e-4  # the bias centres the outputs
    assert not conv.weight.requires_grad and conv.bias.requires_grad


def test_whitening_keeps_the_negated_filters_and_the_airbench_eps():
    x = smooth_images(c=3)
    conv = nn.Conv2d(3, 24, 2, bias=False)  # airbench's layer: 2 * 3 * 2 * 2 filters
    whiten_conv_(conv, x)  # eps 5e-4: eigenvalues l scaled to l / (l + eps)
    w = conv.weight.detach()
    assert torch.equal(w[12:], -w[:12])
    y = F.conv2d(x, w[:12])
    var = output_covariance(y).diag()
    assert var.max() < 1.0 and var.max() > 0.99  # largest components are nearly unit variance


def test_whitening_with_more_filters_than_twice_the_patch_keeps_the_rest():
    x = smooth_images(c=1)
    conv = nn.Conv2d(1, 16, 2, bias=False)
    before = conv.weight.detach().clone()
    whiten_conv_(conv, x)
    assert torch.equal(conv.weight[8:], before[8:])
    assert not torch.equal(conv.weight[:8], before[:8])


def test_whiten_first_conv_finds_the_layer_the_model_runs_first():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(8, 4, 3)  # registered first, runs second
            self.stem = nn.Conv2d(1, 8, 2)

        def forward(self, x):
            return self.head(self.stem(x))

    net = Net().train()
    assert whiten_first_conv_(net, smooth_images()) == "stem"
    assert not net.stem.weight.requires_grad and net.head.weight.requires_grad and net.training
    with pytest.raises(CnnzooError, match="N x 1 x H x W"):
        whiten_conv_(nn.Conv2d(1, 4, 2), smooth_images(c=3))


# --- dirac -----------------------------------------------------------------------------------


@pytest.mark.parametrize("in_chs, out_chs, k", [(4, 4, 3), (3, 8, 3), (6, 4, 5), (5, 5, 1)])
def test_dirac_init_makes_a_conv_an_identity(in_chs, out_chs, k):
    conv = nn.Conv2d(in_chs, out_chs, k, padding=k // 2, bias=True)
    dirac_(conv)
    x = torch.randn(2, in_chs, 9, 9)
    y = conv(x).detach()
    shared = min(in_chs, out_chs)
    assert torch.equal(y[:, :shared], x[:, :shared])


def test_dirac_depthwise_and_model_wide():
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
    x = torch.randn(1, 6, 5, 5)
    assert torch.equal(dirac_(dw)(x).detach(), x)
    net = nn.Sequential(nn.Conv2d(1, 4, 2), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3))
    net[1].weight.requires_grad_(False)
    assert dirac_init_(net) == ["2"]  # the even kernel and the frozen layer are left alone
    with pytest.raises(ValueError, match="odd kernel"):
        dirac_(nn.Conv2d(1, 1, 2))


# --- batch norm ------------------------------------------------------------------------------


def bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)
    )


def test_frozen_bn_scales_stay_bit_identical_after_steps_while_biases_move():
    net = bn_net()
    assert freeze_bn_scales_(net, value=1.0) == 1
    bn = net[1]
    scale0, bias0 = bn.weight.detach().clone(), bn.bias.detach().clone()
    config = TrainConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt = build_optimizer(net, config, bn_param_groups(net, 64.0, config.weight_decay))
    x, y = torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    assert torch.equal(bn.weight.detach(), scale0) and torch.equal(scale0, torch.ones(4))
    assert not torch.equal(bn.bias.detach(), bias0)


def test_bn_bias_group_has_the_multiplied_rate_and_the_same_decay_per_step():
    net = bn_net()
    freeze_bn_scales_(net)
    config = TrainConfig(lr=0.1, weight_decay=5e-4)
    opt = build_optimizer(net, config, bn_param_groups(net, 64.0, config.weight_decay))
    rest, bias = opt.param_groups
    assert [p is net[1].bias for p in bias["params"]] == [True]
    assert bias["lr"] == pytest.approx(6.4) and rest["lr"] == pytest.approx(0.1)
    assert bias["lr"] * bias["weight_decay"] == pytest.approx(rest["lr"] * rest["weight_decay"])
    assert all(p is not net[1].weight for g in opt.param_groups for p in g["params"])
    torch_groups = bn_param_groups(net, 8.0, base_lr=0.5)
    assert [g["lr"] for g in torch_groups] == [0.5, 4.0]


# --- EMA -------------------------------------------------------------------------------------


def test_ema_weights_equal_a_hand_computation_over_three_steps():
    lin = nn.Linear(1, 1, bias=False)
    bn = nn.BatchNorm1d(1)
    net = nn.Sequential(lin, bn)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = WeightEMA(net, decay=0.5)  # starts at the initial weights: 1.0
    for w in (3.0, 5.0, -1.0):  # the weight after each of three optimiser steps
        with torch.no_grad():
            lin.weight.fill_(w)
            bn.running_mean.fill_(w * 10)
        ema.update(net)
    # avg1 = 0.5 * 1 + 0.5 * 3 = 2;  avg2 = 0.5 * 2 + 0.5 * 5 = 3.5;  avg3 = 0.5 * 3.5 - 0.5 = 1.25
    assert ema.shadow["0.weight"].item() == 1.25
    # running mean: starts at 0; 0.5*0 + 0.5*30 = 15; 0.5*15 + 0.5*50 = 32.5; 0.5*32.5 - 5 = 11.25
    assert ema.shadow["1.running_mean"].item() == 11.25
    assert "1.num_batches_tracked" not in ema.shadow
    with ema.averaged(net):
        assert lin.weight.item() == 1.25 and bn.running_mean.item() == 11.25
    assert lin.weight.item() == -1.0 and bn.running_mean.item() == -10.0  # put back


def test_ema_every_and_lookahead():
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema = WeightEMA(lin, decay=0.75, every=2, lookahead=True)
    with torch.no_grad():
        lin.weight.fill_(4.0)
    assert not ema.update(lin) and lin.weight.item() == 4.0  # first call: skipped
    assert ema.update(lin)  # 0.75 * 0 + 0.25 * 4 = 1, copied into the model (lookahead)
    assert lin.weight.item() == 1.0 and ema.shadow["weight"].item() == 1.0
    state = ema.state_dict()
    again = WeightEMA(lin, decay=0.75, every=2)
    again.load_state_dict(state)
    assert again.calls == 2 and again.shadow["weight"].item() == 1.0


# --- augmentation ----------------------------------------------------------------------------


def test_derandomised_flips_alternate_per_epoch():
    x = torch.randn(64, 1, 5, 7)
    index = torch.arange(1000, 1064)
    flipped = []
    for epoch in range(4):
        out = alternating_flip(x, index, epoch, seed=3)
        is_flip = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)])
        kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
        assert torch.equal(is_flip, ~kept)  # every image is either mirrored or as it was
        flipped.append(is_flip)
    for a, b in zip(flipped, flipped[1:], strict=False):
        assert torch.equal(a, ~b)  # each image changes view every epoch
    assert torch.equal(flipped[0], flipped[2])
    assert 16 < int(flipped[0].sum()) < 48  # a random start per image, about half mirrored
    assert torch.equal(flipped[0], flip_start(index, seed=3))
    # the same image gets the same start in any batch (order or batch size do not matter)
    perm = torch.randperm(64)
    assert torch.equal(flip_start(index[perm], 3), flip_start(index, 3)[perm])
    assert not torch.equal(flip_start(index, 3), flip_start(index, 4))


def test_random_translate_is_a_reflect_padded_crop_within_two_pixels():
    x = torch.randn(40, 2, 8, 8)
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert found, i
        offsets.add(found[0])
    assert len(offsets) > 5  # offsets drawn per image


def test_augment_spec_and_device_batches():
    assert parse_augment("flip-alt+translate") == {"flip": "alternate", "translate": 2}
    assert parse_augment("flip+translate:3") == {"flip": "random", "translate": 3}
    assert parse_augment("none") == {"flip": None, "translate": 0}
    for bad in ("flip-alt+flip", "translate:0", "mixup", "translate:x"):
        with pytest.raises(CnnzooError):
            parse_augment(bad)
    from cnnzoo.data.datasets import TensorImageDataset
    from cnnzoo.data.transforms import make_preprocess

    images = torch.randint(0, 256, (10, 1, 6, 6), dtype=torch.uint8)
    preprocess = make_preprocess((1, 6, 6), (6, 6), [0.5], [0.25])
    ds = TensorImageDataset(images, torch.arange(10), preprocess)
    loader = DeviceBatches(ds, 4, "cpu", BatchAugment("flip-alt", seed=1), seed=0)
    assert len(loader) == 3
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        for x, y in loader:
            plain = (images[y].float() / 255 - 0.5) / 0.25
            want = alternating_flip(plain, y, epoch, seed=1)  # label = index in this dataset
            assert torch.allclose(x, want, atol=1e-6)


# --- TTA -------------------------------------------------------------------------------------


def reflect(i: int, n: int) -> int:
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def shifted_by_hand(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = x[..., reflect(i - dy, h), reflect(j - dx, w)]
    return out


def test_tta_views_are_the_named_transforms():
    x = torch.randn(2, 3, 6, 5)
    assert [n for n, _, _ in tta_views(x, "none")] == ["identity"]
    views = {n: (v, w) for n, v, w in tta_views(x, "flip,translate")}
    assert set(views) == {
        "identity", "flip", "shift(1,1)", "flip+shift(1,1)", "shift(-1,-1)", "flip+shift(-1,-1)"
    }  # fmt: skip
    assert torch.equal(views["identity"][0], x)
    assert torch.equal(views["flip"][0], torch.flip(x, [3]))
    assert torch.equal(views["shift(1,1)"][0], shifted_by_hand(x, 1, 1))
    assert torch.equal(views["shift(-1,-1)"][0], shifted_by_hand(x, -1, -1))
    assert torch.equal(views["flip+shift(1,1)"][0], torch.flip(shifted_by_hand(x, 1, 1), [3]))
    assert sum(w for _, w in views.values()) == pytest.approx(1.0)
    assert views["flip"][1] == 0.25 and views["shift(1,1)"][1] == 0.125
    assert torch.equal(shift(x, 0, 2), shifted_by_hand(x, 0, 2))
    flip_only = {n: v for n, v, _ in tta_views(x, "flip")}
    assert set(flip_only) == {"identity", "flip"}


def test_tta_logits_average_the_views_and_parse():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 5, 4)).eval()
    x = torch.randn(2, 3, 6, 5)
    with torch.no_grad():
        got = tta_logits(model, x, "flip")
        want = (model(x) + model(torch.flip(x, [3]))) / 2
    assert torch.allclose(got, want, atol=1e-6)
    assert parse_tta("translate, flip") == ("flip", "translate")
    assert parse_tta("none") == () and parse_tta(None) == ()
    with pytest.raises(CnnzooError, match="rotate"):
        parse_tta("flip,rotate")


# --- schedule --------------------------------------------------------------------------------


def test_warmup_linear_factor():
    # start 0.2 -> 1 over 2 epochs, then 1 -> 0.1 at 10 epochs
    f = [warmup_linear_factor(t, 10, 2, start=0.2, end=0.1) for t in (0, 1, 2, 6, 10, 12)]
    assert f == pytest.approx([0.2, 0.6, 1.0, 0.55, 0.1, 0.1])
    assert warmup_linear_factor(5, 10, 0) == pytest.approx(0.5)
    net = bn_net()
    opt = torch.optim.SGD([{"params": net[0].parameters(), "lr": 0.1},
                           {"params": net[4].parameters(), "lr": 1.0}])  # fmt: skip
    sched = WarmupLinear(opt, 4, 1, steps_per_epoch=10, start=0.0)
    sched.step(5)  # half-way through the warm-up
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.5])
    with pytest.raises(ValueError):
        warmup_linear_factor(1, 4, 5)
