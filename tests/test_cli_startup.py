"""First contact: what start-up imports (never timed here; see benchmarks/startup.py), the
command table behind `cnnzoo --help`, a misspelt command, and the model table of `cnnzoo list`."""

import argparse
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnnzoo.cli import COMMANDS, HELP, main

SRC = Path(__file__).resolve().parents[1] / "src"

PROBE = """
import json, sys
from cnnzoo.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
mods = sorted(m for m in sys.modules if m.startswith("cnnzoo.cli."))
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "cli": mods}))
"""


def probe(*argv: str) -> dict:
    """Run ``cnnzoo ARGV`` in a fresh interpreter; what it imported, and its exit status."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_no_torch_and_no_subcommand_module():
    seen = probe("--help")
    assert seen["code"] == 0 and not seen["torch"]
    assert seen["cli"] == ["cnnzoo.cli._args", "cnnzoo.cli._commands"]


@pytest.mark.parametrize(
    "argv",
    [
        ["calc", "conv", "--input", "227x227x3", "--filters", "96", "--kernel", "11"],
        ["calc", "rf", "3/1", "3/1", "3/1"],
        ["calc", "--help"],
        ["list"],
        ["list", "res*"],
    ],
)  # fmt: skip
def test_arithmetic_commands_never_import_torch(argv):
    seen = probe(*argv)
    assert seen["code"] == 0 and not seen["torch"], seen


def test_running_a_command_imports_only_its_module():
    seen = probe("calc", "stack")
    assert seen["cli"] == ["cnnzoo.cli._args", "cnnzoo.cli._commands", "cnnzoo.cli.calc"]


def fresh_python(code: str, *args: str) -> str:
    """What ``code`` prints in a fresh interpreter that sees only the source tree."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=120,
        check=True,
    ).stdout


DOTTED = re.compile(r"\bcnnzoo(?:\.[A-Za-z_]\w*)+")  # cnnzoo.train.Run.new, as the docs write it


def test_import_cnnzoo_is_light_and_its_names_still_work():
    code = (
        "import sys, cnnzoo; light = 'torch' not in sys.modules; "
        "m = cnnzoo.create_model('lenet5', device='meta'); "
        "print(light, type(m).__name__, 'resnet50' in cnnzoo.list_models('res*'))"
    )
    assert fresh_python(code).split() == ["True", "LeNet5", "True"]


def test_every_dotted_name_of_the_readme_works_after_a_plain_import():
    """The README's Python table says "`import cnnzoo` first" and then calls
    ``cnnzoo.train.Run.new``, ``cnnzoo.runs.embed``, ``cnnzoo.compare.compare``...: each raised
    AttributeError, since only four submodules were reachable from the package. Every dotted
    name the README uses is looked up in a fresh interpreter after ``import cnnzoo`` alone, and
    the import stays light."""
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    names = sorted(set(DOTTED.findall(readme)))
    assert "cnnzoo.train.Run.new" in names and "cnnzoo.runs.embed" in names
    code = (
        "import functools, sys, cnnzoo; light = 'torch' not in sys.modules; bad = []\n"
        "for n in sys.argv[1:]:\n"
        "    try: functools.reduce(getattr, n.split('.')[1:], cnnzoo)\n"
        "    except AttributeError as e: bad.append(f'{n}: {e}')\n"
        "print(light, bad)"
    )
    out = fresh_python(code, *names).strip()
    assert out == "True []", out


def test_every_dotted_name_in_the_docs_exists():
    """docs/models.md still named ``cnnzoo.models.layers.Conv2d`` after the class was renamed
    ``PadSkippingConv2d``. Each ``cnnzoo.x.y`` of the README and docs/ is an attribute or, for a
    module run with ``python -m``, an importable module."""
    import functools

    import cnnzoo

    texts = [SRC.parent / "README.md", *sorted((SRC.parent / "docs").glob("*.md"))]
    names = {n for t in texts for n in DOTTED.findall(t.read_text())}
    missing = []
    for name in sorted(names):
        try:
            functools.reduce(getattr, name.split(".")[1:], cnnzoo)
        except AttributeError:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
    assert not missing, missing


