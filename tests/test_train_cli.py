"""`cnnzoo train` options: those that change the model also change the data it is fed; recipes."""

import json
from pathlib import Path

import pytest

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.train import TrainConfig
from cnnzoo.train.recipes import RECIPES, load_recipe, recipe_as_args


def test_model_arg_in_chans_sets_the_data_channels(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "digits", "--model-arg", "in_chans=3", "--epochs", "1"]
    argv += ["--limit", "64", "--no-progress", "--no-tensorboard", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    ckpt = cnnzoo.load_checkpoint(out / "last.pt")
    assert ckpt["model_args"]["in_chans"] == 3
    assert ckpt["preprocess"]["input_size"][0] == 3  # grey digits repeated to RGB
    model, _ = cnnzoo.model_from_checkpoint(ckpt)
    assert model.in_chans == 3


# --- recipes ---------------------------------------------------------------------------------


def test_recipe_fills_in_what_the_command_line_leaves_out(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--recipe", "lenet-fashion", "--data", "digits", "--epochs", "1"]
    argv += ["--lr", "0.02", "--limit", "64", "--no-progress", "--no-tensorboard", "--no-plots"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    ckpt = cnnzoo.load_checkpoint(out / "last.pt")
    assert ckpt["model"] == "lenet5" and ckpt["model_args"]["act"] == "relu"  # from the recipe
    cfg = ckpt["config"]
    assert cfg["epochs"] == 1 and cfg["lr"] == 0.02 and ckpt["data"]["spec"] == "digits"  # argv
    assert cfg["nesterov"] is True and cfg["sched"] == "onecycle" and cfg["batch_size"] == 128
    assert cfg["label_smoothing"] == 0.1 and ckpt["data"]["augment"] == "flip"


def test_recipe_file_and_its_errors(tmp_path, capsys):
    good = tmp_path / "r.json"
    good.write_text(json.dumps({"model": "lenet5", "batch-size": "32", "nesterov": True}))
    assert load_recipe(str(good)) == {"model": "lenet5", "batch_size": "32", "nesterov": True}
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"model": "lenet5", "lr_max": 0.1}))
    with pytest.raises(CnnzooError, match="unknown option.*lr_max"):
        load_recipe(str(bad))
    with pytest.raises(CnnzooError, match="unknown recipe 'fashion-slow'.*fashion-fast"):
        load_recipe("fashion-slow")
    toml = tmp_path / "r.toml"
    toml.write_text('model = "lenet5"\nepochs = "many"\n')
    argv = ["train", "--recipe", str(toml), "--data", "digits", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "epochs must be an int, got 'many'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_as_command_line_is_what_results_md_shows(name):
    """docs/results.md gives each recipe both ways; the spelled-out command must be the recipe."""
    text = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    assert f"--recipe {name}" in text
    args = recipe_as_args(RECIPES[name])
    spelled = " ".join(text.split("\\\n"))  # join continued lines
    spelled = " ".join(spelled.split())
    assert "cnnzoo train " + " ".join(args) in spelled, " ".join(args)


def test_recipe_with_resume_refused(tmp_path, capsys):
    argv = ["train", "--resume", str(tmp_path), "--recipe", "fashion-fast"]
    assert main(argv) == 2
    assert "--resume continues a run as it was configured; drop --recipe" in capsys.readouterr().err


def test_the_command_line_says_which_of_the_models_own_defaults_it_took(tmp_path, capsys):
    """LeNet-5 declares its training defaults; `cnnzoo train` names those it used (the ones the
    command line did not give) and stores them in the run's configuration."""
    out = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "digits", "--epochs", "1", "--limit", "64", "--lr", "0.05"]
    argv += ["--no-progress", "--no-tensorboard", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "lenet5's own training defaults: augment none, label_smoothing 0.0\n" in said, said
    cfg = cnnzoo.load_checkpoint(out / "last.pt")["config"]
    assert (cfg["lr"], cfg["label_smoothing"]) == (0.05, 0.0)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_train_help_names_the_defaults_a_model_declares(capsys):
    """`--help` gave the general defaults only, though `cnnzoo train lenet5` takes LeNet-5's own
    rate and smoothing. Each declared value, from the registry (not the stored table the help
    reads), appears beside its option in `train --help`, and not in `finetune --help`, which
    does not take them."""
    declared = [(m, dict(i.train_defaults)) for m in cnnzoo.list_models()
                if (i := cnnzoo.get_model_info(m)).train_defaults]  # fmt: skip
    assert declared, "no model declares training defaults any more: drop this test"
    train, finetune = _help("train", capsys), _help("finetune", capsys)
    assert "(default: None; lenet5's own: 0.2)" in train  # --lr, written out by hand
    for model, values in declared:
        for field, value in values.items():
            if field == "augment":  # an input option, with its own help
                continue
            general = TrainConfig.__dataclass_fields__[field].default  # before resolving
            assert f"(default: {general}; {model}'s own: {value})" in train, field
            assert f"{model}'s own" not in finetune
