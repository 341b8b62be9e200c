"""Training: schedules by hand, frozen parameters, auxiliary losses, exact resume, atomic
checkpoints, Ctrl-C, and a short real run on Fashion-MNIST."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo.checkpoint import load_checkpoint, save_checkpoint
from cnnzoo.data import load_data
from cnnzoo.errors import CheckpointError
from cnnzoo.train import LRSchedule, TrainConfig, build_optimizer, compute_loss, evaluate, fit

FASHION = Path("/usr/share/datasets/fashion-mnist")
QUIET = {"progress": False, "tensorboard": False, "plots": False}


pytestmark = pytest.mark.usefixtures("one_thread")


def small_cnn() -> nn.Module:
    """BN (running statistics) and dropout (randomness): both must survive a resume exactly."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", input_size=(1, 16, 16), limit=240, augment="basic")


# --- schedules and optimisers ---------------------------------------------------------------


def schedule(**kw) -> LRSchedule:
    cfg = TrainConfig(lr=0.1, epochs=10, **kw)
    opt = build_optimizer(nn.Linear(2, 2), cfg)
    return LRSchedule(opt, cfg, steps_per_epoch=4)


def test_step_schedule_by_hand():
    s = schedule(sched="step", step_size=3, gamma=0.1)
    # epochs 0-2: 1, 3-5: 0.1, 6-8: 0.01 (step = epoch * 4)
    assert [s.factor(e * 4) for e in (0, 2, 3, 6, 9)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])


def test_cosine_with_warmup_by_hand():
    s = schedule(sched="cosine", warmup_epochs=2, min_lr=0.01)
    assert s.factor(0) == pytest.approx(0.01)  # warm-up starts at lr/100
    assert s.factor(4) == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the warm-up
    # after warm-up: floor + (1 - floor) * (1 + cos(pi * t / 8)) / 2, floor = 0.01 / 0.1
    t = 6 - 2
    assert s.factor(6 * 4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t / 8)))
    assert s.factor(10 * 4) == pytest.approx(0.1)


def test_onecycle_rises_then_falls():
    s = schedule(sched="onecycle")
    assert s.factor(0) == pytest.approx(1 / 25)
    assert s.factor(12) == pytest.approx(1.0)  # 30% of 10 epochs = 3 epochs = 12 steps
    assert s.factor(40) == pytest.approx(1e-4)


def test_plateau_divides_by_ten_after_patience():
    s = schedule(sched="plateau", patience=1, gamma=0.1)
    s.step(0)
    lrs = []
    for acc in (0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.7):
        s.epoch_end(acc)
        s.step(0)
        lrs.append(s.optimizer.param_groups[0]["lr"])
    # bad epochs: 0.6 (1), 0.55 (2 > patience: decay), 0.7 new best, 0.7 (1), 0.7 (2: decay)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])


@pytest.mark.parametrize(
    ("opt", "cls"),
    [("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop), ("adamw", torch.optim.AdamW)],
)
def test_optimizers(opt, cls):
    cfg = TrainConfig(opt=opt, lr=0.1, momentum=0.8, nesterov=opt == "sgd", weight_decay=1e-3)
    o = build_optimizer(nn.Linear(2, 2), cfg)
    assert isinstance(o, cls) and o.param_groups[0]["weight_decay"] == 1e-3
    if opt == "sgd":
        assert o.param_groups[0]["nesterov"] and o.param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize("opt", ["sgd", "rmsprop", "adamw", "adam"])
def test_fused_step_equals_torchs_default_loop(opt):
    """The fused (or foreach) step taken by default must move the weights exactly as torch's
    per-parameter loop does, over several steps of changing gradients and two param groups."""
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5)) for _ in range(2)]
    for net in nets:
        net(torch.zeros(1, 3, 6, 6))
    nets[1].load_state_dict(nets[0].state_dict())
    start = nets[0][0].weight.detach().clone()
    cfg = dict(opt=opt, lr=0.05, momentum=0.9, nesterov=opt == "sgd", weight_decay=1e-2)
    fused = build_optimizer(nets[0], TrainConfig(**cfg), lr_mult={"2": 3.0})
    loop = build_optimizer(nets[1], TrainConfig(**cfg, fused=False), lr_mult={"2": 3.0})
    kind = "fused" if opt != "rmsprop" else "foreach"  # torch has no fused RMSprop
    assert fused.defaults[kind] and not loop.defaults.get("fused") and not loop.defaults["foreach"]
    for step in range(4):
        x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(step))
        for net, o in zip(nets, (fused, loop), strict=True):
            o.zero_grad()
            net(x).square().mean().backward()
            o.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (nets[0][0].weight - start).abs().max() > 1e-3  # the steps did move the weights


