"""Faults around a training run: poisoned steps, kills between the checkpoint writes, two writers
on one run directory, resumes that would change the run, SIGTERM, and data that looks fine but is
not. What each case guarantees is written down in docs/training.md ("What survives a fault")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnzoo.checkpoint import load_checkpoint, save_checkpoint
from cnnzoo.cli import main as cli
from cnnzoo.data import load_data
from cnnzoo.errors import CnnzooError
from cnnzoo.registry import create_model
from cnnzoo.runs import Checkpoint
from cnnzoo.train import TrainConfig, fit
from cnnzoo.train.loop import DivergedError
from cnnzoo.train.run import Run

pytestmark = pytest.mark.usefixtures("one_thread")

# a run small enough to take a second or two: 64 digits at LeNet-5's 32x32
QUICK = ["--data", "digits", "--limit", "64", "--batch-size", "32", "--threads", "1"]
QUIET = ["--no-progress", "--no-tensorboard", "--no-plots"]


def train_cli(out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cnnzoo", "train", "lenet5", *QUICK, *QUIET, "--out", str(out)]
    return subprocess.Popen(
        [*cmd, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in this process; assert exit status 2 and one line on stderr, no traceback."""
    with pytest.raises(SystemExit) as exc:
        rc = cli(argv)
        raise SystemExit(rc)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def finite(path: Path) -> bool:
    sd = load_checkpoint(path)["state_dict"]
    return all(bool(torch.isfinite(t).all()) for t in sd.values() if t.is_floating_point())


# --- impossible values are refused before anything is written -----------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--lr", "-0.1"),
        ("--grad-clip", "-1"),
        ("--gamma", "-1"),
        ("--momentum", "-5"),
        ("--weight-decay", "nan"),
        ("--warmup-epochs", "-1"),
        ("--threads", "-1"),
        ("--threads", "0"),
        ("--epochs", "0"),
    ],
)
def test_impossible_values_are_refused_up_front(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    err = one_line_error(capsys, ["train", "lenet5", *QUICK, "--out", str(out), option, value])
    assert option in err
    assert not out.exists()  # nothing was created


@pytest.mark.parametrize(
    "field, value",
    [("lr", float("nan")), ("lr", float("inf")), ("grad_clip", -1.0), ("gamma", -1.0),
     ("momentum", -5.0), ("weight_decay", float("inf")), ("threads", -1), ("warmup_epochs", -1)],
)  # fmt: skip
def test_the_python_config_refuses_them_too(field, value):
    with pytest.raises(CnnzooError, match=field):
        TrainConfig(**{field: value})


# --- a diverging run stops and never writes non-finite weights -----------------------------


def test_a_huge_rate_stops_with_one_line_and_writes_no_checkpoint(tmp_path, capsys):
    """--lr 1e300 is a finite number, so only the weights show that the step destroyed them."""
    out = tmp_path / "run"
    err = one_line_error(capsys, ["train", "lenet5", *QUICK, *QUIET, "--out", str(out),
                                  "--epochs", "1", "--lr", "1e300"])  # fmt: skip
    assert "diverged" in err and "step" in err and "no checkpoint was written" in err
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_divergence_after_a_good_epoch_leaves_its_checkpoints_intact(tmp_path):
    """The weights go bad after epoch 1 (as a step with an absurd rate would make them): the run
    stops naming the step, and epoch 1's best.pt and last.pt stay byte for byte as they were."""
    bundle = load_data("digits", input_size=(1, 32, 32), limit=64)
    model = create_model("lenet5", num_classes=10, in_chans=1)
    config = TrainConfig(epochs=3, batch_size=32, tensorboard=False, plots=False, progress=False)
    out = tmp_path / "run"
    saved = {}

    def poison(epoch, row):
        if epoch == 1:
            saved.update({n: (out / n).read_bytes() for n in ("best.pt", "last.pt")})
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))

    with pytest.raises(DivergedError, match=r"step \d+") as exc:
        fit(model, bundle, config, out, model_name="lenet5", model_args={}, on_epoch_end=poison)
    assert "last.pt" in str(exc.value) and "left as it was" in str(exc.value)
    for name, data in saved.items():
        assert (out / name).read_bytes() == data, name
        assert finite(out / name)
    assert not (out / "interrupted.pt").exists()


# --- kills, second writers and stale locks --------------------------------------------------


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} never appeared: {proc.communicate()}")
        time.sleep(0.05)


