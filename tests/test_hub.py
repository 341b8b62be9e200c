"""Published weights by name (``create_model(..., pretrained=True)``), timm's constructor
arguments, the weight table, and ``hubconf.py``.

Offline and with the real caches: a temporary ``TORCH_HOME`` holding a torchvision model's random
weights under torchvision's own file name, torch.hub's real downloader reading ``file://`` URLs,
and a Hugging Face cache filled by ``huggingface_hub.hf_hub_download`` itself from a local HTTP
server standing in for the Hub. The oracle is always the peer's own model with the same weights.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import typing
import warnings
from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo import hub
from cnnzoo.errors import ModelArgumentError, WeightsError
from cnnzoo.modeltable import model_rows
from helpers import randomize_bn_

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
tv_models = pytest.importorskip("torchvision.models")


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


# --- create_model's arguments --------------------------------------------------------------------


def test_unknown_argument_names_the_closest():
    with pytest.raises(TypeError, match="no argument 'num_clases'; did you mean 'num_classes'"):
        cnnzoo.create_model("resnet18", num_clases=10, device="meta")
    with pytest.raises(ModelArgumentError, match="did you mean 'features_only'"):
        cnnzoo.create_model("resnet18", feature_only=True, device="meta")


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_bad_arguments_are_one_line_for_every_model(name):
    """Issue 13: a misspelt argument names the closest valid one, and an impossible class or
    channel count is refused, as a ``TypeError``/``ValueError`` of one line, for every model."""
    cases = {
        "did you mean 'num_classes'": {"num_clases": 10},
        "num_classes must be": {"num_classes": -1},  # AlphaGo's says which counts it takes
        "in_chans must be an integer >= 1, got 0": {"in_chans": 0},
    }
    for expected, kwargs in cases.items():
        with pytest.raises(ModelArgumentError) as err:
            cnnzoo.create_model(name, device="meta", **kwargs)
        assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)
        assert expected in str(err.value) and "\n" not in str(err.value), (name, str(err.value))


def test_timm_argument_the_family_lacks_is_one_line():
    with pytest.raises(ModelArgumentError) as err:
        cnnzoo.create_model("vgg16", global_pool="max", device="meta")
    assert "vgg16 (vgg) has no argument 'global_pool'" in str(err.value)
    assert "\n" not in str(err.value)


def test_timm_arguments_reach_the_family():
    m = cnnzoo.create_model("resnet18", drop_rate=0.25, global_pool="max", device="meta")
    assert m.drop_rate == 0.25 and m.global_pool.pool_type == "max"
    # GoogLeNet calls its head dropout `dropout`: timm's name reaches it.
    g = cnnzoo.create_model("googlenet", drop_rate=0.3, device="meta")
    assert g.dropout.p == 0.3


# cnnzoo name, timm's, cnnzoo arguments for timm's variant; Inception v3 calls its head
# dropout `dropout`, so timm's drop_rate reaches it through the alias
TIMM_HEADS = [
    ("resnet18", "resnet18", {}),
    ("mobilenet_v1", "mobilenetv1_100", {"act": "relu6"}),
    ("inception_v3", "inception_v3", {"aux_logits": False}),
]


@pytest.mark.parametrize("name, arch, args", TIMM_HEADS, ids=[p[0] for p in TIMM_HEADS])
@pytest.mark.parametrize(
    "kwargs, mode",
    [
        ({"global_pool": "max"}, "eval"),
        ({"global_pool": "", "num_classes": 0}, "eval"),  # the unpooled map
        ({"drop_rate": 0.5}, "train"),  # the same dropout mask from the same seed
    ],
    ids=["max", "no-pool", "drop_rate"],
)
def test_timm_head_arguments_give_timms_outputs(name, arch, args, kwargs, mode):
    """``global_pool`` and ``drop_rate`` mean what they mean in timm: the same arguments, the same
    weights, the same outputs as timm's model (in training mode for dropout, seeded alike)."""
    from cnnzoo.pretrained import _match_keys

    timm = pytest.importorskip("timm")
    peer = randomize_bn_(timm.create_model(arch, **kwargs))
    ours = cnnzoo.create_model(name, **args, **kwargs)
    ours.load_state_dict(_match_keys(ours, peer.state_dict())[0])
    peer.train(mode == "train")
    ours.train(mode == "train")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(1)
        theirs = peer(x)
        torch.manual_seed(1)
        mine = ours(x)
    assert mine.shape == theirs.shape
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)
    if "drop_rate" in kwargs:  # and the dropout did something: eval mode gives other outputs
        ours.eval()
        with torch.no_grad():
            assert not torch.allclose(ours(x), mine, atol=1e-3)


