"""The explorer's pages in a real browser (headless Chromium through Selenium), from file://.

The oracles are the lecture's figures written out here (AlexNet's table, GoogLeNet's Table 1, the
receptive-field recurrence) and the browser's own geometry (what is drawn, where, how large).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

import cnnzoo

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chrome(width: int = 1600, height: int = 1000):
    """Headless Chromium logging the console, or a skip saying what is missing."""
    if not Path(CHROMIUM).exists() or not Path(DRIVER).exists():
        pytest.skip("no Chromium or chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(DRIVER))
    except WebDriverException as err:
        pytest.skip(f"Chromium does not start here: {err.msg.splitlines()[0]}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    cnnzoo.explore(["alexnet", "googlenet", "vgg16", "resnet18"], out=out)
    return out


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def open_page(browser, path: Path):
    browser.get(path.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready")
    )
    return browser


def row_cells(browser, module: str) -> dict[str, str]:
    """The layer table's row of ``module`` as {column title: text}."""
    heads = [
        e.get_attribute("textContent")
        for e in browser.find_elements(By.CSS_SELECTOR, "#layers .head .cell")
    ]
    for row in browser.find_elements(By.CSS_SELECTOR, "#layers .rows .row"):
        cells = [
            c.get_attribute("textContent") for c in row.find_elements(By.CSS_SELECTOR, ".cell")
        ]
        if cells[heads.index("module")] == module:
            return dict(zip(heads, cells, strict=True))
    raise AssertionError(f"no row {module}")


def test_pages_log_no_console_errors(site, browser):
    for name in ("index", "compare", "alexnet", "googlenet", "resnet18"):
        open_page(browser, site / f"{name}.html")
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], (name, errors)


def test_alexnet_table_is_the_lecture(site, browser):
    open_page(browser, site / "alexnet.html")
    conv1 = row_cells(browser, "features.0")
    assert (conv1["layer"], conv1["output"], conv1["params"]) == ("CONV1", "55x55x96", "34,944")
    assert conv1["formula"] == "(11*11*3+1)*96"
    pool1 = row_cells(browser, "features.2")
    assert (pool1["layer"], pool1["output"], pool1["params"]) == ("MAX POOL1", "27x27x96", "0")
    fc8 = row_cells(browser, "classifier.6")
    assert (fc8["output"], fc8["params"]) == ("1000", "4,097,000")  # (4096+1)*1000
    totals = browser.find_element(By.ID, "totals").text
    assert "TOTAL params: 62,378,344" in totals


def test_table_sorts_and_filters(site, browser):
    open_page(browser, site / "alexnet.html")
    heads = browser.find_elements(By.CSS_SELECTOR, "#layers .head .cell")
    next(h for h in heads if h.text == "params").click()  # largest first
    first = browser.find_element(By.CSS_SELECTOR, "#layers .rows .row")
    assert "classifier.1" in first.get_attribute("textContent")  # FC6: 37.7M, the largest
    box = browser.find_element(By.CSS_SELECTOR, "main input[type=search]")
    box.send_keys("conv2d")
    rows = browser.find_elements(By.CSS_SELECTOR, "#layers .rows .row")
    assert len(rows) == 5  # AlexNet's five CONV layers


def test_clicking_conv1_in_the_graph_selects_its_row(site, browser):
    open_page(browser, site / "alexnet.html")
    node = next(n for n in browser.find_elements(By.CSS_SELECTOR, "#graph .node")
                if "features.0" in n.get_attribute("textContent"))  # fmt: skip
    assert "CONV1" in node.get_attribute("textContent")
    browser.find_element(By.ID, "rf-layer")  # the page is built
    Select(browser.find_element(By.ID, "rf-layer")).select_by_index(5)  # select another row first
    node.click()
    selected = browser.find_elements(By.CSS_SELECTOR, "#layers .rows .row.sel")
    assert [r.get_attribute("data-i") for r in selected] == ["0"]
    assert "sel" in node.get_attribute("class")
    assert "55x55x96" in browser.find_element(By.ID, "details").text


def test_keyboard_reaches_rows_and_nodes(site, browser):
    open_page(browser, site / "alexnet.html")
    row = browser.find_elements(By.CSS_SELECTOR, "#layers .rows .row")[4]  # CONV2
    assert row.get_attribute("tabindex") == "0"
    row.send_keys(Keys.ENTER)
    assert "sel" in row.get_attribute("class")
    node = next(n for n in browser.find_elements(By.CSS_SELECTOR, "#graph .node")
                if "features.12" in n.get_attribute("textContent"))  # fmt: skip
    node.send_keys(Keys.ENTER)
    sel = browser.find_element(By.CSS_SELECTOR, "#layers .rows .row.sel")
    assert "features.12" in sel.get_attribute("textContent")


