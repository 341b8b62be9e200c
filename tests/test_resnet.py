"""ImageNet ResNets, Wide ResNet-50-2, ResNeXt and SE-ResNe(X)t against torchvision and timm."""

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.models.layers import PadSkippingConv2d
from cnnzoo.models.resnet import BasicBlock, Bottleneck
from helpers import n_params, randomize_bn_

# cnnzoo name -> (peer library, peer name)
PEERS = {
    "resnet18": (torchvision.models, "resnet18"),
    "resnet34": (torchvision.models, "resnet34"),
    "resnet50": (torchvision.models, "resnet50"),
    "resnet101": (torchvision.models, "resnet101"),
    "resnet152": (torchvision.models, "resnet152"),
    "wide_resnet50_2": (torchvision.models, "wide_resnet50_2"),
    "resnext50_32x4d": (torchvision.models, "resnext50_32x4d"),
    "resnext101_32x8d": (torchvision.models, "resnext101_32x8d"),
    "se_resnet50": (timm, "seresnet50"),
    "se_resnext50_32x4d": (timm, "seresnext50_32x4d"),
}
# the ones whose outputs are compared (the others by key names and shapes on the meta device)
RUN_PARITY = ["resnet18", "resnet50", "wide_resnet50_2", "resnext50_32x4d", "se_resnet50",
              "se_resnext50_32x4d"]  # fmt: skip


def build_peer(name: str) -> nn.Module:
    lib, peer = PEERS[name]
    return timm.create_model(peer) if lib is timm else getattr(lib, peer)()


def test_resnet50_has_the_published_count():
    assert n_params(cnnzoo.create_model("resnet50", device="meta")) == 25_557_032


@pytest.mark.parametrize("name", sorted(PEERS))
def test_same_keys_shapes_and_count_as_peer(name):
    ours = cnnzoo.create_model(name, device="meta")
    with torch.device("meta"):
        peer = build_peer(name)
    assert n_params(ours) == n_params(peer)
    theirs = {k: tuple(v.shape) for k, v in peer.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50", "resnet152", "wide_resnet50_2", "resnext101_32x8d"]
)
def test_timm_weights_have_our_keys_too(name):
    """timm's plain ResNets use torchvision's key names, so their files load as well."""
    ours = cnnzoo.create_model(name, device="meta")
    with torch.device("meta"):
        peer = timm.create_model(name)
    theirs = {k: tuple(v.shape) for k, v in peer.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs


@pytest.mark.parametrize("name", RUN_PARITY)
def test_peer_weights_load_strictly_and_give_same_outputs(name):
    peer = build_peer(name)
    randomize_bn_(peer)
    ours = cnnzoo.create_model(name)
    ours.load_state_dict(peer.state_dict(), strict=True)
    peer.eval(), ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = peer(x)
        torch.testing.assert_close(ours(x), expected)
        # pooled pre-logits features are the peer's fc input
        pooled = ours.forward_head(ours.forward_features(x), pre_logits=True)
        torch.testing.assert_close(peer.fc(pooled), expected)


def test_se_adds_the_papers_parameters():
    """SE with reduction r=16 on a block of C output channels adds 2*C*C/r weights + C/r + C
    biases (Hu et al. 2017, section 4); ResNet-50's blocks have C = 256 x3, 512 x4, 1024 x6,
    2048 x3."""
    extra = sum(k * (2 * c * c // 16 + c // 16 + c) for c, k in ((256, 3), (512, 4), (1024, 6),
                                                                  (2048, 3)))  # fmt: skip
    assert extra == 2_530_992
    se50 = cnnzoo.create_model("se_resnet50", device="meta")
    assert n_params(se50) == 25_557_032 + extra


def test_stride_on_the_3x3_v15():
    model = cnnzoo.create_model("resnet50", device="meta")
    block = model.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)


