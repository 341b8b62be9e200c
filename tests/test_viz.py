"""Pictures: valid PNG files of the size the layout arithmetic says, with the right content,
titles that fit, keys and colours a reader can tell apart."""

import io
import struct

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.viz import (
    OTHER_CLASS,
    SAME_CLASS,
    confusion_figure,
    curves_figure,
    filters_figure,
    grid_shape,
    ink_colour,
    neighbors_figure,
    plot_activations,
    plot_filters,
    plot_neighbors,
)


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
    # query + 5 neighbours, 1.1 in tiles, a 0.5 in title band and a 0.3 in key band
    assert png_size(out) == (6 * 110, 2 * 110 + 50 + 30)
    out = plot_neighbors([img], [[img] * 5], tmp_path / "n.png")  # no labels: no frames, no key
    assert png_size(out) == (6 * 110, 110 + 50)


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


def _saved(fig):
    """``fig`` after a savefig with the settings of cnnzoo.viz (own dpi, no tight crop): the
    layout a reader of the PNG sees."""
    fig.savefig(io.BytesIO(), dpi=fig.dpi, format="png")
    return fig


def _inside(box, fig) -> bool:
    width, height = fig.bbox.width, fig.bbox.height
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height


def test_long_titles_of_narrow_grids_are_not_clipped():
    """LeNet-5's six 5x5 filters make a three-tile grid (300 px) whose default title is longer
    than that at 10 pt; the title is wrapped and shrunk, whole, inside the figure and above the
    tiles."""
    for model, title in [
        (cnnzoo.create_model("lenet5"), None),
        (nn.Sequential(nn.Conv2d(3, 2, 3)), "a very long title " * 4),
    ]:
        fig = _saved(filters_figure(model, title=title))
        text = fig._suptitle
        box = text.get_window_extent()
        assert _inside(box, fig), (box, fig.bbox)
        tiles_top = max(ax.get_window_extent().y1 for ax in fig.axes)
        assert box.y0 >= tiles_top
        expected = title or "features.0: 6 filters 5x5 (one input channel, filter scale)"
        assert text.get_text().split() == expected.split()  # every word kept
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_ink_is_light_on_dark_cells_and_dark_on_light_ones():
    """The colormap says which end is dark: its colour's lightness (HLS, colorsys) decides."""
    import colorsys

    from matplotlib import colormaps

    for name in ("Blues", "viridis", "gray", "gray_r", "magma"):
        cmap = colormaps[name]
        ends = sorted((0.0, 1.0), key=lambda v: colorsys.rgb_to_hls(*cmap(v)[:3])[1])
        dark, light = ends
        assert ink_colour(name, dark) == "white", name
        assert ink_colour(cmap, light) == "black", name


def _contrast(a, b) -> float:
    """WCAG 2 contrast ratio of two sRGB colours, from the standard's own formula."""

    def lum(c):
        r, g, b = (x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_confusion_picture_counts_accuracy_and_colour_bar():
    from matplotlib.colors import to_rgba

    confusion = [[90, 10, 0], [5, 95, 0], [20, 30, 50]]  # 235 of 300 right
    fig = _saved(confusion_figure(confusion, ["a", "b", "c"], title="lenet5 on digits (test)"))
    ax, bar = fig.axes  # the matrix and its colour bar
    assert bar.get_ylabel() == "share of the true class"
    assert ax.get_title().splitlines() == [
        "lenet5 on digits (test)",
        "accuracy 0.7833 (235 of 300 images)",
    ]
    image = ax.get_images()[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert set(texts) == {(i, j) for i, row in enumerate(confusion) for j, v in enumerate(row) if v}
    for (i, j), t in texts.items():
        assert t.get_text() == str(confusion[i][j])
        cell = image.cmap(image.norm(confusion[i][j] / sum(confusion[i])))
        ink = _contrast(to_rgba(t.get_color()), cell)
        other = _contrast(to_rgba("black" if t.get_color() == "white" else "white"), cell)
        assert ink >= other and ink >= 4.5, (i, j, t.get_color(), cell)  # WCAG AA for text
    assert texts[(1, 1)].get_color() == "white" and texts[(0, 1)].get_color() == "black"
    assert _inside(ax.title.get_window_extent(), fig)


def test_curves_carry_their_title_and_both_splits():
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 1 - 0.5 / e,
         "val_acc": 1 - 0.6 / e}
        for e in (1, 2, 3)
    ]  # fmt: skip
    fig = _saved(curves_figure(history, title="lenet5 on fashion-mnist"))
    assert fig._suptitle.get_text() == "lenet5 on fashion-mnist"
    assert _inside(fig._suptitle.get_window_extent(), fig)
    loss, acc = fig.axes
    assert [line.get_label() for line in acc.get_lines()] == ["train", "validation"]
    assert list(acc.get_lines()[1].get_ydata()) == [r["val_acc"] for r in history]


