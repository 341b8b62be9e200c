"""Numbers are checked where the command line parses them, and usage errors are one line."""

import argparse

import pytest

from cnnzoo.cli import main
from cnnzoo.cli._args import (
    fraction,
    nonneg_float,
    nonneg_int,
    open_fraction,
    positive_float,
    positive_int,
)


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (positive_int, ["1", "64"], ["0", "-1", "1.5", "nan", "x"]),
        (nonneg_int, ["0", "3"], ["-1", "inf"]),
        (positive_float, ["1e-3", "2"], ["0", "-0.1", "nan", "inf", "-inf", "1e999"]),
        (nonneg_float, ["0", "0.5"], ["-1e-9", "nan"]),
        (fraction, ["0", "0.1", "1"], ["1.01", "-0.1", "nan"]),
        (open_fraction, ["0.02", "0.999"], ["0", "1", "-0.1", "nan"]),
    ],
)
def test_number_types(kind, good, bad):
    for text in good:
        assert kind(text) == type(kind(text))(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            kind(text)


def test_usage_error_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summary"])  # the model name is missing
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and "--help" in err


@pytest.mark.parametrize(
    "argv, says",
    [
        # train names the input size --img-size, summary --input: each points at its own
        (["summary", "resnet18", "--img-size", "100"], "did you mean --input for --img-size?"),
        (["train", "lenet5", "--data", "digits", "--input", "28"], "did you mean --img-size"),
        (["summary", "resnet18", "--formt", "json"], "did you mean --format for --formt?"),
        (["show", "resnet18", "stray"], "unrecognized arguments: stray ("),
        (["demo", "--bogus"], "unrecognized arguments: --bogus ("),  # nothing close: no guess
        # a nested command answers itself, with its own options
        (
            [
                "calc",
                "conv",
                "--input",
                "5x5x3",
                "--filters",
                "2",
                "--kernel",
                "3",
                "--stirde",
                "1",
            ],
            "did you mean --stride for --stirde? (see `cnnzoo calc conv --help`)",
        ),
    ],
)
def test_unknown_argument_is_named_by_its_command_with_the_closest_option(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    command = " ".join(argv[:2]) if argv[0] == "calc" else argv[0]
    assert err.startswith(f"cnnzoo {command}: error: unrecognized arguments: ")
    assert says in err and f"(see `cnnzoo {command} --help`)" in err


def test_demo_refuses_data_it_does_not_train_on(capsys):
    """``cnnzoo demo --data mnist`` trained on scikit-learn's digits without a word."""
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--data", "mnist"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'mnist' (choose from 'fashion-mnist'" in err
