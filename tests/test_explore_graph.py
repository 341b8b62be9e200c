"""The analyzer's graph (``LayerStats.inputs``): the rows each row reads, checked against torch.fx.

torch.fx traces the same forward symbolically and records, per call, the nodes it consumes: an
independent record of the edges. Views (``flatten``) make no row in the analyzer, so an fx input
that is a view is followed back to the row that made the viewed tensor.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torchvision
from torch import fx, nn

import cnnzoo

pytestmark = pytest.mark.usefixtures("one_thread")

_VIEWS = {torch.flatten, "flatten", "view", "reshape", "size", getattr, operator.getitem}


class Branchy(nn.Module):
    """Two branches concatenated, a squeeze-and-excitation rescale, a residual add, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU())
        self.gate = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = torch.cat([self.left(x), self.right(x)], 1)
        y = y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        y = y + x
        return self.fc(torch.flatten(y, 1))


def _fx_edges(model: nn.Module) -> list[tuple[str, set]]:
    """Per row-making fx node in execution order: (kind, the row-making nodes it reads)."""
    graph = fx.symbolic_trace(model).graph

    def is_view(n: fx.Node) -> bool:
        return n.op in ("call_function", "call_method") and n.target in _VIEWS

    def sources(n: fx.Node) -> set:
        if is_view(n):
            return set().union(*(sources(a) for a in n.all_input_nodes))
        return {n}

    out = []
    for n in graph.nodes:
        if n.op in ("placeholder", "output", "get_attr") or is_view(n):
            continue
        srcs = set().union(*(sources(a) for a in n.all_input_nodes)) if n.all_input_nodes else set()
        out.append((n, srcs))
    return out


@pytest.mark.parametrize(
    "model", [Branchy(), torchvision.models.resnet18()], ids=["branchy", "tv_resnet18"]
)
def test_inputs_match_torch_fx(model: nn.Module):
    report = cnnzoo.analyze(model, (3, 8, 8) if isinstance(model, Branchy) else (3, 64, 64))
    fx_nodes = _fx_edges(model)
    assert len(fx_nodes) == len(report.layers)  # one row per call that computes something
    row_of = {n: i for i, (n, _) in enumerate(fx_nodes)}
    for i, ((node, srcs), row) in enumerate(zip(fx_nodes, report.layers, strict=True)):
        if node.op == "call_module":
            assert row.name.split("#")[0] == node.target
        expected = {-1 if s.op == "placeholder" else row_of[s] for s in srcs}
        assert set(row.inputs) == expected, (i, row.name)
        assert len(row.input_shapes) == len(row.inputs)


def test_branch_shapes_are_the_tensors_as_read():
    report = cnnzoo.analyze(Branchy(), (3, 8, 8))
    rows = {r.name: r for r in report.layers}
    cat = rows["cat"]
    assert [report.layers[j].name for j in cat.inputs] == ["left", "right.1"]
    assert cat.input_shapes == [(4, 8, 8), (4, 8, 8)]
    mul = rows["mul"]
    assert sorted(mul.input_shapes) == [(8, 1, 1), (8, 8, 8)]  # the map and its channel scale
    # The head reads the flattened map: the edge carries 512 values, not the 8x8x8 map.
    assert rows["fc"].input_shapes == [(512,)]
    assert report.layers[0].inputs == [-1] and report.layers[0].input_shapes == [(3, 8, 8)]


def test_inplace_and_repeated_modules_chain_in_order():
    """ResNet's ``relu`` runs twice per block and in place: each call is its own row and reads the
    row before it, not the tensor's earlier producer."""
    report = cnnzoo.analyze(torchvision.models.resnet18(), (3, 64, 64))
    names = [r.name for r in report.layers]
    r2 = names.index("layer1.0.relu#2")
    add = names.index("layer1.0.add")  # torchvision writes ``out += identity``
    assert report.layers[add].inplace
    assert report.layers[r2].inputs == [add]
    assert {names[j] for j in report.layers[add].inputs} == {"layer1.0.bn2", "maxpool"}
    r1 = names.index("layer1.0.relu")
    assert report.layers[r1].inputs == [names.index("layer1.0.bn1")]


def test_json_carries_the_graph():
    d = cnnzoo.analyze(Branchy(), (3, 8, 8)).to_dict()
    assert d["layers"][0]["inputs"] == [-1]
    assert d["layers"][0]["input_shapes"] == [(3, 8, 8)]
