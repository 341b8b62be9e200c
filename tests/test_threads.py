"""The thread policy: an explicit count wins; the default leaves out cores others keep busy."""

import pytest

from cnnzoo import threads


@pytest.fixture(autouse=True)
def _the_policy_itself(monkeypatch):
    """These tests see the load policy, not the fixed count the other tests run with (a test of
    OMP_NUM_THREADS sets it itself)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_explicit_count_is_applied_and_bad_ones_refused():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(1) == 1 and torch.get_num_threads() == 1
        for bad in (0, -2, 1.5, True):
            with pytest.raises(ValueError):
                threads.apply_threads(bad)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cpus, others, expected", [(2, 0, 2), (2, 1, 1), (2, 5, 1), (8, 3, 5)])
def test_default_leaves_out_busy_cores(monkeypatch, cpus, others, expected):
    monkeypatch.setattr(threads, "_cpus", lambda: cpus)
    monkeypatch.setattr(threads, "_others_running", lambda: others)
    assert threads.default_threads() == expected


@pytest.mark.parametrize("env, expected", [("1", 1), ("3", 3), ("0", 4), ("two", 4), ("", 4)])
def test_omp_num_threads_is_taken_as_torch_takes_it(monkeypatch, env, expected):
    """A positive OMP_NUM_THREADS is the count, on an idle 4-core machine too; a value torch
    would not take leaves the policy's count (here all 4 cores)."""
    monkeypatch.setattr(threads, "_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_others_running", lambda: 0)
    monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert threads.default_threads() == expected


def test_default_without_load_information_uses_every_core(monkeypatch):
    monkeypatch.setattr(threads, "_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_others_running", lambda: None)
    assert threads.default_threads() == 4


class _Applied(Exception):
    """Raised by the stand-in policy: the command reached it, before any work."""


@pytest.mark.parametrize(
    "argv, count",
    [
        (["train", "lenet5", "--data", "digits", "--epochs", "1"], None),  # None: the policy's
        (["train", "lenet5", "--data", "digits", "--threads", "2"], 2),
        (["finetune", "lenet5", "--data", "digits"], None),
        (["features", "lenet5", "--data", "digits"], None),
        (["features", "lenet5", "--data", "digits", "--threads", "1"], 1),
        (["profile", "lenet5"], None),
        (["profile", "lenet5", "--threads", "1"], 1),
        (["demo"], 1),  # the demo's tiny model: one thread
    ],
)
def test_the_commands_that_compute_apply_the_policy_first(argv, count, monkeypatch, tmp_path):
    from cnnzoo.cli import main

    seen = []

    def policy(n):
        seen.append(n)
        raise _Applied

    monkeypatch.chdir(tmp_path)  # nothing a command might write lands in the checkout
    monkeypatch.setattr(threads, "apply_threads", policy)
    with pytest.raises(_Applied):
        main(argv)
    assert seen == [count]


def test_python_fit_applies_the_default_policy(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    from cnnzoo.data import load_data
    from cnnzoo.train import TrainConfig, fit

    data = load_data("digits", input_size=(1, 8, 8), limit=64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    config = TrainConfig(epochs=1, progress=False, tensorboard=False, plots=False)
    assert config.threads is None  # the default: the policy decides
    monkeypatch.setattr(threads, "default_threads", lambda: 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fit(model, data, config, tmp_path / "run", model_name="linear", model_args={})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_this_processs_own_workers_are_not_counted_as_other_processes():
    """torch's OpenMP workers keep running (spinning) after each parallel region; counted as
    other processes they made an idle machine look busy, and the default alternated 2, 1, 2."""
    import threading

    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    x = torch.randn(1200, 1200)
    stop = threading.Event()

    def work():
        while not stop.is_set():
            x @ x

    worker = threading.Thread(target=work)
    worker.start()
    try:
        seen = max(threads._own_running() for _ in range(200))
    finally:
        stop.set()
        worker.join()
        torch.set_num_threads(before)
    assert seen >= 2  # this reader and at least one of torch's threads, all of this process


def test_a_momentary_task_does_not_take_a_core(monkeypatch):
    reads = iter([1, 0, 1, 1, 1])  # a task that ran for one read of five
    monkeypatch.setattr(threads, "_cpus", lambda: 2)
    monkeypatch.setattr(threads, "_others_running", lambda: next(reads))
    monkeypatch.setattr(threads, "SAMPLE_GAP", 0.0)
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "_others_running", lambda: 1)  # one that stays
    assert threads.default_threads() == 1


def test_profile_measures_with_the_thread_count_it_was_given(capsys):
    """``profile --threads 1`` times with one thread, and its report says so."""
    import json

    import torch

    from cnnzoo.cli import main

    before = torch.get_num_threads()
    try:
        assert main(["profile", "lenet5", "--threads", "1", "--repeats", "1", "--warmup", "0",
                     "--batch", "1", "--format", "json"]) == 0  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    report = json.loads(capsys.readouterr().out)
    assert report["machine"].endswith(", 1 threads")
