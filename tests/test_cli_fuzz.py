"""Hostile input for every command: each numeric option gets NaN and a negative number, each size
option an impossible size, each input path an empty file, a truncated file, a directory and a FIFO,
and each output path a read-only place. Every case must end in one line on stderr, exit status 2,
no traceback, and no file left behind."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import HELP, _build
from cnnzoo.cli import _args as types
from cnnzoo.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_thread")

CHECKED = {
    types.positive_int, types.nonneg_int, types.positive_float, types.nonneg_float,
    types.fraction, types.finite_float, types.img_size, types.plot_size,
}  # fmt: skip
SIZE_OPTIONS = ("--input", "--size")  # text options read by cnnzoo.notation.parse_size


def all_parsers():
    """(command words, parser) for every command and sub-command (calc conv, viz filters...)."""
    seen, alive = set(), []  # ids of live objects only: a freed parser's id is used again
    for command in HELP:
        parser, _ = _build(command)
        alive.append(parser)
        stack = [((), parser)]
        while stack:
            words, p = stack.pop()
            subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            for action in subs:
                for name, child in action.choices.items():
                    if id(child) not in seen:
                        seen.add(id(child))
                        stack.append(((*words, name), child))
            if words and not subs:
                yield words, p


def numeric_cases():
    for words, p in all_parsers():
        for a in p._actions:
            if not a.option_strings and a.type not in CHECKED:
                continue
            flag = a.option_strings[0] if a.option_strings else None
            if a.type in CHECKED:
                bad = ["nan"] if a.type is types.finite_float else ["nan", "-1"]
                if a.type in (types.img_size, types.plot_size):
                    bad = ["nanxnan", "-1x-1", "100000x100000"]
            elif flag in SIZE_OPTIONS:
                bad = ["nanxnanx3", "-1x-1x3", "0x0x0"]
            else:
                continue
            for value in bad:
                yield pytest.param(words, flag, value, id=f"{' '.join(words)} {flag} {value}")


def test_no_numeric_option_is_an_unchecked_int_or_float():
    """``type=float`` takes "nan" and ``type=int`` takes "-1": every number goes through a checked
    type of cli/_args.py, which names the range."""
    loose = [
        f"{' '.join(w)} {a.option_strings or a.dest}"
        for w, p in all_parsers()
        for a in p._actions
        if a.type in (int, float)
    ]
    assert loose == []


class Hung(BaseException):
    """Not an OSError (TimeoutError is one), so that no handler of the code under test eats it."""


def run_cli(argv: list[str], capsys, seconds: int = 60) -> tuple[int, str]:
    """The CLI in this process, with an alarm so that a command reading a FIFO fails instead of
    hanging the suite."""

    def hang(signum, frame):
        raise Hung(f"`cnnzoo {' '.join(argv)}` hung (reading a FIFO?)")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        try:
            code = cli(argv)
        except SystemExit as exc:
            code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, capsys.readouterr().err.strip()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def assert_one_line(code, err, argv):
    assert code == 2, f"`cnnzoo {' '.join(argv)}` exited {code}: {err}"
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, f"`cnnzoo {' '.join(argv)}` printed:\n{err}"


@pytest.mark.parametrize("words, flag, value", list(numeric_cases()))
def test_a_bad_number_is_one_line(words, flag, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*words, flag, value] if flag else [*words, value]
    code, err = run_cli(argv, capsys)
    assert_one_line(code, err, argv)
    assert files_under(tmp_path) == set()


# --- input and output paths -----------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real file of each kind the commands read, to truncate and to complete argument lists."""
    root = tmp_path_factory.mktemp("good")
    run = root / "run"
    quick = ["--data", "digits", "--limit", "32", "--threads", "1", "--epochs", "1"]
    quiet = ["--no-progress", "--no-tensorboard", "--no-plots"]
    assert cli(["train", "lenet5", *quick, *quiet, "--out", str(run)]) == 0
    feats = root / "feats.npz"
    assert cli(["features", str(run / "best.pt"), "--data", "digits", "--limit", "16",
                "--no-progress", "--out", str(feats)]) == 0  # fmt: skip
    image = root / "image.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype("uint8")).save(image)
    weights = root / "weights.pth"
    torch.save(torch.load(run / "best.pt", weights_only=True)["state_dict"], weights)
    recipe = root / "recipe.json"
    recipe.write_text('{"model": "lenet5", "data": "digits", "epochs": 1, "lr": 0.05}')
    profile = root / "profile.json"  # the shape of `cnnzoo profile --format json`, no rows
    profile.write_text('{"model": "lenet5", "rows": []}')
    return {"ckpt": run / "best.pt", "run": run, "features": feats, "image": image,
            "weights": weights, "recipe": recipe, "profile": profile}  # fmt: skip