def test_sigkill_between_best_and_last_loses_nothing_and_the_lock_is_not_stale(tmp_path, capsys):
    """The window between the two writes of an improved epoch, hit exactly: the process pauses
    there (a test-only fault point), a second trainer is refused naming it, then it is killed with
    SIGKILL. The newer best.pt survives, the dead process's lock does not block the resume, and
    the resumed run keeps the best weights it found."""
    out = tmp_path / "run"
    assert cli(["train", "lenet5", *QUICK, *QUIET, "--epochs", "1", "--out", str(out)]) == 0
    flag = tmp_path / "flag"
    pause = {"CNNZOO_FAULT_PAUSE": "between-best-and-last:120", "CNNZOO_FAULT_FLAG": str(flag)}
    resume = ["train", "--resume", str(out), *QUIET, "--epochs"]
    cmd = [sys.executable, "-m", "cnnzoo", *resume, "12"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, **pause})
    try:
        wait_for(flag, proc)
        # a second writer on the same directory is refused at once, naming the holder
        capsys.readouterr()
        err = one_line_error(capsys, ["train", "lenet5", *QUICK, "--out", str(out)])
        assert f"PID {proc.pid}" in err
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    best, last = load_checkpoint(out / "best.pt"), load_checkpoint(out / "last.pt")
    killed_best = best["best_val_acc"]
    assert best["epoch"] == last["epoch"] + 1  # best.pt is the epoch last.pt never saw
    assert killed_best > last["best_val_acc"]
    assert (out / ".lock").exists()  # the dead process's lock file: stale, but no obstacle
    assert cli([*resume, str(best["epoch"])]) == 0
    final = load_checkpoint(out / "best.pt")
    assert final["best_val_acc"] >= killed_best
    assert load_checkpoint(out / "last.pt")["best_val_acc"] == final["best_val_acc"]
    assert not (out / ".lock").exists()  # a run that ends releases and removes its lock file


