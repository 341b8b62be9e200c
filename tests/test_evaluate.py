"""Evaluation metrics against scikit-learn, ensembles, and the train/evaluate/predict commands
end to end on a generated dataset, with the bad-checkpoint and bad-image cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, top_k_accuracy_score

import cnnzoo
from cnnzoo.checkpoint import save_checkpoint
from cnnzoo.cli import main
from cnnzoo.data import DataWarning, load_data
from cnnzoo.train import evaluate_ensemble, metrics_from_probs, predict_probs
from test_data import write_idx_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_metrics_match_sklearn():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(200, 7, generator=g).softmax(1)
    labels = torch.randint(0, 7, (200,), generator=g)
    m = metrics_from_probs(probs, labels)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert m["top5"] == pytest.approx(top_k_accuracy_score(labels, probs.numpy(), k=5))
    cm = confusion_matrix(labels, probs.argmax(1), labels=range(7))
    assert m["confusion"] == cm.tolist() and m["n"] == 200
    per = cm.diagonal() / cm.sum(1)
    assert list(m["per_class"].values()) == pytest.approx(per.tolist())
    nll = -np.log(probs[torch.arange(200), labels].numpy()).mean()
    assert m["loss"] == pytest.approx(nll, rel=1e-5)


def test_ensemble_averages_probabilities():
    bundle = load_data("digits", input_size=(1, 32, 32), limit=100)
    models = [cnnzoo.create_model("lenet5").eval() for _ in range(3)]
    probs = [predict_probs(m, bundle.test)[0] for m in models]
    labels = bundle.test.labels
    r = evaluate_ensemble(models, bundle.test)
    mean = (probs[0] + probs[1] + probs[2]) / 3
    assert r["accuracy"] == pytest.approx((mean.argmax(1) == labels).double().mean().item())
    assert r["members"] == pytest.approx(
        [(p.argmax(1) == labels).double().mean().item() for p in probs]
    )


def test_flip_tta_averages_image_and_mirror():
    bundle = load_data("digits", input_size=(1, 32, 32), limit=60)
    model = cnnzoo.create_model("lenet5").eval()
    x = torch.stack([bundle.test[i][0] for i in range(len(bundle.test))])
    with torch.no_grad():
        want = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
        plain = model(x).softmax(1)
    got, _ = predict_probs(model, bundle.test, tta="flip")
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)  # digits are not mirror-symmetric: TTA changed them
    with pytest.raises(ValueError, match="unknown test-time augmentation .crop."):
        predict_probs(model, bundle.test, tta="crop")


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two one-epoch LeNet-5 runs on a generated MNIST-layout dataset, through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    write_idx_dataset(root / "idx", n_train=200, n_test=40)
    out = []
    for seed in (1, 2):
        run = root / f"run{seed}"
        argv = ["train", "lenet5", "--data", "mnist", "--data-dir", str(root / "idx"),
                "--epochs", "1", "--batch-size", "16", "--lr", "0.05", "--seed", str(seed),
                "--out", str(run), "--no-progress", "--no-tensorboard"]  # fmt: skip
        assert main(argv) == 0
        out.append(run)
    return root, out


def test_train_writes_the_run(runs):
    _, (run, _) = runs
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png"):
        assert (run / name).is_file(), name
    ckpt = cnnzoo.load_checkpoint(run / "last.pt")
    assert ckpt["model"] == "lenet5" and ckpt["model_args"]["num_classes"] == 10
    assert ckpt["data"]["spec"] == "mnist" and ckpt["preprocess"]["input_size"] == [1, 32, 32]


def test_evaluate_json(runs, capsys):
    root, (run, _) = runs
    assert main(["evaluate", str(run), "--format", "json", "--out", str(root / "ev")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"accuracy", "top5", "n", "per_class", "confusion"} <= r.keys()
    assert r["n"] == 40 and sum(map(sum, r["confusion"])) == 40
    assert (root / "ev" / "confusion.png").is_file()
    # the same number as the library's evaluation of the rebuilt model
    model, ckpt = cnnzoo.model_from_checkpoint(run / "best.pt")
    bundle = load_data("mnist", data_dir=root / "idx", input_size=(1, 32, 32))
    probs, labels = predict_probs(model, bundle.test)
    assert r["accuracy"] == pytest.approx((probs.argmax(1) == labels).double().mean().item())


def test_evaluate_ensemble_cli(runs, capsys):
    _, (a, b) = runs
    assert main(["evaluate", str(a), str(b), "--format", "json", "--no-plot"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert len(r["members"]) == 2 and r["n"] == 40


def test_evaluate_cli_tta(runs, capsys):
    root, (run, _) = runs
    assert main(["evaluate", str(run), "--format", "json", "--no-plot", "--tta", "flip"]) == 0
    r = json.loads(capsys.readouterr().out)
    model, _ = cnnzoo.model_from_checkpoint(run / "best.pt")
    bundle = load_data("mnist", data_dir=root / "idx", input_size=(1, 32, 32))
    probs, labels = predict_probs(model, bundle.test, tta="flip")
    assert r["tta"] == "flip"
    assert r["accuracy"] == pytest.approx((probs.argmax(1) == labels).double().mean().item())


def test_resume_cli_continues(runs, capsys):
    root, (run, _) = runs
    copy = root / "resumed"
    copy.mkdir()
    (copy / "last.pt").write_bytes((run / "last.pt").read_bytes())
    assert main(["train", "--resume", str(copy), "--epochs", "2", "--no-progress",
                 "--no-tensorboard", "--no-plots"]) == 0  # fmt: skip
    assert cnnzoo.load_checkpoint(copy / "last.pt")["epoch"] == 2
    assert len((copy / "metrics.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert main(["train", "--resume", str(copy), "--lr", "1"]) == 2
    assert "only --epochs" in capsys.readouterr().err


def test_predict_topk_with_class_names_and_skips_bad_file(runs, capsys, tmp_path):
    _, (run, _) = runs
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (28, 28)).astype(np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(DataWarning, match=r"skipped: .*bad\.jpg is not a readable image"):
        assert main(["predict", str(run), str(tmp_path), "--topk", "3", "--format", "json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [p["path"].rsplit("/", 1)[1] for p in r] == ["0.png", "1.png"]
    for p in r:
        assert len(p["top"]) == 3 and all(name in "0123456789" for name, _ in p["top"])
        probs = [v for _, v in p["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert main(["predict", str(run), str(tmp_path / "bad.jpg"), "--strict"]) == 2


def bad_checkpoints(tmp_path, good):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    state = tmp_path / "state_dict.pt"
    torch.save(cnnzoo.create_model("lenet5").state_dict(), state)
    wrong = tmp_path / "wrong_weights.pt"
    save_checkpoint(wrong, "lenet5", {}, {"fc.weight": torch.zeros(3, 3)})
    return {
        truncated: "truncated, corrupt",
        text: "not a readable checkpoint",
        state: "not a cnnzoo checkpoint",
        wrong: "does not fit LeNet5",
    }


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_bad_checkpoints_one_line_exit_2(runs, tmp_path, capsys, command):
    _, (run, _) = runs
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    for path, msg in bad_checkpoints(tmp_path, run / "last.pt").items():
        argv = [command, str(path)] + ([str(img)] if command == "predict" else [])
        assert main(argv) == 2, path
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and str(path.name) in err, err
    argv = [command, str(run), "--model", "resnet18"] + ([str(img)] if command == "predict" else [])
    assert main(argv) == 2
    assert "is for model 'lenet5', not 'resnet18'" in capsys.readouterr().err


def test_demo_trains_evaluates_predicts_on_digits(tmp_path, capsys):
    argv = ["demo", "--data", "digits", "--epochs", "3", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    acc = float(out.split("accuracy ", 1)[1].split()[0])
    assert acc > 0.7, out  # chance is 0.1; about 0.95 after three epochs
    assert out.count("[ok]") + out.count("[wrong]") == 5
    model, ckpt = cnnzoo.model_from_checkpoint(tmp_path / "best.pt")
    bundle = load_data("digits", input_size=(1, 32, 32))
    probs, labels = predict_probs(model, bundle.test)
    assert acc == pytest.approx((probs.argmax(1) == labels).double().mean().item(), abs=1e-4)


def test_evaluate_on_data_with_other_classes_refused(runs, tmp_path, capsys):
    from test_data import write_folder

    _, (run, _) = runs
    write_folder(tmp_path / "imgs", classes=("cat", "dog"))
    assert main(["evaluate", str(run), "--data", str(tmp_path / "imgs"), "--split", "val"]) == 2
    assert "has classes ['cat', 'dog']" in capsys.readouterr().err


def test_evaluate_cli_fast_backend_agrees_with_eager(runs, capsys):
    pytest.importorskip("onnxruntime")
    _, (run, _) = runs
    results = {}
    for backend in ("eager", "onnxruntime"):
        argv = ["evaluate", str(run), "--format", "json", "--no-plot", "--backend", backend]
        assert main(argv) == 0
        results[backend] = json.loads(capsys.readouterr().out)
    assert results["onnxruntime"]["backend"] == "onnxruntime"
    assert results["onnxruntime"]["confusion"] == results["eager"]["confusion"]
    assert results["onnxruntime"]["loss"] == pytest.approx(results["eager"]["loss"], rel=1e-4)


def test_predict_names_five_unreadable_files_and_counts_the_rest(tmp_path):
    """The same cap as for image folders: seven text files among two images give five named
    warnings and one that counts two more; the two images are still predicted."""
    import warnings

    from cnnzoo.data.transforms import make_preprocess
    from cnnzoo.train.predict import predict

    for i in range(2):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(tmp_path / f"img{i}.png")
    for i in range(7):
        (tmp_path / f"t{i}.txt").write_text("text")
    pre = make_preprocess((1, 32, 32), (28, 28), [0.5], [0.5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = predict(cnnzoo.create_model("lenet5"), [tmp_path], pre, topk=1)
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert [m.split(".txt")[0].rsplit("/", 1)[1] for m in said[:5]] == [f"t{i}" for i in range(5)]
    assert said[5:] == ["skipped 2 more unreadable files (7 in all); --strict stops at the first"]
    assert [r["path"].rsplit("/", 1)[1] for r in out] == ["img0.png", "img1.png"]


def test_one_path_alone_stands_for_itself_not_its_characters(runs, tmp_path):
    """``evaluate_checkpoints("runs/x")`` read "/" as its first checkpoint, and
    ``predict_checkpoint(ckpt, "shoe.png")`` walked the file system from "/" until a folder it
    could not read; an empty list ended in torch.stack's message."""
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.assess import evaluate_checkpoints
    from cnnzoo.train.predict import predict_checkpoint

    root, (run, _) = runs
    data = {"data": "mnist", "data_dir": str(root / "idx")}
    one = evaluate_checkpoints(str(run), **data)
    assert one["accuracy"] == evaluate_checkpoints([str(run)], **data)["accuracy"]
    with pytest.raises(CnnzooError, match="give at least one checkpoint"):
        evaluate_checkpoints([], **data)
    image = tmp_path / "shoe.png"
    Image.fromarray(np.full((28, 28), 90, np.uint8)).save(image)
    alone = predict_checkpoint(run, str(image), topk=2)
    assert alone == predict_checkpoint(run, [image], topk=2) and len(alone) == 1
