"""BN-Inception, Inception v3, Inception-v4, Inception-ResNet-v2: paper arithmetic, peer parity,
and the interface every model of the family shares."""

import pytest
import timm
import torch
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.models.inception import BN_INCEPTION_CFG
from cnnzoo.models.inception_v3 import INCEPTION_V3_AUX_WEIGHT, InceptionOutputs
from helpers import n_params, randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_outputs(ours: nn.Module, peer: nn.Module, size: int, batch: int = 1) -> None:
    """Copy the peer's state_dict into ours (strict, same key order) and compare eval outputs."""
    assert list(ours.state_dict()) == list(peer.state_dict())
    randomize_bn_(peer)
    ours.load_state_dict(peer.state_dict(), strict=True, assign=True)
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        expected, got = peer.eval()(x), ours.eval()(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().mean())


# --- BN-Inception: the paper's Figure 5 table -------------------------------------------------


def test_bn_inception_parameters_from_the_papers_table():
    # The table's rows, written out again here: in, #1x1, #3x3 reduce, #3x3, double #3x3
    # reduce, double #3x3, pool proj (0: pass through). Every convolution is k*k*in*out weights
    # plus 2*out for BN's scale and shift; no biases (BN follows).
    stem = 7 * 7 * 3 * 64 + 2 * 64 + 1 * 1 * 64 * 64 + 2 * 64 + 3 * 3 * 64 * 192 + 2 * 192
    rows = [
        (192, 64, 64, 64, 64, 96, 32),  # 3a -> 64 + 64 + 96 + 32 = 256
        (256, 64, 64, 96, 64, 96, 64),  # 3b -> 320
        (320, 0, 128, 160, 64, 96, 0),  # 3c -> 160 + 96 + 320 = 576, stride 2
        (576, 224, 64, 96, 96, 128, 128),  # 4a -> 576
        (576, 192, 96, 128, 96, 128, 128),  # 4b -> 576
        (576, 160, 128, 160, 128, 160, 128),  # 4c -> 608 (the table's depth column: 576)
        (608, 96, 128, 192, 160, 192, 128),  # 4d -> 608 (the table: 576)
        (608, 0, 128, 192, 192, 256, 0),  # 4e -> 192 + 256 + 608 = 1056 (the table: 1024)
        (1056, 352, 192, 320, 160, 224, 128),  # 5a -> 1024
        (1024, 352, 192, 320, 192, 224, 128),  # 5b -> 1024
    ]
    modules = 0
    for cin, c1, r3, c3, rd, cd, pp in rows:
        weights = cin * c1 + cin * r3 + 9 * r3 * c3 + cin * rd + 9 * rd * cd + 9 * cd * cd
        weights += cin * pp
        modules += weights + 2 * (c1 + r3 + c3 + rd + cd + cd + pp)
    fc = 1024 * 1000 + 1000
    assert stem + modules + fc == 11_285_224
    model = cnnzoo.create_model("inception_v2", device="meta")
    assert n_params(model) == 11_285_224
    # Published figure (osmr/imgclsmob's bninception, the Caffe model with a bias on every
    # convolution): 11,295,240 = ours + one bias per convolution output channel.
    conv_channels = (
        64 + 64 + 192 + sum(c1 + r3 + c3 + rd + 2 * cd + pp for _, c1, r3, c3, rd, cd, pp in rows)
    )
    assert n_params(model) + conv_channels == 11_295_240


def test_bn_inception_shapes_per_stage():
    model = cnnzoo.create_model("inception_v2", device="meta")
    shapes = {}
    for name, block in model.blocks.named_children():
        block.register_forward_hook(lambda m, i, o, name=name: shapes.update({name: o.shape[1:]}))
    with torch.no_grad():
        out = model(torch.empty(2, 3, 224, 224, device="meta"))
    assert out.shape == (2, 1000)
    assert shapes == {
        "inception3a": (256, 28, 28),
        "inception3b": (320, 28, 28),
        "inception3c": (576, 14, 14),
        "inception4a": (576, 14, 14),
        "inception4b": (576, 14, 14),
        "inception4c": (608, 14, 14),
        "inception4d": (608, 14, 14),
        "inception4e": (1056, 7, 7),
        "inception5a": (1024, 7, 7),
        "inception5b": (1024, 7, 7),
    }
    assert [row[0] for row in BN_INCEPTION_CFG] == [k[len("inception") :] for k in shapes]


