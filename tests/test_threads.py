"""The thread policy: an explicit count wins; the default leaves out cores others keep busy."""

import pytest

from cnnzoo import threads


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


def test_default_without_load_information_uses_every_core(monkeypatch):
    monkeypatch.setattr(threads, "_cpus", lambda: 4)
    monkeypatch.setattr(threads, "_others_running", lambda: None)
    assert threads.default_threads() == 4
