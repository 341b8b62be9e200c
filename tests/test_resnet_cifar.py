"""CIFAR ResNets, their plain twins, WRN-28-10 and stochastic depth, against the papers' figures
and hand arithmetic."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.models.resnet_cifar import CifarBasicBlock, CifarResNet, WideBasicBlock, WideResNet
from helpers import n_params

# in the fast run resnet110_sd stands for the other two 110-layer nets (same class, same depth)
SLOW = pytest.mark.slow
CIFAR_NAMES = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110_sd",
               "plain20", "plain32", "plain44", "plain56", "wrn28_10", "wrn16_4", "wrn40_4",
               pytest.param("resnet110", marks=SLOW),
               pytest.param("plain110", marks=SLOW)]  # fmt: skip


def conv(c_in: int, c_out: int, k: int = 3) -> int:  # no bias: a BN follows
    return c_in * c_out * k * k


def bn(c: int) -> int:  # scale and shift
    return 2 * c


def test_resnet20_count_by_hand():
    """He et al. 2015 sec. 4.2: 3x3 conv to 16 maps, 3 stages of n=3 blocks of two 3x3 convs on
    16, 32, 64 maps, option A shortcuts (no parameters), a 64 -> 10 fc layer."""
    stem = conv(3, 16) + bn(16)  # 432 + 32
    stage1 = 6 * (conv(16, 16) + bn(16))  # 6 x (2,304 + 32)
    stage2 = conv(16, 32) + 5 * conv(32, 32) + 6 * bn(32)  # 4,608 + 5 x 9,216 + 6 x 64
    stage3 = conv(32, 64) + 5 * conv(64, 64) + 6 * bn(64)  # 18,432 + 5 x 36,864 + 6 x 128
    fc = 64 * 10 + 10
    expected = stem + stage1 + stage2 + stage3 + fc
    assert expected == 269_722
    assert n_params(cnnzoo.create_model("resnet20")) == expected


def wrn_count(depth: int, k: int) -> int:
    """Zagoruyko & Komodakis 2016: n = (depth-4)/6 pre-activation blocks per group of width
    16k, 32k, 64k; the first block of a group has a 1x1 projection shortcut (also in group 1,
    16 -> 16k channels)."""
    n = (depth - 4) // 6
    total, c_in = conv(3, 16), 16
    for c in (16 * k, 32 * k, 64 * k):
        total += bn(c_in) + conv(c_in, c) + bn(c) + conv(c, c) + conv(c_in, c, 1)
        total += (n - 1) * (bn(c) + conv(c, c) + bn(c) + conv(c, c))
        c_in = c
    return total + bn(64 * k) + 64 * k * 10 + 10


@pytest.mark.parametrize(
    "name, depth, k, expected",
    [
        ("wrn28_10", 28, 10, 36_479_194),
        ("wrn16_4", 16, 4, 2_748_890),
        ("wrn40_4", 40, 4, 8_949_210),
    ],
)
def test_wrn_count_by_hand(name, depth, k, expected):
    assert wrn_count(depth, k) == expected
    assert n_params(cnnzoo.create_model(name, device="meta")) == expected


@pytest.mark.parametrize(
    "name, millions, digits",
    # the papers' tables: He et al. 2015 Table 6, Zagoruyko & Komodakis 2016 Table 4
    [
        ("resnet20", 0.27, 2),
        ("resnet32", 0.46, 2),
        ("resnet44", 0.66, 2),
        ("resnet56", 0.85, 2),
        ("resnet110", 1.7, 1),
        ("resnet110_sd", 1.7, 1),
        ("wrn28_10", 36.5, 1),
        ("wrn16_4", 2.7, 1),
        ("wrn40_4", 8.9, 1),
    ],  # fmt: skip
)
def test_papers_parameter_counts(name, millions, digits):
    count = n_params(cnnzoo.create_model(name, device="meta"))
    assert round(count / 1e6, digits) == millions


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_twin_has_same_layers(depth):
    res = cnnzoo.create_model(f"resnet{depth}", device="meta")
    plain = cnnzoo.create_model(f"plain{depth}", device="meta")
    assert n_params(res) == n_params(plain)
    shapes = {k: v.shape for k, v in res.state_dict().items()}
    assert {k: v.shape for k, v in plain.state_dict().items()} == shapes
    assert (depth - 2) == 2 * sum(isinstance(m, CifarBasicBlock) for m in plain.modules())


def test_zero_last_bn_identity_for_resnet_collapse_for_plain():
    """With every block's last BN scale (and shift) at zero, a residual block passes its input
    through (option A: subsampled and zero-padded), while a plain block outputs zeros."""
    res = cnnzoo.create_model("resnet20", zero_init_last=True).eval()
    plain = cnnzoo.create_model("plain20").eval()
    plain.load_state_dict(res.state_dict())  # same weights, bn2.weight = 0 everywhere
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        stem = res.relu(res.bn1(res.conv1(x)))  # N x 16 x 32 x 32, non-negative
        # two stride-2 stages: 32 -> 16 -> 8, channels 16 -> 32 -> 64 with zeros appended
        expected = F.pad(stem[:, :, ::4, ::4], (0, 0, 0, 0, 0, 48))
        torch.testing.assert_close(res.forward_features(x), expected)
        assert torch.count_nonzero(plain.forward_features(x)) == 0
        # so the plain net's logits no longer depend on the image
        torch.testing.assert_close(plain(x), plain.fc.bias.expand(2, 10))


def test_gradient_reaches_stem_only_through_shortcuts():
    """Same weights, every block's last BN scale at zero: the ResNet's stem still gets a gradient
    (through the identity paths), the plain net's gets exactly none."""
    res = cnnzoo.create_model("resnet20", zero_init_last=True)
    plain = cnnzoo.create_model("plain20")
    plain.load_state_dict(res.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for model in (res, plain):
        model.eval()
        model(x).logsumexp(1).sum().backward()
    assert res.conv1.weight.grad.abs().sum() > 0
    assert torch.count_nonzero(plain.conv1.weight.grad) == 0


def test_plain_block_has_no_addition():
    torch.manual_seed(0)
    res_block = CifarBasicBlock(16, 16, 1, shortcut=True).eval()
    plain_block = CifarBasicBlock(16, 16, 1, shortcut=False).eval()
    plain_block.load_state_dict(res_block.state_dict())
    x = torch.relu(torch.randn(2, 16, 8, 8))
    with torch.no_grad():
        b = res_block
        branch = b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x)))))
        torch.testing.assert_close(res_block(x), torch.relu(branch + x))
        torch.testing.assert_close(plain_block(x), torch.relu(branch))