def test_help_table_says_what_each_module_registers():
    # HELP lets `cnnzoo --help` skip importing modules: it must hold what they would register.
    registered = {}
    for module in COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"cnnzoo.cli.{module}").register(sub)
        for action in sub._choices_actions:
            registered[action.dest] = (module, action.help)
    assert registered == HELP


def test_misspelt_command_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summery", "alexnet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean summary?" in err
    with pytest.raises(SystemExit) as exc:
        main(["zzzz"])
    assert exc.value.code == 2 and "unknown command 'zzzz'" in capsys.readouterr().err


def test_model_table_is_current_and_matches_every_model_built_on_meta():
    # The oracle is the registry itself: every model rebuilt on the meta device and counted.
    from cnnzoo.modeltable import build_rows, load_table, source_fingerprint

    table = load_table()
    assert table is not None, "run: python -m cnnzoo.modeltable"
    assert table["fingerprint"] == source_fingerprint(), "stale: python -m cnnzoo.modeltable"
    assert table["models"] == build_rows()
    vgg16 = next(r for r in table["models"] if r["name"] == "vgg16")
    assert vgg16["params"] == 138_357_544 and vgg16["input_size"] == [3, 224, 224]


def test_building_on_meta_runs_no_initialisation_and_imports_no_compiler():
    """Random initialisation of a meta tensor has no values to fill, yet torch answers it with a
    Python decomposition whose first call imports torch._dynamo (2 s of every `summary`)."""
    code = (
        "import sys, torch; from cnnzoo import create_model; "
        "[create_model(n, device='meta') for n in ('alexnet', 'vgg16', 'inception_v3', "
        "'resnet50', 'mobilenet_v1')]; "
        "m = create_model('lenet5'); "  # a real build still initialises
        "print('torch._dynamo' in sys.modules, bool(m.fc.weight.abs().sum() > 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == ["False", "True"]


def test_default_summary_imports_no_torch_and_prints_the_live_analysis(capsys):
    seen = probe("summary", "alexnet")
    assert seen["code"] == 0 and not seen["torch"], seen
    # Any other option analyses live; both print the same table for the same question.
    from cnnzoo.cli.summary import live_summary

    assert main(["summary", "alexnet"]) == 0
    stored = capsys.readouterr().out
    assert stored == live_summary("alexnet")
    assert "227x227x3" in stored and "62,378,344" in stored  # the lecture's AlexNet


def test_stored_summaries_are_current_and_equal_a_live_analysis_of_every_model():
    # The oracle is the analyzer itself, run now on every registered model.
    from cnnzoo.registry import list_models
    from cnnzoo.summarytable import SUMMARIES_PATH, build_texts, source_fingerprint, stored_summary

    first = SUMMARIES_PATH.read_text("utf-8").partition("\n")[0]
    assert first.endswith(source_fingerprint()), "stale: python -m cnnzoo.modeltable"
    texts = build_texts()
    assert sorted(texts) == sorted(list_models())  # none left out for a warning
    for name, text in texts.items():
        assert stored_summary(name) == text, f"{name}: stale, run python -m cnnzoo.modeltable"


def test_a_stale_or_missing_summary_file_is_not_used(tmp_path):
    from cnnzoo.summarytable import SUMMARIES_PATH, stored_summary

    stale = tmp_path / "summaries.txt"
    head, _, body = SUMMARIES_PATH.read_text("utf-8").partition("\n")
    stale.write_text(head[:-16] + "not-a-fingerprint\n" + body, "utf-8")
    assert stored_summary("alexnet", stale) is None
    assert stored_summary("alexnet", tmp_path / "missing.txt") is None
    assert stored_summary("no_such_model") is None