def test_a_rows_texts_share_one_baseline(site, browser):
    """The formula's smaller monospace sits on the row's line, not above it: each cell's
    baseline, found with an empty inline-block (its bottom edge is the baseline), is the row's."""
    open_page(browser, site / "alexnet.html")
    baselines = browser.execute_script(
        "return [...document.querySelectorAll('#layers .rows .row')].slice(0, 6).map(r => "
        "[...r.children].map(c => { const m = document.createElement('span');"
        "m.style.cssText = 'display:inline-block;width:0;height:0'; c.append(m);"
        "const y = m.getBoundingClientRect().bottom; m.remove(); return y; }));"
    )
    for row in baselines:
        assert max(row) - min(row) < 0.5, row


def test_the_filter_box_shows_its_whole_hint(site, browser):
    """The filter's placeholder (what one may type) is not cut off: its text, measured in the
    box's own font, fits inside the box's padding."""
    open_page(browser, site / "alexnet.html")
    room, text = browser.execute_script(
        "const i = document.querySelector('main input[type=search]'), st = getComputedStyle(i);"
        "const c = document.createElement('canvas').getContext('2d'); c.font = st.font;"
        "return [i.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight),"
        "c.measureText(i.placeholder).width];"
    )
    assert text <= room, (text, room)


def test_a_scrolled_table_keeps_each_rows_label_in_view(site):
    """At a projector's 1280x800 GoogLeNet's table is wider than the page; scrolled to its last
    column (stride), each row still shows its number and lecture label, on top of the cells that
    scrolled under them."""
    driver = chrome(1280, 800)
    try:
        open_page(driver, site / "googlenet.html")
        box = driver.execute_script(
            "const box = document.querySelector('#layers').parentElement;"
            "box.scrollIntoView(); box.scrollLeft = box.scrollWidth; return box;"
        )
        strips = driver.execute_script(  # x of a pinned and of a scrolled cell's left padding
            "const row = document.querySelectorAll('#layers .rows .row')[1];"
            "const edge = arguments[0].getBoundingClientRect();"
            "return [row.children[0].getBoundingClientRect().left + 3,"
            "row.children[4].getBoundingClientRect().left + 3, edge.top + 40, edge.bottom - 20];",
            box,
        )
        shot = driver.get_screenshot_as_png()
        seen = driver.execute_async_script(  # two frames on: the rows scrolled to are drawn
            "const box = arguments[0], done = arguments[1];"
            "requestAnimationFrame(() => requestAnimationFrame(() => {"
            "const wide = box.scrollWidth > box.clientWidth, edge = box.getBoundingClientRect();"
            "const row = document.querySelectorAll('#layers .rows .row')[0];"
            "const last = row.lastElementChild.getBoundingClientRect();"
            "done([wide, last.right <= edge.right + 1, ...[0, 1].map(k => {"
            "const b = row.children[k].getBoundingClientRect();"
            "const hit = document.elementFromPoint(b.left + 4, (b.top + b.bottom) / 2);"
            "return [b.left >= edge.left - 1, row.children[k].contains(hit)]; })]); }));",
            box,
        )
    finally:
        driver.quit()
    wide, last_shown, number, label = seen
    assert wide and last_shown  # the table did scroll, to its last column
    assert number == [True, True] and label == [True, True]
    # the rows' borders run on under the pinned cells: the pixels down a pinned cell's padding
    # are those down a scrolled cell's (an unpinned cell's padding holds only the borders)
    from PIL import Image

    image = Image.open(io.BytesIO(shot)).convert("RGB")
    x_pin, x_cell, top, bottom = (round(v) for v in strips)
    column = [[image.getpixel((x, y)) for y in range(top, bottom)] for x in (x_pin, x_cell)]
    assert len(set(column[1])) > 1  # borders and background, not one colour
    assert column[0] == column[1]


def _rf(layers):
    """Receptive field of stacked (kernel, stride) layers: r += (k - 1) * jump; jump *= s."""
    r, jump = 1, 1
    for k, s in layers:
        r, jump = r + (k - 1) * jump, jump * s
    return r, jump