def test_option_a_shortcut_subsamples_and_pads():
    block = CifarBasicBlock(16, 32, 2)
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 2, 2)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_stochastic_depth_transition_averages_2x2():
    """Huang et al.'s transitional shortcut: 2x2 average pooling, then zero channels."""
    shortcut = cnnzoo.create_model("resnet110_sd").layer3[0].shortcut
    x = torch.randn(1, 32, 4, 4)
    mean = (x[..., ::2, ::2] + x[..., 1::2, ::2] + x[..., ::2, 1::2] + x[..., 1::2, 1::2]) / 4
    out = shortcut(x)
    torch.testing.assert_close(out[:, :32], mean)
    assert torch.count_nonzero(out[:, 32:]) == 0


def test_bad_arguments_refused():
    with pytest.raises(cnnzoo.CnnzooError, match="plain net has no residual branch"):
        cnnzoo.create_model("plain56", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=21)
    with pytest.raises(ValueError, match="6n\\+4"):
        WideResNet(depth=27)
    with pytest.raises(ValueError, match="drop_path_rate must be in"):
        cnnzoo.create_model("resnet20", drop_path_rate=1.5)


def test_resnet110_sd_uses_the_papers_linear_decay():
    """Huang et al. 2016: L = 54 blocks, p_l = l/L * 0.5, so 0.5/54 for the first block and
    p_L = 0.5 for the last; eval mode is ResNet-110 (with those shortcuts) and the same weights."""
    model = cnnzoo.create_model("resnet110_sd")
    blocks = [m for m in model.modules() if isinstance(m, CifarBasicBlock)]
    assert len(blocks) == 54
    assert [b.drop_path.p for b in blocks] == pytest.approx([0.5 * k / 54 for k in range(1, 55)])
    reference = cnnzoo.create_model("resnet110", shortcut_pool="avg").eval()
    reference.load_state_dict(model.state_dict())
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first, second = model(x), model(x)
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        torch.testing.assert_close(first, reference(x))
        model.train()  # BN uses batch statistics in both passes; only the drops differ
        assert not torch.equal(model(x), model(x))


