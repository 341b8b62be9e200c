"""The profiler on a hand-built net whose rows, bytes and intensity are known: rows one to one
with the analyzer's, times that add up to the measured whole step, the roofline picture, and the
command line's one-line errors. No assertion on speed (benchmarks/profile.py reports that)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.analysis import analyze
from cnnzoo.analysis.ceilings import Ceilings, measure
from cnnzoo.analysis.roofline import plot_roofline
from cnnzoo.cli import main


class Small(nn.Module):
    """A convolution, a residual ``+`` and a ``torch.cat`` run by the container, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.conv1(x))
        b = self.conv2(a) + a
        return self.fc(torch.flatten(self.pool(torch.cat([a, b], 1)), 1))


def test_rows_match_the_analyzer_one_to_one():
    net = Small()
    prof = cnnzoo.profile(net, (3, 16, 16), batch=2, repeats=2, warmup=1)
    names = [r.name for r in analyze(net, (3, 16, 16), batch_size=2).layers]
    assert names == ["conv1", "relu", "conv2", "add", "cat", "pool", "fc"]
    assert [r.module for r in prof.rows] == names
    assert [r.row for r in prof.rows] == list(range(len(names)))
    assert all(r.backward_ms is None for r in prof.rows)


def test_bytes_and_intensity_of_a_conv_row_by_hand():
    prof = cnnzoo.profile(Small(), (3, 16, 16), batch=2, repeats=1, warmup=0)
    conv1, conv2 = prof.rows[0], prof.rows[2]
    # conv1 reads the 2x3x16x16 input and its 16*27+16 weights, writes 2x16x16x16, in fp32.
    assert conv1.bytes == (2 * 3 * 256 + 2 * 16 * 256 + (16 * 27 + 16)) * 4 == 40_704
    assert conv1.flops == 2 * (2 * 16 * 256 * 27)
    assert conv1.intensity == pytest.approx(2 * 2 * 16 * 256 * 27 / 40_704)
    # conv2 reads a (2x16x16x16) and 16*144+16 weights, writes as much as it reads.
    assert conv2.bytes == (2 * 2 * 16 * 256 + 16 * 144 + 16) * 4
    assert conv2.gflops == pytest.approx(conv2.flops / (conv2.forward_ms * 1e6))


def add_up(statistic: str, train: bool, tries: int = 3):
    """Profile ``Small`` up to ``tries`` times until its rows add up to the step within 10%: the
    rows and the whole step are separate timed runs, so a stall of this shared machine that lands
    in one of them can open a gap neither run has. Each profile's own arithmetic (rows + outside
    layers = step, shares) is checked every time. Returns the gaps and the last profile."""
    gaps = []
    for _ in range(tries):
        prof = cnnzoo.profile(
            Small(), (3, 32, 32), batch=64, train=train, repeats=60, warmup=5, statistic=statistic
        )
        rows = sum(r.forward_ms + (r.backward_ms or 0.0) for r in prof.rows)
        assert rows + prof.outside_layers_ms == pytest.approx(prof.total_ms)
        assert sum(r.share for r in prof.rows) == pytest.approx(rows / prof.total_ms)
        if train:  # every row made autograd nodes, and they were timed
            assert all(r.backward_ms > 0 for r in prof.rows)
        gaps.append(abs(prof.outside_layers_ms) / prof.total_ms)
        if gaps[-1] <= 0.10:
            break
    return gaps, prof


@pytest.mark.parametrize("train", [False, True])
def test_row_means_add_up_to_the_whole_step(one_thread, train):
    """Within 10%, on any machine: the mean step is the sum of its parts' means however a busy
    machine's stalls fall, so a gap here is time the rows failed to claim (an op run outside the
    recorder's timer, an autograd node no row owns), not load."""
    # one thread (conftest): fewer hand-offs between threads, steadier on a shared machine
    gaps, prof = add_up("mean", train)
    assert min(gaps) <= 0.10, f"outside layers {gaps} of the step\n{prof.to_table()}"


