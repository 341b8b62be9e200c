"""GoogLeNet and the Inception modules of the notes, against hand arithmetic and torchvision."""

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.models.googlenet import (
    GOOGLENET_AUX_WEIGHT,
    GoogLeNetOutputs,
    Inception,
    NaiveInception,
)
from helpers import n_params, randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")


def conv_macs(module: nn.Module, x: torch.Tensor) -> list[int]:
    """Measured multiply-accumulates of every Conv2d in one forward (out pixels x fan-in)."""
    macs: list[int] = []

    def hook(conv, _inp, out):
        kh, kw = conv.kernel_size
        macs.append(out[0].numel() * (conv.in_channels // conv.groups) * kh * kw)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return macs


def test_naive_module_of_the_notes_672_deep_854M_macs():
    block = NaiveInception(256, 128, 192, 96).eval()
    x = torch.randn(1, 256, 28, 28)
    assert block(x).shape == (1, 672, 28, 28)  # 128 + 192 + 96 + 256 passed through the pool
    # The notes' rows, output pixels x output depth x kernel area x input depth:
    rows = [
        28 * 28 * 128 * 1 * 1 * 256,  # [1x1 conv, 128] =  25,690,112
        28 * 28 * 192 * 3 * 3 * 256,  # [3x3 conv, 192] = 346,816,512
        28 * 28 * 96 * 5 * 5 * 256,  # [5x5 conv, 96]  = 481,689,600
    ]
    assert sum(rows) == 854_196_224  # "Total: 854M ops" - the notes agree
    assert sorted(conv_macs(block, x)) == sorted(rows)


def test_bottleneck_module_of_the_notes_480_deep_and_the_notes_total():
    block = Inception(256, 128, 64, 192, 64, 96, 64).eval()  # kernel5=5: the paper's module
    x = torch.randn(1, 256, 28, 28)
    assert block(x).shape == (1, 480, 28, 28)  # 128 + 192 + 96 + 64
    rows = [
        28 * 28 * 64 * 1 * 1 * 256,  # [1x1 conv, 64] 3x3 reduce  =  12,845,056
        28 * 28 * 64 * 1 * 1 * 256,  # [1x1 conv, 64] 5x5 reduce  =  12,845,056
        28 * 28 * 128 * 1 * 1 * 256,  # [1x1 conv, 128]           =  25,690,112
        28 * 28 * 192 * 3 * 3 * 64,  # [3x3 conv, 192]            =  86,704,128
        28 * 28 * 96 * 5 * 5 * 64,  # [5x5 conv, 96]              = 120,422,400
        28 * 28 * 64 * 1 * 1 * 256,  # [1x1 conv, 64] pool proj   =  12,845,056
    ]
    assert sorted(conv_macs(block, x)) == sorted(rows)
    # The notes print "Total: 358M ops", but their own rows add up to 271M: 358M is the sum with
    # the 3x3 row counted twice. So the saving is 854M -> 271M (-68%), not the notes' -58%.
    assert sum(rows) == 271_351_808
    assert sum(rows) + rows[3] == 358_055_936
    assert round(1 - sum(rows) / 854_196_224, 2) == 0.68
    assert round(1 - 480 / 672, 2) == 0.29  # the notes' "depth reduced 672 -> 480 (-29%)"


def test_googlenet_parameter_counts():
    tv_counts = {
        aux: n_params(torchvision.models.googlenet(aux_logits=aux, init_weights=False).to("meta"))
        for aux in (False, True)
    }
    ours = {
        aux: n_params(cnnzoo.create_model("googlenet", aux_logits=aux, device="meta"))
        for aux in (False, True)
    }
    assert ours == tv_counts
    assert ours[False] == 6_624_904
    # kernel5=5 makes each "5x5" branch the paper's: (25 - 9) more weights per (reduce, out) pair
    pairs = [
        (16, 32),
        (32, 96),
        (16, 48),
        (24, 64),
        (24, 64),
        (32, 64),
        (32, 128),
        (32, 128),
        (48, 128),
    ]  # (#5x5 reduce, #5x5) of 3a ... 5b, the paper's Table 1
    paper = cnnzoo.create_model("googlenet", aux_logits=False, kernel5=5, device="meta")
    assert n_params(paper) == 6_624_904 + 16 * sum(r * o for r, o in pairs) == 7_005_832


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_same_outputs_as_torchvision(transform_input):
    torch.manual_seed(0)
    tv = torchvision.models.googlenet(
        aux_logits=True, init_weights=True, transform_input=transform_input
    )
    randomize_bn_(tv)
    ours = cnnzoo.create_model("googlenet", transform_input=transform_input)
    assert list(ours.state_dict()) == list(tv.state_dict())  # key for key, in order
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    tv.eval(), ours.eval()
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert isinstance(got, torch.Tensor)  # eval mode: only the main logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    # Training mode: all three logits, in torchvision's order, with the same dropout draws.
    tv.train(), ours.train()
    with torch.no_grad():
        torch.manual_seed(3)
        expected = tv(x)
        torch.manual_seed(3)
        got = ours(x)
    assert type(got).__name__ == "GoogLeNetOutputs" and got._fields == expected._fields
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_googlenet_aux_heads_train_vs_eval_and_gradient_reach():
    model = cnnzoo.create_model("googlenet", num_classes=5)
    assert GOOGLENET_AUX_WEIGHT == 0.3 and model.aux_loss_weight == 0.3
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [o.shape for o in out] == [(2, 5)] * 3
    # aux_logits1 hangs off inception4a: its loss alone reaches conv1 but nothing after 4a.
    out.aux_logits1.sum().backward()
    assert model.conv1.conv.weight.grad.abs().sum() > 0
    assert model.inception4a.branch1.conv.weight.grad.abs().sum() > 0
    assert model.inception4b.branch1.conv.weight.grad is None
    assert model.fc.weight.grad is None
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 5)
        no_aux = cnnzoo.create_model("googlenet", num_classes=5, aux_logits=False)
        assert no_aux.train()(x).shape == (2, 5)
        assert not any(k.startswith("aux") for k in no_aux.state_dict())


def test_googlenet_reset_classifier_resets_aux_heads_too():
    model = cnnzoo.create_model("googlenet", device="meta")
    model.reset_classifier(7)
    assert model.fc.out_features == model.aux1.fc2.out_features == model.aux2.fc2.out_features == 7
    model.reset_classifier(0)  # features only: the aux heads have nothing to predict
    assert not model.aux_logits and isinstance(model.fc, nn.Identity)
    headless = cnnzoo.create_model("googlenet", num_classes=0)
    assert not headless.aux_logits
    with torch.no_grad():
        assert headless.train()(torch.randn(2, 3, 32, 32)).shape == (2, 1024)


def test_googlenet_refuses_transform_input_without_rgb():
    with pytest.raises(ValueError, match="in_chans=3"):
        cnnzoo.create_model("googlenet", in_chans=1, transform_input=True)
    with pytest.raises(ValueError, match="kernel5"):
        Inception(192, 64, 96, 128, 16, 32, 32, kernel5=7)


def test_calculator_agrees_with_the_modules_at_another_size():
    # cnnzoo.calc's naive-vs-bottleneck calculator against the real blocks, on inception4a's
    # widths at 14x14x480 (not the notes' example, so nothing is special-cased).
    from cnnzoo.calc import inception_module

    calc = inception_module(
        (14, 14, 480), ch1x1=192, ch3x3=208, ch5x5=48, reduce3x3=96, reduce5x5=16, pool_proj=64
    )
    naive = NaiveInception(480, 192, 208, 48).eval()
    bottleneck = Inception(480, 192, 96, 208, 16, 48, 64).eval()
    x = torch.randn(1, 480, 14, 14)
    assert sum(conv_macs(naive, x)) == calc.naive_macs
    assert sum(conv_macs(bottleneck, x)) == calc.bottleneck_macs
    conv_weights = [
        sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
        for block in (naive, bottleneck)
    ]
    assert conv_weights == [calc.naive_params, calc.bottleneck_params]
    assert (naive.out_chs, bottleneck.out_chs) == (calc.naive_depth, calc.bottleneck_depth)
