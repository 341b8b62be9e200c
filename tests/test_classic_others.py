"""LeNet-5's variants, ZFNet, Network in Network and AlphaGo's policy network: hand counts, paper
shapes, behaviour."""

import pytest
import torch
from torch import nn

import cnnzoo
from helpers import n_params


def volumes(modules, x: torch.Tensor) -> list[str]:
    """Lecture-notation volumes (HxWxC) after each module, run in sequence."""
    out = []
    with torch.no_grad():
        for m in modules:
            x = m(x)
            out.append(f"{x.shape[2]}x{x.shape[3]}x{x.shape[1]}")
    return out


def test_lenet5_max_pool_variant_by_hand():
    conv = (5 * 5 * 1 + 1) * 6 + (5 * 5 * 6 + 1) * 16 + (5 * 5 * 16 + 1) * 120  # C1, C3, C5
    fc = (120 + 1) * 84 + (84 + 1) * 10  # F6, output
    model = cnnzoo.create_model("lenet5", act="relu", pool="max").eval()
    assert n_params(model) == conv + fc == 61_706  # pooling has no weights either way
    x = torch.randn(2, 1, 32, 32)
    c1 = model.features[0](x)
    s2 = torch.nn.functional.max_pool2d(c1.relu(), 2)  # S2: the largest of each 2x2 window
    assert torch.equal(model.features[:3](x), s2)
    assert volumes(model.features, x) == [
        "28x28x6", "28x28x6", "14x14x6", "10x10x16", "10x10x16", "5x5x16", "1x1x120", "1x1x120"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="pool must be 'avg' or 'max'"):
        cnnzoo.create_model("lenet5", pool="mean")


@pytest.mark.parametrize("act, gain", [("tanh", 5 / 3), ("relu", 1.0)])
def test_lenet5_starts_from_glorot_uniform_with_its_activations_gain(act, gain):
    """Glorot's bound gain x sqrt(6 / (fan_in + fan_out)), worked out for C5 (16 maps of 5x5 in,
    120 maps out): 48,000 uniform draws reach the bound and have its standard deviation
    bound / sqrt(3). Tanh's gain is torch's 5/3 (gain 1, the initialisation before, gives 0.6x
    that); ReLU keeps gain 1, with which its recipes were measured (sqrt(2) killed one of them)."""
    torch.manual_seed(0)
    c5 = cnnzoo.create_model("lenet5", act=act).features[6]
    fan_in, fan_out = 16 * 5 * 5, 120 * 5 * 5
    bound = gain * (6 / (fan_in + fan_out)) ** 0.5
    w = c5.weight.detach()
    assert 0.99 * bound < w.abs().max() <= bound
    assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)
    assert not c5.bias.any()


