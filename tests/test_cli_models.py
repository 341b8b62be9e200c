"""``cnnzoo list`` and ``cnnzoo show`` on the classic models."""

import subprocess
import sys

import pytest

from cnnzoo.cli import main


def test_list_vgg_names_counts_sizes(capsys):
    assert main(["list", "vgg*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    names = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert sorted(rows) == sorted(names)
    # VGG-16: 13 convs (14,714,688) + FC (7*7*512+1)*4096 + 4097*4096 + 4097*1000 (123,642,856)
    assert rows["vgg16"][1] == f"{14_714_688 + 123_642_856:,}" == "138,357,544"
    assert all(row[2] == "224x224x3" for row in rows.values())
    assert "Simonyan" in lines[1]


def test_list_alexnet_lecture_input(capsys):
    assert main(["list", "alexnet*"]) == 0
    rows = {r.split()[0]: r.split() for r in capsys.readouterr().out.splitlines()[1:]}
    assert rows["alexnet"][1:3] == ["62,378,344", "227x227x3"]
    assert rows["alexnet_2gpu"][1] == "60,965,224"
    assert rows["alexnet_tv"][2] == "224x224x3"


def test_show_alexnet_prints_module_tree(capsys):
    assert main(["show", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "input 227x227x3 -> output 1000, 62,378,344 parameters" in out
    assert "(features): Sequential(" in out and "(classifier): Sequential(" in out
    assert "Conv2d(3, 96, kernel_size=(11, 11), stride=(4, 4))" in out
    assert out.count("LocalResponseNorm(5") == 2
    # the head as the user asks for it: FC8 replaced, FC7 features out
    assert main(["show", "alexnet", "--num-classes", "0"]) == 0
    out = capsys.readouterr().out
    assert f"output 4096, {62_378_344 - (4096 + 1) * 1000:,} parameters" in out


def test_show_alphago_board(capsys):
    assert main(["show", "alphago_policy"]) == 0
    assert "input 19x19x48 -> output 361" in capsys.readouterr().out


def test_unknown_model_one_line_with_suggestions(capsys):
    assert main(["show", "vgg61"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "unknown model 'vgg61'" in lines[0] and "vgg16" in lines[0]
    assert main(["list", "alexnot*"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "alexnet" in lines[0]


@pytest.mark.slow  # a fresh interpreter importing torch: seconds; main() is tested above
def test_unknown_model_real_process_exits_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnzoo", "show", "alexnett"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "did you mean alexnet" in proc.stderr
