"""Faults and hostile files outside the training loop: each gives one line and loses nothing.

Checkpoints that are empty, damaged, impossible or would run code; weight files with a lying
safetensors header; writes that meet a full or read-only disk; ``convert`` aimed at a run;
decompression bombs; a model whose forward needs tensor values in ``analyze``.
"""

from __future__ import annotations

import errno
import inspect
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze
from cnnzoo.checkpoint import (
    atomic_save,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from cnnzoo.cli import main
from cnnzoo.data.folder import DataWarning, open_image, read_folder
from cnnzoo.errors import CheckpointError, CnnzooError, DataError
from cnnzoo.pretrained import convert_weights, load_pretrained

CLASSES = [str(i) for i in range(10)]
PREPROCESS = {"input_size": [1, 32, 32], "source_size": [32, 32], "mean": [0.5], "std": [0.25]}


def lenet_checkpoint(path: Path, **changes) -> Path:
    model = cnnzoo.create_model("lenet5")
    payload = dict(
        model_name="lenet5",
        model_args={"num_classes": 10},
        state_dict=model.state_dict(),
        classes=CLASSES,
        preprocess=PREPROCESS,
    )
    payload.update(changes)
    save_checkpoint(path, **payload)
    return path


def one_line(err: BaseException | str) -> str:
    text = str(err)
    assert "\n" not in text.strip() and "\x1b" not in text, text
    return text


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    return code, err


# --- checkpoints: empty, damaged, impossible ---------------------------------------------------


def test_empty_checkpoint_is_one_line_everywhere(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match=r"empty \(0 bytes\)") as err:
        load_checkpoint(empty)
    one_line(err.value)
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    for argv in (
        ["predict", empty, img],
        ["evaluate", empty, "--data", "digits"],
        ["export", empty, "--out", tmp_path / "m.onnx"],
        ["features", empty, "--data", "digits", "--out", tmp_path / "f.npz"],
        ["viz", "filters", empty, "--out", tmp_path / "f.png"],
        ["finetune", empty, "--data", "digits", "--out", tmp_path / "ft"],
        ["train", "--resume", empty],
    ):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "empty (0 bytes)" in one_line(err), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pt", "x.png"]


def test_a_pipe_or_directory_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "ckpt.pt"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(fifo)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_pretrained(cnnzoo.create_model("lenet5"), fifo)


@pytest.mark.parametrize(
    ("change", "entry"),
    [
        ({"model_args": {"num_classes": 10, "actt": "relu"}}, "actt"),  # a typo in model_args
        ({"model_args": {"num_classes": -5}}, "num_classes"),
        ({"model_args": {"num_classes": "ten"}}, "num_classes"),
        ({"model_args": {"in_chans": 0}}, "in_chans"),
        ({"model_args": ["num_classes", 10]}, "model_args"),
        ({"model_name": 7}, "model"),
        ({"state_dict": {"conv1.weight": 0.5}}, "float"),
        ({"classes": CLASSES[:7]}, "7 class names"),
        ({"classes": "0123456789"}, "classes"),
        ({"preprocess": {"input_size": [1, -32, 32]}}, "input_size"),
        ({"preprocess": {**PREPROCESS, "std": [0.0]}}, "std"),
    ],
)
def test_impossible_checkpoint_contents_are_one_line(tmp_path, capsys, change, entry):
    good = lenet_checkpoint(tmp_path / "good.pt")
    model_from_checkpoint(good)  # control: the untouched checkpoint builds its model
    ckpt = torch.load(good, weights_only=True)
    if "model_name" in change:
        ckpt["model"] = change.pop("model_name")
    ckpt.update(change)
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(bad)
    assert entry in one_line(err.value)
    code, line = run_cli(["predict", bad, good], capsys)
    assert code == 2 and entry in one_line(line) and "Traceback" not in line


def test_wrong_length_class_list_without_num_classes(tmp_path):
    """Classes are checked against the built model's outputs, not only against model_args."""
    path = lenet_checkpoint(tmp_path / "c.pt", model_args={}, classes=CLASSES[:4])
    with pytest.raises(CheckpointError, match="4 classes but its model has 10 outputs"):
        model_from_checkpoint(path)


# --- files that would run code ------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a file: the stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _code_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    zipped = tmp_path / "zipped.pt"
    torch.save({"format": "cnnzoo.checkpoint", "x": _Payload(marker)}, zipped)
    legacy = tmp_path / "legacy.pt"
    torch.save({"x": _Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    return {"zip": zipped, "legacy": legacy, "pickle": bare}


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
def test_a_file_that_would_run_code_is_refused_as_such(tmp_path, capsys, kind):
    marker = tmp_path / "PWNED"
    path = _code_files(tmp_path, marker)[kind]
    for load in (load_checkpoint, lambda p: load_pretrained(cnnzoo.create_model("lenet5"), p)):
        with pytest.raises(CheckpointError) as err:
            load(path)
        text = one_line(err.value)
        assert "was not loaded" in text and "would run code" in text, text
        assert "builtins.open" in text or "io.open" in text, text
        assert "truncated" not in text and "corrupt" not in text and "can still be" not in text
    code, line = run_cli(["predict", path, path], capsys)
    assert code == 2 and "would run code" in one_line(line)
    assert not marker.exists()
    # Control: an unsafe load runs the payload, so the file really does hold code.
    if kind == "pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_names_from_a_hostile_file_are_printed_without_escapes(tmp_path):
    """A global named with terminal escapes and newlines is shown escaped, on one line."""
    path = tmp_path / "ansi.pkl"
    # protocol 0: GLOBAL 'module\nname\n', an empty tuple, REDUCE, STOP
    path.write_bytes(b"cos\x1b[31mevil\nsystem\n(tR.")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    text = one_line(err.value)
    assert "would run code" in text and "\\x1b" in text


def test_truncated_checkpoint_is_not_called_code(tmp_path):
    good = lenet_checkpoint(tmp_path / "good.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated, corrupt") as err:
        load_checkpoint(cut)
    assert "would run code" not in one_line(err.value)


# --- safetensors with a lying header -------------------------------------------------------------


def _safetensors(path: Path, header: dict | bytes, data: bytes, length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


LIES = {
    "offsets past the end": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 10**9]}}, 16),
    "shape bigger than data": (
        {"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 16]}},
        16,
    ),
    "header longer than file": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 16),
    "header not json": (b'{"w": {"dtype"', 16),
    "unknown dtype": ({"w": {"dtype": "Q99", "shape": [4], "data_offsets": [0, 16]}}, 16),
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_safetensors_with_a_lying_header(tmp_path, capsys, lie):
    header, n = LIES[lie]
    length = 10**12 if lie == "header longer than file" else None
    path = _safetensors(tmp_path / "w.safetensors", header, bytes(n), length)
    with pytest.raises(CheckpointError) as err:
        load_pretrained(cnnzoo.create_model("lenet5"), path)
    assert "w.safetensors" in one_line(err.value)
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(img)
    for argv in (
        ["predict", path, img],
        ["finetune", path, "--model", "lenet5", "--data", "digits", "--out", tmp_path / "ft"],
        ["convert", path, tmp_path / "c.pt", "--model", "lenet5"],
    ):
        code, line = run_cli(argv, capsys)
        assert code == 2 and "w.safetensors" in one_line(line), (argv, line)
    assert not (tmp_path / "ft").exists() and not (tmp_path / "c.pt").exists()


# --- atomic_save: permissions, full and read-only disks -------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_save_gives_files_the_mode_open_would(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_save({"x": torch.zeros(2)}, tmp_path / "last.pt")
        with open(tmp_path / "plain.bin", "wb") as f:  # the oracle: a file made the usual way
            f.write(b"x")
    finally:
        os.umask(old)
    mode = (tmp_path / "last.pt").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_disk_full_injected_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"w": torch.ones(10)}, path)
    before = _listing(tmp_path)
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        f.write(b"x" * 1000)  # part of the file made it to disk, then the device filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CnnzooError) as err:
        atomic_save({"w": torch.zeros(3_000_000)}, path)  # 12 MB of float32
    text = one_line(err.value)
    assert text.startswith(f"no space left on the device holding {tmp_path}")
    assert "(12.0 MB needed" in text and "previous last.pt is unchanged" in text
    assert _listing(tmp_path) == before  # the old file intact, no .last.pt.*.tmp left
    monkeypatch.setattr(torch, "save", real_save)


