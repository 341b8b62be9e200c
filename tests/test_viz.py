"""Pictures: valid PNG files of the size the layout arithmetic says, with the right content."""

import struct

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.viz import grid_shape, plot_activations, plot_filters, plot_neighbors


def png_size(path) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk (the first chunk of any PNG)."""
    with open(path, "rb") as f:
        data = f.read(33)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def test_grid_shapes():
    assert grid_shape(96) == (8, 12)  # the AlexNet conv1 picture: 8 rows of 12
    assert grid_shape(64) == (8, 8)
    assert grid_shape(6) == (2, 3)
    assert grid_shape(7) == (3, 3)  # prime: near-square, two tiles left empty


def test_alexnet_like_filters_png(tmp_path):
    conv = nn.Conv2d(3, 96, 11, stride=4)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0  # filter 0: pure red; filter 1: pure blue
        conv.weight[1, 2] = 1.0
    out = plot_filters(nn.Sequential(conv), tmp_path / "f.png", scale="global")
    # 8 x 12 tiles of min(1, 9/12) = 0.75 in at 100 dpi, plus a 0.5 in title band
    assert png_size(out) == (12 * 75, 8 * 75 + 50)
    import matplotlib.image as mpimg

    img = mpimg.imread(out)  # H x W x 4 floats
    centre = lambda row, col: img[50 + int((row + 0.5) * 75), int((col + 0.5) * 75)]  # noqa: E731
    r, g, b = centre(0, 0)[:3]
    assert r > 0.9 and g < 0.1 and b < 0.1  # channel 0 is drawn as red
    r, g, b = centre(0, 1)[:3]
    assert b > 0.9 and r < 0.1 and g < 0.1


def test_lenet_filters_png(tmp_path):
    out = plot_filters(cnnzoo.create_model("lenet5"), tmp_path / "f.png")
    assert png_size(out) == (3 * 100, 2 * 100 + 50)  # 6 filters: 2 x 3 tiles of 1 in


def test_activations_png(tmp_path):
    model = cnnzoo.create_model("lenet5")
    out = plot_activations(model, torch.randn(1, 32, 32), tmp_path / "a.png")
    # input + 6 maps of C1 = 7 tiles -> 3 x 3 of min(1.4, 12/3) = 1.4 in
    assert png_size(out) == (3 * 140, 3 * 140 + 50)
    out = plot_activations(model, torch.randn(1, 32, 32), tmp_path / "b.png", layer="features.3",
                           max_maps=8)  # fmt: skip
    assert png_size(out) == (3 * 140, 3 * 140 + 50)  # input + 8 of C3's 16 maps = 9 tiles


def test_activations_refuse_a_vector_layer(tmp_path):
    model = cnnzoo.create_model("lenet5")
    with pytest.raises(cnnzoo.CnnzooError, match="not C x H x W maps"):
        plot_activations(model, torch.randn(1, 32, 32), tmp_path / "a.png", layer="fc")


def test_neighbors_png(tmp_path):
    img = torch.rand(1, 16, 16)
    out = plot_neighbors([img, img], [[img] * 5, [img] * 4], tmp_path / "n.png",
                         distances=torch.rand(2, 5), query_labels=[0, 1],
                         neighbour_labels=[[0, 1, 0, 0, 0], [1, 1, 1, 0]])  # fmt: skip
    assert png_size(out) == (6 * 110, 2 * 110 + 50)  # query + 5 neighbours, 1.1 in tiles


def test_cli_viz(tmp_path, capsys):
    from PIL import Image

    picture = tmp_path / "shirt.png"
    Image.new("L", (28, 28), 128).save(picture)
    assert main(["viz", "filters", "lenet5", "--out", str(tmp_path / "f.png")]) == 0
    assert png_size(tmp_path / "f.png") == (300, 250)
    argv = ["viz", "activations", "lenet5", str(picture), "--out", str(tmp_path / "a.png")]
    assert main(argv) == 0
    assert png_size(tmp_path / "a.png") == (420, 470)
    capsys.readouterr()
    assert main(["viz", "activations", "lenet5", str(tmp_path / "none.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert (
        main(["viz", "filters", "lenet5", "--layer", "fc", "--out", str(tmp_path / "x.png")]) == 2
    )
    assert "not a Conv2d" in capsys.readouterr().err