def test_drop_path_rates_decay_linearly_over_all_blocks():
    """Block k of L drops with probability rate * k / L (Huang et al. 2016): ResNet-50 has
    L = 3+4+6+3 = 16 blocks, so with rate 0.2 the first drops with 0.0125 and the last with 0.2."""
    model = cnnzoo.create_model("resnet50", drop_path_rate=0.2, device="meta")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    assert [b.drop_path.p for b in blocks] == pytest.approx([0.2 * k / 16 for k in range(1, 17)])
    plain = cnnzoo.create_model("resnet18", device="meta")
    assert all(isinstance(b.drop_path, nn.Identity) for b in plain.modules()
               if isinstance(b, BasicBlock))  # fmt: skip


@pytest.mark.parametrize("name", ["resnet18", "se_resnext50_32x4d"])
def test_drop_path_train_frequency_and_eval_identity(name):
    """Measure how often each block's branch is dropped over N samples in train mode.

    A per-sample drop is a Bernoulli(p) draw, so the dropped fraction over N samples has standard
    deviation sqrt(p(1-p)/N); we accept 5 of them (a false alarm about once in 2 million).
    """
    rate, n = 0.3, 4000
    model = cnnzoo.create_model(name, drop_path_rate=rate, num_classes=4)
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    big_l = len(blocks)
    for k, block in enumerate(blocks, start=1):
        branch = torch.ones(n, 1, 1, 1)
        block.drop_path.train()
        kept = block.drop_path(branch)
        p = rate * k / big_l  # block k of L
        dropped = (kept == 0).float().mean().item()
        assert abs(dropped - p) <= 5 * (p * (1 - p) / n) ** 0.5
        # survivors are scaled by 1/(1-p), so the expectation is the eval-mode identity
        assert torch.allclose(kept[kept != 0], torch.tensor(1 / (1 - p)))
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    reference = cnnzoo.create_model(name, num_classes=4).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        first, second = model(x), model(x)
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        torch.testing.assert_close(first, reference(x))


def test_zero_init_last_makes_identity_blocks():
    """With the last BN's scale zero, a block whose shape does not change is the identity (its
    input is post-ReLU, so relu(0 + x) = x)."""
    model = cnnzoo.create_model("resnet50", zero_init_last=True).eval()
    x = torch.relu(torch.randn(1, 256, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[1](x), x)
        torch.testing.assert_close(model.layer1[2](x), x)


def test_bad_arguments_refused():
    with pytest.raises(ValueError, match="drop_path_rate must be in"):
        cnnzoo.create_model("resnet18", drop_path_rate=1.0)
    with pytest.raises(ValueError, match="groups=1"):
        BasicBlock(64, 64, groups=32)


# the deep and wide ones are built from the same blocks; their keys and shapes are checked above
SLOW = pytest.mark.slow
IMAGENET = ["resnet18", "resnet50", "resnext50_32x4d", "se_resnet50", "se_resnext50_32x4d",
            pytest.param("resnet34", marks=SLOW), pytest.param("resnet101", marks=SLOW),
            pytest.param("resnet152", marks=SLOW), pytest.param("wide_resnet50_2", marks=SLOW),
            pytest.param("resnext101_32x8d", marks=SLOW)]  # fmt: skip


@pytest.mark.parametrize("name", IMAGENET)
def test_interface_forward_backward(name):
    model = cnnzoo.create_model(name, num_classes=7)
    model.train()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    expansion = 1 if name in ("resnet18", "resnet34") else 4  # BasicBlock or Bottleneck
    assert model.num_features == 512 * expansion
    assert feats.shape == (2, model.num_features, 1, 1)  # 32 / 32
    out = model.forward_head(feats)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.weight.grad.abs().sum() > 0  # the signal reaches the stem
    with torch.no_grad():
        model.eval()
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        model.reset_classifier(3)
        assert model.num_classes == 3 and model(x).shape == (2, 3)
        model.reset_classifier(0)
        torch.testing.assert_close(model(x), pooled)


@pytest.mark.parametrize("name", ["resnet18", "se_resnet50"])
def test_grey_input_without_head(name):
    model = cnnzoo.create_model(name, num_classes=0, in_chans=1).eval()
    assert model.conv1.in_channels == 1 and isinstance(model.get_classifier(), nn.Identity)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 40)).shape == (1, model.num_features)


