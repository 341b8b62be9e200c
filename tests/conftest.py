import os
import subprocess

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _a_fixed_thread_count(monkeypatch):
    """Runs in tests use every core, whatever OMP_NUM_THREADS the caller set and whatever else
    runs: the default policy follows the machine's load, and two runs a test compares bit for
    bit must not get different thread counts (different summation orders) from a busy moment.
    The policy's own tests (test_threads.py) take the variable away."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(os.cpu_count() or 1))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny models and inputs: a second thread gains little,
    and on a loaded 2-core machine spinning threads cost several times the work itself
    (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder where creating a file really fails, root included: a read-only tmpfs (root), or
    a folder without write permission (other users); skipped where neither holds."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
    ).returncode == 0  # fmt: skip
    if not mounted:
        ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        pass
    else:
        (ro / "probe").unlink()
        pytest.skip("no way to make a read-only folder here")
    yield ro
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)
    else:
        ro.chmod(0o755)