def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    atomic_save({"w": torch.ones(1)}, path)
    before = _listing(tmp_path)

    def interrupted(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"w": torch.zeros(1)}, path)
    assert _listing(tmp_path) == before


def test_temporary_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    stale = tmp_path / f".last.pt.{pid}.0badf00d.tmp"  # what a kill -9 mid-write leaves
    stale.write_bytes(b"torn")
    alive = tmp_path / f".last.pt.{os.getppid()}.0badf00d.tmp"  # a live process's: kept
    alive.write_bytes(b"in progress")
    atomic_save({"w": torch.ones(1)}, tmp_path / "last.pt")
    assert not stale.exists() and alive.exists()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MB tmpfs (root only); skipped where it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_on_a_real_small_tmpfs(small_tmpfs, capsys):
    path = small_tmpfs / "weights.pt"
    atomic_save({"w": torch.ones(1000)}, path)
    before = _listing(small_tmpfs)
    with pytest.raises(CnnzooError) as err:
        atomic_save({"w": torch.zeros(500_000)}, path)  # 2 MB on a 1 MB disk
    assert "no space left on the device holding" in one_line(err.value)
    assert "(2.0 MB needed" in str(err.value)
    assert _listing(small_tmpfs) == before
    # the free space it reports is what is free once its temporary file is gone
    st = os.statvfs(small_tmpfs)
    assert f"needed, {st.f_bavail * st.f_frsize / 1e6:.1f} MB free)" in str(err.value)
    # The same through a command: convert writes its checkpoint with atomic_save.
    src = small_tmpfs.parent / "big.pth"
    torch.save(cnnzoo.create_model("lenet5").state_dict(), src)
    filler = small_tmpfs / "filler"
    filler.write_bytes(bytes(1_000_000 - 8192 - path.stat().st_size))  # almost nothing left
    code, line = run_cli(["convert", src, small_tmpfs / "c.pt", "--model", "lenet5"], capsys)
    assert code == 2 and "no space left" in one_line(line)
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler", "weights.pt"]