def test_create_model_without_a_name():
    with pytest.raises(ModelArgumentError, match="needs a model name"):
        cnnzoo.create_model(None)


def test_out_indices_needs_features_only():
    with pytest.raises(ModelArgumentError, match="features_only=True"):
        cnnzoo.create_model("resnet18", out_indices=(1, 2), device="meta")


def test_checkpoint_path_loads_a_local_file(tmp_path):
    peer = randomize_bn_(tv_models.resnet18()).eval()
    torch.save(peer.state_dict(), tmp_path / "w.pth")
    model = cnnzoo.create_model("resnet18", checkpoint_path=tmp_path / "w.pth").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), peer(x))


def test_listing_and_is_model():
    table = hub.weights_table()
    assert cnnzoo.list_models(pretrained=True) == sorted(table)
    assert "lenet5" in cnnzoo.list_models() and "lenet5" not in table
    tags = cnnzoo.list_pretrained("resnet50")
    assert tags[0] == f"resnet50.{table['resnet50'][0]['tag']}"
    assert all(t.startswith("resnet50.") for t in tags)
    assert cnnzoo.is_model("resnet50") and cnnzoo.is_model(tags[-1])
    assert not cnnzoo.is_model("resnet50.nonexistent") and not cnnzoo.is_model("resnet5O")


def test_no_published_weights_lists_those_that_have_them():
    with pytest.raises(WeightsError) as err:
        cnnzoo.create_model("lenet5", pretrained=True)
    msg = str(err.value)
    assert "lenet5 has no published weights" in msg and "\n" not in msg
    assert "resnet50" in msg and "vgg16" in msg and "zfnet" not in msg


def test_weight_arguments_refuse_a_contradiction():
    with pytest.raises(ModelArgumentError, match="need transform_input=True"):
        cnnzoo.create_model("googlenet", pretrained=True, transform_input=False)


# --- the weight table against the installed torchvision -----------------------------------------


def test_table_matches_torchvision_metadata():
    n = 0
    for entries in hub.weights_table().values():
        for e in entries:
            if e["source"] != "torchvision":
                continue
            enum_name, member = e["weights"].split(".")
            w = getattr(getattr(tv_models, enum_name), member)
            assert e["url"] == w.url and w.url.endswith("/" + e["file_name"])
            assert e["file_name"].split("-")[-1].startswith(e["hash_prefix"])
            assert e["top1"] == w.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            assert e["num_classes"] == len(w.meta["categories"]) == 1000
            crop = w.transforms().crop_size[0]
            assert e["input_size"] == [3, crop, crop]
            n += 1
    assert n >= 20  # alexnet, 8 VGGs, GoogLeNet, Inception v3, the ResNets and ResNeXts


def test_imagenet_classes_are_torchvisions():
    names = hub.imagenet_classes()
    assert list(names) == tv_models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


# One architecture per family and source; every one with -m slow (the generator also compares
# the outputs of each, scripts/gen_weights_table.py).
CHECKED = ["alexnet_tv", "vgg11_bn", "googlenet", "inception_v3", "resnet18", "resnext50_32x4d",
           "se_resnet50", "inception_v4", "mobilenet_v1"]  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [n if n in CHECKED else pytest.param(n, marks=pytest.mark.slow) for n in hub.weights_table()],
)
def test_table_architectures_take_the_peer_state_dict(name):
    """Each name of the table takes its peers' state_dicts key for key, shape for shape (built
    on the meta device, through the model's adapt_state_dict)."""
    from cnnzoo.pretrained import _match_keys

    timm = pytest.importorskip("timm")
    entries = hub.weights_table()[name]
    for source in {e["source"] for e in entries}:
        e = next(e for e in entries if e["source"] == source)
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's notes on its initialisation
            ours = cnnzoo.create_model(name, **e["model_args"])
            if source == "torchvision":
                arch = e["architecture"].rsplit(".", 1)[-1]
                peer = tv_models.get_model(arch, **e["model_args"])
            else:
                peer = timm.create_model(e["architecture"].split()[-1])
        sd, _ = _match_keys(ours, peer.state_dict())
        own = ours.state_dict()
        assert set(sd) == set(own), (source, set(sd) ^ set(own))
        assert all(sd[k].shape == own[k].shape for k in own), source


# --- torch.hub's cache ---------------------------------------------------------------------------


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def resnet18_peer():
    return randomize_bn_(tv_models.resnet18()).eval()


