"""The analyzer against hand arithmetic (the lecture's AlexNet and VGG16 tables), published MAC
counts, a model with tied/frozen/bare parameters and functional ops, and the untouched-model
guarantee."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError


def rows_of(report, *types):
    return [r for r in report.layers if r.type in types]


# --- the lecture's AlexNet, computed by hand -------------------------------------------------


def test_alexnet_lecture_rows_by_hand():
    report = analyze(cnnzoo.create_model("alexnet", device="meta"), (3, 227, 227))
    convs = rows_of(report, "Conv2d")
    pools = rows_of(report, "MaxPool2d")
    fcs = rows_of(report, "Linear")
    # [55x55x96] CONV1: 96 11x11 filters at stride 4, pad 0: (227 - 11)/4 + 1 = 55
    assert convs[0].output == (96, 55, 55)
    assert convs[0].param_formula == "(11*11*3+1)*96"
    assert convs[0].params == (11 * 11 * 3 + 1) * 96 == 34_944
    assert convs[0].macs == 55 * 55 * 96 * 11 * 11 * 3
    assert convs[0].activations == 55 * 55 * 96
    assert (convs[0].rf, convs[0].stride) == (11, 4)
    # [27x27x96] MAX POOL1: 3x3 at stride 2, 0 parameters; field 11 + (3-1)*4 = 19
    assert pools[0].output == (96, 27, 27) and pools[0].params == 0
    assert (pools[0].rf, pools[0].stride) == (19, 8)
    # CONV2 256 5x5 pad 2 on 27x27x96; field 19 + 4*8 = 51
    assert convs[1].output == (256, 27, 27)
    assert convs[1].params == (5 * 5 * 96 + 1) * 256
    assert convs[1].macs == 27 * 27 * 256 * 5 * 5 * 96
    assert convs[1].rf == 51
    assert [c.output for c in convs[2:]] == [(384, 13, 13), (384, 13, 13), (256, 13, 13)]
    assert [c.params for c in convs[2:]] == [
        (3 * 3 * 256 + 1) * 384,
        (3 * 3 * 384 + 1) * 384,
        (3 * 3 * 384 + 1) * 256,
    ]
    # POOL2 67/16, CONV3-5 add 2*16 each: 99, 131, 163; POOL3 163 + 2*16 = 195, stride 32
    assert [c.rf for c in convs[2:]] == [99, 131, 163]
    assert (pools[2].output, pools[2].rf, pools[2].stride) == ((256, 6, 6), 195, 32)
    assert report.total.rf == 195 and not report.total.rf_global
    assert [f.output for f in fcs] == [(4096,), (4096,), (1000,)]
    assert [f.params for f in fcs] == [(6 * 6 * 256 + 1) * 4096, 4097 * 4096, 4097 * 1000]
    assert fcs[0].macs == 6 * 6 * 256 * 4096
    assert report.total.params == 62_378_344  # SPEC: the lecture's AlexNet
    assert sum(r.params for r in report.layers) == report.total.params
    assert report.total.flops == 2 * report.total.macs
    assert report.total.macs == sum(r.macs for r in report.layers)


def test_alexnet_lists_what_it_did_not_count():
    report = analyze(cnnzoo.create_model("alexnet", device="meta"), (3, 227, 227))
    unc = report.total.uncounted
    assert unc["relu"] == len(rows_of(report, "ReLU"))
    assert unc["max_pool2d"] == 3
    assert unc["local_response_norm"] == 2


# --- the lecture's VGG16 table ----------------------------------------------------------------

# The notes' rows: [224x224x64] memory 224*224*64 = 3.2M, ..., FC 4096, 4096, 1000.
VGG16_NOTES = [
    (224, 64), (224, 64), "M", (112, 128), (112, 128), "M",
    (56, 256), (56, 256), (56, 256), "M", (28, 512), (28, 512), (28, 512), "M",
    (14, 512), (14, 512), (14, 512), "M",
]  # fmt: skip


def test_vgg16_notes_table_and_the_24M_claim():
    report = analyze(cnnzoo.create_model("vgg16", device="meta"), (3, 224, 224))
    convs = rows_of(report, "Conv2d")
    pools = rows_of(report, "MaxPool2d")
    expected_convs, expected_pools, c_in, side = [], [], 3, 224
    for item in VGG16_NOTES:
        if item == "M":
            side //= 2
            expected_pools.append(side * side * c_in)
        else:
            side, c = item
            expected_convs.append((side * side * c, (3 * 3 * c_in + 1) * c))
            c_in = c
    assert [(r.activations, r.params) for r in convs] == expected_convs
    assert [r.activations for r in pools] == expected_pools
    fcs = rows_of(report, "Linear")
    assert [r.activations for r in fcs] == [4096, 4096, 1000]
    # The notes' params ignore the biases: 7*7*512*4096 = 102,760,448; with them, + 4096.
    assert fcs[0].params == 7 * 7 * 512 * 4096 + 4096
    assert report.total.params == 138_357_544
    # The notes' rows (input included) add up to ~15.2M, not the 24M they state.
    notes_sum = 224 * 224 * 3 + sum(a for a, _ in expected_convs) + sum(expected_pools)
    notes_sum += 4096 + 4096 + 1000
    assert notes_sum == 15_237_608
    # The analyzer's distinct tensors: the same, plus any copy the model makes (an adaptive
    # pool to 7x7 of a 7x7 map); in-place ReLUs add nothing.
    assert abs(report.total.activations - notes_sum) / notes_sum < 0.01
    assert report.total.activations < 16e6  # not 24M
    assert report.total.forward_bytes == 4 * report.total.activations


# --- published MAC counts (torchvision's model cards, fvcore) ---------------------------------


@pytest.mark.parametrize("name, gmacs", [("resnet50", 4.089), ("vgg16", 15.47)])
def test_macs_match_published_figures(name, gmacs):
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    report = analyze(model, (3, 224, 224))
    assert abs(report.total.macs / 1e9 - gmacs) / gmacs < 0.01
    assert report.total.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name",
    ["alexnet", "googlenet", "inception_v3", "mobilenet_v2", "densenet121", "vit_b_16"],
)
def test_macs_match_torchvision_published_ops(name):
    """torchvision's weight metadata carries each model's published GFLOPS (which are MACs)."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    size = weights.transforms().crop_size[0]
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(**kwargs)
    report = analyze(model, (3, size, size))
    published = weights.meta["_ops"]
    assert abs(report.total.macs / 1e9 - published) / published < 0.01


