"""Help that says what a flag does: every boolean option of every subcommand reads right in the
form it is printed in, and ``--no-progress`` drops the bar but keeps each epoch's summary line."""

import argparse
import re
from dataclasses import fields

import pytest

from cnnzoo.cli import build_parser, main
from cnnzoo.train.config import TrainConfig

NEGATIONS = ("do not", "don't", "disable", "no ", "not ", "skip", "turn off", "without", "never")
STOP = {"the", "and", "with", "from", "into", "each", "every", "this", "that", "(default:"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, nested ones too (``calc conv``), by its words."""
    out = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        if words:
            out[" ".join(words)] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, (*words, name))

    walk(build_parser(), ())
    return out


def _flags(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Option string -> action, for the options that take no value (the booleans)."""
    return {
        s: a
        for a in p._actions
        if a.nargs == 0 and not isinstance(a, argparse._HelpAction)
        for s in a.option_strings
        if s.startswith("--")
    }


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9.+-]{3,}", text.lower()) if w not in STOP}


PARSERS = _subparsers()


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_renders_every_boolean_with_its_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command.split(), "--help"])
    assert exit_.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag, action in _flags(PARSERS[command]).items():
        assert flag in shown
        assert action.help, f"{command} {flag} has no help"
        assert " ".join(action.help.split()) in shown, (command, flag)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_positive_and_negative_forms_each_read_right(command):
    """An option ``--X`` with a ``--no-X`` twin: ``--X``'s text says what the feature does
    (phrased positively, its default stated), and ``--no-X``'s text says what happens instead,
    about the same feature, not the positive text behind a "turn off:" prefix. One action with
    both forms (BooleanOptionalAction) prints one text: it must be the positive one."""
    flags = _flags(PARSERS[command])
    pairs = [f for f in flags if f.startswith("--no-") and "--" + f[5:] in flags]
    for no in pairs:
        yes = "--" + no[5:]
        on, off = flags[yes].help, flags[no].help
        assert not on.lower().startswith(NEGATIONS), (command, yes, on)
        assert re.search(r"\(default: (on|off)\)$", on), (command, yes, on)
        if flags[yes] is flags[no]:  # BooleanOptionalAction: one text for both forms
            continue
        assert off != on and on.split(" (default")[0] not in off, (command, no, off)
        feature = _words(on) | _words(yes.replace("-", " "))
        assert _words(off) & feature, f"{command} {no}: {off!r} does not name the feature"


def test_stated_defaults_are_the_config_defaults():
    """Oracle: the TrainConfig dataclass itself (the parser's defaults are None, for resume)."""
    booleans = {f.name: f.default for f in fields(TrainConfig) if f.type in ("bool", bool)}
    assert {"progress", "tensorboard", "plots", "channels_last"} <= set(booleans)
    for command in ("train", "finetune"):
        flags = _flags(PARSERS[command])
        for name, default in booleans.items():
            help_ = flags["--" + name.replace("_", "-")].help
            assert help_.endswith(f"(default: {'on' if default else 'off'})"), (command, name)
            assert "--no-" + name.replace("_", "-") in flags


def test_the_four_of_the_issue_say_what_they_do():
    flags = _flags(PARSERS["train"])
    assert "NCHW" in flags["--no-channels-last"].help
    assert "NHWC" in flags["--channels-last"].help
    assert "TensorBoard" in flags["--no-tensorboard"].help
    assert "curves.png" in flags["--no-plots"].help
    assert "summary" in flags["--no-progress"].help and "bar" in flags["--no-progress"].help


def test_a_lone_positive_flag_is_phrased_positively():
    """``--strict``, ``--download``, ``--force``, ``--fold-bn`` ...: no ``--no-`` twin, so the
    text is what the flag turns on."""
    for command, p in PARSERS.items():
        for flag, action in _flags(p).items():
            if not flag.startswith("--no-"):
                assert not action.help.lower().startswith(NEGATIONS), (command, flag)


def test_no_progress_keeps_the_epoch_summary_and_curves_name_the_run(tmp_path, capsys, monkeypatch):
    """A tiny run with --no-progress: one summary line per epoch, no tqdm bar on either stream;
    its curves.png is titled with the model and the data."""
    from cnnzoo.train import loop

    titles = []
    real = loop.plot_curves

    def recording(history, path, title=None):
        titles.append(title)
        return real(history, path, title=title)

    monkeypatch.setattr(loop, "plot_curves", recording)
    out = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "2", "--limit", "64"]
    argv += ["--threads", "1", "--no-progress", "--no-tensorboard", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    summaries = re.findall(r"^epoch +(\d)/2 .*train loss .* val loss .* img/s", captured.out, re.M)
    assert summaries == ["1", "2"]
    both = captured.out + captured.err
    assert "it/s" not in both and "\r" not in both  # tqdm's bar writes both
    assert titles == ["lenet5 on digits"] * 2 and (out / "curves.png").is_file()
