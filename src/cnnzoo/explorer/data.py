"""What an explorer page shows, computed here in Python from ``cnnzoo.analyze``.

The page's JavaScript only draws, sorts and filters: every number it shows is in the dictionary
:func:`model_page` returns. Its ``report`` key is ``Report.to_dict()`` unchanged, the very JSON
``cnnzoo summary --format json`` prints; the other keys are views of it (lecture labels, shapes
in the notes' HxWxC, graph edges, the module level the graph opens at, the training-memory
parts, the published top-1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from torch import nn

from ..analysis.report import Report, lecture_labels
from ..compare import load_reference
from ..errors import CnnzooError
from ..notation import format_size

# A graph is first drawn collapsed to the deepest module level with at most this many nodes, so
# a 150-layer network opens readable (and fast to lay out); a click expands a module.
MAX_NODES = 90


def model_page(
    report: Report,
    title: str,
    paper: str = "",
    profile: Mapping | None = None,
    image: str = "",
) -> dict:
    """The data of one model's page: the report as ``cnnzoo summary --format json`` gives it, and
    what the page draws from it. ``profile`` is a loaded ``cnnzoo profile`` result (see
    :func:`load_profile`); ``image`` is the sample input as a ``data:`` URL."""
    rows = report.layers
    return {
        "kind": "model",
        "name": report.model,
        "title": title,
        "paper": paper,
        "report": json.loads(report.to_json(indent=None)),
        "labels": lecture_labels(rows),
        "input_text": format_size(report.input_size),
        "outputs": [format_size(r.output) for r in rows],
        "edges": graph_edges(report),
        "depth": collapse_depth(report),
        "totals": report.summary_lines(),
        "memory": training_memory(report),
        "reference": reference(report.model),
        "weights": published(report.model),
        "profile": profile_column(profile, report) if profile is not None else None,
        "image": image,
    }


def graph_edges(report: Report) -> list[list]:
    """``[source row, target row, shape]`` for every tensor a row reads (source -1: the input),
    the shape as the notes write it, as the tensor was read (a flattened map is a vector)."""
    return [
        [src, i, format_size(shape)]
        for i, r in enumerate(report.layers)
        for src, shape in zip(r.inputs, r.input_shapes, strict=True)
    ]


def module_key(name: str, depth: int) -> str:
    """The module a row belongs to at ``depth``: ``inception3a.branch2.0.conv`` at 1 is
    ``inception3a``; a second call (``relu#2``) belongs where its first does."""
    return ".".join(name.split("#")[0].split(".")[:depth])


def collapse_depth(report: Report) -> int:
    """The deepest module level whose graph has at most ``MAX_NODES`` nodes (0: every row)."""
    names = [r.name for r in report.layers]
    deepest = max((n.split("#")[0].count(".") + 1 for n in names), default=1)
    if len(names) <= MAX_NODES:
        return 0
    best = 1
    for depth in range(1, deepest + 1):
        nodes = {module_key(n, depth) if n.count(".") >= depth else n for n in names}
        if len(nodes) > MAX_NODES:
            break
        best = depth
    return best


def training_memory(report: Report) -> dict:
    """The analyzer's training memory for the report's batch, part by part (bytes)."""
    t = report.total
    return {
        "batch": report.batch_size,
        "parts": [
            ["weights", t.weight_bytes],
            ["gradients", t.grad_bytes],
            ["optimiser state (SGD momentum)", t.optimizer_bytes],
            ["saved activations (autograd)", t.saved_bytes],
        ],
        "total": t.training_bytes,
    }


def reference(name: str) -> dict | None:
    """The published ImageNet top-1 of a registered model, with its source, or why there is none."""
    ref = load_reference()
    pub = ref["models"].get(name)
    if pub is None:
        why = ref["no_imagenet"].get(name)
        return {"top1": None, "why": why} if why else None
    source = ref["sources"].get(pub.get("source"), {})
    return {
        "top1": pub["top1"],
        "top5": pub.get("top5"),
        "source": pub.get("source"),
        "cite": source.get("cite", ""),
        "url": source.get("url", ""),
        "note": pub.get("note", ""),
    }


def published(name: str) -> list[dict]:
    """The published ImageNet weights of a registered model, as the weight table lists them (what
    ``create_model(name, pretrained=True)`` loads first, then the other tags); [] if none."""
    from ..hub import weights_table

    return [
        {
            "name": f"{name}.{e['tag']}",
            "source": e["source"],
            "where": e["url"] or e["hf_hub_id"],
            "top1": e["top1"],
            "input_size": e["input_size"],
            "interpolation": e["interpolation"],
            "crop_pct": e["crop_pct"],
            "mean": e["mean"],
            "std": e["std"],
            "license": e["license"],
        }
        for e in weights_table().get(name, [])
    ]


def load_profile(profile: str | os.PathLike | Mapping) -> dict:
    """A ``cnnzoo profile --format json`` result, from a file or already loaded."""
    if isinstance(profile, Mapping):
        return dict(profile)
    try:
        with open(profile, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise CnnzooError(f"cannot read the profile {profile}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise CnnzooError(f"{profile} is not a profile JSON file: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise CnnzooError(f"{profile} is not a profile: no 'rows' list (write it with `cnnzoo "
                          "profile MODEL --format json`)")  # fmt: skip
    return data


def profile_column(profile: Mapping, report: Report) -> dict:
    """The measured time of each row (``None`` where the profile has none), checked to be a
    profile of this model: each profiled row must name the report's row of that index."""
    times: list[float | None] = [None] * len(report.layers)
    backward: list[float | None] = [None] * len(report.layers)
    for entry in profile["rows"]:
        i = entry.get("row")
        if (
            not isinstance(i, int)
            or not 0 <= i < len(times)
            or (entry.get("module") != report.layers[i].name)
        ):
            raise CnnzooError(
                f"the profile is not of this model at this input: its row {i} is "
                f"{entry.get('module')!r}; profile {report.model} at "
                f"{format_size(report.input_size)} again"
            )
        times[i] = entry.get("forward_ms")
        backward[i] = entry.get("backward_ms")
    return {
        "forward_ms": times,
        "backward_ms": backward,
        "total_ms": profile.get("total_ms"),
        "outside_layers_ms": profile.get("outside_layers_ms"),
        "machine": profile.get("machine", ""),
        "batch": profile.get("batch"),
    }


def comparison_row(report: Report) -> dict:
    """One model's line of the index and comparison pages (per image, as the notes count)."""
    t, b = report.total, max(report.batch_size, 1)
    return {
        "name": report.model,
        "input": format_size(report.input_size),
        "params": t.params,
        "macs": t.macs // b,
        "forward_bytes": t.forward_bytes // b,
        "training_bytes": t.training_bytes,
        "rf": t.rf,
        "rf_global": t.rf_global,
        "layers": len(report.layers),
        "reference": reference(report.model),
    }


def resolve(
    model: nn.Module | str, input_size: Sequence[int] | None, pretrained: bool = False
) -> tuple:
    """``(model, name, paper, input size (C, H, W))`` for a registered name or any module.
    ``pretrained``: a name is analysed as its default published weights define it (their input
    size); a name without published weights is refused, naming those that have them."""
    from ..registry import create_model, get_model_info

    if isinstance(model, nn.Module):
        if input_size is None:
            raise CnnzooError(f"give the input size to explore a {type(model).__name__}, e.g. "
                              "input_size=(3, 224, 224)")  # fmt: skip
        return model, type(model).__name__, "", tuple(input_size)
    info = get_model_info(model)
    default = info.input_size
    if pretrained:
        from ..hub import published_weights

        default = tuple(published_weights(info.name)["input_size"])  # one line if none
    size = tuple(input_size or default)
    in_chans = size[0] if size[0] != info.input_size[0] else None
    try:
        built = create_model(model, in_chans=in_chans, device="meta")
    except TypeError as err:
        raise CnnzooError(f"{model} cannot be built for {size[0]} channels: {err}") from None
    return built, info.name, info.paper, size
