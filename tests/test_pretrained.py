"""Weight files of torchvision and timm loaded into cnnzoo models, and ``cnnzoo convert``.

The oracle is always the peer's own model: after loading its (randomly initialised) weights the
cnnzoo model must give the same outputs on the same input.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.checkpoint import save_checkpoint
from cnnzoo.cli import main as cli_main
from helpers import randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")


def needs(name: str):
    """Skip until the family author has registered ``name`` (they work in parallel)."""
    return pytest.mark.skipif(name not in cnnzoo.list_models(), reason=f"{name} not registered")


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


# --- the mechanism, on LeNet-5 (always registered) ----------------------------------------------


@pytest.fixture
def lenet_pair():
    """A trained-looking LeNet-5 (the "peer") and a fresh one to load into."""
    peer = cnnzoo.create_model("lenet5").eval()
    fresh = cnnzoo.create_model("lenet5").eval()
    return peer, fresh


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
        lambda sd: {"module." + k: v for k, v in sd.items()},  # saved from DistributedDataParallel
        lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
        # timm's train.py checkpoints keep their argparse arguments beside the weights
        lambda sd: {"state_dict": sd, "args": argparse.Namespace(lr=0.1, model="x"), "epoch": 9},
    ],
    ids=["bare", "state_dict", "model", "ddp_prefix", "wrapped_ddp", "timm_train_checkpoint"],
)
def test_wrappers_and_prefixes_give_same_outputs(tmp_path, lenet_pair, wrap):
    peer, fresh = lenet_pair
    x = torch.randn(2, 1, 32, 32)
    assert not same(fresh(x), peer(x))
    path = tmp_path / "w.pth"
    torch.save(wrap(peer.state_dict()), path)
    result = cnnzoo.load_pretrained(fresh, path)
    assert result.source == "native" and result.file_format == "torch.save"
    assert result.dropped == [] and result.loaded == len(peer.state_dict())
    with torch.no_grad():
        assert same(fresh(x), peer(x))


def test_safetensors_file(tmp_path, lenet_pair):
    from safetensors.torch import save_file

    peer, fresh = lenet_pair
    path = tmp_path / "w.safetensors"
    save_file(peer.state_dict(), str(path))
    result = cnnzoo.load_pretrained(fresh, path)
    assert result.file_format == "safetensors"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert same(fresh(x), peer(x))
    # The format is recognised by its content, whatever the file is called.
    renamed = tmp_path / "w.bin"
    path.rename(renamed)
    assert cnnzoo.load_pretrained(fresh, renamed).file_format == "safetensors"


def test_cnnzoo_checkpoint_is_recognised(tmp_path, lenet_pair):
    peer, fresh = lenet_pair
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "lenet5", {}, peer.state_dict(), epoch=7)
    result = cnnzoo.load_pretrained(fresh, path)
    assert result.source == "cnnzoo" and "cnnzoo checkpoint of 'lenet5'" in result.message
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert same(fresh(x), peer(x))
    other = cnnzoo.create_model("mobilenet_v1_025")
    with pytest.raises(cnnzoo.CheckpointError, match="a cnnzoo checkpoint of 'lenet5'"):
        cnnzoo.load_pretrained(other, path)


def test_class_count_mismatch_drops_head(tmp_path, lenet_pair):
    peer, _ = lenet_pair
    path = tmp_path / "w.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model("lenet5", num_classes=3).eval()
    head_before = {k: v.clone() for k, v in model.fc.state_dict().items()}
    with pytest.warns(UserWarning, match="10 classes in the file and 3 in the model"):
        result = cnnzoo.load_pretrained(model, path)
    assert result.dropped == ["fc.bias", "fc.weight"]
    assert result.file_num_classes == 10 and result.loaded == 10 - 2
    assert "'fc'" in result.message and "untrained head" in result.message
    # The backbone is the peer's, the head is still the model's own.
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert same(
            model.forward_head(model.forward_features(x), pre_logits=True),
            peer.forward_head(peer.forward_features(x), pre_logits=True),
        )
    for k, v in model.fc.state_dict().items():
        assert torch.equal(v, head_before[k])
    assert model(x).shape == (2, 3)
    # Asked to, it refuses instead.
    with pytest.raises(cnnzoo.CheckpointError, match="10 classes in the file and 3"):
        cnnzoo.load_pretrained(model, path, num_classes_mismatch="error")
    with pytest.raises(ValueError, match="num_classes_mismatch"):
        cnnzoo.load_pretrained(model, path, num_classes_mismatch="ignore")


def test_headless_model_takes_backbone(tmp_path, lenet_pair):
    peer, _ = lenet_pair
    path = tmp_path / "w.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model("lenet5", num_classes=0).eval()
    with pytest.warns(UserWarning):
        result = cnnzoo.load_pretrained(model, path)
    assert result.dropped == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert same(model(x), peer.forward_head(peer.forward_features(x), pre_logits=True))


def test_file_without_batchnorm_counters(tmp_path):
    # Files from before PyTorch 0.4.1 have no num_batches_tracked; nothing computes with it.
    peer = randomize_bn_(cnnzoo.create_model("mobilenet_v1_025")).eval()
    sd = {k: v for k, v in peer.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(sd) < len(peer.state_dict())
    torch.save(sd, tmp_path / "old.pth")
    model = cnnzoo.create_model("mobilenet_v1_025").eval()
    assert cnnzoo.load_pretrained(model, tmp_path / "old.pth").loaded == len(sd)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert same(model(x), peer(x))


def test_other_architecture_names_key_and_shapes(tmp_path):
    colour = cnnzoo.create_model("lenet5", in_chans=3)
    path = tmp_path / "rgb.pth"
    torch.save(colour.state_dict(), path)
    grey = cnnzoo.create_model("lenet5")
    before = {k: v.clone() for k, v in grey.state_dict().items()}
    with pytest.raises(cnnzoo.CheckpointError) as err:
        cnnzoo.load_pretrained(grey, path)
    msg = str(err.value)
    assert "'features.0.weight'" in msg and "(6, 3, 5, 5)" in msg and "(6, 1, 5, 5)" in msg
    assert "\n" not in msg
    for k, v in grey.state_dict().items():  # nothing was half-loaded
        assert torch.equal(v, before[k])
    # A wholly different network: the first foreign key is named, and no class-count warning
    # (which would be misleading) comes first.
    torch.save(cnnzoo.create_model("mobilenet_v1_025").state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(cnnzoo.CheckpointError, match="unexpected key 'stem.conv.weight'"):
            cnnzoo.load_pretrained(grey, path)


def test_truncated_and_non_checkpoint_files(tmp_path, lenet_pair):
    peer, fresh = lenet_pair
    good = tmp_path / "good.pth"
    torch.save(peer.state_dict(), good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "empty.pth": b"",
        "notes.pth": b"these are not weights\n",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(cnnzoo.CheckpointError) as err:
            cnnzoo.load_pretrained(fresh, tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(cnnzoo.CheckpointError, match="holds a list, not a state_dict"):
        cnnzoo.load_pretrained(fresh, tmp_path / "list.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(cnnzoo.CheckpointError, match="without a state_dict"):
        cnnzoo.load_pretrained(fresh, tmp_path / "meta.pth")
    st = tmp_path / "cut.safetensors"
    from safetensors.torch import save_file

    save_file(peer.state_dict(), str(st))
    st.write_bytes(st.read_bytes()[:-10])
    with pytest.raises(cnnzoo.CheckpointError, match="cut.safetensors"):
        cnnzoo.load_pretrained(fresh, st)
    with pytest.raises(cnnzoo.CheckpointError, match="does not exist"):
        cnnzoo.load_pretrained(fresh, tmp_path / "missing.pth")


class _Payload:
    """Unpickling this would create a file: the stand-in for code hidden in a weight file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_with_code_is_not_executed(tmp_path, lenet_pair):
    _, fresh = lenet_pair
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(10, 84), "payload": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(cnnzoo.CheckpointError, match="would run code"):
        cnnzoo.load_pretrained(fresh, path)
    assert not marker.exists()
    code = 2 if cli_main(["convert", str(path), str(tmp_path / "o.pt"), "--model", "lenet5"]) else 0
    assert code == 2 and not marker.exists()
    # Control: an unsafe load of the same file does run the payload, so the test can fail.
    torch.load(path, weights_only=False)
    assert marker.exists()


