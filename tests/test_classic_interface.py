"""The common interface on every classic model: forward/backward, features, head, classifier."""

import pytest
import torch

import cnnzoo

# The smallest square input of each model, worked out by hand from its layers, e.g. alexnet_tv:
# CONV1 (63 + 2*2 - 11) // 4 + 1 = 15, POOL1 (15 - 3) // 2 + 1 = 7, POOL2 3, POOL3 1; at 62 POOL3
# gets 2x2 and is empty. zfnet (pools round up): CONV1 (47 + 2 - 7) // 2 + 1 = 22, POOL1 11,
# CONV2 (11 - 5) // 2 + 1 = 4, POOL2 2, POOL3 1; at 46: 21, 10, 3, 1, 0. nin: CONV1
# (39 - 11) // 4 + 1 = 8, pools 4, 2, 1; at 38: 7, 3, 1, 0. nin_cifar: 4 -> 2 -> 1; at 3:
# 1 -> 0. VGG: five 2x2 pools need 2**5 = 32.
SMALLEST = {
    "alexnet": 67, "alexnet_2gpu": 67, "alexnet_tv": 63, "zfnet": 47,
    "vgg11": 32, "vgg13": 32, "vgg16": 32, "vgg19": 32,
    "vgg11_bn": 32, "vgg13_bn": 32, "vgg16_bn": 32, "vgg19_bn": 32,
    "nin": 39, "nin_cifar": 4,
}  # fmt: skip
# The other VGGs share vgg11_bn's code (vgg11: the same without BN, whose forward pass
# test_classic_vgg checks against torchvision); initialising and back-propagating their
# 130M+ weights costs seconds each, so they run with the slow tests.
HEAVY = {"vgg11", "vgg13", "vgg16", "vgg19", "vgg13_bn", "vgg16_bn", "vgg19_bn"}
NAMES = [*SMALLEST, "alphago_policy"]


def params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


@pytest.mark.parametrize("name", params(NAMES))
def test_interface_forward_backward(name):
    info = cnnzoo.get_model_info(name)
    chans = info.input_size[0]
    side = 19 if name == "alphago_policy" else max(SMALLEST[name], 32)
    num_classes = None if name == "alphago_policy" else 7  # AlphaGo: tied to the board
    model = cnnzoo.create_model(name, num_classes=num_classes)
    x = torch.randn(2, chans, side, side)

    out = model(x)  # training mode: dropout on
    expected = 361 if name == "alphago_policy" else 7
    assert out.shape == (2, expected) and model.num_classes == expected
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    first = next(model.parameters()).grad
    assert first.abs().sum() > 0  # the gradient reaches the first layer

    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.dim() == 4 and feats.shape[0] == 2
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.num_features) and torch.isfinite(pre).all()
        torch.testing.assert_close(model.forward_head(feats), model(x))

        if name == "alphago_policy":
            with pytest.raises(cnnzoo.CnnzooError):
                model.reset_classifier(5)
        else:
            model.reset_classifier(5)
            assert model(x).shape == (2, 5) and model.num_classes == 5
        model.reset_classifier(0)  # the model now outputs its pre-logits features
        assert model.num_classes == 0
        torch.testing.assert_close(model(x), pre)


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_zero_drops_the_classifier(name):
    full = cnnzoo.create_model(name, device="meta")
    headless = cnnzoo.create_model(name, num_classes=0, device="meta")
    head = sum(p.numel() for p in full.get_classifier().parameters())
    assert head > 0
    assert sum(p.numel() for p in headless.parameters()) == (
        sum(p.numel() for p in full.parameters()) - head
    )
    c, h, w = cnnzoo.get_model_info(name).input_size
    out = headless(torch.empty(1, c, h, w, device="meta"))
    assert out.shape == (1, headless.num_features)


@pytest.mark.parametrize("name", list(SMALLEST))
def test_input_too_small_names_layer(name):
    model = cnnzoo.create_model(name, device="meta").eval()  # BN needs eval at 1x1
    side = SMALLEST[name]
    model(torch.empty(1, 3, side, side, device="meta"))  # the smallest input works
    with pytest.raises(cnnzoo.InputTooSmallError, match=rf"layer '[\w.]+'.*{side}x{side}"):
        model(torch.empty(1, 3, side - 1, side - 1, device="meta"))


@pytest.mark.parametrize("name", NAMES)
def test_in_chans(name):
    _, h, w = cnnzoo.get_model_info(name).input_size
    model = cnnzoo.create_model(name, in_chans=1, device="meta").eval()
    assert model.in_chans == 1
    assert model(torch.empty(1, 1, h, w, device="meta")).shape[0] == 1
    with pytest.raises(cnnzoo.CnnzooError, match="in_chans=3"):
        model(torch.empty(1, 3, h, w, device="meta"))


def test_he_init():
    # He et al. 2015: weights ~ N(0, 2 / fan), here fan-out = k*k*filters as torchvision's VGG.
    model = cnnzoo.create_model("nin_cifar")
    conv = model.features[0].conv  # 192 filters 5x5: fan-out 5*5*192 = 4,800
    assert conv.weight.std().item() == pytest.approx((2 / (5 * 5 * 192)) ** 0.5, rel=0.05)
    assert conv.weight.mean().abs().item() < 0.002
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