def test_zfnet_parameters_by_hand():
    conv = (
        (7 * 7 * 3 + 1) * 96  # CONV1 7x7/2
        + (5 * 5 * 96 + 1) * 256  # CONV2 5x5/2
        + (3 * 3 * 256 + 1) * 512  # CONV3
        + (3 * 3 * 512 + 1) * 1024  # CONV4
        + (3 * 3 * 1024 + 1) * 512  # CONV5
    )
    fc = (6 * 6 * 512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert n_params(cnnzoo.create_model("zfnet", device="meta")) == conv + fc == 107_627_624


def test_zfnet_paper_sizes():
    # Zeiler & Fergus 2013, architecture figure: 224 -> 110 -> 55 -> 26 -> 13 -> ... -> 6.
    model = cnnzoo.create_model("zfnet", device="meta")
    layers = [m for m in model.features if not isinstance(m, nn.ReLU)]
    assert volumes(layers, torch.empty(1, 3, 224, 224, device="meta")) == [
        "110x110x96", "55x55x96", "55x55x96",  # CONV1, POOL1, NORM1
        "26x26x256", "13x13x256", "13x13x256",  # CONV2, POOL2, NORM2
        "13x13x512", "13x13x1024", "13x13x512", "6x6x512",  # CONV3-5, POOL3
    ]  # fmt: skip
    conv1, conv2 = model.features[0], model.features[4]
    assert (conv1.kernel_size, conv1.stride) == ((7, 7), (2, 2))
    assert (conv2.kernel_size, conv2.stride) == ((5, 5), (2, 2))


def test_nin_imagenet_parameters_by_hand():
    expected = (
        (11 * 11 * 3 + 1) * 96
        + 2 * (96 + 1) * 96  # mlpconv 1: conv1, cccp1, cccp2
        + (5 * 5 * 96 + 1) * 256
        + 2 * (256 + 1) * 256  # mlpconv 2
        + (3 * 3 * 256 + 1) * 384
        + 2 * (384 + 1) * 384  # mlpconv 3
        + (3 * 3 * 384 + 1) * 1024
        + (1024 + 1) * 1024
        + (1024 + 1) * 1000  # mlpconv 4
    )
    model = cnnzoo.create_model("nin", device="meta")
    assert n_params(model) == expected == 7_595_176
    # no fully connected layer anywhere: the class scores are averaged 1x1-conv maps
    assert not any(isinstance(m, nn.Linear) for m in model.modules())


def test_nin_cifar_parameters_by_hand():
    expected = (
        (5 * 5 * 3 + 1) * 192
        + (192 + 1) * 160
        + (160 + 1) * 96  # 192-160-96
        + (5 * 5 * 96 + 1) * 192
        + 2 * (192 + 1) * 192  # 192-192-192
        + (3 * 3 * 192 + 1) * 192
        + (192 + 1) * 192
        + (192 + 1) * 10  # 192-192-10
    )
    assert n_params(cnnzoo.create_model("nin_cifar", device="meta")) == expected == 966_986


def test_nin_shapes():
    model = cnnzoo.create_model("nin", device="meta")
    assert volumes(model.features, torch.empty(1, 3, 224, 224, device="meta")) == [
        "54x54x96", "27x27x96", "27x27x256", "13x13x256", "13x13x384", "6x6x384", "6x6x384",
        "6x6x1024",
    ]  # fmt: skip
    model = cnnzoo.create_model("nin_cifar", device="meta")
    assert volumes(model.features, torch.empty(1, 3, 32, 32, device="meta")) == [
        "32x32x96", "16x16x96", "16x16x96", "16x16x192", "8x8x192", "8x8x192", "8x8x192",
    ]  # fmt: skip


def test_nin_scores_are_averaged_class_maps():
    # Global average pooling: each score is the mean of its class's confidence map.
    model = cnnzoo.create_model("nin_cifar").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = model.classifier(model.forward_features(x))  # 1 x 10 x 8 x 8
        assert maps.shape == (1, 10, 8, 8)
        torch.testing.assert_close(model(x), maps.sum((2, 3)) / 64)


def test_alphago_parameters_by_hand():
    expected = (
        (5 * 5 * 48 + 1) * 192  # layer 1: 192 filters 5x5 over 48 planes
        + 11 * (3 * 3 * 192 + 1) * 192  # layers 2-12: 192 filters 3x3
        + 1 * 1 * 192 * 1  # layer 13: one 1x1 filter, no shared bias
        + 19 * 19  # a different bias for each board point
    )
    assert n_params(cnnzoo.create_model("alphago_policy", device="meta")) == expected == 3_882_793


def test_alphago_board_in_moves_out():
    model = cnnzoo.create_model("alphago_policy").eval()
    x = torch.randn(1, 48, 19, 19)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
    assert feats.shape == (1, 192, 19, 19)  # zero padding keeps the board size
    assert logits.shape == (1, 361)
    # the position bias is per point: a bias on point (3, 16) moves only that logit
    with torch.no_grad():
        model.classifier.bias[3 * 19 + 16] += 5.0
        shifted = model.forward_head(feats)
    diff = shifted - logits
    assert diff[0, 3 * 19 + 16].item() == pytest.approx(5.0)
    assert diff.abs().sum().item() == pytest.approx(5.0, rel=1e-4)


def test_alphago_num_classes_tied_to_board():
    with pytest.raises(cnnzoo.CnnzooError, match="must be 361"):
        cnnzoo.create_model("alphago_policy", num_classes=10)
    model = cnnzoo.create_model("alphago_policy", board_size=9, device="meta")
    assert model.num_classes == 81
    assert model(torch.empty(1, 48, 9, 9, device="meta")).shape == (1, 81)
    with pytest.raises(cnnzoo.CnnzooError, match="board_size=19"):
        model(torch.empty(1, 48, 19, 19, device="meta"))
    with pytest.raises(cnnzoo.CnnzooError, match="must be 81"):
        model.reset_classifier(5)