def _measure_drops(block: nn.Module, x: torch.Tensor, n: int) -> float:
    """Run n copies of one sample through a block in train mode (BN frozen), and return the
    fraction whose residual branch was dropped, checking the survivors' 1/(1-p) scaling."""
    block.eval()
    b = block
    with torch.no_grad():
        if isinstance(block, WideBasicBlock):  # pre-activation: out = shortcut + branch
            pre = b.relu(b.bn1(x))
            shortcut = x if b.shortcut is None else b.shortcut(pre)
            branch = b.conv2(b.relu(b.bn2(b.conv1(pre))))
            finish = lambda t: t  # noqa: E731
        else:  # post-activation: out = relu(shortcut + branch)
            shortcut = b.shortcut(x)
            branch = b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))))
            finish = torch.relu
        block.drop_path.train()  # only the drop is random; BN keeps its running statistics
        out = block(x.expand(n, *x.shape[1:]).contiguous())
    p = block.drop_path.p
    # a batch of n runs other conv kernels than a batch of 1: compare to rounding, not exactly
    dropped = (out - finish(shortcut)).flatten(1).abs().amax(1) < 1e-5
    survivors = out[~dropped]
    expected = finish(shortcut + branch / (1 - p))
    torch.testing.assert_close(survivors, expected.expand_as(survivors), rtol=1e-4, atol=1e-5)
    return dropped.float().mean().item()


@pytest.mark.parametrize("family", ["cifar_resnet", "wrn"])
def test_drop_frequency_matches_linear_decay(family):
    """Over n = 4000 copies of a sample, block k of L drops its branch for a Bernoulli(p_k)
    fraction, p_k = rate * k / L; its standard deviation is sqrt(p(1-p)/n) <= 0.008, and we
    allow 5 of them (a false alarm about once in 2 million per block)."""
    rate, n = 0.5, 4000
    if family == "cifar_resnet":
        model, block_type = CifarResNet(20, drop_path_rate=rate), CifarBasicBlock
    else:
        model, block_type = WideResNet(10, 1, drop_path_rate=rate), WideBasicBlock
    blocks = [m for m in model.modules() if isinstance(m, block_type)]
    big_l = len(blocks)
    for k, block in enumerate(blocks, start=1):
        x = torch.relu(torch.randn(1, block.conv1.in_channels, 4, 4))
        p = rate * k / big_l
        assert block.drop_path.p == pytest.approx(p)
        dropped = _measure_drops(block, x, n)
        assert abs(dropped - p) <= 5 * (p * (1 - p) / n) ** 0.5, (k, dropped, p)


def test_wrn_dropout_option():
    model = WideResNet(10, 2, drop_rate=0.3)
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules()) == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        model.train()
        assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", CIFAR_NAMES)
def test_interface_forward_backward(name):
    assert cnnzoo.get_model_info(name).input_size == (3, 32, 32)
    model = cnnzoo.create_model(name)
    assert model.num_classes == 10
    model.train()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    widen = {"wrn28_10": 10, "wrn16_4": 4, "wrn40_4": 4}.get(name, 1)  # 64k features
    assert model.num_features == 64 * widen
    assert feats.shape == (2, model.num_features, 8, 8)
    out = model.forward_head(feats)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.conv1.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.eval()
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        model.reset_classifier(100)
        assert model.get_classifier().out_features == 100 and model(x).shape == (2, 100)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pooled)


@pytest.mark.parametrize("name", ["resnet20", "plain20"])
def test_grey_input_without_head(name):
    model = cnnzoo.create_model(name, num_classes=0, in_chans=1).eval()
    assert model.conv1.in_channels == 1 and isinstance(model.get_classifier(), nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 24, 24)).shape == (1, model.num_features)
    wide = WideResNet(10, 2, num_classes=0, in_chans=1).eval()
    with torch.no_grad():
        assert wide(torch.randn(1, 1, 24, 24)).shape == (1, 128)