@pytest.mark.parametrize("train", [False, True])
def test_row_medians_add_up_on_a_steady_machine(one_thread, train):
    """The default medians add up within 10% when the machine lets a step be timed to better than
    10%. On a loaded machine the step's median includes the stalls a long step usually meets and
    a short op usually escapes, so the rows' medians fall short of it (docs/anatomy.md); the test
    then says so and skips, leaving the attribution to the means test above."""
    gaps, prof = add_up("median", train)
    steadiness = prof.total_spread_ms / prof.total_ms
    if min(gaps) > 0.10 and steadiness > 0.10:
        pytest.skip(
            f"the step's interquartile range is {steadiness:.0%} of it (a busy machine): "
            f"medians cannot be compared within 10%; gaps {[f'{g:.0%}' for g in gaps]}"
        )
    assert min(gaps) <= 0.10, f"outside layers {gaps} of the step\n{prof.to_table()}"


def test_model_and_gradients_are_left_as_they_were():
    net = Small().train()
    net.fc.weight.grad = torch.ones_like(net.fc.weight)
    cnnzoo.profile(net, (3, 16, 16), batch=2, train=True, repeats=1, warmup=0)
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(net.fc.weight.grad, torch.ones_like(net.fc.weight))
    assert net.conv1.weight.grad is None


def test_json_is_the_explorer_contract():
    prof = cnnzoo.profile(Small(), (3, 16, 16), batch=2, train=True, repeats=1, warmup=0)
    d = json.loads(prof.to_json())
    assert list(d) == ["model", "input_size", "batch", "train", "machine", "rows",
                       "outside_layers_ms", "total_ms", "statistic", "notes"]  # fmt: skip
    assert d["input_size"] == [3, 16, 16] and d["batch"] == 2 and d["train"] is True
    assert list(d["rows"][0]) == ["row", "module", "forward_ms", "forward_spread_ms",
                                  "backward_ms", "backward_spread_ms", "gflops", "bytes",
                                  "intensity", "share"]  # fmt: skip
    assert isinstance(d["rows"][0]["bytes"], int) and d["rows"][0]["bytes"] == 40_704


def test_a_step_the_rows_miss_is_explained():
    """Rows that miss the whole step by more than 10% get a line saying why, in every format:
    a busy machine (the step's spread) or the time between ops. Fed known timings through the
    profiler's own summary, so no machine's load decides the outcome."""
    from cnnzoo.analysis.profile import _summarise

    net = Small()
    report = analyze(net, (3, 16, 16), batch_size=2)
    sizes = {n: p.numel() for n, p in net.named_parameters()}

    def summary(plain, row_seconds, statistic="median"):
        timed = [[(r.name, row_seconds, 0.0) for r in report.layers]] * len(plain)
        return _summarise(report, plain, timed, False, torch.device("cpu"), sizes, statistic)

    steady = summary([7e-3] * 4, 1e-3)  # 7 rows of 1 ms, a 7 ms step: adds up, no note
    assert steady.outside_layers_ms == pytest.approx(0.0) and steady.notes == []
    busy = summary([7e-3, 7e-3, 14e-3, 14e-3], 1e-3)  # the median step is 10.5 ms
    (note,) = busy.notes
    assert "add up to 67% of the measured step" in note and "busy" in note and "mean" in note
    assert note in busy.to_table() and note in busy.to_markdown()
    assert json.loads(busy.to_json())["notes"] == [note]
    slow = summary([10e-3] * 4, 1e-3)  # a steady step 3 ms longer than its rows
    assert "Python between them" in slow.notes[0] and "busy" not in slow.notes[0]


def test_roofline_is_a_picture(tmp_path):
    prof = cnnzoo.profile(Small(), (3, 16, 16), batch=2, repeats=2, warmup=1)
    ceilings = measure(quick=True)
    assert ceilings.gflops > 0 and ceilings.gbps > 0
    path = plot_roofline(prof, ceilings, tmp_path / "roof.png", size=(6, 4), dpi=100)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (600, 400)
        pixels = img.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20)
    assert len(colours) > 20  # axes, roof, points and text, not a blank canvas
    # the convolutions' colour is on the picture
    assert any(rgb == (0x1F, 0x77, 0xB4) for _, rgb in colours)


