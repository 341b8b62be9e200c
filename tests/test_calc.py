"""The lecture's calculators against arithmetic done by hand in this file."""

from __future__ import annotations

import json
import shlex

import pytest

from cnnzoo import calc
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError

# ---------------------------------------------------------------- conv / pool


def test_alexnet_conv1_matches_the_notes():
    r = calc.conv_output("227x227x3", filters=96, kernel=11, stride=4, pad=0)
    assert r.output == ((227 - 11 + 2 * 0) // 4 + 1, 55, 96) == (55, 55, 96)
    assert r.volume == "55x55x96"
    assert r.params == (11 * 11 * 3 + 1) * 96 == 34_944
    assert r.param_formula == "(11*11*3+1)*96 = 34,944"
    assert r.arithmetic == "(227 - 11 + 2*0)/4 + 1 = 55"
    assert r.macs == 55 * 55 * 96 * (11 * 11 * 3) == 105_415_200
    assert r.activations == 55 * 55 * 96 == 290_400
    assert not r.floored


def test_conv_without_bias_is_the_vgg_slide_count():
    r = calc.conv_output((224, 224, 3), 64, 3, 1, 1, bias=False)
    assert r.output == (224, 224, 64)
    assert r.params == 3 * 3 * 3 * 64 == 1_728
    assert r.param_formula == "(3*3*3)*64 = 1,728"


def test_grouped_conv_is_alexnet_two_gpu_conv2():
    # conv2 of the 2-GPU AlexNet: each half of the 256 filters sees 48 of the 96 maps.
    r = calc.conv_output("27x27x96", 256, 5, 1, 2, groups=2)
    assert r.output == (27, 27, 256)
    assert r.params == (5 * 5 * 48 + 1) * 256 == 307_456


def test_pool1_is_27x27x96_with_no_parameters():
    r = calc.pool_output("55x55x96", kernel=3, stride=2)
    assert r.output == ((55 - 3) // 2 + 1, 27, 96) == (27, 27, 96)
    assert r.params == 0 and r.macs == 0
    # PyTorch's default: stride = window; without a depth the volume is per channel
    r = calc.pool_output("224x224", 2)
    assert (r.volume, r.activations) == ("112x112", 112 * 112)


def test_non_dividing_size_is_an_error_with_arithmetic_and_fixes():
    with pytest.raises(CnnzooError) as info:
        calc.conv_output("224x224x3", 96, 11, 4)
    msg = str(info.value)
    # 224 - 11 = 213; 213/4 = 53.25; + 1 = 54.25
    assert "(224 - 11 + 2*0)/4 + 1 = 54.25" in msg
    # (227 - 11)/4 + 1 = 55 and (223 - 11)/4 + 1 = 54 divide
    assert "227 (-> 55)" in msg and "223 (-> 54)" in msg
    # 213 = 3 * 71: stride 3 gives 213/3 + 1 = 72
    assert "stride 3 (-> 72)" in msg
    # 213 + 2P is odd, never a multiple of 4: no padding helps
    assert "no padding divides" in msg
    assert "--floor" in msg and "(-> 54)" in msg
    assert "\n" not in msg  # the CLI prints it as one line


def test_non_dividing_size_suggests_the_nearest_padding():
    # (30 - 5 + 2*0)/3 + 1 = 9.33; pad 1: (30 - 5 + 2*1)/3 + 1 = 27/3 + 1 = 10 divides.
    with pytest.raises(CnnzooError, match=r"pad 1 \(-> 10\)"):
        calc.conv_output("30x30x3", 8, 5, 3, 0)


def test_floor_accepts_pytorch_rounding():
    r = calc.conv_output("224x224x3", 96, 11, 4, floor=True)
    assert r.output == (54, 54, 96)  # floor(213/4) + 1 = 53 + 1
    assert r.floored


def test_non_square_input_names_the_side():
    r = calc.conv_output("227x131x3", 8, 11, 4)
    assert r.output == (55, (131 - 11) // 4 + 1, 8) == (55, 31, 8)
    with pytest.raises(CnnzooError, match="^width: "):
        calc.conv_output("227x130x3", 8, 11, 4)


@pytest.mark.parametrize(
    "args",
    [
        ("10x10x3", 8, 13, 1, 0),  # 13 > 10: the window does not fit
        ("10x10x3", 8, 3, 0, 0),  # stride 0
        ("10x10x3", 0, 3, 1, 0),  # no filters
        ("10x10", 8, 3, 1, 0),  # conv needs the depth
        ("10x10x3", 8, 3, 1, -1),  # negative padding
    ],
)
def test_bad_layer_arguments_are_user_errors(args):
    with pytest.raises(CnnzooError):
        calc.conv_output(*args)


def test_groups_must_divide():
    with pytest.raises(CnnzooError, match="groups"):
        calc.conv_output("27x27x96", 256, 5, 1, 2, groups=5)


# ---------------------------------------------------------------- receptive field


def test_three_3x3_have_the_field_of_one_7x7():
    r = calc.receptive_field(["3/1", "3/1", "3/1"])
    assert [lay.rf for lay in r.layers] == [3, 5, 7]  # 1+2, 3+2, 5+2
    assert r.rf == calc.receptive_field([(7, 1)]).rf == 7
    assert r.jump == 1


def test_alexnet_conv1_to_pool3_receptive_field():
    # rf = rf_prev + (F-1)*jump_prev, jump = jump_prev*S, starting from rf 1, jump 1:
    # conv1 11/4: 1 + 10*1 = 11, jump 4      pool1 3/2: 11 + 2*4 = 19, jump 8
    # conv2 5/1: 19 + 4*8 = 51, jump 8        pool2 3/2: 51 + 2*8 = 67, jump 16
    # conv3 3/1: 67 + 2*16 = 99               conv4: 99 + 32 = 131    conv5: 131 + 32 = 163
    # pool3 3/2: 163 + 2*16 = 195, jump 32
    r = calc.receptive_field(shlex.split("11/4 3/2 5/1 3/2 3/1 3/1 3/1 3/2"))
    assert [lay.rf for lay in r.layers] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [lay.jump for lay in r.layers] == [4, 8, 8, 16, 16, 16, 16, 32]
    assert (r.rf, r.jump) == (195, 32)


def test_dilation_widens_the_kernel():
    # a 3x3 with dilation 2 spans 2*(3-1)+1 = 5 pixels
    assert calc.receptive_field(["3/1/2"]).rf == 5
    assert calc.receptive_field(["3"]).rf == 3  # stride defaults to 1


@pytest.mark.parametrize("bad", [[], ["3x3"], ["0/1"], ["3/1/1/1"]])
def test_bad_rf_layers(bad):
    with pytest.raises(CnnzooError):
        calc.receptive_field(bad)


# ---------------------------------------------------------------- three 3x3 vs one 7x7


def test_stack_of_three_3x3_against_7x7():
    c = 64
    r = calc.stack_vs_single(c)
    assert r.single_kernel == 7
    assert r.stack_weights == 3 * (3**2 * c**2) == 110_592
    assert r.single_weights == 7**2 * c**2 == 200_704
    assert r.stack_params == 110_592 + 3 * 64
    assert r.single_params == 200_704 + 64
    assert r.ratio == pytest.approx(27 / 49)


def test_stack_of_two_3x3_is_a_5x5():
    r = calc.stack_vs_single(10, n=2)
    assert r.single_kernel == 5
    assert (r.stack_weights, r.single_weights) == (2 * 9 * 100, 25 * 100)


# ---------------------------------------------------------------- depthwise separable


def test_separable_parameters_macs_and_ratio():
    r = calc.separable_conv(32, 64, 3, size=112)
    assert r.standard_params == 32 * 3 * 3 * 64 == 18_432
    assert r.separable_params == 32 * (3 * 3 + 64) == 2_336
    assert r.depthwise_params + r.pointwise_params == 288 + 2_048
    assert r.standard_macs == 112 * 112 * 18_432 == 231_211_008
    assert r.separable_macs == 112 * 112 * 2_336 == 29_302_784
    assert r.ratio == pytest.approx(1 / 64 + 1 / 9)


def test_separable_with_biases():
    r = calc.separable_conv(32, 64, 3, bias=True)
    assert r.standard_params == 18_432 + 64
    assert r.separable_params == 2_336 + 32 + 64
    assert r.standard_macs is None


# ---------------------------------------------------------------- Inception module


def test_notes_inception_module():
    r = calc.inception_module()  # 28x28x256, the notes' example
    naive = [b.macs for b in r.naive]
    assert naive == [
        28 * 28 * 128 * 1 * 1 * 256,  # 25,690,112
        28 * 28 * 192 * 3 * 3 * 256,  # 346,816,512
        28 * 28 * 96 * 5 * 5 * 256,  # 481,689,600
        0,  # the max pool
    ]
    assert r.naive_macs == 854_196_224  # the slide's "854M" is right
    bottle = [b.macs for b in r.bottleneck]
    assert bottle == [
        28 * 28 * 64 * 256,  # 12,845,056
        28 * 28 * 64 * 256,
        28 * 28 * 128 * 256,  # 25,690,112
        28 * 28 * 192 * 9 * 64,  # 86,704,128
        28 * 28 * 96 * 25 * 64,  # 120,422,400
        0,
        28 * 28 * 64 * 256,
    ]
    # 3*12,845,056 + 25,690,112 + 86,704,128 + 120,422,400 = 271,351,808, not the slide's 358M
    assert r.bottleneck_macs == 271_351_808
    assert "358M" in r.note and "271M" in r.note
    assert (r.naive_depth, r.bottleneck_depth) == (128 + 192 + 96 + 256, 128 + 192 + 96 + 64)
    assert (r.naive_depth, r.bottleneck_depth) == (672, 480)


def test_googlenet_inception_3a():
    # torchvision's Inception(192, 64, 96, 128, 16, 32, 32) on 28x28x192, weights only
    r = calc.inception_module(
        "28x28x192", ch1x1=64, reduce3x3=96, ch3x3=128, reduce5x5=16, ch5x5=32, pool_proj=32
    )
    weights = 192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32
    assert r.bottleneck_params == weights == 163_328
    assert r.bottleneck_macs == 28 * 28 * weights
    assert r.bottleneck_depth == 64 + 128 + 32 + 32 == 256
    assert r.note == ""  # not the notes' example


# ---------------------------------------------------------------- command line


def cli(command: str) -> int:
    return main(shlex.split(command))


def test_cli_conv_text_and_json(capsys):
    argv = shlex.split("calc conv --input 227x227x3 --filters 96 --kernel 11 --stride 4 --pad 0")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "55x55x96" in out and "(11*11*3+1)*96 = 34,944" in out
    assert main([*argv, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == [55, 55, 96] and data["params"] == 34_944


def test_cli_non_dividing_is_one_line_exit_2(capsys):
    argv = shlex.split("calc conv --input 224x224x3 --filters 96 --kernel 11 --stride 4")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo calc: error: (224 - 11 + 2*0)/4 + 1 = 54.25")
    assert len(err.splitlines()) == 1
    assert main([*argv, "--floor"]) == 0
    assert "54x54x96" in capsys.readouterr().out


def test_cli_rf_stack_separable_inception(capsys):
    assert cli("calc rf 3/1 3/1 3/1 --format json") == 0
    assert json.loads(capsys.readouterr().out)["rf"] == 7
    assert cli("calc pool --input 55x55x96 --kernel 3 --stride 2") == 0
    assert "27x27x96" in capsys.readouterr().out
    assert cli("calc stack --channels 64 --format json") == 0
    assert json.loads(capsys.readouterr().out)["stack_weights"] == 110_592
    assert cli("calc separable --in 32 --out 64 --size 112x112 --format json") == 0
    assert json.loads(capsys.readouterr().out)["separable_macs"] == 29_302_784
    assert cli("calc inception --format json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["naive_depth"], data["bottleneck_macs"]) == (672, 271_351_808)
    assert cli("calc rf 3x3") == 2


# ---------------------------------------------------------------- against PyTorch's own layers


@pytest.mark.parametrize(
    "size, c_in, filters, kernel, stride, pad, groups, dilation",
    [
        (227, 3, 96, 11, 4, 0, 1, 1),
        (224, 3, 96, 11, 4, 0, 1, 1),  # does not divide: PyTorch floors
        (31, 5, 8, 3, 2, 1, 1, 1),
        (27, 96, 256, 5, 1, 2, 2, 1),  # AlexNet's grouped conv2
        (20, 6, 12, 3, 3, 0, 3, 2),
    ],
)
def test_conv_matches_torch_conv2d(size, c_in, filters, kernel, stride, pad, groups, dilation):
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(c_in, filters, kernel, stride, pad, dilation, groups, device="meta")
    out = conv(torch.empty(1, c_in, size, size, device="meta"))
    r = calc.conv_output(
        (size, size, c_in), filters, kernel, stride, pad, groups=groups, dilation=dilation,
        floor=True,
    )  # fmt: skip
    assert r.output == (out.shape[2], out.shape[3], out.shape[1])
    assert r.params == sum(p.numel() for p in conv.parameters())
    assert r.macs == out.numel() * conv.weight[0].numel()  # each output: one filter's weights


def test_separable_and_stack_match_torch_layers():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with torch.device("meta"):
        std = nn.Conv2d(32, 64, 3, bias=False)
        dw = nn.Conv2d(32, 32, 3, groups=32, bias=False)
        pw = nn.Conv2d(32, 64, 1, bias=False)
        three = nn.Sequential(*(nn.Conv2d(64, 64, 3) for _ in range(3)))
        seven = nn.Conv2d(64, 64, 7)

    def count(m):
        return sum(p.numel() for p in m.parameters())

    r = calc.separable_conv(32, 64, 3)
    assert (r.standard_params, r.depthwise_params, r.pointwise_params) == (
        count(std),
        count(dw),
        count(pw),
    )
    s = calc.stack_vs_single(64)
    assert (s.stack_params, s.single_params) == (count(three), count(seven))


@pytest.mark.parametrize(
    "size, kernel, stride, pad", [(55, 3, 2, 0), (224, 2, 2, 0), (28, 3, 1, 1)]
)
def test_pool_matches_torch_maxpool(size, kernel, stride, pad):
    torch = pytest.importorskip("torch")
    out = torch.nn.MaxPool2d(kernel, stride, pad)(torch.empty(1, 4, size, size, device="meta"))
    assert calc.pool_output((size, size, 4), kernel, stride, pad).output == (
        out.shape[2],
        out.shape[3],
        4,
    )


# ---------------------------------------------------------------- docs/lecture.md stays true


def test_lecture_doc_calc_outputs_are_current(capsys):
    # Every `$ cnnzoo calc ...` block of docs/lecture.md must be what the command prints now.
    import pathlib
    import re

    doc = pathlib.Path(__file__).parents[1] / "docs" / "lecture.md"
    if not doc.exists():
        pytest.skip("docs/lecture.md is not in this checkout")
    blocks = re.findall(r"```console\n\$ cnnzoo (calc [^\n]*)\n(.*?)```", doc.read_text(), re.S)
    assert len(blocks) >= 8
    for command, expected in blocks:
        code = cli(command)
        got = capsys.readouterr()
        printed = got.out if code == 0 else got.err
        assert printed.strip() == expected.strip(), command


def test_fc_layer_is_alexnet_fc6_and_the_vgg_slide_row():
    r = calc.fc_layer("6x6x256", 4096)
    assert r.in_features == 6 * 6 * 256 == 9_216
    assert r.params == (9_216 + 1) * 4096 == 37_752_832
    assert r.macs == 9_216 * 4096
    # the VGG16 slide counts weights only: 7*7*512*4096 = 102,760,448
    assert calc.fc_layer((7, 7, 512), 4096, bias=False).params == 102_760_448
    assert calc.fc_layer(4096, 1000).param_formula == "(4096+1)*1000 = 4,097,000"
    with pytest.raises(CnnzooError):
        calc.fc_layer("6x0x256", 10)
    assert cli("calc fc --input 6x6x256 --out 4096") == 0


def test_calculate_reads_the_command_lines_text_and_notes_before_the_arithmetic():
    notes: list[str] = []
    with pytest.raises(CnnzooError, match="not a whole number"):  # stride 5 does not divide
        calc.calculate(
            "conv_output", {"input": "3x227x227", "filters": 96, "kernel": 11, "stride": 5},
            note=notes.append,
        )  # fmt: skip
    assert len(notes) == 1 and "C x H x W" in notes[0]  # said before the error
    conv = calc.calculate("conv_output", {"input": "3x227x227", "filters": 96, "kernel": 11,
                                          "stride": 4}, note=notes.append)  # fmt: skip
    assert conv.output == (55, 55, 96) and len(notes) == 2
    assert calc.calculate("fc_layer", {"input": "4096", "out_features": 10}).in_features == 4096
    assert calc.calculate("fc_layer", {"input": "6x6x256", "out_features": 1}).input == (6, 6, 256)
    pool = calc.calculate("pool_output", {"input": "55x55", "kernel": 3, "stride": 2})
    assert pool.output == (27, 27, 0)
    sep = calc.calculate("separable_conv", {"c_in": 4, "c_out": 8, "size": "14x14"})
    assert sep.size == (14, 14) and sep.standard_macs == 14 * 14 * 4 * 3 * 3 * 8
    with pytest.raises(CnnzooError, match="depth last"):  # a conv needs the depth
        calc.calculate("conv_output", {"input": "227x227", "filters": 1, "kernel": 3})
