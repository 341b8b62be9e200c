"""AlexNet: the lecture's table, the paper's LRN, the two-tower count, torchvision parity."""

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from helpers import n_params


def test_alexnet_parameters_by_hand():
    conv = (
        (11 * 11 * 3 + 1) * 96  # CONV1 = 34,944
        + (5 * 5 * 96 + 1) * 256  # CONV2 = 614,656
        + (3 * 3 * 256 + 1) * 384  # CONV3 = 885,120
        + (3 * 3 * 384 + 1) * 384  # CONV4 = 1,327,488
        + (3 * 3 * 384 + 1) * 256  # CONV5 = 884,992
    )
    fc = (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000  # FC6, FC7, FC8
    assert conv + fc == 62_378_344  # the lecture's figure
    assert n_params(cnnzoo.create_model("alexnet", device="meta")) == conv + fc


def test_alexnet_2gpu_parameters_by_hand():
    # Grouped convolutions: each of the 2 towers' filters sees half the input maps.
    conv = (
        (11 * 11 * 3 + 1) * 96
        + (5 * 5 * 48 + 1) * 256  # CONV2: 128 filters per tower, each over 48 maps
        + (3 * 3 * 256 + 1) * 384  # CONV3 crosses towers
        + (3 * 3 * 192 + 1) * 384
        + (3 * 3 * 192 + 1) * 256
    )
    fc = (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert conv + fc == 60_965_224
    assert n_params(cnnzoo.create_model("alexnet_2gpu", device="meta")) == conv + fc


def test_alexnet_tv_parameters_by_hand():
    conv = (
        (11 * 11 * 3 + 1) * 64
        + (5 * 5 * 64 + 1) * 192
        + (3 * 3 * 192 + 1) * 384
        + (3 * 3 * 384 + 1) * 256
        + (3 * 3 * 256 + 1) * 256
    )
    fc = (6 * 6 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
    assert n_params(cnnzoo.create_model("alexnet_tv", device="meta")) == conv + fc == 61_100_840


def output_shapes(model: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[str]:
    """Lecture-notation volumes (HxWxC) after each module of the given kinds, in order."""
    shapes: list[str] = []

    def hook(module, args, out):
        if isinstance(module, kinds):
            shapes.append(f"{out.shape[2]}x{out.shape[3]}x{out.shape[1]}")

    handles = [m.register_forward_hook(hook) for m in model.features]
    with torch.no_grad():
        model.forward_features(x)
    for h in handles:
        h.remove()
    return shapes


def test_alexnet_lecture_table_shapes():
    model = cnnzoo.create_model("alexnet", device="meta")
    x = torch.empty(1, 3, 227, 227, device="meta")
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.LocalResponseNorm)
    # CONV1, POOL1, NORM1, CONV2, POOL2, NORM2, CONV3, CONV4, CONV5, POOL3: the lecture's rows
    assert output_shapes(model, x, kinds) == [
        "55x55x96", "27x27x96", "27x27x96", "27x27x256", "13x13x256", "13x13x256",
        "13x13x384", "13x13x384", "13x13x256", "6x6x256",
    ]  # fmt: skip
    # FC7 features and class scores
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
    assert feats.shape == (1, 4096)
    assert model(x).shape == (1, 1000)


def test_alexnet_lrn_is_the_papers_formula():
    model = cnnzoo.create_model("alexnet", device="meta")  # LRN has no weights: meta is enough
    lrn = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrn) == 2
    a = torch.randn(1, 12, 3, 3) * 10
    # b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, k=2, n=5,
    # alpha=1e-4, beta=0.75 (Krizhevsky et al. 2012, Sec. 3.3), written out channel by channel.
    expected = torch.empty_like(a)
    for i in range(12):
        s = sum(a[:, j] ** 2 for j in range(max(0, i - 2), min(11, i + 2) + 1))
        expected[:, i] = a[:, i] / (2 + 1e-4 * s) ** 0.75
    torch.testing.assert_close(lrn[0](a), expected)


def test_alexnet_2gpu_towers_are_separate():
    model = cnnzoo.create_model("alexnet_2gpu", device="meta")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    convs[1].to_empty(device="cpu")  # only CONV2 needs real weights
    nn.init.normal_(convs[1].weight)
    nn.init.zeros_(convs[1].bias)
    # A gradient check that CONV2's first tower ignores the second tower's maps: perturbing
    # CONV1's channels 48..95 must not change CONV2's first 128 outputs.
    x = torch.randn(1, 96, 9, 9, requires_grad=True)
    convs[1](x)[:, :128].sum().backward()
    assert x.grad[:, 48:].abs().max() == 0 and x.grad[:, :48].abs().max() > 0


def test_alexnet_2gpu_norm_stays_in_its_tower():
    from cnnzoo.models.alexnet import TowerLRN, paper_lrn

    norm1 = cnnzoo.create_model("alexnet_2gpu", device="meta").features[3]
    assert isinstance(norm1, TowerLRN)
    a = torch.randn(2, 96, 3, 3) * 10
    # each GPU's 48 maps normalised on their own, by the paper's formula
    expected = torch.cat([paper_lrn()(a[:, :48]), paper_lrn()(a[:, 48:])], 1)
    torch.testing.assert_close(norm1(a), expected)
    # channel 47 (last of tower 1) does not see channel 48 (first of tower 2); one-tower LRN does
    a.requires_grad_(True)
    norm1(a)[:, 47].sum().backward()
    assert a.grad[:, 48:].abs().max() == 0 and a.grad[:, 45:48].abs().min() > 0
    a.grad = None
    paper_lrn()(a)[:, 47].sum().backward()
    assert a.grad[:, 48:50].abs().min() > 0


def test_alexnet_tv_matches_torchvision():
    tv = torchvision.models.alexnet(weights=None).eval()
    # Built on the meta device, ours takes torchvision's tensors as they are (assign=True):
    # no time spent initialising weights that are overwritten; strict still checks every key.
    ours = cnnzoo.create_model("alexnet_tv", device="meta").eval()
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-6)
        # other sizes go through the same adaptive pooling
        x = torch.randn(1, 3, 99, 131)
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-5, atol=1e-6)


