"""Features, exact neighbours, freezing and the linear probe, against hand-written oracles."""

import numpy as np
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.transfer import (
    FrozenBatchNorm2d,
    extract_features,
    freeze,
    knn,
    linear_probe,
    param_groups,
    precision_at_k,
)


def templated_images(classes: int = 4, per_class: int = 12, noise: float = 0.3):
    """Known structure: each class is one random 32x32 template plus small independent noise."""
    g = torch.Generator().manual_seed(3)
    templates = torch.randn(classes, 1, 32, 32, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = templates[labels] + noise * torch.randn(len(labels), 1, 32, 32, generator=g)
    return images, labels


def batches(x: torch.Tensor, y: torch.Tensor, size: int = 8):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


# ---------------------------------------------------------------------------------- features


def test_neighbours_of_a_class_are_that_class():
    x, y = templated_images()
    model = cnnzoo.create_model("lenet5")  # random weights: the structure is in the data
    feats, labels = extract_features(model, batches(x, y), progress=False)
    assert feats.shape == (48, 84) and torch.equal(labels, y)
    _, idx = knn(feats, feats, k=5, exclude=torch.arange(48))
    assert precision_at_k(labels, labels[idx]) == 1.0
    assert not (idx == torch.arange(48)[:, None]).any()  # a query is never its own neighbour


def test_default_features_are_lenet_f6_by_hand():
    model = cnnzoo.create_model("lenet5").train()
    x = torch.randn(5, 1, 32, 32)
    feats, labels = extract_features(model, [x], progress=False)
    assert labels is None and model.training  # mode restored
    with torch.no_grad():
        c5 = model.features(x).flatten(1)  # N x 120
        f6 = torch.tanh(c5 @ model.pre_logits[1].weight.T + model.pre_logits[1].bias)
    torch.testing.assert_close(feats, f6)


def test_layer_features_hook_is_removed_and_batching_does_not_matter():
    model = cnnzoo.create_model("lenet5")
    x, y = templated_images(per_class=3)
    one, _ = extract_features(model, [(x, y)], layer="features.3", progress=False)
    many, _ = extract_features(model, batches(x, y, 5), layer="features.3", progress=False)
    with torch.no_grad():
        ref = model.features[:4](x).flatten(1)  # C3 output, 16 x 10 x 10
    assert one.shape == (12, 1600)
    torch.testing.assert_close(one, ref)
    torch.testing.assert_close(many, ref)
    assert all(not m._forward_hooks for m in model.modules())
    avg, _ = extract_features(model, [x], layer="features.3", pool="avg", progress=False)
    torch.testing.assert_close(avg, ref.view(12, 16, 100).mean(2))


def test_unknown_layer_names_close_ones():
    model = cnnzoo.create_model("lenet5")
    with pytest.raises(cnnzoo.CnnzooError, match="did you mean features.3"):
        extract_features(model, [torch.randn(1, 1, 32, 32)], layer="features.33", progress=False)


# ------------------------------------------------------------------------------- neighbours


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_knn_matches_brute_force_across_chunks(metric):
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(50, 6, generator=g), torch.randn(9, 6, generator=g)
    d, i = knn(queries, bank, k=4, metric=metric, chunk_size=7)  # several chunks both ways
    for q in range(9):  # the definition, one pair at a time
        if metric == "l2":
            full = torch.tensor([((queries[q] - b) ** 2).sum().sqrt() for b in bank])
        else:
            full = torch.tensor([1 - queries[q] @ b / (queries[q].norm() * b.norm()) for b in bank])
        order = full.argsort()[:4]
        assert i[q].tolist() == order.tolist()
        torch.testing.assert_close(d[q], full[order], rtol=1e-4, atol=1e-5)


def test_precision_at_k_by_hand():
    # query 0 (class 1): neighbours 1, 2, 1 -> 2/3; query 1 (class 0): 0, 0, 0 -> 3/3
    q = torch.tensor([1, 0])
    n = torch.tensor([[1, 2, 1], [0, 0, 0]])
    assert precision_at_k(q, n) == pytest.approx((2 / 3 + 1) / 2)


def test_knn_refuses_bad_k_and_metric():
    bank = torch.randn(5, 3)
    with pytest.raises(cnnzoo.CnnzooError, match="k must be between 1 and 4"):
        knn(bank, bank, k=5, exclude=torch.arange(5))
    with pytest.raises(cnnzoo.CnnzooError, match="unknown metric 'l1'"):
        knn(bank, bank, k=2, metric="l1")


# -------------------------------------------------------------------------------- freezing


def sgd_step(model: nn.Module) -> None:
    """One training step with momentum and weight decay over ALL parameters: a frozen one has
    no gradient, so SGD must skip it (weight decay included)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    model.train()
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0]))
    opt.zero_grad()
    loss.backward()
    opt.step()


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_freeze_backbone_keeps_weights_and_bn_statistics():
    model = cnnzoo.create_model("resnet20", num_classes=10)
    model.reset_classifier(3)
    before = snapshot(model)
    summary = freeze(model, "backbone")
    assert summary.trainable == 64 * 3 + 3  # the new head: 64 features x 3 classes + 3 biases
    assert summary.frozen_norms == sum(k.endswith("running_mean") for k in before)
    sgd_step(model)
    after = model.state_dict()
    for key, value in before.items():
        if key.startswith("fc."):
            assert not torch.equal(after[key], value), key
        else:  # weights, BN affine parameters, running statistics and counters: bit-identical
            assert torch.equal(after[key], value), key


def test_freeze_until_layer3_trains_layer3_and_head_only():
    model = cnnzoo.create_model("resnet20", num_classes=3)
    before = snapshot(model)
    freeze(model, "until:layer3")
    assert isinstance(model.layer2[0].bn1, FrozenBatchNorm2d)
    assert type(model.layer3[0].bn1) is nn.BatchNorm2d
    sgd_step(model)
    after = model.state_dict()
    for key, value in before.items():
        trains = key.startswith(("layer3.", "fc."))
        if key.endswith("num_batches_tracked"):
            assert (after[key] != value).item() == trains, key
        elif trains and not key.endswith(("running_mean", "running_var")):
            assert not torch.equal(after[key], value), key
        elif not trains:
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["layer3.0.bn1.running_mean"], before["layer3.0.bn1.running_mean"])


def test_frozen_model_state_dict_loads_into_a_plain_model():
    model = cnnzoo.create_model("resnet20", num_classes=3)
    freeze(model, "backbone")
    plain = cnnzoo.create_model("resnet20", num_classes=3)
    assert set(model.state_dict()) == set(plain.state_dict())
    from cnnzoo.checkpoint import load_state_dict_checked

    load_state_dict_checked(plain, model.state_dict())


def test_freeze_none_and_bad_modes():
    model = cnnzoo.create_model("lenet5")
    assert freeze(model, "none").frozen == 0
    with pytest.raises(cnnzoo.CnnzooError, match="unknown freeze mode"):
        freeze(model, "head")
    with pytest.raises(cnnzoo.CnnzooError, match="no layer 'layer9'"):
        freeze(model, "until:layer9")


def test_param_groups_lower_rate_on_backbone():
    model = cnnzoo.create_model("resnet20", num_classes=3)
    freeze(model, "until:layer3")
    groups = param_groups(model, lr=0.1, backbone_lr_scale=0.1)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == pytest.approx(0.01)
    assert sum(p.numel() for p in groups[0]["params"]) == 64 * 3 + 3
    layer3 = sum(p.numel() for n, p in model.named_parameters() if n.startswith("layer3."))
    assert sum(p.numel() for p in groups[1]["params"]) == layer3


def test_linear_probe_equals_logistic_regression_on_standardised_features():
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(60, 84, generator=g) * 3 + 1
    labels = torch.arange(3).repeat(20)
    feats[:, :3] += 2 * nn.functional.one_hot(labels, 3)  # a little signal
    model = cnnzoo.create_model("lenet5", num_classes=3)
    result = linear_probe(model, feats, labels, Cs=(0.5,))
    x = feats.double().numpy()
    xs = (x - x.mean(0)) / (x.std(0) + 1e-8)
    ref = LogisticRegression(C=0.5, max_iter=2000).fit(xs, labels.numpy()).decision_function(xs)
    with torch.no_grad():
        got = model.get_classifier()(feats).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert result.C == 0.5 and result.val_accuracy is None


# ------------------------------------------------------------------------------------- CLI


def test_cli_features_then_neighbors(tmp_path, capsys):
    feats = tmp_path / "f.npz"
    argv = ["features", "lenet5", "--data", "digits", "--split", "test", "--limit", "60"]
    assert main([*argv, "--out", str(feats), "--no-progress"]) == 0
    z = np.load(feats, allow_pickle=False)
    assert z["features"].shape == (60, 84) and len(z["labels"]) == 60
    assert list(z["classes"]) == [str(d) for d in range(10)] and set(z["split"]) == {"test"}
    capsys.readouterr()
    grid = tmp_path / "g.png"
    assert main(["neighbors", str(feats), "--query", "0", "-k", "3", "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    assert "precision@3" in out and out.count("l2 ") == 3
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["neighbors", str(tmp_path / "none.npz"), "--query", "0"], "does not exist"),
        (["features", "lenet5", "--data", "nosuchset", "--out", str(tmp_path / "f.npz")],
         "unknown dataset"),
        (["features", "lenet5", "--data", "digits", "--layer", "fc9", "--limit", "5",
          "--out", str(tmp_path / "f.npz")], "no layer 'fc9'"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_cli_image_query_finds_the_same_image(tmp_path, capsys):
    """An image file queried against features of a checkpoint: the file is digits' test image 0
    written as PNG, so its nearest row must be that image at (almost) zero distance."""
    from PIL import Image

    from cnnzoo.data import load_data

    model = cnnzoo.create_model("lenet5")
    ckpt = tmp_path / "c.pt"
    bundle = load_data("digits", input_size=(1, 32, 32))
    cnnzoo.save_checkpoint(ckpt, "lenet5", {}, model.state_dict(), preprocess=bundle.preprocess)
    feats = tmp_path / "f.npz"
    argv = ["features", str(ckpt), "--data", "digits", "--split", "test", "--no-progress"]
    assert main([*argv, "--out", str(feats)]) == 0
    Image.fromarray(bundle.test.images[0, 0].numpy()).save(tmp_path / "q.png")
    capsys.readouterr()
    assert main(["neighbors", str(feats), "--query", str(tmp_path / "q.png"), "-k", "1",
                 "--eval-queries", "0"]) == 0  # fmt: skip
    line = [s for s in capsys.readouterr().out.splitlines() if s.strip().startswith("1.")][0]
    assert "(test #0)" in line and float(line.split()[-1]) < 1e-3, line


def test_extract_features_of_something_that_is_no_module_is_one_line():
    from cnnzoo.errors import CnnzooError
    from cnnzoo.transfer import extract_features

    with pytest.raises(CnnzooError, match="extract_features needs an nn.Module, got int"):
        extract_features(42, [])
