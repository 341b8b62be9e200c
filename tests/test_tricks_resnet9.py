"""ResNet-9 (models/resnet9.py): its parameter count by hand, the zoo interface, the analyzer."""

from __future__ import annotations

import pytest
import torch

import cnnzoo

pytestmark = pytest.mark.usefixtures("one_thread")


def conv_bn(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + 2 * c_out  # 3x3 conv without bias, BN scale and bias


def test_parameter_count_by_hand():
    # Page's widths 64, 128, 256, 512; residual blocks after layer1 and layer3; linear no bias
    rgb = (
        conv_bn(3, 64)  # prep: 1,728 + 128
        + conv_bn(64, 128)  # layer1: 73,728 + 256
        + 2 * conv_bn(128, 128)  # its residual: 2 x (147,456 + 256)
        + conv_bn(128, 256)  # layer2: 294,912 + 512
        + conv_bn(256, 512)  # layer3: 1,179,648 + 1,024
        + 2 * conv_bn(512, 512)  # its residual: 2 x (2,359,296 + 1,024)
        + 512 * 10  # classifier
    )
    assert rgb == 6_573_120  # the "6.57M" of the docstring
    model = cnnzoo.create_model("resnet9")
    assert sum(p.numel() for p in model.parameters()) == rgb
    grey = cnnzoo.create_model("resnet9", in_chans=1)
    assert sum(p.numel() for p in grey.parameters()) == rgb - 9 * 3 * 64 + 9 * 1 * 64
    slim = cnnzoo.create_model("resnet9", widths=(16, 32, 64, 128), num_classes=0)
    want = conv_bn(3, 16) + conv_bn(16, 32) + 2 * conv_bn(32, 32) + conv_bn(32, 64)
    want += conv_bn(64, 128) + 2 * conv_bn(128, 128)
    assert sum(p.numel() for p in slim.parameters()) == want


@pytest.mark.parametrize("in_chans, size", [(3, 32), (1, 28)])
@pytest.mark.parametrize("act, pool_before_bn", [("relu", False), ("celu", True), ("gelu", False)])
def test_interface_and_shapes(in_chans, size, act, pool_before_bn):
    model = cnnzoo.create_model(
        "resnet9", in_chans=in_chans, widths=(8, 16, 32, 64), act=act, pool_before_bn=pool_before_bn
    )
    x = torch.randn(2, in_chans, size, size)
    feats = model.forward_features(x)
    assert feats.shape == (2, 64, size // 8, size // 8)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    logits = model(x)
    assert logits.shape == (2, 10) and model.num_classes == 10
    fc = model.get_classifier()
    want = fc(model.forward_head(feats, pre_logits=True)) * 0.125  # Page's Mul(0.125)
    assert torch.allclose(logits, want, atol=1e-6)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3) and model.get_classifier().out_features == 3
    model.reset_classifier(0)
    assert model(x).shape == (2, 64)


def test_pool_before_bn_moves_the_pool():
    m = cnnzoo.create_model("resnet9", widths=(4, 8, 8, 8), pool_before_bn=True)
    seen = []
    hook = m.layer2.bn.register_forward_pre_hook(lambda mod, a: seen.append(a[0].shape[-1]))
    m(torch.randn(2, 3, 32, 32))
    hook.remove()
    assert seen == [8]  # BN of layer2 sees the pooled 8x8 map (16x16 without the option)
    with pytest.raises(ValueError, match="act"):
        cnnzoo.create_model("resnet9", act="tanh")


@pytest.mark.parametrize("in_chans, size", [(3, 32), (1, 28)])
def test_analyzer_handles_it(in_chans, size):
    model = cnnzoo.create_model("resnet9", in_chans=in_chans, device="meta")
    report = cnnzoo.analyze(model, (in_chans, size, size), name="resnet9")
    assert report.total.params == sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for n, p in model.named_parameters() if n in report.total.unused_params)
    assert sum(r.params for r in report.layers) + unused == report.total.params
    # MACs by hand at 32x32: each conv's 9 * c_in * c_out per output pixel, pooled after layer1-3
    if size == 32:
        macs = 32 * 32 * 9 * 3 * 64 + 32 * 32 * 9 * 64 * 128 + 16 * 16 * 2 * 9 * 128 * 128
        macs += 16 * 16 * 9 * 128 * 256 + 8 * 8 * 9 * 256 * 512 + 4 * 4 * 2 * 9 * 512 * 512
        macs += 512 * 10
        assert report.total.macs == macs
    info = cnnzoo.get_model_info("resnet9")
    assert info.input_size == (3, 32, 32) and "Page" in info.paper
