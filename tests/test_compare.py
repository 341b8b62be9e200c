"""`cnnzoo compare`: rows agree with the analyzer, with torchvision and with the reference data."""

from __future__ import annotations

import json
import shlex
import struct

import pytest
import torch
import torchvision

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.compare import ComparisonRow, compare, load_reference, plot_complexity
from cnnzoo.errors import CnnzooError, UnknownModelError


def cli(command: str) -> int:
    return main(shlex.split(command))


@pytest.fixture(scope="module")
def small() -> cnnzoo.compare.Comparison:
    return compare(["alexnet_tv", "resnet20", "mobilenet_v1"])


def test_rows_agree_with_analyze(small):
    from cnnzoo.analysis import analyze

    for row in small.rows:
        info = cnnzoo.get_model_info(row.name)
        assert row.input_size == info.input_size
        report = analyze(cnnzoo.create_model(row.name, device="meta"), input_size=info.input_size)
        t = report.total
        assert (row.params, row.macs, row.forward_bytes) == (t.params, t.macs, t.forward_bytes)
        assert (row.rf, row.rf_global) == (t.rf, t.rf_global)
        assert row.flops == 2 * row.macs


def test_alexnet_tv_row_against_torchvision(small):
    row = small.rows[0]
    with torch.device("meta"):
        tv = torchvision.models.alexnet()
    assert row.params == sum(p.numel() for p in tv.parameters()) == 61_100_840
    # torchvision's docs give 0.714 G "ops" (multiply-accumulates) for AlexNet at 224x224
    assert row.macs == pytest.approx(0.714e9, rel=0.01)
    # conv1..pool3 as kernel/stride: 11/4 3/2 5/1 3/2 3/1 3/1 3/1 3/2 -> 195 (test_calc)
    assert (row.rf, row.rf_global) == (195, False)


def test_googlenet_counts_auxiliary_heads_apart():
    # torchvision's GoogLeNet without the auxiliary classifiers is the inference network
    with torch.device("meta"):
        tv = torchvision.models.googlenet(aux_logits=False, init_weights=False)
    result = compare(["googlenet"])
    row = result.rows[0]
    assert row.inference_params == sum(p.numel() for p in tv.parameters()) == 6_624_904
    assert row.unused_params > 0 and row.params == row.inference_params + row.unused_params
    assert "googlenet +: 6,624,904 parameters at inference" in result.to_table()


def test_published_figures_come_from_the_reference(small):
    ref = load_reference()
    alexnet_tv, resnet20, mobilenet = small.rows
    assert alexnet_tv.top1 == ref["models"]["alexnet_tv"]["top1"] == 56.522
    assert alexnet_tv.source == "torchvision"
    assert mobilenet.top1 == 70.6 and mobilenet.source == "howard2017"
    assert resnet20.top1 is None and "CIFAR" in resnet20.no_imagenet
    table = small.to_table()
    assert "n/a" in table and "resnet20: no ImageNet top-1 (a CIFAR-10 model)" in table


def test_torchvision_sourced_accuracies_match_torchvision_metadata():
    # The reference copies torchvision's IMAGENET1K_V1 figures: check each against the
    # metadata that ships inside the installed torchvision.
    checked = 0
    for name, entry in load_reference()["models"].items():
        if entry["source"] != "torchvision":
            continue
        tv_name = "alexnet" if name == "alexnet_tv" else name
        meta = torchvision.models.get_model_weights(tv_name)["IMAGENET1K_V1"].meta
        metrics = meta["_metrics"]["ImageNet-1K"]
        assert entry["top1"] == pytest.approx(metrics["acc@1"]), name
        assert entry["top5"] == pytest.approx(metrics["acc@5"]), name
        checked += 1
    assert checked >= 15