# --- peers: torchvision and timm ---------------------------------------------------------------


@needs("resnet18")
def test_torchvision_resnet18_same_outputs(tmp_path):
    tv = pytest.importorskip("torchvision")
    peer = randomize_bn_(tv.models.resnet18()).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model("resnet18").eval()
    result = cnnzoo.load_pretrained(model, path)
    assert result.source == "native" and result.dropped == []
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), peer(x))


@needs("resnet18")
def test_timm_resnet18_same_outputs_and_fine_tune_head(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    peer = randomize_bn_(timm.create_model("resnet18", pretrained=False)).eval()
    path = tmp_path / "model.safetensors"  # how the Hugging Face hub ships timm's weights
    save_file(peer.state_dict(), str(path))
    model = cnnzoo.create_model("resnet18").eval()
    result = cnnzoo.load_pretrained(model, path)
    assert result.file_format == "safetensors"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), peer(x))
    # Fine-tuning on 5 classes: the backbone is timm's, the 5-way head is new.
    model5 = cnnzoo.create_model("resnet18", num_classes=5).eval()
    with pytest.warns(UserWarning, match="1000 classes in the file and 5"):
        cnnzoo.load_pretrained(model5, path)
    with torch.no_grad():
        assert same(
            model5.forward_head(model5.forward_features(x), pre_logits=True),
            peer.forward_head(peer.forward_features(x), pre_logits=True),
        )