def test_a_lock_file_tidied_away_under_a_starting_run_is_not_a_second_lock(tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """A run that fails before writing removes its lone .lock. A process that opened that file
    just before, and locks it just after, holds a lock on a file no one else can see, while a
    third process locks the new .lock: two writers. Here the third process (a real one) takes the
    new .lock in exactly that window; the starting run must see it and be refused."""
    import fcntl

    from cnnzoo.runs import RunLock

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("")
    holder = None
    real_flock = fcntl.flock

    def tidied_then_taken(fd, op):
        nonlocal holder
        if holder is None:  # the first holder tidies its lock away, a third process starts
            (run / ".lock").unlink()
            code = ("import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); "
                    "fcntl.flock(f, fcntl.LOCK_EX); f.write(f'{os.getpid()}\\n'); f.flush(); "
                    "print('held', flush=True); time.sleep(60)")  # fmt: skip
            holder = subprocess.Popen([sys.executable, "-c", code, str(run / ".lock")],
                                      stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert holder.stdout.readline().strip() == "held"
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", tidied_then_taken)
    try:
        with (
            pytest.raises(CnnzooError, match="in use by another cnnzoo process") as err,
            RunLock(run),
        ):
            pass
        assert f"PID {holder.pid}" in str(err.value)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()


def test_sigterm_saves_and_exits_as_ctrl_c_does(tmp_path):
    out = tmp_path / "run"
    proc = train_cli(out, "--epochs", "1000")
    try:
        wait_for(out / "last.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"--resume {out}" in err
    assert (
        load_checkpoint(out / "interrupted.pt")["epoch"]
        >= load_checkpoint(out / "last.pt")["epoch"]
    )


def test_interrupted_before_the_first_epoch_advises_no_resume(tmp_path):
    run = Run.new("lenet5", "digits", out=tmp_path / "run")
    assert "--resume" not in run.interrupted_advice()
    assert "nothing to resume" in run.interrupted_advice()


# --- a resume continues the run as it was configured ---------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert cli(["train", "lenet5", *QUICK, *QUIET, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_a_new_run_does_not_write_over_files_it_did_not_make(finished_run, tmp_path, capsys,
                                                             command):  # fmt: skip
    """A folder with a run's file names but no last.pt holds someone's files: the new run stops
    before writing anything, and they stay as they were."""
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("metrics.csv", "test.json"):
        (out / name).write_text(f"my own {name}\n")
    start = ["train", "lenet5"] if command == "train" else ["finetune", str(finished_run)]
    err = one_line_error(capsys, [*start, *QUICK, *QUIET, "--epochs", "1", "--out", str(out)])
    assert f"{out} already holds metrics.csv, test.json" in err and "another --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "test.json"]
    assert all((out / n).read_text() == f"my own {n}\n" for n in ("metrics.csv", "test.json"))


def test_fit_and_the_demo_do_not_start_over_a_finished_run(finished_run, capsys):
    """fit without resume= (the library's own entry, the demo's) refuses a folder that holds a
    run instead of writing a new run over its checkpoints."""
    before = {n: (finished_run / n).read_bytes() for n in ("last.pt", "best.pt", "metrics.csv")}
    err = one_line_error(capsys, ["demo", "--data", "digits", "--limit", "64", "--epochs", "1",
                                  "--out", str(finished_run), "--no-progress"])  # fmt: skip
    assert f"{finished_run} already holds a run; choose another --out" in err
    bundle = load_data("digits", input_size=(1, 32, 32), limit=64)
    model = create_model("lenet5", num_classes=bundle.num_classes)
    with pytest.raises(CnnzooError, match="already holds a run"):
        fit(model, bundle, TrainConfig(epochs=1, progress=False), finished_run,
            model_name="lenet5", model_args={})  # fmt: skip
    assert {n: (finished_run / n).read_bytes() for n in before} == before


def test_a_run_inside_its_image_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Its curves.png would be a training image of a class the next time; a folder with train/
    reads only its split folders, so a run beside them is fine. ``--data .`` names its run after
    the folder, not ``runs/resnet20-``."""
    for c in ("a", "b"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / "imgs" / c / f"{i}.png")
    data = tmp_path / "imgs"
    err = one_line_error(capsys, ["train", "resnet20", "--data", str(data), "--img-size", "32",
                                  "--out", str(data / "a" / "run")])  # fmt: skip
    assert f"inside the image folder {data}" in err and "--out" in err
    assert sorted(p.name for p in data.iterdir()) == ["a", "b"]
    assert not (data / "a" / "run").exists()
    monkeypatch.chdir(data)
    with pytest.raises(CnnzooError, match=r"runs/resnet20-imgs is inside the image folder \."):
        Run.new("resnet20", ".")
    split = tmp_path / "split"
    split.mkdir()
    data.rename(split / "train")
    assert Run.new("resnet20", str(split), out=split / "runs" / "x").out == split / "runs" / "x"
    with pytest.raises(CnnzooError, match="inside the image folder"):
        Run.new("resnet20", str(split), out=split / "train" / "x")


def test_a_run_interrupted_before_its_first_epoch_starts_over_in_place(tmp_path):
    """What interrupted_advice promises: the same command again, in the same folder."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "interrupted.pt").write_bytes(b"the weights of an unfinished first epoch")
    assert cli(["train", "lenet5", *QUICK, *QUIET, "--epochs", "1", "--out", str(out)]) == 0
    assert Checkpoint.load(out / "last.pt").epoch == 1


@pytest.mark.parametrize(
    "change",
    [
        ["--data", "fashion-mnist"],
        ["--img-size", "28"],
        ["--in-chans", "3"],
        ["--augment", "none"],
        ["--model-arg", "act=tanh"],
        ["--limit", "32"],
        ["--val-fraction", "0.2"],
        ["--out", "elsewhere"],
        ["--lr", "0.5"],
        ["--recipe", "lenet-91"],
    ],
)
def test_resume_refuses_what_would_change_the_run(finished_run, capsys, change):
    before = (finished_run / "last.pt").read_bytes()
    err = one_line_error(capsys, ["train", "--resume", str(finished_run), "--epochs", "2", *change])
    assert change[0] in err
    assert (finished_run / "last.pt").read_bytes() == before


@pytest.mark.parametrize(
    "argv, says",
    [
        (["evaluate", "resnet18", "--data", "digits"], "add --pretrained for its published"),
        (["evaluate", "resnet18.tv_in1k", "--data", "digits"], "add --pretrained for its"),
        (["predict", "resnet18", "{image}"], "add --pretrained for its published weights"),
        (["predict", "lenet5", "{image}"], "no published weights: train it with `cnnzoo train"),
        (["finetune", "resnet18", "--data", "digits"], "add --pretrained for its published"),
        (["train", "--resume", "resnet18"], "--resume takes a run directory or its last.pt"),
        (["convert", "resnet18", "{image}.pt", "--model", "resnet18"], "weight file resnet18 does"),
    ],
)
def test_a_model_name_where_a_checkpoint_belongs_says_what_to_do(tmp_path, capsys, argv, says):
    """A torchvision or timm user writes the model's name where cnnzoo wants a checkpoint; the
    error says it is a model name and what works, not only that no such file exists."""
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    argv = [a.replace("{image}", str(image)) for a in argv]
    err = one_line_error(capsys, argv)
    assert says in err, err


@pytest.mark.parametrize("epochs", [[], ["--epochs", "1"]])
def test_a_resume_that_would_train_nothing_says_so(finished_run, capsys, epochs):
    """The run has trained one epoch: a resume to one epoch in all (given or its own) ran no
    epoch and reported the run as done with exit status 0; it now names the total to give, and
    the run's files stay as they were."""
    files = sorted(p.name for p in finished_run.iterdir())
    before = {name: (finished_run / name).read_bytes() for name in ("last.pt", "test.json")}
    err = one_line_error(capsys, ["train", "--resume", str(finished_run), *epochs, *QUIET])
    assert "already trained 1 epoch," in err and "--epochs 2 or more" in err, err
    assert sorted(p.name for p in finished_run.iterdir()) == files  # no new TensorBoard log
    assert {name: (finished_run / name).read_bytes() for name in before} == before


@pytest.mark.parametrize(
    "model_arg, named",
    [("num_classes=-1", "num_classes"), ("num_classes=5", "num_classes"),
     ("in_chans=0", "in_chans"), ("act=banana", "banana"), ("actt=relu", "actt")],
)  # fmt: skip
def test_a_bad_model_argument_is_one_line_before_anything_is_written(tmp_path, capsys, model_arg,
                                                                     named):  # fmt: skip
    """Neither refused nor silently replaced: num_classes comes from the data and in_chans=0 is
    no channel count (both were dropped without a word, and the run trained)."""
    out = tmp_path / "run"
    argv = ["train", "lenet5", *QUICK, "--out", str(out), "--model-arg", model_arg]
    assert named in one_line_error(capsys, argv)
    recipe = tmp_path / "recipe.json"
    key, value = model_arg.split("=")
    arg = {key: value if value.isalpha() else int(value)}
    recipe.write_text(json.dumps({"model": "lenet5", "data": "digits", "model_arg": arg}))
    assert named in one_line_error(capsys, ["train", "--recipe", str(recipe), "--out", str(out)])
    assert not out.exists()


def interrupted_copy(run: Path, tmp_path: Path) -> Path:
    """What fit writes on Ctrl-C: a last.pt's contents marked as an interrupted epoch."""
    ckpt = Checkpoint.from_dict(load_checkpoint(run / "last.pt"))
    replace(ckpt, kind="interrupted").save(tmp_path / "interrupted.pt")
    return tmp_path / "interrupted.pt"


def finetune_run(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ft"
    argv = ["finetune", str(run / "best.pt"), "--data", "digits", "--limit", "64", *QUIET,
            "--no-probe", "--epochs", "1", "--out", str(out)]  # fmt: skip
    assert cli(argv) == 0
    return out


@pytest.mark.parametrize(
    "make, why",
    [
        (interrupted_copy, "interrupted epoch"),
        (lambda run, tmp: run / "best.pt", "best epoch, not its last"),
        (finetune_run, "finetune"),
        (lambda run, tmp: tmp, "no last.pt"),
    ],
    ids=["interrupted", "best", "finetune", "empty-dir"],
)
def test_resuming_something_that_is_not_a_run_is_one_line(finished_run, tmp_path, capsys, make,
                                                          why):  # fmt: skip
    target = make(finished_run, tmp_path)
    capsys.readouterr()
    err = one_line_error(capsys, ["train", "--resume", str(target), "--epochs", "2"])
    assert why in err, err


def test_the_thread_count_travels_with_the_run(tmp_path):
    """The thread count (which changes float summation order) is stored with the run and applied
    by a resume that does not repeat --threads."""
    part = tmp_path / "part"
    assert cli(["train", "lenet5", *QUICK, *QUIET, "--epochs", "1", "--out", str(part)]) == 0
    assert load_checkpoint(part / "last.pt")["config"]["threads"] == 1
    torch.set_num_threads(2)  # what the resuming process would start with on this machine
    assert cli(["train", "--resume", str(part), "--epochs", "2", *QUIET]) == 0
    assert torch.get_num_threads() == 1


def test_a_deterministic_cli_resume_is_bit_identical(tmp_path, monkeypatch):
    """The resume starts with the command line's default thread count, here made 2 (what an idle
    2-core machine gives), while the run was trained with one; the data's mean and std are
    reductions whose last bit follows the thread count, so they must be computed with the run's
    own count. Before that was so, this drifted in the 7th digit on idle minutes only."""
    det = [*QUICK, *QUIET, "--deterministic", "--sched", "none"]  # a rate that ignores --epochs
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert cli(["train", "lenet5", *det, "--epochs", "2", "--out", str(whole)]) == 0
    assert cli(["train", "lenet5", *det, "--epochs", "1", "--out", str(part)]) == 0
    monkeypatch.setattr("cnnzoo.threads.default_threads", lambda: 2)
    assert cli(["train", "--resume", str(part), "--epochs", "2", *QUIET]) == 0
    a = load_checkpoint(whole / "last.pt")["state_dict"]
    b = load_checkpoint(part / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_without_threads_keeps_the_count_it_ran_with(tmp_path, monkeypatch):
    """Without --threads the count follows the machine's load when the run starts (here made 1,
    a busy machine's); a resume on an idle machine (made 2) still uses the run's count, so a
    deterministic resume is bit-identical without anyone having written --threads."""
    det = ["--data", "digits", "--limit", "64", "--batch-size", "32", *QUIET, "--deterministic",
           "--sched", "none"]  # fmt: skip
    whole, part = tmp_path / "whole", tmp_path / "part"
    monkeypatch.setattr("cnnzoo.threads.default_threads", lambda: 1)
    assert cli(["train", "lenet5", *det, "--epochs", "2", "--out", str(whole)]) == 0
    assert cli(["train", "lenet5", *det, "--epochs", "1", "--out", str(part)]) == 0
    assert load_checkpoint(part / "last.pt")["config"]["threads"] == 1
    monkeypatch.setattr("cnnzoo.threads.default_threads", lambda: 2)
    assert cli(["train", "--resume", str(part), "--epochs", "2", *QUIET]) == 0
    assert torch.get_num_threads() == 1
    a = load_checkpoint(whole / "last.pt")["state_dict"]
    b = load_checkpoint(part / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- data that looks fine but is not --------------------------------------------------------


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    g = torch.Generator().manual_seed(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            px = (torch.rand(8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(px).save(root / cls / f"{i}.png")
    return root


def test_a_single_class_is_refused(tmp_path, capsys):
    data = image_folder(tmp_path / "one", {"cat": 6})
    err = one_line_error(capsys, ["train", "lenet5", "--data", str(data), *QUIET, "--epochs", "1",
                                  "--out", str(tmp_path / "run")])  # fmt: skip
    assert "1 class" in err and "cat" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_every_class_keeps_a_training_image(tmp_path):
    """With 50% validation, one random draw over all 12 images could take both of "rare"'s two
    images (and does, for some seeds); the split per class never does."""
    data = image_folder(tmp_path / "data", {"common": 10, "rare": 2})
    for seed in range(20):
        bundle = load_data(str(data), input_size=(3, 8, 8), val_fraction=0.5, seed=seed)
        train = torch.as_tensor(bundle.train.labels)
        val = torch.as_tensor(bundle.val.labels)
        assert (train == 1).sum() == 1 and (val == 1).sum() == 1, seed
        assert len(train) + len(val) == 12 and len(val) == 6


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path, capsys,
                                                                        monkeypatch):  # fmt: skip
    """Out of memory, a CPU training process is killed by the system without a word (exit 137,
    seen with ResNet-18 at 224x224 and batch 2,000 on this 24 GiB machine). The step's lower
    bound (what autograd saves, the weights and their gradients) is measured first when a guess
    from the input's size comes near the memory: here the memory is made just too small for
    LeNet-5's step on 64 digits, and the run stops in one line before writing anything."""
    import cnnzoo.analysis.memory as memory

    model = create_model("lenet5", num_classes=10)
    step = memory.training_memory(model, (64, 1, 32, 32), torch.float32)
    need = step.total - step.optimizer_bytes
    assert need > 64 * 6 * 28 * 28 * 4  # at least C1's output is kept for its tanh's backward
    monkeypatch.setattr(memory, "device_memory", lambda device: need - 1)
    out = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "digits", "--limit", "64", "--batch-size", "64",
            "--epochs", "1", "--out", str(out), *QUIET]  # fmt: skip
    err = one_line_error(capsys, argv)
    assert "a training step of lenet5 on a batch of 64 at 32x32x1 needs at least" in err, err
    assert not out.exists()
    monkeypatch.setattr(memory, "device_memory", lambda device: need)
    assert cli(argv) == 0


def test_a_fine_tune_step_that_cannot_fit_is_refused_before_it_starts(tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    """The same check before a fine-tuning fit (not before a linear probe, which trains one
    linear layer on features computed once, without the network's step)."""
    import cnnzoo.analysis.memory as memory

    start = tmp_path / "start.pt"
    save_checkpoint(start, "lenet5", {"num_classes": 10}, create_model("lenet5").state_dict())
    step = memory.training_memory(create_model("lenet5"), (64, 1, 32, 32), torch.float32)
    monkeypatch.setattr(
        memory, "device_memory", lambda device: step.total - step.optimizer_bytes - 1
    )
    common = ["--data", "digits", "--limit", "64", "--batch-size", "64", "--epochs", "1", *QUIET]
    out = tmp_path / "tuned"
    argv = ["finetune", str(start), "--freeze", "none", "--out", str(out), *common]
    err = one_line_error(capsys, argv)
    assert "a training step of lenet5 on a batch of 64 at 32x32x1 needs at least" in err, err
    assert not out.exists()
    assert cli(["finetune", str(start), "--out", str(tmp_path / "probe"), *common]) == 0


def test_the_memory_of_a_small_step_is_not_measured(tmp_path, monkeypatch):
    """Measuring costs about a second on its first call; a batch whose input is far below the
    memory (LeNet-5 on digits) never pays it."""
    import cnnzoo.analysis.memory as memory

    def refuse(*args):
        raise AssertionError("measured")

    monkeypatch.setattr(memory, "training_memory", refuse)
    argv = ["train", "lenet5", "--data", "digits", "--limit", "64", "--epochs", "1",
            "--out", str(tmp_path / "run"), *QUIET]  # fmt: skip
    assert cli(argv) == 0


def test_an_input_too_small_is_refused_before_the_run_writes_anything(tmp_path):
    """`cnnzoo train alexnet --data digits --img-size 16` failed at its first batch, after the
    run directory and its TensorBoard file had been made. The run now checks the size on the
    meta device first, with the message a real forward pass gives (the oracle below)."""
    from cnnzoo.errors import InputTooSmallError
    from cnnzoo.train.run import Run

    out = tmp_path / "run"
    run = Run.new("alexnet", "digits", out=out, img_size=(16, 16), epochs=1, progress=False)
    with pytest.raises(InputTooSmallError) as err:
        run.train()
    assert not out.exists()
    from cnnzoo.registry import create_model

    model = create_model("alexnet", num_classes=10)
    with pytest.raises(InputTooSmallError) as real:
        model(torch.zeros(2, 3, 16, 16))
    assert str(err.value) == str(real.value)
    assert "the smallest square input it accepts is 67x67" in str(err.value)


@pytest.mark.parametrize("probe", [True, False])
def test_a_fine_tune_too_small_for_its_model_is_refused_before_writing(tmp_path, probe):
    """The same check before fine-tuning, a linear probe or a full fit, from a trained
    LeNet-5 checkpoint given 8x8 images (its C3 would get a 2x2 map)."""
    from cnnzoo.errors import InputTooSmallError
    from cnnzoo.train.finetune import FineTune
    from cnnzoo.train.run import Run

    quiet = {"progress": False, "tensorboard": False, "plots": False}
    Run.new("lenet5", "digits", out=tmp_path / "src", epochs=1, limit=32, **quiet).train()
    out = tmp_path / "tuned"
    tune = FineTune.new(
        tmp_path / "src" / "last.pt",
        "digits",
        img_size=(8, 8),
        out=out,
        probe=probe,
        freeze="backbone" if probe else "none",
        epochs=1,
        **quiet,
    )
    with pytest.raises(InputTooSmallError, match=r"input 8x8x1 is too small for LeNet5: .*32x32"):
        tune.train()
    assert not out.exists()