QUICK_RUN = ["--data", "digits", "--limit", "64", "--batch-size", "32", "--threads", "1",
             "--no-progress", "--no-tensorboard"]  # fmt: skip


def test_a_run_that_fills_the_disk_after_its_checkpoints_is_one_line(small_tmpfs, tmp_path,
                                                                    capsys):  # fmt: skip
    """A disk with room for the epoch's checkpoints and metrics.csv but not for curves.png: one
    line naming the picture and saying that the checkpoints are saved, which they are, whole, and
    no temporary file stays. The room is measured from the same run on an ample disk."""
    ample = tmp_path / "ample"
    assert main(["train", "lenet5", *QUICK_RUN, "--epochs", "1", "--out", str(ample)]) == 0
    page = os.statvfs(small_tmpfs).f_frsize
    pages = sum(-(-p.stat().st_size // page) for p in ample.iterdir() if p.name != "curves.png")
    subprocess.run(["mount", "-o", f"remount,size={(pages + 1) * page}", str(small_tmpfs)],
                   check=True)  # fmt: skip
    run = small_tmpfs / "run"
    code, line = run_cli(["train", "lenet5", *QUICK_RUN, "--epochs", "1", "--out", run], capsys)
    assert code == 2, line
    assert f"no space left on the device holding {run}" in one_line(line)
    assert "while writing curves.png" in line and "epoch 1's checkpoints are saved" in line
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "last.pt", "metrics.csv"]
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["features", "{ckpt}", "--data", "digits", "--limit", "64", "--no-progress", "--out",
         "{full}/f.npz"],
        ["export", "{ckpt}", "--format", "onnx", "--out", "{full}/m.onnx"],
        ["evaluate", "{ckpt}", "--data", "digits", "--limit", "64", "--out", "{full}/eval"],
        ["compare", "lenet5", "alexnet", "resnet18", "vgg16", "--plot", "{full}/c.png"],
    ],
    ids=lambda argv: argv[0],
)  # fmt: skip
def test_a_full_disk_is_one_line_in_every_command_that_writes(small_tmpfs, tmp_path, capsys,
                                                             argv):  # fmt: skip
    """A disk with a few kB left: each command wrote part of its file and ended in a traceback
    (features and export left the torn file behind)."""
    ckpt = lenet_checkpoint(tmp_path / "m.pt")
    filler = small_tmpfs / "filler"
    free = os.statvfs(small_tmpfs)
    filler.write_bytes(bytes(free.f_bavail * free.f_frsize - 8192))
    code, line = run_cli([a.format(ckpt=ckpt, full=small_tmpfs) for a in argv], capsys)
    assert code == 2 and "no space left on the device" in one_line(line), line
    assert [p.name for p in small_tmpfs.rglob("*") if p.is_file()] == ["filler"]