def test_timm_mobilenet_keys_mapped_by_model(tmp_path):
    timm = pytest.importorskip("timm")
    peer = randomize_bn_(timm.create_model("mobilenetv1_100", pretrained=False)).eval()
    path = tmp_path / "mobilenetv1_100.pth"
    torch.save({"state_dict": peer.state_dict(), "arch": "mobilenetv1_100"}, path)
    model = cnnzoo.create_model("mobilenet_v1", act="relu6").eval()
    result = cnnzoo.load_pretrained(model, path)
    assert result.source == "mapped" and "adapt_state_dict" in result.message
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), peer(x))
    # The timm file for another width fails on the first tensor whose shape differs.
    half = cnnzoo.create_model("mobilenet_v1_050")
    with pytest.raises(
        cnnzoo.CheckpointError, match=r"'stem.conv.weight' has shape \(32, 3, 3, 3\)"
    ):
        cnnzoo.load_pretrained(half, path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, tv_name",
    [
        ("resnet50", "resnet50"),
        ("alexnet_tv", "alexnet"),
        ("vgg11", "vgg11"),
        ("vgg16_bn", "vgg16_bn"),
    ],
)
def test_torchvision_big_models_same_outputs(tmp_path, name, tv_name):
    if name not in cnnzoo.list_models():
        pytest.skip(f"{name} not registered")
    tv = pytest.importorskip("torchvision")
    peer = randomize_bn_(getattr(tv.models, tv_name)()).eval()
    path = tmp_path / f"{tv_name}.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model(name).eval()
    cnnzoo.load_pretrained(model, path)
    size = 224 if name.startswith(("alexnet", "vgg")) else 64
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert same(model(x), peer(x))


# --- cnnzoo convert ------------------------------------------------------------------------------


def test_convert_cli_end_to_end(tmp_path, capsys, lenet_pair):
    peer, _ = lenet_pair
    src = tmp_path / "peer.pth"
    torch.save({"model": {"module." + k: v for k, v in peer.state_dict().items()}}, src)
    dst = tmp_path / "lenet5.ckpt"
    assert cli_main(["convert", str(src), str(dst), "--model", "lenet5"]) == 0
    assert "wrote" in capsys.readouterr().out
    model, ckpt = cnnzoo.model_from_checkpoint(dst)
    assert ckpt["model"] == "lenet5" and ckpt["model_args"]["num_classes"] == 10
    model.eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert same(model(x), peer(x))
    # A new class count: the checkpoint rebuilds a 4-class model with the peer's backbone.
    dst4 = tmp_path / "lenet5_4.ckpt"
    assert (
        cli_main(["convert", str(src), str(dst4), "--model", "lenet5", "--num-classes", "4"]) == 0
    )
    model4, ckpt4 = cnnzoo.model_from_checkpoint(dst4)
    assert ckpt4["model_args"]["num_classes"] == 4 and model4.eval()(x).shape == (2, 4)
    with torch.no_grad():
        assert same(
            model4.forward_head(model4.forward_features(x), pre_logits=True),
            peer.forward_head(peer.forward_features(x), pre_logits=True),
        )


