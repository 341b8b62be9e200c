"""The explorer's site without a browser: its data is `cnnzoo summary`'s JSON for every model of
the zoo, it loads nothing from the network, and it takes any module, a profile, and bad input.

The browser half (what the pages show and do) is tests/test_explore_browser.py.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
import cnnzoo.analysis
import cnnzoo.registry
from cnnzoo.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

_DATA = re.compile(r'<script type="application/json" id="page-data">(.*?)</script>', re.S)
# A page may link to a paper (<a href="https://...">) but must load nothing: no script, style,
# image or frame from a URL, no CSS import or url() of one.
_LOADS = [
    re.compile(
        r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*"
        r"\b(src|href|data)\s*=\s*[\"']?\s*(https?:)?//",
        re.I,
    ),  # fmt: skip
    re.compile(r"@import", re.I),
    re.compile(r"url\(\s*[\"']?\s*(https?:)?//", re.I),
    re.compile(r"\b(fetch|XMLHttpRequest|importScripts)\s*\(", re.I),
]


def page_data(path: Path) -> dict:
    """The JSON a page renders, read back out of the HTML file."""
    return json.loads(_DATA.search(path.read_text("utf-8")).group(1))


@pytest.fixture(scope="module")
def zoo_site(tmp_path_factory):
    """`cnnzoo explore --all` once for the module, with `cnnzoo summary`'s analyses shared.

    Building a model and analysing it are the slow parts (seconds for a deep network, even on
    the meta device), so each model is built once and each (model, size, batch) analysed once,
    and both commands get their own deep copy of the report: what a page holds must then be what
    `cnnzoo summary --format json` prints, whatever the explorer does with its copy. (Analysing
    twice would not do: FractalNet's training memory depends on the random joins its
    training-mode pass draws.)
    """
    analyze, create = cnnzoo.analysis.analyze, cnnzoo.registry.create_model
    reports: dict = {}

    models: dict = {}

    def create_once(name, num_classes=None, in_chans=None, device=None):
        key = (name, num_classes, in_chans, str(device))
        if key not in models:
            models[key] = create(name, num_classes=num_classes, in_chans=in_chans, device=device)
        return models[key]

    def analyze_once(model, input_size=(3, 224, 224), batch_size=1, dtype=torch.float32, name=None):
        key = (id(model), name, tuple(input_size), batch_size, dtype)
        if key not in reports:
            reports[key] = analyze(model, input_size, batch_size=batch_size, dtype=dtype, name=name)
        return copy.deepcopy(reports[key])

    mp = pytest.MonkeyPatch()
    mp.setattr(cnnzoo.analysis, "analyze", analyze_once)
    mp.setattr(cnnzoo.registry, "create_model", create_once)
    out = tmp_path_factory.mktemp("zoo")
    assert main(["explore", "--all", "--out", str(out)]) == 0
    yield out
    mp.undo()


def test_every_page_holds_the_summary_json(zoo_site, capsys):
    out = zoo_site
    names = cnnzoo.list_models()
    assert sorted(p.stem for p in out.glob("*.html")) == sorted([*names, "index", "compare"])
    capsys.readouterr()
    for name in names:
        assert main(["summary", name, "--format", "json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        page = page_data(out / f"{name}.html")
        assert page["report"]["layers"] == summary["layers"], name
        assert page["report"]["total"] == summary["total"], name
        assert page["report"]["input"] == summary["input"], name
        # the graph: one edge per tensor each row reads, from the rows the summary names
        edges = [(src, dst) for src, dst, _ in page["edges"]]
        assert edges == [(s, i) for i, r in enumerate(summary["layers"]) for s in r["inputs"]]


def test_index_lists_each_model_with_its_totals(zoo_site, capsys):
    out = zoo_site
    index = page_data(out / "index.html")
    rows = {r["name"]: r for r in index["models"]}
    assert sorted(rows) == cnnzoo.list_models()
    capsys.readouterr()
    for name in ("alexnet", "resnet50", "mobilenet_v1"):
        main(["summary", name, "--format", "json"])
        total = json.loads(capsys.readouterr().out)["total"]
        assert (rows[name]["params"], rows[name]["macs"]) == (total["params"], total["macs"])
        assert index["pages"][name] == f"{name}.html"


def test_no_page_loads_anything_from_the_network(zoo_site):
    out = zoo_site
    for path in out.glob("*.html"):
        text = path.read_text("utf-8")
        for pattern in _LOADS:
            hit = pattern.search(text)
            assert hit is None, (path.name, text[hit.start() - 60 : hit.end() + 60])


def test_comparison_page_cites_reference_figures(zoo_site):
    out = zoo_site
    ref = json.loads((Path(cnnzoo.__file__).parent / "resources/reference.json").read_text())
    text = (out / "compare.html").read_text("utf-8")
    chart = re.findall(r'<a href="([^"]+)" class="bubble" data-model="([^"]+)">', text)
    # a bubble for each model with a published top-1, linking to its page, and no other
    assert sorted(m for _, m in chart) == sorted(set(ref["models"]) & set(cnnzoo.list_models()))
    assert all(href == f"{m}.html" for href, m in chart)
    data = page_data(out / "compare.html")
    alex = next(r for r in data["models"] if r["name"] == "alexnet")
    assert alex["reference"]["top1"] == ref["models"]["alexnet"]["top1"]
    assert alex["reference"]["cite"] == ref["sources"]["krizhevsky2012"]["cite"]


def test_input_and_batch_are_summarys(tmp_path, capsys):
    """`explore --input HxWxC --batch N` analyses as `summary` does with the same options, and
    the training-memory breakdown is that batch's."""
    opts = ["--input", "160x160x3", "--batch", "4"]
    assert main(["explore", "resnet18", *opts, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["summary", "resnet18", *opts, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = page_data(tmp_path / "resnet18.html")
    assert page["report"]["input"] == summary["input"] == [3, 160, 160]
    assert page["report"]["layers"] == summary["layers"]
    assert page["report"]["total"] == summary["total"]
    assert page["memory"]["batch"] == 4
    assert page["memory"]["total"] == summary["total"]["training_bytes"]
    assert page["input_text"] == "160x160x3"


class Mine(nn.Module):
    """A user's own network: two branches concatenated, a residual add, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Conv2d(8, 4, 3, padding=1)
        self.head = nn.Linear(8 * 6 * 10, 5)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.flatten(torch.cat([self.left(x), self.right(x)], 1) + x, 1))


def test_any_module_gets_a_page(tmp_path):
    index = cnnzoo.explore(Mine(), input_size=(3, 6, 10), out=tmp_path)
    assert index == tmp_path / "index.html" and index.is_file()
    page = page_data(tmp_path / "Mine.html")
    layers = page["report"]["layers"]
    by_name = {r["name"]: i for i, r in enumerate(layers)}
    cat = by_name["cat"]
    # the concatenation reads both branches, each a 6x10 map of 4 channels (H x W x C)
    assert sorted(e for e in page["edges"] if e[1] == cat) == sorted(
        [[by_name["left"], cat, "6x10x4"], [by_name["right"], cat, "6x10x4"]]
    )
    assert [e for e in page["edges"] if e[1] == by_name["head"]] == [
        [by_name["add"], by_name["head"], "480"]
    ]
    assert page["report"]["total"]["params"] == sum(p.numel() for p in Mine().parameters())
    memory = dict(page["memory"]["parts"])
    assert sum(memory.values()) == page["memory"]["total"]  # the four parts make the whole
    assert page["image"].startswith("data:image/png;base64,")
    assert page["depth"] == 0  # five rows: every layer shown


def test_module_without_an_input_size_is_one_line(tmp_path):
    with pytest.raises(cnnzoo.CnnzooError, match="input size"):
        cnnzoo.explore(Mine(), out=tmp_path)


@pytest.mark.parametrize("given", [42, [Mine(), None]])
def test_something_that_is_no_model_is_one_line(tmp_path, given):
    """``explore(42)`` ended in "'int' object is not iterable"."""
    with pytest.raises(cnnzoo.CnnzooError, match="explore takes model names or nn.Modules, got"):
        cnnzoo.explore(given, input_size=(3, 8, 8), out=tmp_path / "site")
    assert not (tmp_path / "site").exists()


PROFILE = {  # the shape `cnnzoo profile lenet5 --format json` writes
    "model": "lenet5",
    "input_size": [1, 32, 32],
    "batch": 1,
    "train": False,
    "machine": "test machine",
    "rows": [
        {"row": 0, "module": "features.0", "forward_ms": 0.25, "forward_spread_ms": 0.01,
         "backward_ms": None, "backward_spread_ms": None, "gflops": 0.9, "bytes": 20000,
         "intensity": 45.0, "share": 0.5},
        {"row": 11, "module": "fc", "forward_ms": 0.05, "forward_spread_ms": 0.002,
         "backward_ms": None, "backward_spread_ms": None, "gflops": 0.03, "bytes": 3500,
         "intensity": 0.5, "share": 0.1},
    ],
    "outside_layers_ms": 0.1,
    "total_ms": 0.5,
}  # fmt: skip


def test_profile_times_land_on_their_rows(tmp_path):
    path = tmp_path / "lenet5.json"
    path.write_text(json.dumps(PROFILE))
    assert main(["explore", "lenet5", "--profile", str(path), "--out", str(tmp_path / "s")]) == 0
    page = page_data(tmp_path / "s" / "lenet5.html")
    times = page["profile"]["forward_ms"]
    assert len(times) == len(page["report"]["layers"])
    assert (times[0], times[11]) == (0.25, 0.05)
    assert times.count(None) == len(times) - 2
    assert page["profile"]["total_ms"] == 0.5


@pytest.mark.parametrize(
    "argv, says",
    [
        (["vgg16", "--profile", "PROFILE"], "not of this model"),
        (["lenet5", "alexnet", "--profile", "PROFILE"], "one model"),
        (["lenet5", "--profile", "MISSING"], "cannot read the profile"),
        ([], "or give --all"),
        (["lenet5", "--all"], "or give --all"),
        (["lenet", "--all"], "or give --all"),
        (["lenet"], "unknown model 'lenet'"),
        (["nomodel*"], "no model matches"),
        (["lenet5", "--input", "0x0"], "positive"),
        (["lenet5", "--batch", "0"], "--batch"),
        (["lenet5", "--pretrained"], "lenet5 has no published weights"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, says):
    (tmp_path / "p.json").write_text(json.dumps(PROFILE))
    subs = {"PROFILE": str(tmp_path / "p.json"), "MISSING": str(tmp_path / "none.json")}
    argv = [subs.get(a, a) for a in argv]
    try:
        code = main(["explore", *argv, "--out", str(tmp_path / "site")])
    except SystemExit as exit:  # argparse's own checks (--batch 0)
        code = exit.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert says in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_pages_list_the_published_weights_and_pretrained_takes_their_size(tmp_path):
    """The weights a page lists are the weight table's, in its order (the first is what
    pretrained=True loads); --pretrained analyses at the first one's input size (today every
    default equals the registry's size, so this checks the wiring) and refuses lenet5."""
    from cnnzoo.hub import published_weights, weights_table

    out = tmp_path / "s"
    assert main(["explore", "resnet50", "inception_v4", "lenet5", "--out", str(out)]) == 0
    page = page_data(out / "resnet50.html")
    table = weights_table()["resnet50"]
    assert [w["name"] for w in page["weights"]] == [f"resnet50.{e['tag']}" for e in table]
    assert page["weights"][0]["top1"] == published_weights("resnet50")["top1"]
    assert page["weights"][0]["where"].endswith(published_weights("resnet50")["file_name"])
    assert page_data(out / "inception_v4.html")["weights"][0]["interpolation"] == "bicubic"
    assert page_data(out / "lenet5.html")["weights"] == []
    pre = tmp_path / "p"
    assert main(["explore", "inception_v4", "--pretrained", "--out", str(pre)]) == 0
    size = published_weights("inception_v4")["input_size"]
    assert page_data(pre / "inception_v4.html")["report"]["input"] == size


def test_data_cannot_close_its_script_block(tmp_path):
    """A module named with "</script>" must not end the page's JSON early."""

    class Evil(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module("x</script><b>", nn.Conv2d(1, 2, 3))

        def forward(self, x):
            return getattr(self, "x</script><b>")(x)

    cnnzoo.explore(Evil(), input_size=(1, 5, 5), out=tmp_path)
    text = (tmp_path / "Evil.html").read_text("utf-8")
    assert text.count("</script>") == 3  # the data, the layout engine, the page's script
    assert page_data(tmp_path / "Evil.html")["report"]["layers"][0]["name"] == "x</script><b>"


def test_a_site_is_not_written_over_someones_own_files(tmp_path, capsys):
    """``--out .`` in a folder with its own index.html: one line, status 2, the file as it was
    and nothing else written. The explorer's own pages are replaced, so a site is rewritten in
    place, pages from before the generator line included."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<h1>my own page</h1>\n")
    assert main(["explore", "lenet5", "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{mine / 'index.html'} exists and is not a page of cnnzoo's explorer" in err
    assert len(err.splitlines()) == 1
    assert [p.name for p in mine.iterdir()] == ["index.html"]
    assert (mine / "index.html").read_text() == "<h1>my own page</h1>\n"

    site = tmp_path / "site"
    assert main(["explore", "lenet5", "alexnet", "--out", str(site)]) == 0
    older = (
        (site / "lenet5.html")
        .read_text()
        .replace('<meta name="generator" content="cnnzoo explore">\n', "")
    )
    (site / "lenet5.html").write_text(older)  # as written before pages named their generator
    assert main(["explore", "lenet5", "alexnet", "--out", str(site)]) == 0
    assert '<meta name="generator" content="cnnzoo explore">' in (site / "lenet5.html").read_text()
