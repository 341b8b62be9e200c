"""VGG: hand-counted parameters, the lecture's VGG16 table, torchvision parity."""

import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from helpers import n_params, randomize_bn_


def conv3x3(cin: int, cout: int) -> int:
    return (3 * 3 * cin + 1) * cout  # weights + one bias per filter


# (in, out) channels of every 3x3 conv of the paper's Table 1, written out.
CONVS = {
    "vgg11": [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512),
              (512, 512), (512, 512)],
    "vgg13": [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
              (256, 512), (512, 512), (512, 512), (512, 512)],
    "vgg16": [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
              (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)],
    "vgg19": [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
              (256, 256), (256, 512), (512, 512), (512, 512), (512, 512), (512, 512),
              (512, 512), (512, 512), (512, 512)],
}  # fmt: skip
FC = (7 * 7 * 512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000  # 123,642,856


def test_vgg16_parameters_by_hand():
    conv = (
        (3 * 3 * 3 + 1) * 64
        + (3 * 3 * 64 + 1) * 64  # 1,792 + 36,928
        + (3 * 3 * 64 + 1) * 128
        + (3 * 3 * 128 + 1) * 128  # 73,856 + 147,584
        + (3 * 3 * 128 + 1) * 256
        + 2 * (3 * 3 * 256 + 1) * 256  # 295,168 + 2 * 590,080
        + (3 * 3 * 256 + 1) * 512
        + 2 * (3 * 3 * 512 + 1) * 512  # 1,180,160 + 2 * 2,359,808
        + 3 * (3 * 3 * 512 + 1) * 512  # 3 * 2,359,808
    )
    assert conv == 14_714_688 and FC == 123_642_856
    assert n_params(cnnzoo.create_model("vgg16", device="meta")) == conv + FC == 138_357_544


@pytest.mark.parametrize("name", ["vgg11", "vgg13", "vgg16", "vgg19"])
@pytest.mark.parametrize("bn", [False, True])
def test_vgg_parameters_by_hand(name, bn):
    convs = CONVS[name]
    expected = sum(conv3x3(i, o) for i, o in convs) + FC
    if bn:
        expected += sum(2 * o for _, o in convs)  # BN's scale and shift (running stats: buffers)
    full = f"{name}_bn" if bn else name
    assert n_params(cnnzoo.create_model(full, device="meta")) == expected
    # torchvision's published figure for the same architecture (metadata only, no download)
    weights = torchvision.models.get_model_weights(full).IMAGENET1K_V1
    assert weights.meta["num_params"] == expected


def test_vgg16_lecture_table_shapes():
    model = cnnzoo.create_model("vgg16", device="meta")
    shapes = []
    for m in model.features:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            m.register_forward_hook(
                lambda mod, a, out: shapes.append(f"{out.shape[2]}x{out.shape[3]}x{out.shape[1]}")
            )
    with torch.no_grad():
        out = model(torch.empty(1, 3, 224, 224, device="meta"))
    assert shapes == [
        "224x224x64", "224x224x64", "112x112x64",
        "112x112x128", "112x112x128", "56x56x128",
        "56x56x256", "56x56x256", "56x56x256", "28x28x256",
        "28x28x512", "28x28x512", "28x28x512", "14x14x512",
        "14x14x512", "14x14x512", "14x14x512", "7x7x512",
    ]  # fmt: skip
    assert out.shape == (1, 1000)


@pytest.mark.parametrize(("name", "size"), [("vgg16", 224), ("vgg11", 32), ("vgg11_bn", 48)])
def test_vgg_matches_torchvision(name, size):
    tv = getattr(torchvision.models, name)(weights=None)
    randomize_bn_(tv)
    tv.eval()
    # Built on the meta device, our model takes torchvision's tensors as they are (assign=True),
    # which saves initialising 130M weights only to overwrite them; strict still checks every key.
    ours = cnnzoo.create_model(name, device="meta").eval()
    ours.load_state_dict(tv.state_dict(), strict=True, assign=True)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-5)


def test_vgg_too_small_names_last_pool():
    # 31 // 2 // 2 // 2 // 2 = 1, and the fifth 2x2 pool of a 1x1 map is empty; 32 gives 1x1.
    model = cnnzoo.create_model("vgg11", device="meta")
    with pytest.raises(cnnzoo.InputTooSmallError, match=r"'features\.20' \(MaxPool2d\).*32x32"):
        model(torch.empty(1, 3, 31, 31, device="meta"))


def test_timm_state_dict_maps_onto_ours():
    # timm's VGG writes FC6/FC7 as 7x7 and 1x1 convolutions; the model's adapt_state_dict (which
    # cnnzoo.pretrained.load_pretrained applies to a timm weight file) maps them onto our names.
    import timm

    peer = timm.create_model("vgg11_bn", pretrained=False)
    randomize_bn_(peer)
    peer.eval()
    ours = cnnzoo.create_model("vgg11_bn", device="meta").eval()
    mapped = ours.adapt_state_dict(peer.state_dict())
    assert mapped["classifier.0.weight"].shape == (4096, 512 * 7 * 7)
    ours.load_state_dict(mapped, strict=True, assign=True)
    x = torch.randn(1, 3, 64, 64)  # timm's head pools small maps up to 7x7, as ours does
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peer(x), rtol=1e-4, atol=1e-5)
