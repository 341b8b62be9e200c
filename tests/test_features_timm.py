"""``features_only`` and ``forward_intermediates`` as timm gives them.

Oracle: timm's own feature extractor and ``forward_intermediates`` for the families timm has,
with the same random weights (batch-norm statistics randomised too) loaded into cnnzoo's model
through ``cnnzoo.load_pretrained`` from a saved file. The reductions of ``feature_info`` are
checked for every registered model against the analyzer's effective stride.
"""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from helpers import randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")
timm = pytest.importorskip("timm")

# cnnzoo name, timm's architecture, cnnzoo arguments for timm's variant, input side
PAIRS = [
    ("resnet18", "resnet18", {}, 64),
    ("resnet50", "resnet50", {}, 64),
    ("se_resnet50", "seresnet50", {}, 64),
    pytest.param(("vgg11", "vgg11", {}, 64), marks=pytest.mark.slow, id="vgg11"),  # 133M params
    ("inception_v3", "inception_v3", {"aux_logits": False}, 107),
    ("inception_v4", "inception_v4", {}, 107),
    ("inception_resnet_v2", "inception_resnet_v2", {}, 107),
    ("mobilenet_v1", "mobilenetv1_100", {"act": "relu6"}, 64),
]


def _flat(key: str) -> str:
    return key.replace(".", "_")  # timm's feature wrapper flattens "features.0" to "features_0"


@pytest.fixture(scope="module", params=PAIRS, ids=lambda p: p[0])
def pair(request, tmp_path_factory):
    """(cnnzoo model, timm model, timm features_only model), all with the same weights."""
    name, arch, args, side = request.param
    peer = randomize_bn_(timm.create_model(arch)).eval()
    path = tmp_path_factory.mktemp(name) / "timm.pth"
    torch.save(peer.state_dict(), path)
    ours = cnnzoo.create_model(name, **args).eval()
    assert cnnzoo.load_pretrained(ours, path).dropped == []
    feats = timm.create_model(arch, features_only=True).eval()
    by_flat = {_flat(k): v for k, v in peer.state_dict().items()}
    feats.load_state_dict({k: by_flat[_flat(k)] for k in feats.state_dict()}, strict=True)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    return ours, peer, feats, x, (name, args, path)


def test_features_only_equals_timms(pair):
    _, _, feats, x, (name, args, path) = pair
    model = cnnzoo.create_model(name, features_only=True, checkpoint_path=path, **args).eval()
    assert model.feature_info.channels() == feats.feature_info.channels()
    assert model.feature_info.reduction() == feats.feature_info.reduction()
    with torch.no_grad():
        mine, theirs = model(x), feats(x)
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_out_indices_select_timms_maps(pair):
    ours, _, feats, _, (name, args, _) = pair
    n = len(feats.feature_info)
    model = cnnzoo.create_model(
        name, features_only=True, out_indices=(1, -1), device="meta", **args
    )
    assert model.feature_info.reduction() == [feats.feature_info.reduction()[i] for i in (1, n - 1)]
    assert model.feature_info.module_name() == [
        ours.feature_info.module_name(i) for i in (1, n - 1)
    ]


def test_forward_intermediates_equals_timms(pair):
    ours, peer, _, x, _ = pair
    with torch.no_grad():
        final, maps = ours.forward_intermediates(x)
        t_final, t_maps = peer.forward_intermediates(x)
        last2 = ours.forward_intermediates(x, indices=2, intermediates_only=True)
    torch.testing.assert_close(final, t_final, atol=1e-4, rtol=1e-4)
    assert len(maps) == len(t_maps)
    for a, b in zip(maps, t_maps, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    for a, b in zip(last2, t_maps[-2:], strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _stride_of(report, module: str) -> int:
    """The analyzer's effective stride of a module's output: its own row, or, for a container,
    its last row in forward order."""
    rows = [r for r in report.layers if r.name == module or r.name.startswith(module + ".")]
    assert rows, f"no analyzer row for {module}"
    return rows[-1].stride


# The smallest member of each family (the Inception networks, slow to analyse, have their
# reductions checked against timm's above); every registered model with -m slow.
FAMILY_MEMBERS = [
    "lenet5", "alexnet", "alexnet_2gpu", "zfnet", "nin", "nin_cifar", "vgg11_bn", "googlenet",
    "inception_v2", "resnet18", "resnet20", "wrn16_4", "mobilenet_v1_025", "fractalnet20",
    "alphago_policy", "resnet9",
]  # fmt: skip


def _every_model():
    return [
        pytest.param(n, marks=pytest.mark.slow) if n not in FAMILY_MEMBERS else n
        for n in cnnzoo.list_models()
    ]


@pytest.mark.parametrize("name", _every_model())
def test_reductions_are_the_analyzers_strides(name):
    info = cnnzoo.get_model_info(name)
    model = cnnzoo.create_model(name, device="meta").eval()
    report = cnnzoo.analyze(model, info.input_size)
    fi = model.feature_info
    assert len(fi) > 0
    for module, reduction in zip(fi.module_name(), fi.reduction(), strict=True):
        assert reduction == _stride_of(report, module), (name, module)
