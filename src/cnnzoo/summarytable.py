"""What ``cnnzoo summary MODEL`` prints with no other option, stored for every registered model.

Importing torch alone takes about 2 s of CPU, and the analysis on the meta device runs some ops
through torch's Python decompositions, whose first call imports its compiler (``torch._dynamo``)
and sympy. So ``cnnzoo summary alexnet`` reads its table from ``resources/summaries.txt`` and
imports no torch; any other option (``--input``, ``--batch``, ``--depth``, ``--format``,
``--num-classes``) analyses the model live. The file is generated, never edited by hand::

    python -m cnnzoo.modeltable          # rewrites models.json and summaries.txt

It records a fingerprint of every source file the summary reads (the models, the registry, the
analysis, the size notation, this module) and of the installed torch's version file. When
one of them changes the stored text is not used (the summary is computed live: correct, slower)
and ``tests/test_cli_startup.py`` fails until the file is regenerated; the same test compares
every stored table with a live analysis.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
from pathlib import Path

__all__ = [
    "SUMMARIES_PATH",
    "build_texts",
    "model_for_input",
    "source_fingerprint",
    "stored_summary",
    "summary_text",
    "write_file",
]

_PACKAGE = Path(__file__).resolve().parent
SUMMARIES_PATH = _PACKAGE / "resources" / "summaries.txt"
_SOURCES = ("registry.py", "notation.py", "errors.py", "summarytable.py", "analysis/__init__.py",
            "analysis/memory.py", "analysis/report.py", "analysis/rf.py", "analysis/rules.py",
            "analysis/trace.py")  # fmt: skip
_MARK = "==> "  # starts the line before each model's text: "==> alexnet <=="


def _torch_version_file() -> Path | None:
    """torch's generated ``version.py`` (version and git commit), found without importing torch."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "version.py"


def source_fingerprint() -> str:
    """A hash of what decides the default summaries: cnnzoo's sources and torch's version."""
    files = sorted((_PACKAGE / "models").rglob("*.py")) + [_PACKAGE / s for s in _SOURCES]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    torch_version = _torch_version_file()
    if torch_version is not None and torch_version.is_file():
        digest.update(b"torch\0" + torch_version.read_bytes())
    return digest.hexdigest()[:16]


def stored_summary(name: str, path: Path = SUMMARIES_PATH) -> str | None:
    """The stored default summary of ``name``; None when the file is missing, out of date, or
    does not hold that model."""
    try:
        text = path.read_text("utf-8")
    except OSError:
        return None
    first, _, body = text.partition("\n")
    if not first.endswith(f"; fingerprint {source_fingerprint()}"):
        return None
    start = body.find(f"{_MARK}{name} <==\n")
    if start < 0 or (start > 0 and body[start - 1] != "\n"):
        return None
    start = body.index("\n", start) + 1
    end = body.find(f"\n{_MARK}", start)
    return body[start : len(body) if end < 0 else end + 1]


def model_for_input(name: str, chw: tuple[int, int, int] | None = None,
                    num_classes: int | None = None, device: str = "meta"):  # fmt: skip
    """The registered model ``name`` built for an input of ``chw`` (C, H, W; default the size it
    was designed for: another channel count builds it for those channels, as for grey images or
    AlphaGo's planes), its ``ModelInfo`` and the input size used."""
    from .errors import CnnzooError
    from .registry import create_model, get_model_info

    info = get_model_info(name)
    size = tuple(chw) if chw else tuple(info.input_size)
    in_chans = size[0] if size[0] != info.input_size[0] else None
    try:
        model = create_model(name, num_classes=num_classes, in_chans=in_chans, device=device)
    except TypeError as err:
        raise CnnzooError(f"{name} cannot be built for {size[0]} channels: {err}") from None
    return model, info, size


def summary_text(name: str, chw: tuple[int, int, int] | None = None, batch: int = 1,
                 depth: int | None = None, fmt: str = "table",
                 num_classes: int | None = None) -> str:  # fmt: skip
    """What ``cnnzoo summary`` prints for ``name``, from an analysis run now on the meta device
    (``fmt``: table, markdown, csv or json)."""
    from .analysis import analyze

    model, info, size = model_for_input(name, chw, num_classes)
    report = analyze(model, size, batch_size=batch, name=name)
    if fmt == "json":
        return report.to_json() + "\n"
    if fmt == "csv":
        return report.to_csv()
    if fmt == "markdown":
        return report.to_markdown()
    return f"# {info.name}: {info.paper}\n" + report.to_table(depth=depth)


def build_texts() -> dict[str, str]:
    """Every registered model's default summary, computed live. A model whose summary writes to
    stderr (a warning) is left out, so that the command says it as it should."""
    from .registry import list_models

    texts = {}
    for name in list_models():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            text = summary_text(name)
        if not err.getvalue():
            texts[name] = text
    return texts


def write_file(path: Path = SUMMARIES_PATH) -> Path:
    """Regenerate the stored summaries."""
    note = "# generated by `python -m cnnzoo.modeltable`; do not edit"
    parts = [f"{note}; fingerprint {source_fingerprint()}\n"]
    for name, text in build_texts().items():
        if not text.endswith("\n") or f"\n{_MARK}" in text or text.startswith(_MARK):
            raise ValueError(f"the summary of {name} cannot be stored: it holds {_MARK!r}")
        parts.append(f"{_MARK}{name} <==\n{text}")
    path.write_text("".join(parts), "utf-8")
    return path
