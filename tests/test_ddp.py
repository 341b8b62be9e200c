"""DistributedDataParallel on two CPU processes over loopback (gloo).

The quick test starts the two processes itself with the environment torchrun would give them
(RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, ...) and checks the result against an oracle: two ranks
with batches of B are one process with batches of 2B made of both shards (the gradient all-reduce
averages equal-sized halves). The slow test runs the real ``torchrun -m cnnzoo train``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.data import load_data

FASHION = Path("/usr/share/datasets/fashion-mnist")

WORKER = """
import sys, torch, cnnzoo
from cnnzoo.data import load_data
from cnnzoo.train import TrainConfig, cleanup_distributed, dist_info, fit, setup_distributed
torch.set_num_threads(1)
out = sys.argv[1]
assert setup_distributed()
rank = dist_info()[0]
torch.manual_seed(0)
bundle = load_data("digits", input_size=(1, 32, 32), limit=96)
model = cnnzoo.create_model("lenet5")
cfg = TrainConfig(epochs=1, batch_size=16, lr=0.1, momentum=0.0, weight_decay=0.0, sched="none",
                  label_smoothing=0.0, nesterov=False,
                  progress=False, tensorboard=False, plots=False)
fit(model, bundle, cfg, out, model_name="lenet5", model_args={})
torch.save(model.state_dict(), f"{out}/../rank{rank}.pt")
cleanup_distributed()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_with_double_batch(tmp_path):
    port, env = free_port(), dict(os.environ)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(out)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
        )
        for r in range(2)
    ]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # replicas stay identical
    files = sorted(p.name for p in out.iterdir())  # the run lock went with the run
    assert files == ["best.pt", "last.pt", "metrics.csv"]

    # the oracle: one process, batches of 32 = rank 0's 16 + rank 1's 16
    torch.manual_seed(0)
    bundle = load_data("digits", input_size=(1, 32, 32), limit=96)
    model = cnnzoo.create_model("lenet5")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    order = torch.randperm(96, generator=torch.Generator().manual_seed(0))  # seed + epoch 0
    shards = [order[r::2] for r in range(2)]
    for b in range(3):  # 48 images per rank, 3 batches of 16
        parts = [bundle.train.get_batch(s[16 * b : 16 * (b + 1)]) for s in shards]
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for k, v in model.state_dict().items():
        assert torch.allclose(v, rank0[k], atol=1e-5), k


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION.is_dir(), reason="Fashion-MNIST not installed (dataset-fashion-mnist)"
)
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
    reason="torchrun not found",
)
def test_torchrun_two_processes_same_accuracy_band(tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    common = [
        "lenet5",
        "--data",
        "fashion-mnist",
        "--limit",
        "4000",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--no-progress",
        "--no-tensorboard",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "cnnzoo", "train", *common, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            torchrun,
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            "-m",
            "cnnzoo",
            "train",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr
    acc = []
    for out, proc in (("one", one), ("two", two)):
        line = [s for s in proc.stdout.splitlines() if s.startswith("cnnzoo train: done")]
        assert len(line) == 1, proc.stdout  # rank 0 alone reports
        acc.append(json.loads(line[0].split("done ", 1)[1])["test_acc_last"])
        assert sorted(p.name for p in (tmp_path / out).glob("*.pt")) == ["best.pt", "last.pt"]
    assert acc[0] > 0.6 and acc[1] > 0.6 and abs(acc[0] - acc[1]) < 0.08, acc


def test_the_main_process_is_torchruns_rank_0_also_outside_the_group(monkeypatch):
    """The CLI asks before the group starts and after it ends: torchrun's RANK answers then."""
    from cnnzoo.train.distributed import is_main_process

    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