def test_neighbour_grid_has_a_key_to_its_frame_colours():
    from matplotlib.colors import same_color

    img = torch.rand(1, 16, 16)
    fig = _saved(neighbors_figure([img], [[img, img]], query_labels=[0], neighbour_labels=[[0, 1]]))
    legend = fig.legends[0]
    pairs = zip(legend.get_texts(), legend.legend_handles, strict=True)
    keyed = {t.get_text(): h.get_edgecolor() for t, h in pairs}
    same, other = fig.axes[1], fig.axes[2]  # neighbour of the query's class, of another
    assert same_color(same.spines["top"].get_edgecolor(), SAME_CLASS)
    assert same_color(other.spines["top"].get_edgecolor(), OTHER_CLASS)
    assert same_color(keyed["same class as the query"], SAME_CLASS)
    assert same_color(keyed["another class"], OTHER_CLASS)
    assert _inside(legend.get_window_extent(), fig)
    tiles_bottom = min(ax.get_window_extent().y0 for ax in fig.axes)
    assert legend.get_window_extent().y1 <= tiles_bottom  # below the tiles, covering none


def test_complexity_chart_colours_are_distinct_over_the_whole_zoo():
    """Every registered model with a published top-1 on one chart: no two bubbles alike."""
    from matplotlib.colors import to_hex

    from cnnzoo.compare import ComparisonRow, complexity_figure, distinct_colours, load_reference

    published = load_reference()["models"]
    names = [n for n in cnnzoo.list_models() if n in published]
    assert len(names) > 20  # more than tab20 has colours
    rows = [
        ComparisonRow(n, (3, 224, 224), 10**6 * (i + 1), 0, 10**8 * (i + 1), 0, 0, 1, False,
                      published[n]["top1"], None, None, None, None, None, None, False)
        for i, n in enumerate(names)
    ]  # fmt: skip
    fig, skipped = complexity_figure(rows)
    assert skipped == []
    bubbles = [c for c in fig.axes[0].collections if len(c.get_offsets())]
    colours = [to_hex(c.get_facecolor()[0], keep_alpha=False) for c in bubbles]
    assert len(colours) == len(names) and len(set(colours)) == len(names)
    for n in (1, 10, 11, 20, 21, 60):
        assert len({to_hex(c) for c in distinct_colours(n)}) == n


def test_pictures_get_the_mode_of_any_new_file(tmp_path):
    """Written beside the target and renamed, a picture still gets the umask's mode (a
    temporary file from mkstemp would leave it 0600, unlike every other file of the run)."""
    import os

    from cnnzoo.compare import plot_complexity

    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    mode = reference.stat().st_mode & 0o777
    plot_filters(cnnzoo.create_model("lenet5"), tmp_path / "f.png")
    from cnnzoo.compare import ComparisonRow

    row = ComparisonRow("a", (3, 224, 224), 10**6, 0, 10**8, 0, 0, 1, False, 70.0, None, None,
                        None, None, None, None, False)  # fmt: skip
    plot_complexity([row], tmp_path / "c.png")
    for name in ("f.png", "c.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert sorted(os.listdir(tmp_path)) == ["c.png", "f.png", "plain"]  # no temporary left
