"""Batch-norm folding and export parity: every exported file is run by its own runtime (ONNX
Runtime, torch.jit.load, torch.export.load) here in the test and compared with the PyTorch model."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.export import count_batchnorms, export_model, fold_bn
from helpers import randomize_bn_


def vgg_bn_like() -> nn.Sequential:
    """VGG's conv-BN-ReLU pattern (``make_layers(cfg, batch_norm=True)``) with a BN'd classifier."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in (8, "M", 16, 16, "M"):
        if c == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
    layers += [
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Linear(32, 5),
    ]
    return nn.Sequential(*layers)


class ConvReluBN(nn.Module):
    """Two patterns that must NOT be folded: BN after an in-place ReLU (the conv's output
    tensor is modified before the norm reads it) and BN before the conv (pre-activation)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.relu = nn.ReLU(inplace=True)
        self.bn1 = nn.BatchNorm2d(6)
        self.bn2 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.bn2(self.bn1(self.relu(self.conv1(x)))))


@pytest.mark.parametrize(
    "build, shape, left",
    [
        (lambda: torchvision.models.resnet18(num_classes=7), (2, 3, 64, 64), 0),  # residual graph
        (vgg_bn_like, (2, 3, 16, 16), 0),
        (ConvReluBN, (2, 3, 12, 12), 2),
        # FractalNet's conv -> Dropout -> BN: dropout is the identity in eval mode, so it folds
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.3), nn.BatchNorm2d(4)),
         (2, 3, 8, 8), 0),
        (lambda: cnnzoo.create_model("resnet20", num_classes=10), (2, 3, 32, 32), 0),
        (lambda: torchvision.models.googlenet(num_classes=5, aux_logits=False, init_weights=False),
         (1, 3, 64, 64), 0),  # Inception branches
    ],
)  # fmt: skip
def test_fold_bn_keeps_outputs_and_removes_norms(build, shape, left):
    model = randomize_bn_(build()).eval()
    before = count_batchnorms(model)
    x = torch.randn(shape)
    folded = fold_bn(model, x)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    assert count_batchnorms(folded) == left
    assert count_batchnorms(model) == before  # the original is untouched
    assert not folded.training
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_fold_bn_arithmetic_by_hand():
    """One channel: y = gamma (w x + b - mean) / sqrt(var + eps) + beta, written out."""
    conv, bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1, eps=0.25)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(3.75)  # sqrt(3.75 + 0.25) = 2
        bn.weight.fill_(4.0)
        bn.bias.fill_(0.5)
    folded = fold_bn(nn.Sequential(conv, bn), torch.zeros(1, 1, 2, 2))
    # w' = 2 * 4 / 2 = 4; b' = (1 - 3) * 4 / 2 + 0.5 = -3.5
    assert folded[0].weight.item() == 4.0 and folded[0].bias.item() == -3.5
    assert isinstance(folded[1], nn.Identity)


def test_fold_bn_on_zoo_model_guesses_input_size():
    model = cnnzoo.create_model("lenet5")  # no BN: folding changes nothing, the size is guessed
    folded = fold_bn(model)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x))


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.body(x))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize("fold", [False, True])
def test_onnx_matches_onnxruntime(tmp_path, fold):
    ort = pytest.importorskip("onnxruntime")
    model = randomize_bn_(TinyResNet()).eval()
    exported = fold_bn(model, torch.zeros(1, 3, 16, 16)) if fold else model
    res = export_model(exported, tmp_path / "m.onnx", "onnx", input_size=(3, 16, 16))
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 16, 16)  # another batch size than the export's: dynamic batch
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert res.max_abs_diff < 1e-4


def test_torchscript_round_trip(tmp_path):
    model = cnnzoo.create_model("lenet5").eval()
    res = export_model(model, tmp_path / "m.pt", "torchscript")
    assert res.trace_shape == (2, 1, 32, 32)
    loaded = torch.jit.load(str(res.path))
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_torch_export_round_trip(tmp_path):
    model = randomize_bn_(TinyResNet()).eval()
    res = export_model(model, tmp_path / "m.pt2", "exported", input_size=(3, 16, 16))
    loaded = torch.export.load(str(res.path)).module()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert model.training is False  # export_model leaves the mode as it found it (eval here)


def test_export_restores_training_mode(tmp_path):
    model = cnnzoo.create_model("lenet5").train()
    export_model(model, tmp_path / "m.pt", "torchscript")
    assert model.training


def test_export_refuses_bad_format_and_name(tmp_path):
    model = cnnzoo.create_model("lenet5")
    with pytest.raises(cnnzoo.CnnzooError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "m.x", "tflite")
    with pytest.raises(cnnzoo.CnnzooError, match=r"\*\.pt2"):
        export_model(model, tmp_path / "m.pt", "exported")


def test_cli_export_reports_difference(tmp_path, capsys):
    out = tmp_path / "lenet.onnx"
    assert main(["export", "lenet5", "--format", "onnx", "--fold-bn", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max abs difference" in text


def test_cli_export_checkpoint(tmp_path, capsys):
    model = cnnzoo.create_model("lenet5", num_classes=3)
    cnnzoo.save_checkpoint(tmp_path / "c.pt", "lenet5", {"num_classes": 3}, model.state_dict())
    out = tmp_path / "c.ts"
    assert (
        main(["export", str(tmp_path / "c.pt"), "--format", "torchscript", "--out", str(out)]) == 0
    )
    loaded = torch.jit.load(str(out))
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", "lenet6", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown model" in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable checkpoint" in err


def test_an_opset_the_exporter_cannot_write_is_one_line_and_no_file(tmp_path, capsys):
    """``--opset 3`` printed the converter's traceback, kept opset 18 and exited 0; ``--opset
    999`` the same. The opset asked for is now the opset of the file (read back with onnx, the
    oracle), or the command stops in one line and writes nothing."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    out = tmp_path / "x.onnx"
    refusals = {
        3: "cannot export LeNet5 at ONNX opset 3: the exporter writes opset",
        999: "ONNX opset 999 does not exist yet: this onnx knows up to",
    }
    for opset, says in refusals.items():
        assert main(["export", "lenet5", "--opset", str(opset), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
        assert not out.exists()
    assert main(["export", "lenet5", "--opset", "17", "--out", str(out)]) == 0
    opsets = {o.domain: o.version for o in onnx.load(out, load_external_data=False).opset_import}
    assert opsets[""] == 17


def test_an_input_too_small_to_export_is_one_line(tmp_path, capsys):
    """It was a traceback of a thousand lines from the tracer."""
    out = tmp_path / "x.onnx"
    assert main(["export", "lenet5", "--img-size", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "input 8x8x1 is too small for LeNet5" in err, err
    assert not out.exists()