def test_bn_inception_reduction_modules_refuse_a_projection():
    from cnnzoo.models.inception import InceptionBN

    with pytest.raises(ValueError, match="stride-2 module"):
        InceptionBN(320, 64, 128, 160, 64, 96, "max", 0, stride=2)


# --- Inception v3 against torchvision ------------------------------------------------------------


def test_inception_v3_parameter_count_and_outputs_match_torchvision():
    for aux in (False, True):
        peer = torchvision.models.inception_v3(aux_logits=aux, init_weights=False).to("meta")
        ours = cnnzoo.create_model("inception_v3", aux_logits=aux, device="meta")
        assert n_params(ours) == n_params(peer)
    assert n_params(ours) == 27_161_264  # torchvision's published num_params, with the aux head
    torch.manual_seed(0)
    peer = torchvision.models.inception_v3(aux_logits=True, init_weights=False)
    ours = cnnzoo.create_model("inception_v3", device="meta")
    assert_same_outputs(ours, peer, size=75, batch=2)  # 75x75: the smallest input v3 takes


def test_inception_v3_aux_head_in_training_mode():
    assert INCEPTION_V3_AUX_WEIGHT == 0.4
    model = cnnzoo.create_model("inception_v3", num_classes=10, device="meta")
    assert model.aux_loss_weight == 0.4
    out = model.train()(torch.empty(2, 3, 299, 299, device="meta"))
    assert isinstance(out, InceptionOutputs)
    assert out.logits.shape == out.aux_logits.shape == (2, 10)
    assert model.eval()(torch.empty(2, 3, 299, 299, device="meta")).shape == (2, 10)
    # The head's 5x5/3 pool and 5x5 conv need the 17x17 grid of a 299x299 input.
    with pytest.raises(cnnzoo.InputTooSmallError, match="auxiliary head.*aux_logits=False"):
        model.train()(torch.empty(2, 3, 298, 298, device="meta"))
    # The head computes what torchvision's does (same weights, train-mode BN, 17x17x768 in).
    peer = torchvision.models.inception_v3(aux_logits=True, init_weights=False).AuxLogits
    ours = cnnzoo.create_model("inception_v3").AuxLogits
    ours.load_state_dict(peer.state_dict(), strict=True)
    x = torch.randn(2, 768, 17, 17)
    with torch.no_grad():
        torch.testing.assert_close(ours.train()(x), peer.train()(x), rtol=1e-4, atol=1e-6)


def test_weight_files_with_aux_heads_load_into_models_without(tmp_path):
    # torchvision's weight files carry the aux heads; a model built without them drops them
    # (through adapt_state_dict, which load_pretrained calls), as torchvision itself does.
    torch.manual_seed(0)
    peer = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(peer.state_dict(), path)
    ours = cnnzoo.create_model("googlenet", aux_logits=False)
    cnnzoo.load_pretrained(ours, path)
    assert all(torch.equal(v, peer.state_dict()[k]) for k, v in ours.state_dict().items())
    v3 = cnnzoo.create_model("inception_v3", aux_logits=False, device="meta")
    with_aux = cnnzoo.create_model("inception_v3", device="meta").state_dict()
    assert set(v3.adapt_state_dict(with_aux)) == set(v3.state_dict())


# --- Inception-v4 and Inception-ResNet-v2 against timm -------------------------------------------


@pytest.mark.parametrize(
    "name,published", [("inception_v4", 42_679_816), ("inception_resnet_v2", 55_843_464)]
)
def test_v4_family_matches_timm(name, published):
    peer = timm.create_model(name, pretrained=False)
    ours = cnnzoo.create_model(name, device="meta")
    assert n_params(ours) == n_params(peer) == published
    assert_same_outputs(ours, peer, size=75)  # 75x75: the smallest input they take


def test_inception_resnet_v2_drop_path_linear_decay():
    model = cnnzoo.create_model("inception_resnet_v2", drop_path_rate=0.2, device="meta")
    blocks = [*model.repeat, *model.repeat_1, *model.repeat_2, model.block8]
    assert len(blocks) == 40
    # Huang et al.'s rule: block l of L drops with probability l / L * p_L.
    for i, block in enumerate(blocks, start=1):
        assert block.drop_path.p == pytest.approx(0.2 * i / 40)
    with pytest.raises(ValueError, match="drop_path_rate"):
        cnnzoo.create_model("inception_resnet_v2", drop_path_rate=1.0, device="meta")