def test_frozen_params_untouched_and_head_at_higher_rate(digits, tmp_path):
    model = cnnzoo.create_model("lenet5", num_classes=10)
    for p in model.features.parameters():
        p.requires_grad_(False)
    frozen = {k: v.clone() for k, v in model.features.state_dict().items()}
    head = model.fc.weight.clone()
    cfg = TrainConfig(epochs=1, lr=0.01, weight_decay=0.1, **QUIET)
    bundle = load_data("digits", input_size=(1, 32, 32), limit=64)
    opt = build_optimizer(model, cfg, lr_mult={"fc": 10.0})
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx([0.01, 0.1])
    assert sum(len(g["params"]) for g in opt.param_groups) == 4  # pre_logits + fc, w and b
    fit(model, bundle, cfg, tmp_path, model_name="lenet5", model_args={}, lr_mult={"fc": 10.0})
    assert all(torch.equal(v, model.features.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(head, model.fc.weight)


def test_aux_losses_weighted_as_the_paper():
    y = torch.tensor([1, 0])
    main, aux1, aux2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    loss, logits = compute_loss((main, aux1, aux2), y, aux_weight=0.3)
    expect = F.cross_entropy(main, y) + 0.3 * F.cross_entropy(aux1, y)
    expect = expect + 0.3 * F.cross_entropy(aux2, y)
    assert torch.allclose(loss, expect) and logits is main
    assert torch.allclose(compute_loss(main, y)[0], F.cross_entropy(main, y))


class TinyAux(nn.Module):
    """Returns (main, aux) in training mode, main alone in eval mode, as GoogLeNet does."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())  # fmt: skip
        self.fc, self.aux = nn.Linear(4, 10), nn.Linear(4, 10)

    def forward(self, x):
        h = self.body(x)
        return (self.fc(h), self.aux(h)) if self.training else self.fc(h)


def test_fit_trains_the_aux_head_through_its_loss(digits, tmp_path):
    model = TinyAux()
    aux = model.aux.weight.clone()  # only the auxiliary loss reaches these weights
    fit(model, digits, TrainConfig(epochs=1, weight_decay=0, **QUIET), tmp_path,
        model_name="tiny", model_args={})  # fmt: skip
    assert not torch.equal(aux, model.aux.weight)
    frozen = TinyAux()
    aux = frozen.aux.weight.clone()
    fit(frozen, digits, TrainConfig(epochs=1, weight_decay=0, aux_weight=0.0, **QUIET),
        tmp_path / "b", model_name="tiny", model_args={})  # fmt: skip
    assert torch.equal(aux, frozen.aux.weight)


@pytest.mark.slow
def test_googlenet_trains_with_aux_heads(tmp_path):
    if "googlenet" not in cnnzoo.list_models():
        pytest.skip("googlenet is not registered yet")
    model = cnnzoo.create_model("googlenet", num_classes=3).train()
    out = model(torch.randn(2, 3, 96, 96))
    assert isinstance(out, tuple) and len(out) == 3  # main + two aux in training mode
    cfg = TrainConfig(epochs=1, batch_size=2, lr=0.01, **QUIET)
    opt = build_optimizer(model, cfg)
    y = torch.tensor([0, 2])
    loss, _ = compute_loss(out, y, aux_weight=0.3)
    loss.backward()
    assert model.aux1 is not None and model.aux1.fc2.weight.grad.abs().sum() > 0
    opt.step()


# --- resume, checkpoints ---------------------------------------------------------------------


def test_resume_equals_uninterrupted(digits, tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.05, nesterov=True, sched="cosine",
                      warmup_epochs=1, deterministic=True, seed=7, **QUIET)  # fmt: skip

    def run(out, resume=None, stop_after=None):
        torch.manual_seed(0)
        model = small_cnn()

        def stop(epoch, row):
            if epoch == stop_after:
                raise SystemExit("killed")

        with contextlib.suppress(SystemExit):
            fit(model, digits, cfg, out, model_name="small", model_args={}, resume=resume,
                on_epoch_end=stop)  # fmt: skip
        return model

    whole = run(tmp_path / "a")
    run(tmp_path / "b", stop_after=2)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    resumed = run(tmp_path / "b", resume=tmp_path / "b")
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    ha = load_checkpoint(tmp_path / "a" / "last.pt")["history"]
    hb = load_checkpoint(tmp_path / "b" / "last.pt")["history"]
    assert [r["val_acc"] for r in ha] == [r["val_acc"] for r in hb] and len(hb) == 4
    assert torch.are_deterministic_algorithms_enabled() is False  # fit restored the setting


def test_checkpoint_rebuilds_model(digits, tmp_path):
    model = cnnzoo.create_model("lenet5", num_classes=10)
    bundle = load_data("digits", input_size=(1, 32, 32), limit=64)
    fit(model, bundle, TrainConfig(epochs=1, **QUIET), tmp_path, model_name="lenet5",
        model_args={"num_classes": 10})  # fmt: skip
    rebuilt, ckpt = cnnzoo.model_from_checkpoint(tmp_path / "best.pt")
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))
    assert ckpt["classes"] == bundle.classes and ckpt["preprocess"] == bundle.preprocess
    assert {"optimizer", "scheduler", "rng", "config", "epoch"} <= ckpt.keys()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,lr,train_loss") and len(lines) == 2


SAVER = """
import os, sys, time, torch
from cnnzoo import checkpoint
def stall(fd):  # the data is in the temporary file; the rename has not happened
    open(sys.argv[2], "w").close()
    time.sleep(60)
os.fsync = stall
state = {"w": torch.ones(1000, 1000)}
checkpoint.save_checkpoint(sys.argv[1], "lenet5", {}, state)
"""


def test_kill_during_save_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, "lenet5", {}, {"w": torch.zeros(3)}, epoch=2)
    flag = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(flag)])
    try:
        deadline = time.time() + 120
        while not flag.exists():
            assert proc.poll() is None and time.time() < deadline, "saver never reached fsync"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the torn write, aside
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 2 and torch.equal(ckpt["state_dict"]["w"], torch.zeros(3))


def test_failed_save_leaves_previous_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, "lenet5", {}, {"w": torch.zeros(3)}, epoch=1)

    def broken(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, "lenet5", {}, {"w": torch.ones(3)}, epoch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_ctrl_c_saves_and_reraises(digits, tmp_path):
    model = small_cnn()

    def interrupt(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, digits, TrainConfig(epochs=3, **QUIET), tmp_path, model_name="small",
            model_args={}, on_epoch_end=interrupt)  # fmt: skip
    ckpt = load_checkpoint(tmp_path / "interrupted.pt")
    assert torch.equal(ckpt["state_dict"]["10.weight"], model[10].weight.detach())
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_resume_refuses_a_best_only_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "x.pt", "lenet5", {}, cnnzoo.create_model("lenet5").state_dict())
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        fit(cnnzoo.create_model("lenet5"), load_data("digits", input_size=(1, 32, 32), limit=32),
            TrainConfig(epochs=1, **QUIET), tmp_path, model_name="lenet5", model_args={},
            resume=tmp_path / "x.pt")  # fmt: skip


def test_amp_bf16_and_channels_last_train(digits, tmp_path):
    cfg = TrainConfig(epochs=1, amp=True, channels_last=True, **QUIET)
    r = fit(small_cnn(), digits, cfg, tmp_path, model_name="small", model_args={})
    assert math.isfinite(r["history"][0]["train_loss"])


# --- a real run -------------------------------------------------------------------------------


@pytest.mark.skipif(
    not FASHION.is_dir(), reason="Fashion-MNIST not installed (dataset-fashion-mnist)"
)
def test_lenet5_learns_fashion_mnist(tmp_path):
    bundle = load_data("fashion-mnist", input_size=(1, 32, 32), limit=3000)
    model = cnnzoo.create_model("lenet5", num_classes=10)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, sched="cosine", **QUIET)
    result = fit(model, bundle, cfg, tmp_path, model_name="lenet5", model_args={})
    test = evaluate(model, bundle.test, bundle.classes)
    assert test["accuracy"] > 0.6, test["accuracy"]  # chance is 0.1
    assert result["history"][1]["train_loss"] < result["history"][0]["train_loss"]


def test_sigint_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "cnnzoo",
        "train",
        "lenet5",
        "--data",
        "digits",
        "--epochs",
        "1000",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(run),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "last.pt").exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert done >= 1 and load_checkpoint(run / "interrupted.pt")["epoch"] >= done


def test_ctrl_c_during_the_epochs_files_waits_until_they_are_written(digits, tmp_path, monkeypatch):
    """A Ctrl-C that lands while the epoch's checkpoint, CSV, TensorBoard events and plot are being
    written is held until they are whole (one inside TensorBoard's writer could hang its close)."""
    from cnnzoo.train import loop

    real = loop.write_metrics_csv

    def interrupted_write(history, path):
        os.kill(os.getpid(), signal.SIGINT)  # lands here, between last.pt and the logs
        time.sleep(0.05)
        real(history, path)

    monkeypatch.setattr(loop, "write_metrics_csv", interrupted_write)
    handler = signal.getsignal(signal.SIGINT)
    cfg = TrainConfig(epochs=3, progress=False, plots=True)
    with pytest.raises(KeyboardInterrupt):
        fit(small_cnn(), digits, cfg, tmp_path, model_name="small", model_args={})
    assert signal.getsignal(signal.SIGINT) is handler  # put back
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 1
    assert (tmp_path / "curves.png").stat().st_size > 0  # written after the CSV: not cut off
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert load_checkpoint(tmp_path / "interrupted.pt")["epoch"] == 1


def test_sigint_deferral_outside_the_main_thread_runs_the_block_as_is():
    import threading

    from cnnzoo.train.loop import _sigint_deferred

    ran = []

    def body():
        with _sigint_deferred():
            ran.append(threading.current_thread() is not threading.main_thread())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert ran == [True]


def test_tensorboard_and_csv_hold_the_history(digits, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(epochs=2, progress=False, plots=False)
    result = fit(small_cnn(), digits, cfg, tmp_path, model_name="small", model_args={})
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    val = [e.value for e in events.Scalars("accuracy/val")]
    assert val == pytest.approx([r["val_acc"] for r in result["history"]])
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert [float(r.split(",")[5]) for r in rows] == pytest.approx(val)
    best = load_checkpoint(tmp_path / "best.pt")
    first_best = val.index(max(val)) + 1  # ties keep the earlier epoch
    assert best["epoch"] == first_best == result["best_epoch"]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_any_map_style_dataset_trains_like_the_in_memory_one(tmp_path):
    """A plain TensorDataset goes through torch's DataLoader + DistributedSampler, whose seeded
    permutation is the in-memory loader's: the same data gives the same weights."""
    from torch.utils.data import TensorDataset

    from cnnzoo.data import DataBundle

    bundle = load_data("digits", input_size=(1, 16, 16), limit=128)
    x, y = bundle.train.get_batch(range(len(bundle.train)))
    xv, yv = bundle.val.get_batch(range(len(bundle.val)))
    plain = DataBundle(TensorDataset(x, y), TensorDataset(xv, yv), None, bundle.classes,
                       bundle.preprocess)  # fmt: skip
    cfg = TrainConfig(epochs=2, batch_size=16, **QUIET)
    models = []
    for i, b in enumerate((bundle, plain)):
        torch.manual_seed(0)
        models.append(small_cnn())
        fit(models[-1], b, cfg, tmp_path / str(i), model_name="small", model_args={})
    a, b = models[0].state_dict(), models[1].state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_an_error_mid_epoch_closes_the_progress_bar(capsys):
    """An input too small for the model fails at the first batch; the epoch's progress bar is
    closed on the way out (tqdm forgets a closed bar), so the one-line error that follows starts
    on a line of its own instead of after the bar's text."""
    from tqdm import tqdm

    from cnnzoo.errors import InputTooSmallError
    from cnnzoo.train.loop import train_one_epoch

    model = cnnzoo.create_model("lenet5")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(2, 1, 4, 4), torch.tensor([0, 1]))] * 3
    config = TrainConfig(progress=True, channels_last=False)
    with pytest.raises(InputTooSmallError) as err:  # its traceback keeps the epoch's frame
        train_one_epoch(model, batches, optimizer, config, torch.device("cpu"))
    assert err.traceback and not list(tqdm._instances)