def test_matmul_peak_is_the_best_of_several_sizes(monkeypatch):
    """The roof is the best rate of several product sizes: a large product disturbed by a busy
    machine must not set it alone (rows then plot above the roof). Known seconds per size, fed
    in place of the clock, decide which one wins."""
    from cnnzoo.analysis import ceilings

    seconds = {256: 2 * 256**3 / 40e9, 512: 2 * 512**3 / 90e9, 1024: 2 * 1024**3 / 30e9}
    monkeypatch.setattr(ceilings, "_best_seconds", lambda fn, repeats, sync: seconds[side(fn)])

    def side(fn) -> int:  # the product's side, from the closure's first matrix
        return fn.__closure__[0].cell_contents.shape[0]

    assert ceilings.best_matmul_peak(((256, 1), (512, 1), (1024, 1))) == pytest.approx(90.0)
    assert ceilings.best_matmul_peak(((1024, 1),)) == pytest.approx(30.0)


def test_roofline_ridge_point():
    assert Ceilings(gflops=100.0, gbps=20.0, machine="m").ridge == 5.0


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``cnnzoo profile ARGV`` in this process: exit status, stdout, stderr."""
    try:
        code = main(["profile", *argv])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv, says",
    [
        (["lenet5", "--input", "0x3"], "--input"),
        (["lenet5", "--input", "4x4"], "too small"),
        (["lenet5", "--batch", "0"], "--batch"),
        (["lenet5", "--repeats", "0"], "--repeats"),
        (["nosuchnet"], "unknown model"),
        (["lenet5", "--plot", "/proc/nowhere/roof.png"], "--plot"),
    ],
)
def test_cli_bad_input_is_one_line(capsys, argv, says):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and says in err, err


def test_cli_json_rows_are_the_summary_rows(capsys):
    code, out, err = cli(capsys, "lenet5", "--batch", "2", "--repeats", "1", "--warmup", "0",
                         "--format", "json")  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    model = cnnzoo.create_model("lenet5", device="meta")
    assert [r["module"] for r in rows] == [r.name for r in analyze(model, (1, 32, 32)).layers]


def test_times_are_medians_by_default_and_means_on_request():
    """A row's figure is the median of its repeats (the mean when asked): a pattern of timings
    where the two differ, through the same summary the profiler uses."""
    from cnnzoo.analysis.profile import _centre_iqr

    stalls = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 29.0]  # a shared machine: one repeat stalls
    assert _centre_iqr(stalls, "median") == (1.0, 0.0)
    assert _centre_iqr(stalls, "mean")[0] == pytest.approx((7 * 1.0 + 29.0) / 8)
    prof = cnnzoo.profile(Small(), (3, 16, 16), batch=2, repeats=3, warmup=0)
    assert prof.statistic == "median" and "medians" in prof.to_table().splitlines()[0]
    means = cnnzoo.profile(Small(), (3, 16, 16), batch=2, repeats=3, warmup=0, statistic="mean")
    assert "means" in means.to_table().splitlines()[0]
    with pytest.raises(cnnzoo.CnnzooError, match="statistic"):
        cnnzoo.profile(Small(), (3, 16, 16), statistic="mode")


def test_a_batch_that_cannot_fit_is_refused_before_anything_is_allocated(monkeypatch):
    """LeNet-5 on a batch of 64, evaluated, holds at least its input (64 x 1x32x32 floats,
    262,144 bytes) and C1's output (64 x 6x28x28 floats, 1,204,224 bytes) at once: 1,466,368
    bytes. On a device made to have 1.4 MB it is refused with that figure; with the machine's
    real memory the same call runs."""
    from cnnzoo.analysis import profile as profile_module

    model = cnnzoo.create_model("lenet5")
    need = 64 * 1 * 32 * 32 * 4 + 64 * 6 * 28 * 28 * 4
    assert need == 1_466_368
    monkeypatch.setattr(profile_module, "device_memory", lambda device: need - 1)
    with pytest.raises(cnnzoo.CnnzooError, match=r"batch of 64 needs at least 1\.5 MB for the in"):
        profile_module.profile(model, (1, 32, 32), batch=64, repeats=1, warmup=0)
    monkeypatch.setattr(profile_module, "device_memory", lambda device: need)
    assert profile_module.profile(model, (1, 32, 32), batch=64, repeats=1, warmup=0).rows


def test_a_model_name_says_how_to_profile_it():
    """``cnnzoo.profile("lenet5")`` said "analyze needs an nn.Module"."""
    from cnnzoo.errors import CnnzooError

    with pytest.raises(CnnzooError, match=r"profile\(cnnzoo.create_model\('lenet5'\), \.\.\.\)"):
        cnnzoo.profile("lenet5", input_size=(1, 32, 32))