# command templates: {IN} is the input path under test (its kind after the colon), the other
# {...} are good files; each must be refused whatever IN is replaced by
INPUTS = [
    ("evaluate {IN:ckpt} --data digits --limit 16", "ckpt"),
    ("predict {IN:ckpt} {image}", "ckpt"),
    ("predict {ckpt} {IN:image}", "image"),
    ("features {IN:ckpt} --data digits --limit 16 --out out.npz", "ckpt"),
    ("export {IN:ckpt} --format onnx --out out.onnx", "ckpt"),
    ("viz filters {IN:ckpt} --out filters.png", "ckpt"),
    ("viz activations {ckpt} {IN:image} --out act.png", "image"),
    ("finetune {IN:ckpt} --data digits --limit 16 --epochs 1 --out ft", "ckpt"),
    ("convert {IN:weights} out.pt --model lenet5 --arg in_chans=1", "weights"),
    ("neighbors {IN:features} --query 0", "features"),
    ("train --resume {IN:ckpt} --epochs 2", "ckpt"),
    ("train lenet5 --recipe {IN:recipe} --out run2", "recipe"),
    ("train lenet5 --data {IN:image} --epochs 1 --out run2", "image"),
    ("explore lenet5 --out site --profile {IN:profile}", "profile"),
]
DAMAGE = ("empty", "truncated", "directory", "fifo")


def damaged(kind: str, how: str, good: dict, where: Path) -> Path:
    target = where / f"bad.{good[kind].suffix.lstrip('.') or 'bin'}"
    if how == "empty":
        target.write_bytes(b"")
    elif how == "truncated":
        data = good[kind].read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif how == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    return target


def fill(template: str, good: dict, bad: Path) -> list[str]:
    words = []
    for word in template.split():
        if word.startswith("{IN:"):
            words.append(str(bad))
        elif word.startswith("{"):
            words.append(str(good[word.strip("{}")]))
        else:
            words.append(word)
    return words


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize(
    "template, kind", INPUTS, ids=[t.split(" {")[0] + f":{k}" for t, k in INPUTS]
)
def test_a_damaged_input_is_one_line(template, kind, how, good, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bad = damaged(kind, how, good, tmp_path)
    before = files_under(tmp_path)
    argv = fill(template, good, bad)
    code, err = run_cli(argv, capsys)
    assert_one_line(code, err, argv)
    assert files_under(tmp_path) == before, "files left behind"


OUTPUTS = [
    "train lenet5 --data digits --limit 16 --epochs 1 --out {RO}/run",
    "evaluate {ckpt} --data digits --limit 16 --out {RO}/eval",
    "features {ckpt} --data digits --limit 16 --out {RO}/f.npz",
    "export {ckpt} --format onnx --out {RO}/m.onnx",
    "convert {weights} {RO}/m.pt --model lenet5 --arg in_chans=1",
    "compare lenet5 alexnet --plot {RO}/chart.png",
    "neighbors {features} --query 0 --grid {RO}/grid.png",
    "viz filters {ckpt} --out {RO}/filters.png",
    "finetune {ckpt} --data digits --limit 16 --epochs 1 --out {RO}/ft",
    "demo --data digits --limit 16 --epochs 1 --out {RO}/demo",
    "explore lenet5 --out {RO}/site",
    "profile lenet5 --plot {RO}/roofline.png",
]


@pytest.mark.parametrize("template", OUTPUTS, ids=[t.split(" ")[0] for t in OUTPUTS])
def test_a_read_only_output_is_one_line(template, good, read_only_dir, tmp_path, monkeypatch,
                                        capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = fill(template.replace("{RO}", str(read_only_dir)), good, Path())
    before = files_under(tmp_path)
    code, err = run_cli(argv, capsys)
    assert_one_line(code, err, argv)
    assert str(read_only_dir) in err
    with contextlib.suppress(PermissionError):
        assert files_under(tmp_path) == before


# every command that takes an image size, given one too small for LeNet-5 (C3's 5x5 kernel would
# see a 2x2 map); {ckpt} is a trained LeNet-5
TOO_SMALL = [
    "train lenet5 --data digits --limit 16 --epochs 1 --img-size 8 --out run",
    "finetune {ckpt} --data digits --limit 16 --epochs 1 --img-size 8 --out ft",
    "features {ckpt} --data digits --limit 16 --img-size 8 --out f.npz",
    "export {ckpt} --format onnx --img-size 8 --out m.onnx",
    "summary lenet5 --input 8x8x1",
    "profile lenet5 --input 8x8x1",
    "compare lenet5 --input 8x8x1",
    "explore lenet5 --input 8x8x1 --out site",
]


@pytest.mark.parametrize("template", TOO_SMALL, ids=[t.split(" ")[0] for t in TOO_SMALL])
def test_an_input_too_small_is_one_line(template, good, tmp_path, monkeypatch, capsys):
    """features and export ended in tracebacks (export's a thousand lines long), and train and
    finetune refused only at the first batch, after the run directory was made."""
    monkeypatch.chdir(tmp_path)
    argv = fill(template, good, Path())
    code, err = run_cli(argv, capsys)
    assert_one_line(code, err, argv)
    assert "input 8x8x1 is too small for LeNet5" in err and "32x32" in err, err
    assert files_under(tmp_path) == set(), "files left behind"