def test_inception_resnet_block_zero_init_and_drop_path():
    from cnnzoo.models.inception_resnet_v2 import InceptionResNetA

    x = torch.randn(2, 320, 5, 5)
    block = InceptionResNetA(drop_path=0.5).eval()
    with torch.no_grad():
        branch = block(x) - x.relu()  # nonzero before zero_init_last
        assert branch.abs().max() > 0
        block.zero_init_last()
        torch.testing.assert_close(block(x), x.relu())  # the block starts as ReLU(x)
    # Drop-path: per sample, the scaled branch is kept (times 1/(1-p) = 2) or dropped whole.
    block = InceptionResNetA(drop_path=0.5).eval()  # BN on running statistics throughout
    nn.init.constant_(block.conv2d.bias, 1.0)  # a branch that is visibly there
    block.act = nn.Identity()  # look at the sum itself
    x = torch.randn(16, 320, 3, 3)
    with torch.no_grad():
        full = block(x) - x
        block.drop_path.train()
        got = block(x) - x
    kept = [torch.allclose(g, 2 * f, atol=1e-4) for g, f in zip(got, full, strict=True)]
    dropped = [bool((g == 0).all()) for g in got]
    assert all(k != d for k, d in zip(kept, dropped, strict=True))
    assert any(kept) and any(dropped)  # all 16 alike: probability 2 / 2**16


# --- the shared interface, forward and backward, for every model of the family ---------------

FAMILY = {  # name: smallest square input
    "googlenet": 15,
    "inception_v2": 7,
    "inception_v3": 75,
    "inception_v4": 75,
    "inception_resnet_v2": 75,
}


@pytest.mark.parametrize("name", ["googlenet", "inception_v2", "inception_v3"])
def test_smallest_input_is_named(name):
    # (v4 and Inception-ResNet-v2 share v3's first layers; their parity tests run at 75x75.)
    side = FAMILY[name]
    model = cnnzoo.create_model(name, device="meta").eval()
    expected = f"smallest square input it accepts is {side}x{side}"
    with pytest.raises(cnnzoo.InputTooSmallError, match=expected):
        model(torch.empty(1, 3, side - 1, side - 1, device="meta"))


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_runs_at_odd_and_even_sizes_above_the_smallest(name):
    # Concatenated branches must agree on the grid at every size, not only at the paper's.
    side = FAMILY[name]
    model = cnnzoo.create_model(name, num_classes=3, device="meta").eval()
    for size in (side, side + 1, 2 * side + 1, 2 * side + 2):
        assert model(torch.empty(1, 3, size, size, device="meta")).shape == (1, 3)


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_forward_backward_and_interface(name):
    side = max(FAMILY[name], 32)
    kwargs = {"aux_logits": False} if name == "inception_v3" else {}  # its aux needs 299x299
    model = cnnzoo.create_model(name, num_classes=5, in_chans=1, **kwargs)
    assert (model.num_classes, model.in_chans) == (5, 1)
    x = torch.randn(2, 1, side, side)
    out = model.train()(x)
    outs = out if isinstance(out, tuple) else (out,)  # GoogLeNet: (logits, aux2, aux1)
    sum(o.square().mean() for o in outs).backward()
    assert all(o.shape == (2, 5) and torch.isfinite(o).all() for o in outs)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.dim() == 4 and feats.shape[1] == model.num_features
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        assert isinstance(model.get_classifier(), nn.Linear)
        assert model.get_classifier().out_features == 5
        model.reset_classifier(7)
        assert model.num_classes == 7 and model.forward_head(feats).shape == (2, 7)
        model.reset_classifier(0)
        torch.testing.assert_close(model.forward_head(feats), pre)  # pooled pre-logits
    headless = cnnzoo.create_model(name, num_classes=0, in_chans=1, device="meta")
    assert headless(torch.empty(2, 1, side, side, device="meta")).shape == (2, model.num_features)


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_aux_logits_accepted_by_every_model(name):
    has_aux = name in ("googlenet", "inception_v3")
    assert cnnzoo.create_model(name, device="meta").aux_logits is has_aux
    assert cnnzoo.create_model(name, aux_logits=False, device="meta").aux_logits is False
    if not has_aux:
        with pytest.raises(ValueError, match="no auxiliary classifiers"):
            cnnzoo.create_model(name, aux_logits=True, device="meta")
