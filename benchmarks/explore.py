"""The explorer: how long `cnnzoo explore --all` takes, how heavy and how fast its largest page is.

Targets (issue 16): the whole zoo in under 2 minutes; the inception_resnet_v2 page under 3 MB,
loaded and rendered in headless Chromium in under 1 s. Render time is the page's own clock
(``performance.now()`` from navigation start) when its script marks ``data-ready``: after the
table is built and the graph laid out, once the first frame is drawn. A full run also takes the
screenshots of docs/explorer.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Section

ROOT = Path(__file__).resolve().parents[1]
BIG = "inception_resnet_v2"
TITLE = "Explorer: site build, page weight and render time"


def _chrome():
    """Headless Chromium through Selenium, or None where either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    driver = shutil.which("chromedriver")
    if driver is None:
        return None
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver))


def _load_ms(driver, page: Path) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.body.dataset.ready")
    )
    return float(driver.execute_script("return document.body.dataset.ready"))


def _screenshots(driver, site: Path) -> list[str]:
    """The pictures of docs/explorer.md and the README, taken from the site just built at a
    projector's 1280x800 (WXGA): the graph and the table in the light theme, the comparison
    page in the dark one."""
    img = ROOT / "docs" / "img"
    driver.set_window_size(1280, 800)
    _load_ms(driver, site / "googlenet.html")
    driver.execute_script(
        "const n = [...document.querySelectorAll('#graph .node')]"
        ".find(e => e.textContent.includes('inception3a.cat'));"
        "n.dispatchEvent(new MouseEvent('click', {bubbles: true}));"
        "document.querySelector('.two').scrollIntoView();"
        "const g = document.getElementById('graph');"
        "g.scrollTop += n.getBoundingClientRect().top - g.getBoundingClientRect().top - 300;"
        "g.scrollLeft += n.getBoundingClientRect().left - g.getBoundingClientRect().left"
        " - (g.clientWidth - n.getBoundingClientRect().width) / 2;"  # the node in the middle
    )
    driver.save_screenshot(str(img / "explorer-graph.png"))
    _load_ms(driver, site / "alexnet.html")
    driver.execute_script(
        "const s = document.getElementById('rf-layer'); s.value = '14';"
        "s.dispatchEvent(new Event('change'));"
        "document.querySelector('#layers').closest('section').scrollIntoView();"
        "const box = document.querySelector('#layers').parentElement;"
        "box.scrollLeft = box.scrollWidth;"  # to RF and stride, the first columns pinned
    )
    driver.save_screenshot(str(img / "explorer-table.png"))
    _load_ms(driver, site / "compare.html")
    driver.execute_script(
        "document.documentElement.dataset.theme = 'dark';"  # this page only, not remembered
        "document.querySelector('svg.chart').previousElementSibling.scrollIntoView();"
    )
    driver.save_screenshot(str(img / "explorer-compare-dark.png"))
    names = ("explorer-graph.png", "explorer-table.png", "explorer-compare-dark.png")
    return [f"docs/img/{name}" for name in names]


def run(quick: bool = False) -> Section:
    rounds = 1 if quick else 3
    models = ["alexnet", "googlenet", BIG] if quick else ["--all"]
    build_s = []
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        for _ in range(rounds):
            shutil.rmtree(site, ignore_errors=True)
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "cnnzoo", "explore", *models, "--out", str(site)],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            build_s.append(time.perf_counter() - start)
        what = "cnnzoo explore " + (" ".join(models))
        pages = len(list(site.glob("*.html")))
        table = [
            {"measure": f"`{what}` ({pages} pages), s", "median": statistics.median(build_s),
             "target": "" if quick else "< 120", "rounds": rounds},
            {"measure": f"{BIG} page weight, MB",
             "median": (site / f"{BIG}.html").stat().st_size / 1e6, "target": "< 3", "rounds": 1},
        ]  # fmt: skip
        notes = [
            "Build time is the whole command in a fresh interpreter (imports, the analysis of "
            "every model on the meta device, writing the pages).",
            "Load average over the last minute when the builds finished: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (the figures scale with it).",
        ]
        driver = _chrome()
        if driver is None:
            notes.append("No render times: no Chromium, chromedriver or selenium here "
                         "(scripts/setup.sh --test installs them).")  # fmt: skip
            return Section(TITLE, table, notes)
        try:
            _load_ms(driver, site / f"{BIG}.html")  # a first load warms the browser's caches
            n = 5 if quick else 9
            big = [_load_ms(driver, site / f"{BIG}.html") for _ in range(n)]
            alex = [_load_ms(driver, site / "alexnet.html") for _ in range(n)]
            if not quick:
                notes.append("Screenshots written: " + ", ".join(_screenshots(driver, site)))
        finally:
            driver.quit()
    table += [
        {"measure": f"{BIG} page load + render (headless Chromium), ms",
         "median": statistics.median(big), "target": "< 1000", "rounds": n},
        {"measure": "alexnet page load + render, ms", "median": statistics.median(alex),
         "target": "", "rounds": n},
    ]  # fmt: skip
    notes.append(
        "Render time is the page's clock from navigation start to the first frame after its "
        f"script has built the table and laid out the graph; {BIG} ranged "
        f"{min(big):.0f}-{max(big):.0f} ms over the rounds."
    )
    return Section(TITLE, table, notes)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown())