def test_convert_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02garbage")
    assert cli_main(["convert", str(bad), str(tmp_path / "o.pt"), "--model", "lenet5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo convert: error:") and "bad.pth" in err and "\n" not in err
    assert not (tmp_path / "o.pt").exists()
    assert cli_main(["convert", str(bad), str(tmp_path / "o.pt"), "--model", "lenet55"]) == 2
    assert "did you mean" in capsys.readouterr().err


@needs("resnet18")
def test_convert_torchvision_resnet18(tmp_path):
    tv = pytest.importorskip("torchvision")
    peer = randomize_bn_(tv.models.resnet18(num_classes=37)).eval()
    src = tmp_path / "pets.pth"
    torch.save(peer.state_dict(), src)
    dst = tmp_path / "pets.ckpt"
    assert cli_main(["convert", str(src), str(dst), "--model", "resnet18"]) == 0
    model, ckpt = cnnzoo.model_from_checkpoint(dst)
    assert ckpt["model_args"] == {"num_classes": 37}  # inferred from the file's classifier
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model.eval()(x), peer(x))


def test_convert_timm_mobilenet_with_model_args(tmp_path, capsys):
    timm = pytest.importorskip("timm")
    peer = randomize_bn_(timm.create_model("mobilenetv1_100", pretrained=False)).eval()
    src = tmp_path / "mobilenetv1_100.pth"
    torch.save(peer.state_dict(), src)
    dst = tmp_path / "mbv1.ckpt"
    argv = ["convert", str(src), str(dst), "--model", "mobilenet_v1", "--arg", "act=relu6"]
    assert cli_main(argv) == 0
    assert "mapped by the model's adapt_state_dict" in capsys.readouterr().out
    model, ckpt = cnnzoo.model_from_checkpoint(dst)
    assert ckpt["model_args"] == {"num_classes": 1000, "act": "relu6"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model.eval()(x), peer(x))
    bad = ["convert", str(src), str(dst), "--model", "mobilenet_v1", "--arg", "actt=relu6"]
    assert cli_main(bad) == 2
    assert "actt" in capsys.readouterr().err


@needs("googlenet")
def test_googlenet_aux_heads_dropped_with_main_head(tmp_path):
    tv = pytest.importorskip("torchvision")
    peer = randomize_bn_(tv.models.googlenet(aux_logits=True, init_weights=True)).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model("googlenet", num_classes=10).eval()
    with pytest.warns(UserWarning, match="nor 4 tensors of auxiliary classifiers"):
        result = cnnzoo.load_pretrained(model, path)
    assert result.dropped == [
        "aux1.fc2.bias", "aux1.fc2.weight", "aux2.fc2.bias", "aux2.fc2.weight",
        "fc.bias", "fc.weight",
    ]  # fmt: skip
    x = torch.randn(1, 3, 96, 96)
    peer.fc = nn.Identity()  # torchvision's pooled features
    with torch.no_grad():
        assert same(model.forward_head(model.forward_features(x), pre_logits=True), peer(x))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, timm_name, kwargs, size",
    [
        ("se_resnet50", "seresnet50", {}, 64),
        ("inception_v3", "inception_v3", {"aux_logits": False}, 299),
        ("inception_resnet_v2", "inception_resnet_v2", {}, 299),
    ],
)
def test_timm_big_models_same_outputs(tmp_path, name, timm_name, kwargs, size):
    if name not in cnnzoo.list_models():
        pytest.skip(f"{name} not registered")
    timm = pytest.importorskip("timm")
    peer = randomize_bn_(timm.create_model(timm_name, pretrained=False)).eval()
    path = tmp_path / f"{timm_name}.pth"
    torch.save(peer.state_dict(), path)
    model = cnnzoo.create_model(name, **kwargs).eval()
    cnnzoo.load_pretrained(model, path)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert same(model(x), peer(x))