def test_receptive_field_square_is_the_analyzers_size(site, browser):
    open_page(browser, site / "alexnet.html")
    # AlexNet to its last pool: conv11/4, pool3/2, conv5, pool3/2, conv3 x3, pool3/2
    rf, jump = _rf([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)])
    assert (rf, jump) == (195, 32)
    Select(browser.find_element(By.ID, "rf-zoom")).select_by_value("1")
    options = Select(browser.find_element(By.ID, "rf-layer"))
    options.select_by_visible_text("15 MAX POOL3 features.14")
    square = browser.find_element(By.ID, "rf-square")
    assert square.get_attribute("width") == str(rf)
    image = browser.execute_script(
        "return document.querySelector('#rf-svg image').getBoundingClientRect().width"
    )
    drawn = browser.execute_script("return arguments[0].getBoundingClientRect().width", square)
    assert image == 227 and drawn == pytest.approx(rf, abs=0.5)  # one page pixel per input pixel
    caption = browser.find_element(By.ID, "rf-caption").text
    assert f"{rf}x{rf}" in caption and f"{jump} pixels apart" in caption
    # the table row of the layer is selected with it
    assert "features.14" in browser.find_element(By.CSS_SELECTOR, ".rows .row.sel").text


def test_googlenet_shows_inception3a_concatenating_four_branches(site, browser):
    open_page(browser, site / "googlenet.html")
    cat = next(n for n in browser.find_elements(By.CSS_SELECTOR, "#graph .node")
               if "inception3a.cat" in n.get_attribute("textContent"))  # fmt: skip
    assert "28x28x256" in cat.get_attribute("textContent")  # 64 + 128 + 32 + 32 channels
    node_id = cat.get_attribute("id").removeprefix("node-")
    into = browser.find_elements(By.CSS_SELECTOR, f'#graph .edge[data-to="{node_id}"]')
    # GoogLeNet's Table 1, inception (3a) at 28x28: #1x1 64, #3x3 128, #5x5 32, pool proj 32
    shapes = sorted(e.get_attribute("textContent") for e in into)
    assert shapes == sorted(["28x28x64", "28x28x128", "28x28x32", "28x28x32"])
    sources = [e.get_attribute("data-from") for e in into]
    texts = [browser.find_element(By.ID, f"node-{s}").get_attribute("textContent") for s in sources]
    for k in range(1, 5):
        assert sum(f"inception3a.branch{k}" in t for t in texts) == 1, texts


def test_a_module_opens_on_click(site, browser):
    open_page(browser, site / "googlenet.html")
    before = len(browser.find_elements(By.CSS_SELECTOR, "#graph .node"))
    group = browser.find_element(By.CSS_SELECTOR, "#graph .node.group")
    name = group.find_element(By.CSS_SELECTOR, ".l1").get_attribute("textContent")
    group.click()
    nodes = browser.find_elements(By.CSS_SELECTOR, "#graph .node")
    assert len(nodes) > before
    assert not any(n.find_element(By.CSS_SELECTOR, ".l1").get_attribute("textContent") == name
                   for n in nodes if "group" in n.get_attribute("class"))  # fmt: skip


def _boxes(browser, selector: str) -> list[tuple[float, float, float, float]]:
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => {"
        "const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; })",
        selector,
    )


def _overlapping(a: list, b: list) -> list:
    return [
        (p, q) for i, p in enumerate(a) for j, q in enumerate(b) if (a is not b or i < j)
        and p[0] < q[2] - 0.5 and q[0] < p[2] - 0.5 and p[1] < q[3] - 0.5 and q[1] < p[3] - 0.5
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["googlenet", "resnet18"])
def test_graph_labels_overlap_nothing(site, browser, name):
    open_page(browser, site / f"{name}.html")
    Select(browser.find_element(By.ID, "depth")).select_by_value("0")  # every layer: the densest
    labels = _boxes(browser, "#graph .edge rect")
    nodes = _boxes(browser, "#graph .node rect")
    assert len(labels) > 50
    assert _overlapping(labels, labels) == [] and _overlapping(labels, nodes) == []
    assert _overlapping(nodes, nodes) == []