def test_reference_is_consistent():
    ref = load_reference()
    for name, entry in ref["models"].items():
        assert entry["source"] in ref["sources"], name
        assert 0 < entry["top1"] < 100, name
    assert not set(ref["models"]) & set(ref["no_imagenet"])
    # every registered architecture either has a figure or says why it has none
    missing = [n for n in cnnzoo.list_models() if n not in ref["models"]]
    missing = [n for n in missing if n not in ref["no_imagenet"]]
    assert missing == [], (
        f"{missing}: give each a published figure ('models') or the reason it has none "
        "('no_imagenet') in src/cnnzoo/resources/reference.json"
    )
    # the notes' chart: 16.4 (2012) -> 11.7 (2013) -> 7.3 / 6.7 (2014) -> 3.57 (2015)
    chart = {(e["year"], e["entry"].split()[0]): e["top5_error"] for e in ref["ilsvrc"]}
    assert chart[(2012, "AlexNet")] == 16.4 and chart[(2013, "ZFNet")] == 11.7
    assert chart[(2014, "VGG")] == 7.3 and chart[(2015, "ResNet")] == 3.57


def test_ilsvrc_columns(small):
    rows = compare(["alexnet", "resnet50", "resnet152", "vgg16"]).rows
    alexnet, resnet50, resnet152, vgg16 = rows
    assert (alexnet.ilsvrc_year, alexnet.ilsvrc_top5_error, alexnet.ilsvrc_exact) == (
        2012,
        16.4,
        True,
    )
    assert resnet152.ilsvrc_text == "2015 1st, 3.57%"
    assert resnet50.ilsvrc_text == "2015 1st, 3.57%*"  # the family's entry, marked
    assert vgg16.ilsvrc_place == "2nd"
    assert small.rows[1].ilsvrc_year is None  # resnet20


def test_wildcards_and_unknown_names():
    with pytest.raises(UnknownModelError, match="vgg16"):
        compare(["alexnet", "vgg61"])
    with pytest.raises(CnnzooError, match="no model matches"):
        compare(["zzz*"])
    with pytest.raises(CnnzooError):
        compare([])


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _row(name: str, params: int, macs: int, top1: float | None) -> ComparisonRow:
    return ComparisonRow(
        name, (3, 224, 224), params, 0, macs, 0, 0, 1, False, top1, None, None,
        None if top1 else "a CIFAR model", None, None, None, False,
    )  # fmt: skip


def test_plot_writes_a_png_of_the_requested_size(tmp_path):
    rows = [
        _row("a", 60_000_000, 700_000_000, 56.5),
        _row("b", 138_000_000, 15_500_000_000, 71.6),
        _row("c", 270_000, 40_000_000, None),
    ]
    out = tmp_path / "chart.png"
    assert plot_complexity(rows, out) == ["c"]
    assert _png_size(out) == (1000, 650)
    plot_complexity(rows, out, size=(640, 480))
    assert _png_size(out) == (640, 480)
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]  # no temporary left behind
    with pytest.raises(CnnzooError, match="nothing to plot"):
        plot_complexity(rows[2:], out)
    with pytest.raises(CnnzooError, match="does not exist"):
        plot_complexity(rows, tmp_path / "missing" / "chart.png")


def test_cli_compare_json_and_plot(tmp_path, capsys):
    png = tmp_path / "c.png"
    assert cli(f"compare resnet20 mobilenet_v1 --format json --plot {png} --plot-size 800x500") == 0
    data = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in data["models"]]
    assert names == ["resnet20", "mobilenet_v1"]
    assert data["models"][1]["top1"] == 70.6
    assert _png_size(png) == (800, 500)
    assert cli("compare resnet20 --format csv") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("name,input_size,params") and lines[1].startswith("resnet20,3x32x32")


def test_cli_unknown_model_is_one_line_exit_2(capsys):
    assert cli("compare resnet20 resnet2000") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo compare: error: unknown model 'resnet2000'")
    assert len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exit_:  # --plot-size is checked by the parser
        cli("compare resnet20 --plot-size big")
    assert exit_.value.code == 2


def test_one_name_alone_is_one_model():
    """``compare("alexnet")`` looked up the models 'a', 'l', 'e'..."""
    assert [r.name for r in compare("alexnet").rows] == ["alexnet"]
    assert [r.name for r in compare("vgg1?").rows] == [r.name for r in compare(["vgg1?"]).rows]