def test_a_full_disk_while_writing_metrics_keeps_the_previous_file(tmp_path, monkeypatch):
    from cnnzoo.train.report import write_metrics_csv

    path = tmp_path / "metrics.csv"
    row = {"epoch": 1, "lr": 0.1, "train_loss": 2.0}
    write_metrics_csv([row], path)
    before = _listing(tmp_path)

    def full(self, rows):
        self.writerow(row)  # a row made it to disk, then the device filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("csv.DictWriter.writerows", full)
    with pytest.raises(OSError):
        write_metrics_csv([row, {**row, "epoch": 2}], path)
    assert _listing(tmp_path) == before  # no metrics.csv.tmp beside it


def test_atomic_save_on_a_read_only_disk_or_under_a_file(read_only_dir, tmp_path):
    with pytest.raises(CnnzooError, match="cannot write .*ro/last.pt") as err:
        atomic_save({"w": torch.ones(1)}, read_only_dir / "last.pt")
    one_line(err.value)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(CnnzooError, match="notes.txt is a file, not a directory"):
        atomic_save({"w": torch.ones(1)}, a_file / "run" / "last.pt")
    with pytest.raises(CnnzooError, match="is a directory"):
        atomic_save({"w": torch.ones(1)}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "ro"]


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "lenet5", "--data", "digits", "--out", "{ro}/run"],
        ["finetune", "{ckpt}", "--data", "digits", "--out", "{ro}/ft"],
        ["evaluate", "{ckpt}", "--data", "digits", "--out", "{ro}/eval"],
        ["features", "lenet5", "--data", "digits", "--out", "{ro}/f.npz"],
        ["export", "lenet5", "--out", "{ro}/m.onnx"],
        ["viz", "filters", "lenet5", "--out", "{ro}/f.png"],
        ["viz", "activations", "lenet5", "--data", "digits", "--out", "{ro}/a.png"],
        ["compare", "lenet5", "--plot", "{ro}/c.png"],
        ["convert", "{ckpt}", "{ro}/c.pt", "--model", "lenet5"],
        ["neighbors", "{ckpt}", "--query", "0", "--grid", "{ro}/g.png"],
        ["demo", "--out", "{ro}/demo"],
    ],
)
def test_read_only_out_is_one_line_before_any_work(read_only_dir, tmp_path, capsys, argv):
    ckpt = lenet_checkpoint(tmp_path / "m.pt")
    argv = [a.format(ro=read_only_dir, ckpt=ckpt) for a in argv]
    code, line = run_cli(argv, capsys)
    assert code == 2 and "not writable" in one_line(line) and "ro" in line, line
    assert list(read_only_dir.iterdir()) == []


# --- convert never destroys a run ---------------------------------------------------------------


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    lenet_checkpoint(run / "last.pt", epoch=3, optimizer={"state": {}}, config={"lr": 0.1})
    lenet_checkpoint(run / "best.pt", epoch=2, optimizer={"state": {}}, config={"lr": 0.1})
    (run / "metrics.csv").write_text("epoch,loss\n1,2.3\n")
    return run


def test_convert_refuses_to_overwrite_a_run_checkpoint(tmp_path, run_dir, capsys):
    src = tmp_path / "tv.pth"
    torch.save(cnnzoo.create_model("lenet5").state_dict(), src)
    before = _listing(run_dir)
    for dst in (run_dir / "last.pt", run_dir / "new.pt", run_dir):
        code, line = run_cli(["convert", src, dst, "--model", "lenet5"], capsys)
        assert code == 2 and str(run_dir) in one_line(line), line
    assert _listing(run_dir) == before
    # A training checkpoint outside its run directory is refused as well.
    copy = tmp_path / "trained.pt"
    copy.write_bytes((run_dir / "last.pt").read_bytes())
    with pytest.raises(CheckpointError, match="a training checkpoint, epoch 3"):
        convert_weights(src, copy, "lenet5")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(CheckpointError, match="not a weight file"):
        convert_weights(src, notes, "lenet5")
    assert notes.read_text() == "my notes"
    # A bare weight file, or an earlier conversion, may be replaced; --force allows the rest.
    out = tmp_path / "converted.pt"
    convert_weights(src, out, "lenet5")
    convert_weights(src, out, "lenet5")
    assert (
        main(["convert", str(src), str(run_dir / "last.pt"), "--model", "lenet5", "--force"]) == 0
    )
    assert "optimizer" not in load_checkpoint(run_dir / "last.pt")