def test_complexity_chart_labels_overlap_nothing(site, browser):
    open_page(browser, site / "compare.html")
    bubbles = browser.find_elements(By.CSS_SELECTOR, "svg.chart a.bubble")
    assert sorted(b.get_attribute("data-model") for b in bubbles) == [
        "alexnet", "googlenet", "resnet18", "vgg16"
    ]  # fmt: skip
    labels = _boxes(browser, "svg.chart a.bubble text")
    assert _overlapping(labels, labels) == []
    vgg = browser.find_element(By.CSS_SELECTOR, 'svg.chart a[data-model="vgg16"]')
    assert vgg.get_dom_attribute("href") == "vgg16.html"


def test_theme_toggle_switches_light_and_dark(site, browser):
    open_page(browser, site / "alexnet.html")
    colour = "return getComputedStyle(document.body).backgroundColor"
    first = browser.execute_script(colour)
    browser.find_element(By.ID, "theme").click()
    second = browser.execute_script(colour)
    browser.find_element(By.ID, "theme").click()
    assert first != second and browser.execute_script(colour) == first


def test_screenshot_is_not_blank(site, browser):
    from PIL import Image, ImageStat

    open_page(browser, site / "googlenet.html")
    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L")
    stat = ImageStat.Stat(image)
    assert stat.stddev[0] > 20  # text, boxes and a picture, not one flat colour
    hist = image.histogram()
    assert max(hist) < 0.9 * sum(hist)