# --- one-pixel maps: PadSkippingConv2d skips the taps that only see padding --------------

ONE_PIXEL_CASES = [  # (kernel, stride, padding, input h, w, bias): a 1x1 output seeing one pixel
    (3, 1, 1, 1, 1, False),  # ResNet-18's last stage at 32x32
    (1, 2, 0, 2, 2, False),  # its downsample, which reads only the top-left pixel
    (3, 2, 1, 1, 1, True),  # strided, with a bias
    (5, 1, 2, 1, 1, True),  # a larger kernel
    (1, 3, 0, 3, 3, False),  # a stride larger than the input
    (3, 2, 1, 2, 2, False),  # ResNet-18's strided 3x3 into layer4: a 2x2 window, 4 taps of 9
    (7, 2, 3, 1, 2, True),  # a 1x2 window of a 7x7 kernel
]


@pytest.mark.parametrize("k,s,p,h,w,bias", ONE_PIXEL_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_one_pixel_conv_is_the_convolution_without_its_padding(
    k, s, p, h, w, bias, channels_last, monkeypatch
):
    torch.manual_seed(0)
    ref = nn.Conv2d(5, 7, k, s, p, bias=bias)
    fast = PadSkippingConv2d(5, 7, k, s, p, bias=bias)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(4, 5, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref = ref(x1)
    real, calls = F.conv2d, []

    def conv2d(inp, weight, *args, **kwargs):  # what the shortcut asks of the convolution
        calls.append((tuple(inp.shape[-2:]), tuple(weight.shape[-2:]), len(args), kwargs))
        return real(inp, weight, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(F, "conv2d", conv2d)
        y = fast(x2)
    window = (min(h, k - p), min(w, k - p))
    # a one-pixel window is a linear layer; a larger one a convolution without padding or stride
    assert calls == ([] if window == (1, 1) else [(window, window, 1, {})])  # (input, bias)
    assert y.shape == y_ref.shape == (4, 7, 1, 1)
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    y_ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(x2.grad, x1.grad)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad)  # zero on the skipped taps
    if bias:
        torch.testing.assert_close(fast.bias.grad, ref.bias.grad)


def test_larger_outputs_grouped_and_meta_inputs_stay_convolutions(monkeypatch):
    calls = []
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    PadSkippingConv2d(4, 4, 3, 1, 1)(torch.randn(1, 4, 2, 2))  # 2x2 output
    PadSkippingConv2d(4, 4, 3, 1, 1, groups=2)(torch.randn(1, 4, 1, 1))  # grouped
    PadSkippingConv2d(4, 4, 3, 1, 1)(torch.randn(1, 4, 1, 1, device="meta"))  # the analyzer
    assert len(calls) == 3


def test_resnet18_at_32x32_matches_torchvision_and_counts_the_convolutions():
    """The shortcut changes how, not what: torchvision's outputs and gradients at 32x32, where
    layer4 runs on 1x1 maps, and the analyzer's MACs are those of the plain convolutions."""
    torch.manual_seed(0)
    peer = randomize_bn_(torchvision.models.resnet18(num_classes=10))
    ours = cnnzoo.create_model("resnet18", num_classes=10)
    ours.load_state_dict(peer.state_dict())
    x = torch.randn(6, 3, 32, 32)
    torch.testing.assert_close(ours.eval()(x), peer.eval()(x), rtol=1e-4, atol=1e-5)
    ours.train()(x).square().sum().backward()
    peer.train()(x).square().sum().backward()
    for (name, a), b in zip(ours.named_parameters(), peer.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-4, msg=name)
    mine, theirs = (cnnzoo.analyze(m, (3, 32, 32)).total for m in (ours, peer))
    assert mine.macs == theirs.macs and mine.saved_bytes == theirs.saved_bytes