def test_cached_torchvision_file_is_used(torch_home, resnet18_peer):
    entry = hub.published_weights("resnet18")
    torch_home.mkdir(parents=True)
    torch.save(resnet18_peer.state_dict(), torch_home / entry["file_name"])
    assert entry["file_name"] == tv_models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    model = cnnzoo.create_model("resnet18", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), resnet18_peer(x))
    cfg = model.pretrained_cfg
    weights = tv_models.ResNet18_Weights.IMAGENET1K_V1
    assert cfg["url"] == weights.url and cfg["file_name"] == entry["file_name"]
    assert cfg["top1"] == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert cfg["label_names"] == weights.meta["categories"]
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == 0.875
    assert cfg["num_classes"] == 1000 and model.default_cfg == cfg


def test_new_class_count_keeps_the_backbone(torch_home, resnet18_peer):
    torch_home.mkdir(parents=True)
    file_name = hub.published_weights("resnet18")["file_name"]
    torch.save(resnet18_peer.state_dict(), torch_home / file_name)
    with pytest.warns(UserWarning, match="1000 classes in the file and 7 in the model"):
        model = cnnzoo.create_model("resnet18", pretrained=True, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        peer_features = torch.flatten(
            resnet18_peer.avgpool(torch.nn.Sequential(*list(resnet18_peer.children())[:-2])(x)),
            1,
        )
        assert same(model.forward_head(model.forward_features(x), pre_logits=True), peer_features)
        assert model(x).shape == (2, 7)
    assert model.pretrained_cfg["num_classes"] == 7 and model.pretrained_cfg["label_names"] is None


def _serve_from(monkeypatch, entry: dict, **changes) -> dict:
    """Point the table's entry at another URL (data, not code: the downloader is torch.hub's)."""
    changed = {**entry, **changes}
    table = hub.weights_table()
    monkeypatch.setitem(
        table, "resnet18", [e if e is not entry else changed for e in table["resnet18"]]
    )
    return changed


def test_download_with_wrong_hash_is_refused_and_removed(tmp_path, torch_home, monkeypatch,
                                                         resnet18_peer):  # fmt: skip
    entry = hub.published_weights("resnet18")
    served = tmp_path / "server" / entry["file_name"]
    served.parent.mkdir()
    torch.save(resnet18_peer.state_dict(), served)
    _serve_from(monkeypatch, entry, url=served.as_uri())  # torchvision's real hash prefix
    with pytest.raises(WeightsError) as err:
        cnnzoo.create_model("resnet18", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and entry["hash_prefix"] in msg and "refused" in msg
    assert list(torch_home.iterdir()) == []  # no partial file, no final file


def test_download_with_right_hash_loads(tmp_path, torch_home, monkeypatch, resnet18_peer):
    entry = hub.published_weights("resnet18")
    served = tmp_path / "server" / "w.pth"
    served.parent.mkdir()
    torch.save(resnet18_peer.state_dict(), served)
    prefix = hashlib.sha256(served.read_bytes()).hexdigest()[:8]
    name = f"resnet18-{prefix}.pth"
    _serve_from(monkeypatch, entry, url=served.as_uri(), file_name=name, hash_prefix=prefix)
    model = cnnzoo.create_model("resnet18", pretrained=True).eval()
    assert [p.name for p in torch_home.iterdir()] == [name]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert same(model(x), resnet18_peer(x))


def test_empty_cache_offline_is_one_line(tmp_path, torch_home, monkeypatch):
    entry = hub.published_weights("resnet18")
    url = (tmp_path / "unreachable" / entry["file_name"]).as_uri()
    _serve_from(monkeypatch, entry, url=url)
    with pytest.raises(WeightsError) as err:
        cnnzoo.create_model("resnet18", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert entry["file_name"] in msg and url in msg and str(torch_home) in msg


def test_cli_pretrained_offline_is_one_line(tmp_path, torch_home, monkeypatch, capsys):
    from cnnzoo.cli import main

    entry = hub.published_weights("resnet18")
    _serve_from(monkeypatch, entry, url=(tmp_path / "nothing.pth").as_uri())
    folder = tmp_path / "imgs"
    assert main(["features", "resnet18", "--pretrained", "--data", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and entry["file_name"] in err and "put the file in" in err


def test_cli_predict_pretrained_uses_the_weights_preprocessing(tmp_path, torch_home,
                                                              resnet18_peer, capsys):  # fmt: skip
    """``predict resnet18 --pretrained``: torchvision's own evaluation transform of the weights
    (resize 256, centre 224, ImageNet mean/std) and ImageNet's class names."""
    from PIL import Image
    from torchvision.io import read_image

    from cnnzoo.cli import main
    from cnnzoo.data import load_image
    from cnnzoo.runs import Preprocess

    torch_home.mkdir(parents=True)
    torch.save(
        resnet18_peer.state_dict(), torch_home / hub.published_weights("resnet18")["file_name"]
    )
    pixels = torch.randint(
        0, 256, (300, 400, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    image = tmp_path / "photo.png"
    Image.fromarray(pixels.numpy()).save(image)
    weights = tv_models.ResNet18_Weights.IMAGENET1K_V1
    expected_x = weights.transforms()(read_image(str(image)))
    model = cnnzoo.create_model("resnet18", pretrained=True)
    pre = Preprocess.from_pretrained_cfg(model.pretrained_cfg).to_dict()
    x = load_image(image, pre)
    assert x.shape == expected_x.shape == (3, 224, 224)
    assert (x - expected_x).abs().mean() < 0.01  # uint8 rounding of the resize, at most
    assert (
        main(["predict", "resnet18", "--pretrained", str(image), "--topk", "3", "--format", "json"])
        == 0
    )
    (result,) = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        probs = resnet18_peer(x[None]).softmax(1)[0]
    top = probs.topk(3)
    assert [n for n, _ in result["top"]] == [weights.meta["categories"][i] for i in top.indices]
    assert [p for _, p in result["top"]] == pytest.approx(top.values.tolist(), rel=1e-4)


def test_cli_features_and_neighbors_with_published_weights(tmp_path, torch_home, resnet18_peer,
                                                          capsys):  # fmt: skip
    """``features resnet18 --pretrained`` normalises with the weights' statistics, and
    ``neighbors`` embeds a query image with the same published weights: an image of the folder
    finds its own row at distance 0."""

    from cnnzoo.cli import main
    from cnnzoo.runs import load_features

    torch_home.mkdir(parents=True)
    file_name = hub.published_weights("resnet18")["file_name"]
    torch.save(resnet18_peer.state_dict(), torch_home / file_name)
    _image_folder(tmp_path / "imgs")
    feats = tmp_path / "f.npz"
    args = ["features", "resnet18", "--pretrained", "--data", str(tmp_path / "imgs")]
    assert main([*args, "--out", str(feats), "--no-progress", "--img-size", "64"]) == 0
    meta = load_features(feats)["meta"]
    transform = tv_models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert meta["preprocess"]["mean"] == pytest.approx(transform.mean)
    assert meta["preprocess"]["std"] == pytest.approx(transform.std)
    capsys.readouterr()
    query = tmp_path / "imgs" / "b" / "1.png"
    assert (
        main(["neighbors", str(feats), "--query", str(query), "-k", "1", "--eval-queries", "0"])
        == 0
    )
    nearest = capsys.readouterr().out.splitlines()[1]
    assert nearest.strip().startswith("1.") and float(nearest.split()[-1]) < 1e-3


def _image_folder(root: Path, classes=("a", "b"), per_class: int = 3) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(5)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (80, 96, 3), dtype=torch.uint8, generator=g)
            Image.fromarray(pixels.numpy()).save(root / c / f"{i}.png")
    return root


def test_cli_finetune_pretrained_records_the_weights_preprocessing(tmp_path, torch_home,
                                                                  resnet18_peer):  # fmt: skip
    """``finetune resnet18 --pretrained``: a linear probe on the published backbone, whose
    checkpoint records the weights' mean/std and rebuilds the same backbone."""
    from cnnzoo.cli import main
    from cnnzoo.runs import Checkpoint

    torch_home.mkdir(parents=True)
    torch.save(
        resnet18_peer.state_dict(), torch_home / hub.published_weights("resnet18")["file_name"]
    )
    data = _image_folder(tmp_path / "imgs", per_class=4)
    out = tmp_path / "run"
    args = ["finetune", "resnet18", "--pretrained", "--data", str(data), "--img-size", "32"]
    assert main([*args, "--out", str(out), "--no-progress", "--no-plots", "--no-tensorboard"]) == 0
    ckpt = Checkpoint.load(out)
    weights = tv_models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert ckpt.preprocess.mean == pytest.approx(weights.mean)
    assert ckpt.preprocess.std == pytest.approx(weights.std)
    assert ckpt.classes == ["a", "b"]
    assert ckpt.started_from["name"] == "resnet18.tv_in1k"  # which weights, for its licence
    model = ckpt.build_model().eval()
    x = torch.randn(2, 3, 64, 64)
    trunk = torch.nn.Sequential(*list(resnet18_peer.children())[:-2])
    with torch.no_grad():
        assert same(model.forward_features(x), trunk(x))
        assert model(x).shape == (2, 2)


def test_cli_train_pretrained_starts_from_the_weights(tmp_path, torch_home, resnet18_peer,
                                                      capsys):  # fmt: skip
    """``train resnet18 --pretrained``: the run starts from the published weights (one step at a
    tiny learning rate leaves them where they were), its images are normalised with the weights'
    mean and std and resized with their filter, the checkpoint records that, and a resumed run
    keeps it."""
    from cnnzoo.cli import main
    from cnnzoo.runs import Checkpoint

    torch_home.mkdir(parents=True)
    torch.save(
        resnet18_peer.state_dict(), torch_home / hub.published_weights("resnet18")["file_name"]
    )
    data = _image_folder(tmp_path / "imgs", per_class=4)
    out = tmp_path / "run"
    quiet = ["--no-progress", "--no-plots", "--no-tensorboard", "--threads", "1"]
    args = ["train", "resnet18", "--pretrained", "--data", str(data), "--img-size", "32"]
    args += ["--epochs", "1", "--lr", "1e-6", "--batch-size", "8", "--no-compile", *quiet]
    args += ["--out", str(out)]
    assert main(args) == 0
    ckpt = Checkpoint.load(out / "last.pt")
    weights = tv_models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert ckpt.preprocess.mean == pytest.approx(weights.mean)
    assert ckpt.preprocess.std == pytest.approx(weights.std)
    peer = resnet18_peer.state_dict()
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer4.1.conv2.weight"):
        assert torch.allclose(ckpt.state_dict[key], peer[key], atol=1e-4), key
    assert ckpt.state_dict["fc.weight"].shape == (2, 512)  # the folder's two classes
    assert main(["train", "--resume", str(out), "--epochs", "2", *quiet]) == 0
    resumed = Checkpoint.load(out / "last.pt")
    assert resumed.preprocess.mean == pytest.approx(weights.mean)
    assert resumed.preprocess.std == pytest.approx(weights.std)
    # every checkpoint says which published file it began from, resumed or fine-tuned further
    tv = tv_models.ResNet18_Weights.IMAGENET1K_V1
    started = ckpt.started_from
    assert started["name"] == "resnet18.tv_in1k" and started["source"] == "torchvision"
    assert started["url"] == tv.url
    assert started["top1"] == tv.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert started["hash_prefix"] == tv.url.rsplit("-", 1)[1].split(".")[0]
    assert Checkpoint.load(out / "best.pt").started_from == started
    assert resumed.started_from == started
    tuned = tmp_path / "tuned"
    more = ["finetune", str(out / "last.pt"), "--data", str(data), "--out", str(tuned), *quiet]
    assert main([*more, "--epochs", "1", "--batch-size", "8", "--freeze", "none"]) == 0
    assert Checkpoint.load(tuned / "best.pt").started_from == started
    assert Checkpoint.load(tuned / "last.pt").to_dict()["started_from"] == started
    capsys.readouterr()
    assert main(["evaluate", str(tuned), "--split", "val", "--no-plot"]) == 0
    assert "\n  trained from resnet18.tv_in1k\n" in capsys.readouterr().out


# --- the Hugging Face cache ----------------------------------------------------------------------


class _Hub(http.server.BaseHTTPRequestHandler):
    """Serves one file as the Hub's ``/{repo}/resolve/{revision}/{file}`` does (the headers
    huggingface_hub reads: commit, ETag = the file's SHA-256, size)."""

    files: dict[str, bytes] = {}

    def _head(self) -> bytes | None:
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):  # noqa: N802
        self._head()

    def do_GET(self):  # noqa: N802
        body = self._head()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def _in_subprocess(code: str, env: dict) -> subprocess.CompletedProcess:
    """Run ``code`` with cnnzoo from this checkout and the Hugging Face variables of ``env``
    (read once, when huggingface_hub is imported, so each setting needs its own process)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update(env, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120
    )


LOAD = """
import torch, cnnzoo
model = cnnzoo.create_model("mobilenet_v1", pretrained=True).eval()
torch.manual_seed(0)
with torch.no_grad():
    torch.save(model(torch.randn(2, 3, 64, 64)), r"{out}")
print(model.pretrained_cfg["hf_hub_id"], model.pretrained_cfg["file_name"])
"""


def test_timm_weights_through_the_hugging_face_cache(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    pytest.importorskip("huggingface_hub")
    from safetensors.torch import save_file

    entry = hub.published_weights("mobilenet_v1")
    assert entry["source"] == "timm"
    peer = randomize_bn_(timm.create_model(entry["architecture"].split()[-1])).eval()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, str(path))
    _Hub.files = {f"/{entry['hf_hub_id']}/resolve/main/{entry['file_name']}": path.read_bytes()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    home = tmp_path / "hf"
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = peer(x)
    try:  # the first time through the (local) hub: huggingface_hub downloads into its cache
        out = tmp_path / "online.pt"
        r = _in_subprocess(LOAD.format(out=out), {"HF_HOME": str(home), "HF_ENDPOINT": endpoint})
        assert r.returncode == 0, r.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert same(torch.load(out), expected)
    assert entry["hf_hub_id"] in r.stdout
    # The hub gone and offline, in this process: huggingface_hub's settings as HF_HOME and
    # HF_HUB_OFFLINE=1 make them when it is imported. The cached file is used.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = cnnzoo.create_model("mobilenet_v1", pretrained=True).eval()
    with torch.no_grad():
        assert same(model(x), expected)
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)  # timm's, not ImageNet's
    # An empty cache offline: one line naming the file, its URL and the cache folder.
    empty = tmp_path / "empty"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(empty))
    with pytest.raises(WeightsError) as err:
        cnnzoo.create_model("mobilenet_v1", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and entry["file_name"] in msg and hub.weight_url(entry) in msg
    assert str(empty) in msg and "offline" in msg


# --- hubconf.py ----------------------------------------------------------------------------------


def test_torch_hub_load_from_the_checkout(tmp_path):
    """``torch.hub.load(checkout, name, source="local")`` for every model, in a process where
    cnnzoo is not importable except through the checkout's hubconf.py; hubconf's public
    callables (what ``torch.hub.list`` lists for a GitHub repository) are exactly the models."""
    code = (
        "import importlib.util, json, sys, torch\n"
        "out = {}\n"
        "for n in json.loads(sys.argv[2]):\n"
        "    m = torch.hub.load(sys.argv[1], n, source='local', device='meta')\n"
        "    out[n] = [type(m).__name__, sum(p.numel() for p in m.parameters())]\n"
        "spec = importlib.util.spec_from_file_location('hubconf', sys.argv[1] + '/hubconf.py')\n"
        "hubconf = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(hubconf)\n"
        "listed = [f for f in dir(hubconf) if callable(getattr(hubconf, f)) and f[0] != '_']\n"
        "print(json.dumps([sys.modules['cnnzoo'].__file__, listed, out]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TORCH_HOME"] = str(tmp_path)
    names = cnnzoo.list_models()
    r = subprocess.run(
        [sys.executable, "-I", "-c", code, str(ROOT), json.dumps(names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    where, listed, loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(where).is_relative_to(ROOT / "src")  # the checkout's, not an installed copy
    assert sorted(listed) == names == sorted(loaded)
    params = {r["name"]: r["params"] for r in model_rows()}  # the registry's own counts
    for name, (cls, n) in loaded.items():
        built = typing.get_type_hints(cnnzoo.get_model_info(name).builder)["return"]
        assert (cls, n) == (built.__name__, params[name]), name


# --- pretrained_num_classes ----------------------------------------------------------------------


def test_pretrained_num_classes_loads_or_replaces_the_head(tmp_path):
    """A file fine-tuned to 7 classes: with pretrained_num_classes=7 its head loads (num_classes
    defaults to 7); another num_classes gets a new head on the same backbone; a wrong K is
    refused; without a file it is one line; a misspelling names it."""
    from cnnzoo.errors import CheckpointError

    peer = randomize_bn_(tv_models.resnet18(num_classes=7)).eval()
    path = tmp_path / "ft7.pth"
    torch.save(peer.state_dict(), path)
    x = torch.randn(2, 3, 64, 64)
    model = cnnzoo.create_model("resnet18", checkpoint_path=path, pretrained_num_classes=7).eval()
    with torch.no_grad():
        assert same(model(x), peer(x))
        trunk = torch.nn.Sequential(*list(peer.children())[:-1])
        features = torch.flatten(trunk(x), 1)
    with pytest.warns(UserWarning, match="7 classes in the file and 3 in the model"):
        new = cnnzoo.create_model(
            "resnet18", checkpoint_path=path, pretrained_num_classes=7, num_classes=3
        ).eval()
    with torch.no_grad():
        assert new(x).shape == (2, 3)
        assert same(new.forward_head(new.forward_features(x), pre_logits=True), features)
    with pytest.raises(CheckpointError, match="7 classes in the file and 5 in the model"):
        cnnzoo.create_model("resnet18", checkpoint_path=path, pretrained_num_classes=5)
    with pytest.raises(ModelArgumentError, match="use it with checkpoint_path"):
        cnnzoo.create_model("resnet18", pretrained_num_classes=7)
    with pytest.raises(TypeError, match="did you mean 'pretrained_num_classes'"):
        cnnzoo.create_model("resnet18", checkpoint_path=path, pretrained_num_class=7)


# --- the weights' resize filter ------------------------------------------------------------------


def test_image_transform_uses_the_weights_interpolation():
    from torchvision.transforms import InterpolationMode

    from cnnzoo.data import image_transform
    from cnnzoo.runs import Preprocess

    bicubic = hub.published_weights("inception_v4")  # timm's tf_in1k
    bilinear = hub.published_weights("resnet18")  # torchvision's
    assert bicubic["interpolation"] == "bicubic" and bilinear["interpolation"] == "bilinear"
    t = image_transform(Preprocess.from_pretrained_cfg(bicubic).to_dict())
    assert t.mode is InterpolationMode.BICUBIC and t.size == (342, 342)  # round(299 / 0.875)
    t = image_transform(Preprocess.from_pretrained_cfg(bilinear).to_dict())
    assert t.mode is InterpolationMode.BILINEAR and t.size == (256, 256)
    # a checkpoint fine-tuned from bicubic weights keeps their filter for the new data
    data = Preprocess((3, 32, 32), (32, 32), (0.5,) * 3, (0.2,) * 3)
    pre = data.with_stats_of(Preprocess.from_pretrained_cfg(bicubic))
    assert image_transform(pre.to_dict()).mode is InterpolationMode.BICUBIC


def test_predict_tensor_for_bicubic_weights_is_torchvisions(tmp_path):
    """predict's input for inception_v4's bicubic weights equals torchvision's
    Resize(342, BICUBIC) + CenterCrop(299) + Normalize on the same decoded image."""
    from PIL import Image
    from torchvision.io import read_image
    from torchvision.transforms import InterpolationMode, v2

    from cnnzoo.data import load_image
    from cnnzoo.runs import Preprocess

    entry = hub.published_weights("inception_v4")
    pixels = torch.randint(
        0, 256, (300, 350, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4)
    )
    image = tmp_path / "photo.png"
    Image.fromarray(pixels.numpy()).save(image)
    oracle = v2.Compose(
        [
            v2.Resize(342, interpolation=InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(299),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(entry["mean"], entry["std"]),
        ]
    )
    expected = oracle(read_image(str(image)))
    got = load_image(image, Preprocess.from_pretrained_cfg(entry).to_dict())
    assert got.shape == expected.shape == (3, 299, 299)
    torch.testing.assert_close(got, expected)
    plain = Preprocess.from_pretrained_cfg({**entry, "interpolation": "bilinear"}).to_dict()
    assert not torch.allclose(load_image(image, plain), expected)  # the filter is what differs


def test_folder_data_for_bicubic_weights_is_resized_bicubically(tmp_path):
    """features' and finetune's data (an image folder decoded once, at the model's size) for
    bicubic weights: each stored image is torchvision's bicubic Resize + CenterCrop of its file,
    and the preprocessing recorded says bicubic."""
    from torchvision.io import read_image
    from torchvision.transforms import InterpolationMode, v2

    from cnnzoo.runs import Preprocess, load_rows

    data = _image_folder(tmp_path / "imgs")  # 80 x 96 images
    weights = Preprocess.from_pretrained_cfg(hub.published_weights("inception_v4"))
    ds, _, _, _ = load_rows(str(data), "all", (3, 64, 64), preprocess=weights)
    assert ds.preprocess["interpolation"] == "bicubic"
    oracle = v2.Compose(
        [v2.Resize(64, interpolation=InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(64)]
    )
    expected = {bytes(oracle(read_image(str(f))).numpy()) for f in data.rglob("*.png")}
    assert len(expected) == len(ds) == 6
    assert {bytes(x.numpy()) for x in ds.images} == expected  # rows in the split's order
    plain, _, _, _ = load_rows(str(data), "all", (3, 64, 64))
    assert "interpolation" not in plain.preprocess
    assert not {bytes(x.numpy()) for x in plain.images} & expected


# --- evaluate --pretrained -----------------------------------------------------------------------


def _imagenet_folder(root: Path, classes=("tench", "goldfish")) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(6)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                pixels = torch.randint(0, 256, (90, 120, 3), dtype=torch.uint8, generator=g)
                Image.fromarray(pixels.numpy()).save(root / split / c / f"{i}.png")
    return root


def test_cli_evaluate_pretrained_scores_imagenet_classes(tmp_path, torch_home, resnet18_peer,
                                                         capsys, monkeypatch):  # fmt: skip
    """``evaluate resnet18 --pretrained --data DIR``: the weights' preprocessing, the folder's
    ImageNet classes scored among themselves; the oracle is the peer model on each image."""
    from cnnzoo.cli import main
    from cnnzoo.data import load_image
    from cnnzoo.runs import Preprocess

    torch_home.mkdir(parents=True)
    entry = hub.published_weights("resnet18")
    torch.save(resnet18_peer.state_dict(), torch_home / entry["file_name"])
    data = _imagenet_folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "resnet18", "--pretrained", "--data", str(data), "--split", "val"]
    assert main([*args, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    pre = Preprocess.from_pretrained_cfg(entry).to_dict()
    cols = [hub.imagenet_classes().index(c) for c in ("tench", "goldfish")]
    want_pred, labels = [], []
    for label, name in enumerate(("tench", "goldfish")):
        for f in sorted((data / "val" / name).iterdir()):
            with torch.no_grad():
                probs = resnet18_peer(load_image(f, pre)[None]).softmax(1)[0, cols]
            want_pred.append(int(probs.argmax()))
            labels.append(label)
    accuracy = sum(p == y for p, y in zip(want_pred, labels, strict=True)) / len(labels)
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["weights"] == ["resnet18.tv_in1k"] and result["among"] == 2
    assert result["n"] == 6 and result["classes"] == ["goldfish", "tench"]  # sorted folders
    assert Path(result["confusion_png"]).is_file()
    assert main([*args, "--no-plot"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "resnet18 (published weights resnet18.tv_in1k)" in first
    assert "scored among its 2 ImageNet classes" in first


def test_cli_evaluate_pretrained_refuses_other_classes(tmp_path, torch_home, resnet18_peer,
                                                       capsys):  # fmt: skip
    from cnnzoo.cli import main

    torch_home.mkdir(parents=True)
    torch.save(
        resnet18_peer.state_dict(), torch_home / hub.published_weights("resnet18")["file_name"]
    )
    data = _image_folder(tmp_path / "imgs")  # classes "a" and "b"
    args = ["evaluate", "resnet18", "--pretrained", "--data", str(data), "--split", "val"]
    assert main([*args, "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not ImageNet's" in err and "'a'" in err


def test_cli_evaluate_pretrained_offline_is_one_line(tmp_path, torch_home, monkeypatch, capsys):
    from cnnzoo.cli import main

    entry = hub.published_weights("resnet18")
    _serve_from(monkeypatch, entry, url=(tmp_path / "nothing.pth").as_uri())
    data = _imagenet_folder(tmp_path / "imgs")
    assert main(["evaluate", "resnet18", "--pretrained", "--data", str(data), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and entry["file_name"] in err and "put the file in" in err


def test_cli_evaluate_pretrained_takes_names_only(tmp_path, capsys):
    from cnnzoo.cli import main

    ckpt = tmp_path / "w.pth"
    torch.save(tv_models.resnet18().state_dict(), ckpt)
    data = _imagenet_folder(tmp_path / "imgs")
    cases = {
        "leave it out": [str(ckpt)],
        "not model 'resnet34'": ["resnet18", "--model", "resnet34"],
    }
    for why, args in cases.items():
        assert main(["evaluate", *args, "--pretrained", "--data", str(data), "--no-plot"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and why in err, err


class _LyingHub(_Hub):
    """A Hub whose published SHA-256 (its ETag) is not the hash of the bytes it sends."""

    def send_header(self, keyword, value):
        if keyword == "ETag":
            value = f'"{"ab" * 32}"'
        super().send_header(keyword, value)


def test_hugging_face_download_with_wrong_hash_is_refused_and_removed(tmp_path):
    pytest.importorskip("huggingface_hub")
    entry = hub.published_weights("mobilenet_v1")
    body = b"not the weights the Hub describes" * 100
    _LyingHub.files = {f"/{entry['hf_hub_id']}/resolve/main/{entry['file_name']}": body}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "hf"
    code = "import cnnzoo; cnnzoo.create_model('mobilenet_v1', pretrained=True)"
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        r = _in_subprocess(code, {"HF_HOME": str(home), "HF_ENDPOINT": endpoint})
    finally:
        server.shutdown()
        server.server_close()
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "WeightsError" in last and "does not match the SHA-256" in last
    kept = [p for p in home.rglob("*") if p.is_file() and p.stat().st_size == len(body)]
    assert kept == []  # neither the blob nor its snapshot link stays in the cache
