"""optimize_for_inference: each backend computes the model's eval-mode outputs."""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.errors import CnnzooError
from cnnzoo.inference import optimize_for_inference
from helpers import randomize_bn_


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = cnnzoo.create_model("resnet20")
    randomize_bn_(m)  # folding must carry real running statistics, not the identity
    return m.train()  # optimize_for_inference must use eval behaviour and leave this alone


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_backend_matches_eager_eval(model, backend):
    pytest.importorskip("onnxruntime")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model, input_size=(3, 32, 32), backend=backend)
    assert fast.backend == backend
    assert model.training  # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    try:
        for batch in (1, 5):  # the exported batch size is free
            x = torch.randn(batch, 3, 32, 32)
            with torch.no_grad():
                want = model(x)
            got = fast(x)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    finally:
        model.train()


def test_auto_prefers_onnxruntime_on_cpu(model):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert optimize_for_inference(model, input_size=(3, 32, 32)).backend == "onnxruntime"


def test_errors_name_the_fix(model):
    with pytest.raises(CnnzooError, match="unknown backend 'tensorrt'.*auto, torch, onnxruntime"):
        optimize_for_inference(model, backend="tensorrt")
    pytest.importorskip("onnxruntime")
    fast = optimize_for_inference(model, input_size=(3, 32, 32), backend="onnxruntime")
    with pytest.raises(CnnzooError, match=r"exported for inputs of shape \(N, 3, 32, 32\)"):
        fast(torch.randn(2, 3, 40, 40))