def test_zoo_resnet50_matches_torchvision():
    with torch.device("meta"):
        tv = torchvision.models.resnet50()
    ours = analyze(cnnzoo.create_model("resnet50", device="meta"))
    theirs = analyze(tv)
    assert ours.total.macs == theirs.total.macs
    assert ours.total.params == theirs.total.params == 25_557_032
    assert ours.total.uncounted.get("add", 0) + ours.total.uncounted.get("add_", 0) == 16


# --- tied, frozen, bare parameters and functional ops -----------------------------------------


class Toy(nn.Module):
    """Two branches sharing a weight, a frozen stem, a bare parameter used with ``@``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 8, 3, padding=1)
        self.b = nn.Conv2d(4, 8, 3, padding=1)
        self.b.weight = self.a.weight  # tied: counted once
        self.proj = nn.Parameter(torch.randn(12, 5))  # bare parameter
        for p in self.stem.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        y = F.relu(self.a(s) + self.b(s))
        z = torch.cat([y, s], dim=1)  # 12 channels
        return z.mean((2, 3)) @ self.proj


def test_tied_frozen_bare_parameter_and_functional_ops():
    report = analyze(Toy(), (3, 8, 8), batch_size=2)
    t = report.total
    stem = (3 * 3 * 3 + 1) * 4
    a = (3 * 3 * 4 + 1) * 8
    b_bias = 8
    proj = 12 * 5
    assert t.params == stem + a + b_bias + proj == 476
    assert t.frozen == stem and t.trainable == a + b_bias + proj
    by_name = {r.name: r for r in report.layers}
    assert by_name["b"].params == 8 and by_name["b"].shared == ["a.weight"]
    assert sum(r.params for r in report.layers) == t.params
    # Functional rows, attributed to the container (here the root).
    for op in ("add", "relu", "cat", "mean", "matmul"):
        assert op in by_name, op
    assert by_name["matmul"].params == proj and by_name["matmul"].param_formula == "12*5"
    assert by_name["matmul"].macs == 2 * 12 * 5
    assert by_name["cat"].output == (12, 8, 8)
    # MACs for the batch of 2: stem, a, b and the projection.
    assert t.macs == 2 * (8 * 8 * 4 * 27 + 2 * 8 * 8 * 8 * 36 + 12 * 5)
    assert t.uncounted == {"add": 1, "relu": 1, "cat": 1, "mean": 1}
    # Receptive fields: 3x3 stem 3, branches 5, add/cat take the max, mean is global.
    assert by_name["stem"].rf == 3 and by_name["add"].rf == 5 and by_name["cat"].rf == 5
    assert by_name["mean"].rf_global and by_name["matmul"].rf_global
    assert t.rf == 5 and not t.rf_global  # the final 8x8 feature map (the cat)


def test_squeeze_excite_makes_the_field_global():
    report = analyze(cnnzoo.create_model("se_resnet50", device="meta"))
    assert report.total.rf_global
    assert report.total.rf == 224
    plain = analyze(cnnzoo.create_model("resnet50", device="meta"))
    assert not plain.total.rf_global and plain.total.rf > 224  # theoretical field, padding in


# --- the model is left exactly as it was --------------------------------------------------------


def _snapshot(model: nn.Module) -> dict:
    g = torch.nn.modules.module
    return {
        "state": {
            k: (v.device, v.dtype, v.shape, v.clone()) for k, v in model.state_dict().items()
        },
        "ids": [id(p) for p in model.parameters()] + [id(b) for b in model.buffers()],
        "grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "attrs": [sorted(vars(m)) for m in model.modules()],
        "hooks": [
            (
                len(m._forward_hooks),
                len(m._forward_pre_hooks),
                len(m._backward_hooks),
                len(getattr(m, "_backward_pre_hooks", {})),
                len(m._state_dict_hooks),
            )
            for m in model.modules()
        ],
        "global": (
            len(g._global_forward_hooks),
            len(g._global_forward_pre_hooks),
            len(g._global_backward_hooks),
        ),
        "mode": torch._C._is_torch_function_mode_enabled(),
    }


def _same(a: dict, b: dict) -> bool:
    for k in a["state"]:
        da, db = a["state"][k], b["state"][k]
        if da[:3] != db[:3] or not torch.equal(da[3], db[3]):
            return False
    return {k: v for k, v in a.items() if k != "state"} == {
        k: v for k, v in b.items() if k != "state"
    }


def test_model_untouched_including_mixed_training_flags():
    model = Toy()
    model.stem.eval()  # mixed flags must come back exactly
    nn.init.constant_(model.proj, 0.5)
    before = _snapshot(model)
    analyze(model, (3, 8, 8))
    assert _same(before, _snapshot(model))
    bn_model = cnnzoo.create_model("resnet20")
    bn_model.layer2.eval()
    before = _snapshot(bn_model)
    analyze(bn_model, (3, 32, 32), batch_size=2)  # the training pass updates meta copies only
    assert _same(before, _snapshot(bn_model))


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y @ torch.ones(7, 7, device=y.device)  # wrong shape: raises inside the pass


def test_model_untouched_when_analyze_raises():
    model = Broken()
    before = _snapshot(model)
    with pytest.raises(CnnzooError, match="Broken does not run"):
        analyze(model, (3, 16, 16))
    assert _same(before, _snapshot(model))
    small = cnnzoo.create_model("lenet5")
    before = _snapshot(small)
    with pytest.raises(cnnzoo.InputTooSmallError, match="too small"):
        analyze(small, (1, 8, 8))
    assert _same(before, _snapshot(small))


def test_bad_arguments_are_user_errors():
    with pytest.raises(CnnzooError, match="nn.Module"):
        analyze("resnet50")
    with pytest.raises(CnnzooError, match="batch size"):
        analyze(Toy(), (3, 8, 8), batch_size=0)


# --- formats and the command line -------------------------------------------------------------


def test_json_schema():
    report = analyze(cnnzoo.create_model("lenet5", device="meta"), (1, 32, 32), name="lenet5")
    d = json.loads(report.to_json())
    assert d["model"] == "lenet5" and d["input"] == [1, 32, 32] and d["batch"] == 1
    for layer in d["layers"]:
        for key in ("name", "type", "output", "params", "macs", "activations", "rf", "stride"):
            assert key in layer
        assert isinstance(layer["output"], list)
    total_keys = "params trainable frozen macs flops activations forward_bytes training_bytes rf"
    for key in total_keys.split() + ["uncounted"]:
        assert key in d["total"]
    assert isinstance(d["total"]["uncounted"], dict)
    assert d["total"]["params"] == 61_706  # SPEC: classic LeNet-5
    # C1 5; S2 5+1 = 6 (jump 2); C3 6+4*2 = 14; S4 14+1*2 = 16 (jump 4); C5 16+4*4 = 32
    assert d["total"]["rf"] == 32
    assert d["total"]["flops"] == 2 * d["total"]["macs"]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_cli_formats():
    rc, table, _ = _cli("summary", "alexnet")
    assert rc == 0
    line = next(row for row in table.splitlines() if row.startswith("[55x55x96]"))
    assert "CONV1" in line and "(11*11*3+1)*96 = 34,944" in line
    fc8 = next(row for row in table.splitlines() if row.startswith("[1000]"))
    assert "FC8" in fc8 and "(4096+1)*1000 = 4,097,000" in fc8
    assert "TOTAL memory:" in table and "(forward only; about x2 for backward)" in table
    assert "TOTAL params: 62,378,344" in table and "FLOPs = 2 x MACs" in table
    rc, text, _ = _cli("summary", "alexnet", "--format", "json", "--batch", "2")
    d = json.loads(text)
    assert d["batch"] == 2 and d["input"] == [3, 227, 227]  # the registry's input size
    rc, text, _ = _cli("summary", "lenet5", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["param_formula"] == "(5*5*1+1)*6" and int(rows[0]["params"]) == 156
    rc, text, _ = _cli("summary", "lenet5", "--format", "markdown")
    assert "| features.0 | Conv2d | 28x28x6 | 156 |" in text
    rc, text, _ = _cli("summary", "vgg16", "--depth", "1", "--input", "3x64x64")
    assert rc == 0 and "features" in text and "features.0" not in text


def test_cli_input_channels_build_the_model_for_them():
    rc, text, _ = _cli("summary", "lenet5", "--input", "3x32x32", "--format", "json")
    first = json.loads(text)["layers"][0]
    assert rc == 0 and first["params"] == (5 * 5 * 3 + 1) * 6


def test_cli_errors_are_one_line():
    rc, _, err = _cli("summary", "alexnet", "--input", "3xbig")
    assert rc == 2 and err.count("\n") == 1 and "227x227x3" in err
    rc, _, err = _cli("summary", "alexnet", "--input", "3x32x32")
    assert rc == 2 and "too small" in err
    rc, _, err = _cli("summary", "resnet5O")
    assert rc == 2 and "did you mean" in err


def test_depth_groups_add_up():
    from cnnzoo.analysis.report import group_rows

    report = analyze(cnnzoo.create_model("vgg16", device="meta"), (3, 64, 64))
    groups = group_rows(report.layers, 1)
    assert [g.name for g in groups] == ["features", "avgpool", "classifier"]
    assert sum(g.params for g in groups) == report.total.params
    assert sum(g.macs for g in groups) == report.total.macs
    features = groups[0]
    assert features.params == sum(r.params for r in report.layers if r.name.startswith("features"))
    assert features.output == (512, 2, 2) and features.rf == 212  # the last row of the group


def test_grouped_and_depthwise_convolutions_by_hand():
    # The two-tower AlexNet: conv2 sees only its own tower's 48 maps.
    report = analyze(cnnzoo.create_model("alexnet_2gpu", device="meta"), (3, 227, 227))
    conv2 = rows_of(report, "Conv2d")[1]
    assert conv2.param_formula == "(5*5*48+1)*256" and conv2.params == (5 * 5 * 48 + 1) * 256
    assert conv2.macs == 27 * 27 * 256 * 5 * 5 * 48
    assert report.total.params == 60_965_224  # SPEC
    # MobileNet v1: conv 3x3/2 to 32 maps, then a depthwise 3x3 (one filter per map, no bias).
    report = analyze(cnnzoo.create_model("mobilenet_v1", device="meta"))
    first, dw, pw = rows_of(report, "Conv2d")[:3]
    assert first.param_formula == "(3*3*3)*32" and first.macs == 112 * 112 * 32 * 3 * 3 * 3
    assert dw.param_formula == "(3*3*1)*32" and dw.params == 288
    assert dw.macs == 112 * 112 * 32 * 3 * 3
    assert pw.params == 32 * 64 and pw.macs == 112 * 112 * 64 * 32


def test_an_image_size_without_channels_names_the_one_meant():
    """``analyze(lenet5, input_size=(32, 32))`` ran the model on an unbatched 1 x 32 x 32 and
    failed with torch's matrix-shape message; it now says the size is (C, H, W) and gives the
    model's own channels. A model without ``in_chans`` may still take a 2-number size."""
    import cnnzoo
    from cnnzoo.errors import CnnzooError

    lenet = cnnzoo.create_model("lenet5", device="meta")
    with pytest.raises(
        CnnzooError, match=r"input_size is \(C, H, W\), got \(32, 32\); .*\(1, 32, 32\)"
    ):
        cnnzoo.analyze(lenet, input_size=(32, 32))
    report = cnnzoo.analyze(nn.Sequential(nn.Linear(5, 3)), input_size=(4, 5))
    assert report.total.params == 5 * 3 + 3
