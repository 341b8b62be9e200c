"""The one size parser and number formatter (lecture notation: height x width x depth)."""

import pytest

from cnnzoo.errors import CnnzooError
from cnnzoo.notation import format_short, format_size, image_hw, parse_size


@pytest.mark.parametrize(
    "text, chw, noted",
    [
        ("227x227x3", (3, 227, 227), False),  # the lecture's notation, depth last
        ("19x19x48", (48, 19, 19), False),  # AlphaGo's planes: more channels than pixels a side
        ("224x320x3", (3, 224, 320), False),
        ("3x227x227", (3, 227, 227), True),  # recognisably C x H x W: read so, and said so
        ("48x19x19", (48, 19, 19), True),
        ("1x28x320", (1, 28, 320), True),
        ("32", (3, 32, 32), False),
        ("28x28", (3, 28, 28), False),
    ],
)
def test_parse_size_reads_the_lecture_notation(text, chw, noted):
    size = parse_size(text)
    assert size.chw == chw
    assert (size.note is not None) == noted


def test_parse_size_fills_depth_from_the_model():
    assert parse_size("28", chans=1).chw == (1, 28, 28)
    assert parse_size("28x30", chans=1).chw == (1, 28, 30)


@pytest.mark.parametrize(
    "text", ["", "axb", "0x32x3", "-3x32x32", "1x2x3x4", "100000", "nan", "32x", "x32", "3x32x"]
)
def test_parse_size_refuses_with_the_option_name(text):
    with pytest.raises(CnnzooError, match="--img-size"):
        parse_size(text, option="--img-size")


def test_format_round_trip_and_short_numbers():
    assert format_size((96, 55, 55)) == "55x55x96"
    assert parse_size(format_size((96, 55, 55))).chw == (96, 55, 55)
    assert format_short(854_000_000) == "854M"
    assert format_short(150_528) == "151K"
    assert format_short(12) == "12"


def test_notation_does_not_import_torch():
    import ast
    import inspect

    import cnnzoo.errors
    import cnnzoo.notation

    for mod in (cnnzoo.notation, cnnzoo.errors):
        imported = {
            n.names[0].name if isinstance(n, ast.Import) else (n.module or "")
            for n in ast.walk(ast.parse(inspect.getsource(mod)))
            if isinstance(n, ast.Import | ast.ImportFrom)
        }
        assert not any(name.startswith("torch") for name in imported), (mod.__name__, imported)


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "lenet5", "--format", "json"],
        ["profile", "lenet5", "--repeats", "1", "--warmup", "0"],
        ["compare", "lenet5"],
        ["calc", "conv", "--filters", "6", "--kernel", "5"],
        ["explore", "lenet5", "--out", "{tmp}"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_size_option_reads_channels_first_as_such_in_one_line(argv, tmp_path, capsys):
    """summary, profile, compare, calc and explore read --input with the one parser: 32x32x1 as
    the lecture writes it, and 1x32x32 as the same size with one line saying so."""
    from cnnzoo.cli import main

    argv = [a.replace("{tmp}", str(tmp_path / "site")) for a in argv]
    assert main([*argv, "--input", "32x32x1"]) == 0
    lecture = capsys.readouterr()
    assert lecture.err == ""
    assert main([*argv, "--input", "1x32x32"]) == 0
    flipped = capsys.readouterr()
    assert flipped.err.count("\n") == 1
    assert "read as C x H x W" in flipped.err and "32x32x1" in flipped.err
    if argv[0] in ("summary", "compare", "calc"):  # the same answer (profile's are timings)
        assert flipped.out == lecture.out


def test_the_lecture_notation_is_height_width_depth_in_summary(capsys):
    # 227x227x3 is AlexNet's own input, not 227 channels of 227x3 (the misreading).
    import json

    from cnnzoo.cli import main

    assert main(["summary", "alexnet", "--input", "227x227x3", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input"] == [3, 227, 227]
    assert report["layers"][0]["output"] == [96, 55, 55]  # the lecture's 55x55x96 after CONV1


@pytest.mark.parametrize(
    ("value", "hw"),
    [(32, (32, 32)), ((28, 32), (28, 32)), ([28, 32], (28, 32)), ("24x20", (24, 20))],
)
def test_image_hw_takes_a_side_a_pair_or_text(value, hw):
    assert image_hw(value) == hw


@pytest.mark.parametrize("value", [0, -3, True, 32.0, (32,), (32, 0), (1, 2, 3), "32x", None])
def test_image_hw_refuses_with_the_value_given(value):
    with pytest.raises(CnnzooError, match="img_size"):
        image_hw(value)
