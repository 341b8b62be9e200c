"""Pages from templates: one self-contained HTML file per page, loading nothing from anywhere.

The stylesheet, the script, the vendored dagre layout engine (MIT, see ``vendor/dagre.LICENSE``)
and the page's data are all inlined, so a page works from ``file://`` with no network and can be
mailed on its own. The data is a JSON ``<script>`` block, escaped so no string can close it.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from importlib import resources
from string import Template


@cache
def _asset(path: str) -> str:
    return resources.files(__package__).joinpath(path).read_text("utf-8")


def _json_block(data: dict) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # "</script>" or "<!--" inside a string must not end the block; \u003c reads back as "<".
    return text.replace("<", "\\u003c")


def page(title: str, data: dict, body: str = "") -> str:
    """A whole page: the shared frame around ``body`` (extra HTML built in Python, e.g. the
    chart), with the script that renders ``data``."""
    return Template(_asset("static/page.html")).substitute(
        title=escape(title),
        kind=data["kind"],
        css=_asset("static/explore.css"),
        dagre=_asset("vendor/dagre.min.js") if data["kind"] == "model" else "",
        js=_asset("static/explore.js"),
        data=_json_block(data),
        body=body,
    )