def test_the_table_is_the_summary_row_for_row(site, browser, capsys):
    """Every row of `cnnzoo summary alexnet --format json`, in its order, with its figures."""
    import json

    from cnnzoo.cli import main

    capsys.readouterr()
    assert main(["summary", "alexnet", "--format", "json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    open_page(browser, site / "alexnet.html")
    shown = browser.execute_script(
        "const heads = [...document.querySelectorAll('#layers .head .cell')]"
        ".map(c => c.textContent);"
        "return [...document.querySelectorAll('#layers .rows .row')].map(r => Object.fromEntries("
        "[...r.children].map((c, k) => [heads[k], c.textContent])));"
    )
    assert [r["module"] for r in shown] == [r["name"] for r in layers]
    for row, r in zip(shown, layers, strict=True):
        assert row["params"] == f"{r['params']:,}" and row["MACs"] == f"{r['macs']:,}", row
        assert (row["RF"], row["stride"]) == (str(r["rf"]), str(r["stride"])), row
        c, *hw = r["output"]  # C, H, W in the JSON; the notes write H x W x C
        assert row["output"] == "x".join(map(str, [*hw, c])), row


def _bar_widths(browser, column: str) -> list[float]:
    """The drawn width (% of the cell) of each row's bar in ``column``."""
    return browser.execute_script(
        "const k = [...document.querySelectorAll('#layers .head .cell')]"
        ".findIndex(c => c.textContent === arguments[0]);"
        "return [...document.querySelectorAll('#layers .rows .row')].map(r => "
        "parseFloat(getComputedStyle(r.children[k]).getPropertyValue('--w')));",
        column,
    )


def test_bars_show_memory_early_and_parameters_late(site, browser):
    """VGG16 as the notes put it: most memory in the early CONV layers (224x224x64 maps), most
    parameters in the first FC layer (7*7*512*4096 + 4096 = 102,764,544)."""
    open_page(browser, site / "vgg16.html")
    rows = browser.execute_script(  # type, output, params of each row
        "return [...document.querySelectorAll('#layers .rows .row')].map(r => "
        "[r.children[3].textContent, r.children[4].textContent, r.children[6].textContent])"
    )
    params, memory = _bar_widths(browser, "params"), _bar_widths(browser, "memory")
    first_fc = next(i for i, (kind, _, _) in enumerate(rows) if kind == "Linear")
    assert [i for i, w in enumerate(params) if w == 100] == [first_fc]
    assert {rows[i][1] for i, w in enumerate(memory) if w == 100} == {"224x224x64"}
    largest = int(rows[first_fc][2].replace(",", ""))
    assert largest == 7 * 7 * 512 * 4096 + 4096
    for (_, _, p), w in zip(rows, params, strict=True):  # each bar to scale
        assert w == pytest.approx(100 * int(p.replace(",", "")) / largest, abs=0.06), p


@pytest.fixture(scope="module")
def branch_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("branches")
    cnnzoo.explore(["se_resnet50", "fractalnet20"], out=out)
    return out


def _line(element, selector: str) -> str:
    return element.find_element(By.CSS_SELECTOR, selector).get_attribute("textContent")


def _into(browser, module: str) -> list[tuple[str, str]]:
    """(module of the source node, edge label) of each edge into the node of ``module``, with
    the graph showing every layer."""
    Select(browser.find_element(By.ID, "depth")).select_by_value("0")
    nodes = browser.find_elements(By.CSS_SELECTOR, "#graph .node")
    node = next(n for n in nodes if _line(n, ".l2") == module)
    node_id = node.get_attribute("id").removeprefix("node-")
    into = browser.find_elements(By.CSS_SELECTOR, f'#graph .edge[data-to="{node_id}"]')
    return sorted(
        (
            browser.find_element(By.ID, "node-" + e.get_attribute("data-from"))
            .find_element(By.CSS_SELECTOR, ".l2")
            .get_attribute("textContent"),
            e.get_attribute("textContent"),
        )
        for e in into
    )


def test_residual_add_is_drawn_as_a_branch(site, browser):
    """ResNet-18's first block: the add reads its residual branch and the block's input, the
    max pool's 56x56x64 (He et al. 2015, Table 1: conv2_x at 56x56, 64 channels)."""
    open_page(browser, site / "resnet18.html")
    (branch, a), (shortcut, b) = _into(browser, "layer1.0.add")
    assert branch.startswith("layer1.0.") and shortcut == "maxpool"
    assert a == b == "56x56x64"


def test_squeeze_excitation_rescale_is_drawn_as_a_branch(branch_site, browser):
    """SE-ResNet-50's first block: the rescale multiplies the 56x56x256 map (64 * expansion 4)
    by the 1x1x256 gate of the excitation's sigmoid (Hu et al. 2018, Fig. 3)."""
    open_page(browser, branch_site / "se_resnet50.html")
    into = _into(browser, "layer1.0.se.mul")
    assert sorted(shape for _, shape in into) == ["1x1x256", "56x56x256"]
    gate = next(src for src, shape in into if shape == "1x1x256")
    assert gate.startswith("layer1.0.se.")


def test_fractal_joins_are_drawn_as_branches(branch_site, browser):
    """FractalNet-20 (Larsson et al. 2017): 5 blocks of C = 3 columns (2^(C-1) = 4 convolutions
    deep); the first block's last join meets all three columns at 32x32x64, its inner join two."""
    open_page(browser, branch_site / "fractalnet20.html")
    joins = browser.execute_script(
        "return [...document.querySelectorAll('#layers .rows .row')].map(r => "
        "r.children[2].textContent).filter(m => m.startsWith('blocks.0.') && "
        "(m.endsWith('.stack') || m.includes('.stack#')))"
    )
    counts = sorted(len(_into(browser, j)) for j in joins)
    assert counts == [2, 3]
    for j in joins:
        assert {shape for _, shape in _into(browser, j)} == {"32x32x64"}


@pytest.fixture(scope="module")
def profiled_site(tmp_path_factory) -> tuple[Path, dict]:
    """LeNet-5 timed by `cnnzoo.profile` (a few repeats) and explored with that profile."""
    model = cnnzoo.create_model("lenet5")
    measured = cnnzoo.profile(model, (1, 32, 32), repeats=2, warmup=1, name="lenet5").to_dict()
    out = tmp_path_factory.mktemp("profiled")
    cnnzoo.explore("lenet5", out=out, profile=measured)
    return out, measured


def test_measured_time_column_shows_the_profile(profiled_site, site, browser):
    out, measured = profiled_site
    open_page(browser, out / "lenet5.html")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    times = {r["row"]: r["forward_ms"] for r in measured["rows"]}
    shown = browser.execute_script(
        "const k = [...document.querySelectorAll('#layers .head .cell')]"
        ".findIndex(c => c.textContent === 'forward ms');"
        "return k < 0 ? null : [...document.querySelectorAll('#layers .rows .row')]"
        ".map(r => [Number(r.dataset.i), r.children[k].textContent]);"
    )
    assert shown is not None, "no measured-time column"
    assert len(times) > 5
    for i, text in shown:
        assert text == (f"{times[i]:.3f}" if times.get(i) is not None else ""), i
    assert (
        f"total {measured['total_ms']} ms"
        in browser.find_element(By.ID, "layers").find_element(By.XPATH, "ancestor::section").text
    )
    open_page(browser, site / "alexnet.html")  # without a profile: no such column
    heads = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#layers .head .cell")]
    assert "forward ms" not in heads


def test_without_a_browser_the_tests_skip_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(globals(), "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.skip.Exception) as info:
        chrome()
    assert len(str(info.value.msg).splitlines()) == 1 and "chromium" in info.value.msg.lower()