def test_alexnet_smallest_input_message():
    # At 67: CONV1 (67-11)/4+1 = 15, POOL1 (15-3)//2+1 = 7, POOL2 (7-3)//2+1 = 3, POOL3 1.
    # At 66: CONV1 (66-11)//4+1 = 14, POOL1 6, POOL2 2, POOL3 (2-3)//2+1 = 0: empty.
    model = cnnzoo.create_model("alexnet", device="meta")
    with pytest.raises(cnnzoo.InputTooSmallError, match=r"'features\.\d+' \(MaxPool2d\).*67x67"):
        model(torch.empty(1, 3, 60, 60, device="meta"))


def test_torchvision_weight_file_loads(tmp_path):
    # A torchvision weight file on disk (torch.save) -> cnnzoo's loader, for a 5-class model:
    # FC8 is left out (fine-tuning, with a warning) and everything up to FC7 equals torchvision.
    from cnnzoo.pretrained import load_pretrained

    tv = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path / "alexnet-owt.pth"
    torch.save(tv.state_dict(), path)
    x = torch.randn(1, 3, 112, 112)
    five = cnnzoo.create_model("alexnet_tv", num_classes=5).eval()
    with pytest.warns(UserWarning):
        load_pretrained(five, path)
    with torch.no_grad():
        fc7 = torch.nn.Sequential(*list(tv.classifier)[:-1])(
            torch.flatten(tv.avgpool(tv.features(x)), 1)
        )
        torch.testing.assert_close(
            five.forward_head(five.forward_features(x), pre_logits=True), fc7
        )
        assert five(x).shape == (1, 5)
