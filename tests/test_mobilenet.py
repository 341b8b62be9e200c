"""MobileNet v1 against the paper's tables, hand arithmetic and timm's implementation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models.layers import DepthwiseSeparableConv
from cnnzoo.models.mobilenet import MOBILENET_V1_ROWS, MobileNetV1
from helpers import n_params, randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")


def test_separable_vs_standard_parameters_by_hand():
    # The lecture's formulas for one 3x3 layer from C=512 to C'=512 (Table 1's 14x14x512 rows):
    # standard C*k*k*C' = 512*3*3*512 = 2,359,296; separable C*(k*k + C') = 512*(9+512) = 266,752.
    block = DepthwiseSeparableConv(512, 512)
    conv_weights = block.dw.conv.weight.numel() + block.pw.conv.weight.numel()
    assert conv_weights == 512 * (3 * 3 + 512) == 266_752
    standard = nn.Conv2d(512, 512, 3, padding=1, bias=False)
    assert standard.weight.numel() == 512 * 3 * 3 * 512 == 2_359_296
    # The paper's reduction factor 1/C' + 1/k^2 (section 3.1).
    assert conv_weights / standard.weight.numel() == pytest.approx(1 / 512 + 1 / 9)


def table1_param_formula(alpha: float, num_classes: int = 1000) -> int:
    """Parameters from Table 1 written out: stem conv+BN, then per row C*(9+C') + BN 2*(C+C')."""
    c = int(32 * alpha)
    total = 3 * 3 * 3 * c + 2 * c
    for out, _ in MOBILENET_V1_ROWS:
        out = int(out * alpha)
        total += c * (3 * 3 + out) + 2 * (c + out)
        c = out
    return total + c * num_classes + num_classes


@pytest.mark.parametrize(
    "name, alpha, paper_millions",
    # Table 6 of the paper (ImageNet, 224x224): 4.2M, 2.6M, 1.3M, 0.47M parameters.
    [
        ("mobilenet_v1", 1.0, 4.2),
        ("mobilenet_v1_075", 0.75, 2.6),
        ("mobilenet_v1_050", 0.5, 1.3),
        ("mobilenet_v1_025", 0.25, 0.47),
    ],
)
def test_parameter_counts_match_paper(name, alpha, paper_millions):
    model = cnnzoo.create_model(name, device="meta")
    count = n_params(model)
    assert count == table1_param_formula(alpha)
    digits = 2 if paper_millions < 1 else 1
    assert round(count / 1e6, digits) == paper_millions


def test_table1_shapes():
    # Table 1's output sizes at 224x224x3, collected on the meta device (no compute).
    expected = ["112x112x32", "112x112x64", "56x56x128", "56x56x128", "28x28x256", "28x28x256"]
    expected += ["14x14x512"] * 6 + ["7x7x1024"] * 2
    model = cnnzoo.create_model("mobilenet_v1", device="meta")
    seen = []
    mods = [model.stem] + list(model.features)
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, o: seen.append(f"{o.shape[2]}x{o.shape[3]}x{o.shape[1]}")
        )
        for m in mods
    ]
    out = model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    assert seen == expected
    assert tuple(out.shape) == (1, 1000)


@pytest.mark.parametrize("resolution, side", [(224, 7), (192, 6), (160, 5), (128, 4)])
def test_resolution_multiplier(resolution, side):
    # rho: the paper's 224/192/160/128 inputs give 7/6/5/4 final maps, stride 32.
    model = cnnzoo.create_model("mobilenet_v1", resolution=resolution, device="meta")
    assert model.input_size == (3, resolution, resolution)
    feats = model.forward_features(torch.empty(1, 3, resolution, resolution, device="meta"))
    assert tuple(feats.shape) == (1, 1024, side, side)


def test_interface_forward_backward():
    model = cnnzoo.create_model("mobilenet_v1_025", num_classes=7, in_chans=1)
    assert (model.num_classes, model.in_chans, model.num_features) == (7, 1, 256)
    x = torch.randn(2, 1, 64, 64)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert p.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 256, 2, 2)
        pre = model.forward_head(feats, pre_logits=True)
        assert torch.allclose(pre, feats.mean((2, 3)))
        assert torch.allclose(model.forward_head(feats), model.get_classifier()(pre))
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.num_classes == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, 256)


def test_bad_arguments():
    with pytest.raises(ValueError, match="width_mult"):
        MobileNetV1(width_mult=0)
    with pytest.raises(ValueError, match="act"):
        MobileNetV1(act="gelu")
    with pytest.raises(ValueError, match="resolution"):
        MobileNetV1(resolution=16)


def test_same_outputs_as_timm_mobilenetv1_100():
    timm = pytest.importorskip("timm")
    peer = timm.create_model("mobilenetv1_100", pretrained=False).eval()
    randomize_bn_(peer)
    ours = cnnzoo.create_model("mobilenet_v1", act="relu6").eval()
    assert n_params(ours) == n_params(peer)
    ours.load_state_dict(ours.adapt_state_dict(peer.state_dict()), strict=True)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = peer(x)
        got = ours(x)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-4)
    # The paper's plain ReLU is a different function of the same weights.
    ours_relu = cnnzoo.create_model("mobilenet_v1").eval()
    ours_relu.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert not torch.allclose(ours_relu(x), ref, atol=1e-5)
