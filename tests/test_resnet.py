"""ImageNet ResNets, Wide ResNet-50-2, ResNeXt and SE-ResNe(X)t against torchvision and timm."""

import pytest
import timm
import torch
import torchvision
from torch import nn

import cnnzoo
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
