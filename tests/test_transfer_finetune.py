"""Fine-tuning through the real training loop and the linear probe, end to end on sklearn's digits
(bundled, no download): what is frozen stays bit-identical, the checkpoint rebuilds the model."""

import pytest
import torch

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.data import load_data
from cnnzoo.train import TrainConfig, evaluate
from cnnzoo.transfer import finetune, subsample_per_class

QUIET = dict(progress=False, tensorboard=False, plots=False, device="cpu")


def test_finetune_until_layer3_through_fit(tmp_path):
    bundle = load_data("digits", input_size=(3, 32, 32), limit=48)
    model = cnnzoo.create_model("resnet20", num_classes=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, **QUIET)
    result = finetune(model, bundle, config, tmp_path, model_name="resnet20",
                      model_args={"num_classes": 7}, freeze_mode="until:layer3",
                      backbone_lr_scale=0.1)  # fmt: skip
    assert result["model_args"]["num_classes"] == 10  # the head was reset for digits' classes
    rebuilt, ckpt = cnnzoo.model_from_checkpoint(result["last"])
    after = rebuilt.state_dict()
    for key, value in before.items():
        if key.startswith(("conv1.", "bn1.", "layer1.", "layer2.")):
            assert torch.equal(after[key], value), key  # weights and BN statistics
        elif key.startswith("layer3.") and key.endswith("weight"):
            assert not torch.equal(after[key], value), key
    assert after["fc.weight"].shape == (10, 64)
    assert ckpt["finetune"]["freeze"] == "until:layer3"


def test_linear_probe_checkpoint_reproduces_its_accuracy(tmp_path):
    bundle = load_data("digits", input_size=(1, 32, 32), limit=300)
    model = cnnzoo.create_model("lenet5", num_classes=4)  # a "pretrained" net with another head
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    result = finetune(model, bundle, TrainConfig(**QUIET), tmp_path, model_name="lenet5",
                      model_args={"num_classes": 4})  # fmt: skip
    assert "probe" in result
    rebuilt, _ = cnnzoo.model_from_checkpoint(result["best"])
    for key, value in backbone.items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    again = evaluate(rebuilt, bundle.val, bundle.classes, "cpu")["accuracy"]
    assert again == pytest.approx(result["best_val_acc"])
    assert again > 0.5  # random LeNet features of digits are linearly separable enough (chance 0.1)


def test_subsample_per_class():
    bundle = load_data("digits", input_size=(1, 32, 32))
    small = subsample_per_class(bundle.train, 5, seed=1)
    assert torch.bincount(small.labels).tolist() == [5] * 10


def test_cli_finetune_errors(tmp_path, capsys):
    model = cnnzoo.create_model("lenet5")
    ckpt = tmp_path / "c.pt"
    cnnzoo.save_checkpoint(ckpt, "lenet5", {}, model.state_dict())
    cases = [
        (["finetune", str(tmp_path / "nothere.pt"), "--data", "digits"], "is not a file"),
        (["finetune", "lenet5", "--data", "digits"], "has no published weights: train it"),
        (["finetune", "resnet18", "--data", "digits"], "add --pretrained"),
        (["finetune", "resnet18.tv_in1k", "--data", "digits"], "add --pretrained"),
        (["finetune", str(ckpt), "--data", "digits", "--freeze", "head"], "unknown freeze mode"),
        (["finetune", str(ckpt), "--data", "digits", "--freeze", "until:"], "unknown freeze mode"),
        (["finetune", str(ckpt), "--data", "digits", "--augment", "flip"], "linear probe"),
        (["finetune", str(ckpt), "--model", "resnet20", "--data", "digits"], "not 'resnet20'"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
        said = capsys.readouterr()
        err = said.err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert said.out == ""  # refused before any data is loaded and announced


def test_cli_finetune_from_torchvision_weights(tmp_path, capsys):
    """A torchvision state_dict is a valid start (via load_pretrained): the probe keeps its
    backbone exactly and replaces the 1000-class head by one for digits' 10 classes."""
    import torchvision

    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    out = tmp_path / "run"
    argv = ["finetune", str(tmp_path / "resnet18.pth"), "--model", "resnet18", "--data", "digits",
            "--limit", "40", "--img-size", "32", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "linear probe" in capsys.readouterr().out
    model, ckpt = cnnzoo.model_from_checkpoint(out / "best.pt")
    assert ckpt["model_args"]["num_classes"] == 10 and model.fc.out_features == 10
    torch.testing.assert_close(model.layer4[1].conv2.weight, tv.layer4[1].conv2.weight)
    torch.testing.assert_close(model.bn1.running_var, tv.bn1.running_var)
    assert ckpt["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet's
