"""One contract, checked on every registered model: the head that ``get_classifier`` names,
``reset_classifier`` replacing it (aux heads included) with the old head's dtype and device,
``num_classes=0`` giving the pre-logits features, and the pieces timm users call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models._base import ZooModel

NAMES = cnnzoo.list_models()
TIED = {"alphago_policy"}  # one output per board point: the head cannot be resized


def meta_input(name: str, batch: int = 1) -> torch.Tensor:
    c, h, w = cnnzoo.get_model_info(name).input_size
    return torch.empty(batch, c, h, w, device="meta", dtype=torch.float64)


def outputs_of(model: nn.Module) -> list[int]:
    """Every Linear's out_features and every Conv's out_channels."""
    sizes = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            sizes.append(m.out_features)
        elif isinstance(m, nn.modules.conv._ConvNd):
            sizes.append(m.out_channels)
    return sizes


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier_keeps_dtype_and_device_and_replaces_every_head(name):
    built = 17  # a class count no layer of the zoo has by itself
    kwargs = {} if name in TIED else {"num_classes": built}
    model = cnnzoo.create_model(name, device="meta", **kwargs).to(torch.float64).eval()
    assert isinstance(model, ZooModel)
    head = model.get_classifier()
    assert isinstance(head, nn.Module) and any(True for _ in head.parameters())
    if name in TIED:
        with pytest.raises(cnnzoo.CnnzooError):
            model.reset_classifier(5)
        return
    assert built in outputs_of(model)
    model.reset_classifier(5)
    assert model.num_classes == 5
    assert built not in outputs_of(model), "a head (an auxiliary one?) kept the old class count"
    for p in model.get_classifier().parameters():
        assert p.dtype == torch.float64 and p.device.type == "meta"
    assert model(meta_input(name)).shape == (1, 5)


@pytest.mark.parametrize("name", NAMES)
def test_no_classes_gives_the_pre_logits_features(name):
    model = cnnzoo.create_model(name, device="meta").eval()
    x = meta_input(name).float()
    feats = model.forward_features(x)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (1, model.num_features)
    if name not in TIED:
        model.reset_classifier(0)
        assert model.num_classes == 0
        assert model(x).shape == (1, model.num_features)


@pytest.mark.parametrize("name", NAMES)
def test_config_and_feature_info_are_there(name):
    model = cnnzoo.create_model(name, device="meta")
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == cnnzoo.get_model_info(name).input_size
    assert cfg["num_classes"] == model.num_classes
    assert model.default_cfg == cfg
    info = model.feature_info
    assert len(info) >= 1
    reductions = [f["reduction"] for f in info]
    assert reductions == sorted(reductions)  # deeper maps are never finer


@pytest.mark.parametrize("name", NAMES)
def test_head_follows_the_classifier_on_real_values(name):
    """On values: the head of the features is the model's output."""
    c, h, w = cnnzoo.get_model_info(name).input_size
    if h * w > 64 * 64:
        pytest.skip(f"a {h}x{w} input: shapes checked on the meta device above")
    meta = cnnzoo.create_model(name, device="meta")
    macs = cnnzoo.analyze(meta, input_size=(c, h, w)).total.macs
    if macs > 150e6:  # the large ones: shapes checked on the meta device above
        pytest.skip(f"{macs / 1e6:.0f}M MACs: its family's own test checks values")
    torch.manual_seed(0)
    model = cnnzoo.create_model(name).eval()
    x = torch.randn(1, c, h, w)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
