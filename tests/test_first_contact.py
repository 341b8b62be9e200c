"""What a newcomer meets after a first run: the finetune hint works, an evaluation names what it
scored and never replaces another's picture, --backend auto says what it used, --limit says what
it limits, the run's files share one mode, a missing data folder is named as missing."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from cnnzoo.cli import build_parser, main
from test_data import write_folder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch LeNet-5 run on 64 digits, with its plots."""
    out = tmp_path_factory.mktemp("first") / "run"
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "1", "--limit", "64"]
    argv += ["--threads", "1", "--no-progress", "--no-tensorboard", "--out", str(out)]
    assert main(argv) == 0
    return out


def test_finetune_hint_on_a_folder_without_test_split_runs(tmp_path, run, capsys):
    """A flat class folder has train and val only: the closing hint must name a split the
    checkpoint's data has, and running it as printed must succeed."""
    write_folder(tmp_path / "pets", classes=("cat", "dog"), n=8)
    out = tmp_path / "ft"
    argv = ["finetune", str(run / "best.pt"), "--data", str(tmp_path / "pets"), "--out", str(out)]
    assert main([*argv, "--no-progress", "--threads", "1"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if "(try: " in s)
    hint = shlex.split(line.split("(try: ", 1)[1].rstrip(")"))
    assert hint[:2] == ["cnnzoo", "evaluate"] and "val" in hint
    assert main([*hint[1:], "--no-plot"]) == 0
    assert "(val, " in capsys.readouterr().out


def test_evaluations_name_their_models_and_keep_their_own_pictures(run, capsys, monkeypatch):
    """The plain, the TTA and the ensemble evaluation of one run each write their own picture,
    titled with the model(s) and the data, and the table's first line names the model."""
    import cnnzoo.viz

    titles = {}
    real = cnnzoo.viz.plot_confusion

    def recording(confusion, classes, path, title=None):
        titles[path.name] = title
        return real(confusion, classes, path, title)

    monkeypatch.setattr(cnnzoo.viz, "plot_confusion", recording)
    assert main(["evaluate", str(run)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith(f"lenet5 ({run / 'best.pt'}) on digits (test")
    plain = (run / "confusion.png").read_bytes()
    assert main(["evaluate", str(run), "--tta", "flip"]) == 0
    assert main(["evaluate", str(run), str(run / "last.pt")]) == 0
    assert "ensemble of 2 (lenet5)" in capsys.readouterr().out
    assert (run / "confusion.png").read_bytes() == plain  # untouched by the other two
    assert titles == {
        "confusion.png": "lenet5 on digits (test split)",
        "confusion-tta-flip.png": "lenet5 on digits (test split, flip TTA)",
        "confusion-ensemble-of-2.png": "ensemble of 2 (lenet5) on digits (test split)",
    }


def test_backend_auto_reports_the_backend_it_used(run, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["evaluate", str(run), "--backend", "auto", "--format", "json", "--no-plot"]) == 0
    used = json.loads(capsys.readouterr().out)["backend"]
    assert used in ("torch", "onnxruntime")  # resolved, not "auto"
    assert main(["evaluate", str(run), "--backend", "auto", "--no-plot"]) == 0
    assert f", {used} backend)" in capsys.readouterr().out.splitlines()[0]


def test_limit_says_what_it_limits(run):
    """--limit caps every split: the help says so, and a 64-image run's test split is 64."""
    parser = build_parser()
    for command in ("train", "evaluate", "finetune"):
        sub = parser._subparsers._group_actions[0].choices[command]
        (limit,) = [a for a in sub._actions if "--limit" in a.option_strings]
        assert "each split" in limit.help and "test" in limit.help, command
    import cnnzoo

    ckpt = cnnzoo.load_checkpoint(run / "best.pt")
    assert ckpt["data"]["limit"] == 64


def test_the_runs_files_share_the_mode_open_gives(run, tmp_path):
    with open(tmp_path / "plain", "w") as f:  # the oracle: a file made the usual way
        f.write("x")
    expected = os.stat(tmp_path / "plain").st_mode & 0o777
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png"):
        assert os.stat(run / name).st_mode & 0o777 == expected, name


def test_a_missing_data_folder_is_named_as_missing(tmp_path, capsys):
    missing = tmp_path / "my_images"
    argv = ["train", "lenet5", "--data", str(missing), "--out", str(tmp_path / "r")]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err and str(missing) in err
    assert "unknown dataset" not in err


def test_a_bare_unknown_name_is_still_an_unknown_dataset(tmp_path):
    from cnnzoo.data import load_data
    from cnnzoo.errors import DataError

    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_data("imagenet")
    with pytest.raises(DataError, match=r"the data folder \./nope does not exist"):
        load_data("./nope")