@pytest.mark.parametrize(
    "argv",
    [
        ["features", "{ckpt}", "--data", "digits", "--limit", "16", "--out", "{target}"],
        ["export", "{ckpt}", "--format", "onnx", "--out", "{target}"],
        ["viz", "filters", "{ckpt}", "--out", "{target}"],
        ["compare", "lenet5", "--plot", "{target}"],
        ["profile", "lenet5", "--plot", "{target}"],
    ],
    ids=lambda argv: argv[0],
)
@pytest.mark.parametrize("name", ["last.pt", "best.pt", "metrics.csv"])
def test_no_command_writes_over_a_run_file(tmp_path, run_dir, capsys, argv, name):
    """Each of these wrote its picture, array or export over RUN/last.pt and exited 0."""
    ckpt = lenet_checkpoint(tmp_path / "m.pt")
    before = _listing(run_dir)
    code, line = run_cli([a.format(ckpt=ckpt, target=run_dir / name) for a in argv], capsys)
    assert code == 2 and f"is a training run's {name}" in one_line(line), line
    assert _listing(run_dir) == before


# --- decompression bombs ---------------------------------------------------------------------


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 8x8 PNG whose header claims ``width`` x ``height``: what PIL checks before decoding
    (a real 20000x20000 image would take 400 MB to write)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    b[16:24] = struct.pack(">II", width, height)  # IHDR data follows the 8-byte signature
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    path.write_bytes(bytes(b))
    return path


@pytest.fixture
def bomb_folder(tmp_path) -> Path:
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    bomb_png(root / "cat" / "bomb.png")
    return root


def test_decompression_bomb_is_skipped_or_refused(bomb_folder):
    with pytest.warns(DataWarning, match=r"bomb.png claims 20000x20000 = 400 Mpixels"):
        x, y, classes = read_folder(bomb_folder, None, 1, (12, 12))
    assert x.shape == (6, 1, 12, 12) and classes == ["cat", "dog"]
    with pytest.warns(DataWarning, match="bomb.png"):
        files, _, _ = read_folder(bomb_folder, None, 1, (12, 12), decode=False)
    assert len(files) == 6
    with pytest.raises(DataError, match="decompression bomb"):
        read_folder(bomb_folder, None, 1, (12, 12), strict=True)
    with pytest.raises(DataError, match="decompression bomb"):
        open_image(bomb_folder / "cat" / "bomb.png", 3)


def test_images_above_the_limit_but_below_twice_it_are_refused_too(tmp_path, monkeypatch):
    """PIL only warns between MAX_IMAGE_PIXELS and twice that, and decodes; cnnzoo refuses."""
    img = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(img)  # 1,600 pixels, really decodable
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="40x40"):
        open_image(img, 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    assert open_image(img, 1).shape == (1, 40, 40)  # control: under the limit it decodes


def test_decompression_bomb_through_the_commands(bomb_folder, tmp_path, capsys):
    ckpt = lenet_checkpoint(tmp_path / "m.pt")
    bomb = bomb_folder / "cat" / "bomb.png"
    with pytest.warns(DataWarning, match="skipped: .*bomb.png claims 20000x20000"):
        assert main(["predict", str(ckpt), str(bomb), str(bomb_folder / "dog" / "0.png")]) == 0
    assert "0.png" in capsys.readouterr().out
    code, line = run_cli(["predict", ckpt, bomb, "--strict"], capsys)
    assert code == 2 and "decompression bomb" in one_line(line)
    code, line = run_cli(["viz", "activations", ckpt, bomb, "--out", tmp_path / "a.png"], capsys)
    assert code == 2 and "decompression bomb" in one_line(line)
    with pytest.warns(DataWarning, match="bomb.png"):
        bundle = cnnzoo.data.load_data(str(bomb_folder), input_size=(1, 12, 12), val_fraction=0.34)
    assert len(bundle.train) + len(bundle.val) == 6  # train and finetune read folders this way


# --- analyze on a model whose forward reads values --------------------------------------------


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if x.sum() > 0:
            x = x * 2
        return x


class Itemy(Branchy):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean().item()
        return self.conv(x) * scale


class Masky(Branchy):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x[x > 0]


@pytest.mark.parametrize(
    ("model", "code"),
    [(Branchy, "if x.sum() > 0:"), (Itemy, "scale = x.mean().item()"), (Masky, "x[x > 0]")],
)
def test_analyze_names_the_line_that_needs_values(model, code):
    lines, first = inspect.getsourcelines(model.forward)
    line = first + next(i for i, text in enumerate(lines) if code in text)
    with pytest.raises(CnnzooError) as err:
        analyze(model(), (3, 16, 16))
    text = one_line(err.value)
    assert f"{__file__}:{line}" in text and code in text and "real tensor values" in text
    assert "16x16" not in text  # not the input size's fault
    out = model()(torch.randn(1, 3, 16, 16))  # control: with real values the forward runs
    assert out.numel() > 0
