"""The library-owned run: a recipe from Python is what `--recipe` gives on the command line, and a
run's training state round-trips through its state_dict."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from cnnzoo.checkpoint import load_checkpoint, save_checkpoint
from cnnzoo.cli import main as cli
from cnnzoo.errors import CnnzooError
from cnnzoo.registry import create_model
from cnnzoo.runs import load_features
from cnnzoo.train import TrainConfig
from cnnzoo.train.finetune import FineTune
from cnnzoo.train.loop import TrainState
from cnnzoo.train.run import Run
from cnnzoo.train.schedule import LRSchedule, build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

# lenet-91 names Fashion-MNIST; digits (bundled) keeps the runs to a second each
SMALL = {"data": "digits", "limit": 64, "epochs": 1, "threads": 1}
QUIET = {"progress": False, "tensorboard": False, "plots": False}


def test_from_recipe_is_the_command_lines_config_and_first_epoch(tmp_path):
    cmd = tmp_path / "cmd"
    small = ["--data", "digits", "--limit", "64", "--epochs", "1", "--threads", "1"]
    quiet = ["--no-progress", "--no-tensorboard", "--no-plots"]
    argv = ["train", "--recipe", "lenet-91", *small, *quiet, "--out", str(cmd)]
    assert cli(argv) == 0
    py = tmp_path / "py"
    run = Run.new(recipe="lenet-91", out=py, **SMALL, **QUIET)
    expected = TrainConfig.from_recipe("lenet-91", epochs=1, threads=1, **QUIET)
    assert run.config == expected
    run.train()
    a, b = load_checkpoint(cmd / "last.pt"), load_checkpoint(py / "last.pt")
    assert a["config"] == b["config"] == expected.to_dict()
    assert a["model_args"] == b["model_args"] and a["data"] == b["data"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_a_recipe_differs_from_the_defaults_where_it_says():
    """The recipe is not silently the defaults: its own values are there, overrides win."""
    plain, recipe = TrainConfig(), TrainConfig.from_recipe("fashion-fast")
    assert (recipe.epochs, recipe.weight_decay, recipe.amp) == (22, 5e-4, True)
    assert recipe != plain
    assert TrainConfig.from_recipe("fashion-fast", epochs=3).epochs == 3


def test_unknown_recipe_is_one_line():
    with pytest.raises(CnnzooError, match="fashion-fast"):  # it lists the names it knows
        TrainConfig.from_recipe("fashion-fsat")


@pytest.mark.parametrize(
    "call",
    [
        lambda: Run.new("lenet5", "digits", epoch=5),
        lambda: Run.new(recipe="fashion-fast", epoch=5),
        lambda: TrainConfig.from_recipe("fashion-fast", epoch=5),
        lambda: FineTune.new("lenet5", "digits", pretrained=True, epoch=5),
    ],
)
def test_a_misspelt_config_keyword_names_the_closest_field(call, tmp_path):
    """As create_model does for model arguments: a TypeError (and cnnzoo's error, so the command
    line prints it in one line) naming the keyword and the field it probably meant."""
    with pytest.raises(TypeError, match=r"no field 'epoch'; did you mean 'epochs'\?") as exc:
        call()
    assert isinstance(exc.value, CnnzooError)


def test_a_validation_share_of_0_or_1_is_refused_not_replaced(tmp_path):
    """val_fraction=0 once became the default 10% without a word; now it stops, naming the
    recipe when the value came from one."""
    for bad in (0.0, 1.0):
        with pytest.raises(CnnzooError, match=f"val_fraction must be above 0 and below 1.*{bad}"):
            Run.new("lenet5", "digits", val_fraction=bad)
    recipe = tmp_path / "r.toml"
    recipe.write_text('model = "lenet5"\ndata = "digits"\nval_fraction = 0\n')
    with pytest.raises(CnnzooError, match=f"recipe {recipe}: val_fraction"):
        Run.new(recipe=str(recipe))
    assert Run.new("lenet5", "digits", val_fraction=0.3).data.val_fraction == 0.3
    assert Run.new("lenet5", "digits").data.val_fraction == 0.1


def state_for(model: nn.Module) -> TrainState:
    cfg = TrainConfig(lr=0.1, epochs=4, sched="cosine")
    opt = build_optimizer(model, cfg)
    return TrainState(opt, LRSchedule(opt, cfg, steps_per_epoch=3))


def test_train_state_round_trips_through_its_state_dict():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    state = state_for(model)
    for epoch in (1, 2):
        for i in range(3):
            state.schedule.step((epoch - 1) * 3 + i)
            model(torch.randn(4, 3)).square().sum().backward()
            state.optimizer.step()
        state.schedule.epoch_end(0.5 * epoch)
        state.record({"epoch": epoch, "val_acc": 0.5 * epoch})
    saved = state.state_dict()
    copy = state_for(nn.Linear(3, 2))
    copy.load_state_dict(saved)
    assert (copy.epoch, copy.best_epoch, copy.best_val_acc) == (2, 2, 1.0)
    assert copy.history == state.history
    assert copy.schedule.state_dict() == state.schedule.state_dict()
    mom = [s["momentum_buffer"] for s in copy.optimizer.state_dict()["state"].values()]
    ref = [s["momentum_buffer"] for s in state.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(mom, ref, strict=True))


def test_record_keeps_the_best_and_a_state_without_optimiser_is_refused():
    state = state_for(nn.Linear(3, 2))
    assert state.record({"epoch": 1, "val_acc": 0.6}) is True
    assert state.record({"epoch": 2, "val_acc": 0.5}) is False
    assert (state.best_epoch, state.best_val_acc, state.epoch) == (1, 0.6, 2)
    broken = {k: v for k, v in state.state_dict().items() if k != "optimizer"}
    with pytest.raises(CnnzooError, match="optimizer"):
        state_for(nn.Linear(3, 2)).load_state_dict(broken)


def test_run_new_fills_in_the_models_input_and_the_datasets_augmentation(tmp_path):
    run = Run.new("resnet20", "fashion-mnist", out=tmp_path)
    assert run.data.input_size == (3, 32, 32)  # ResNet-20's own
    assert run.data.augment == "flip"  # clothing flips; digits never do
    assert Run.new("resnet20", "digits", out=tmp_path).data.augment == "none"
    assert Run.new("lenet5", "digits", out=tmp_path).data.input_size == (1, 32, 32)
    with pytest.raises(CnnzooError, match="give a model and data"):
        Run.new("lenet5")


def test_a_models_declared_training_defaults_sit_between_the_caller_and_the_general_ones(tmp_path):
    """LeNet-5 declares no augmentation, no label smoothing and twice the general rate; ResNet-20
    declares nothing. What the caller or a recipe gives wins, and the declared SGD rate follows a
    given batch size by the linear scaling rule."""
    general = Run.new("resnet20", "fashion-mnist", out=tmp_path)
    assert (general.data.augment, general.config.label_smoothing) == ("flip", 0.1)
    assert general.config.lr == pytest.approx(0.1) and general.model_defaults == {}
    lenet = Run.new("lenet5", "fashion-mnist", out=tmp_path)
    assert (lenet.data.augment, lenet.config.label_smoothing) == ("none", 0.0)
    assert lenet.config.lr == pytest.approx(0.2)
    assert lenet.model_defaults == {"augment": "none", "label_smoothing": 0.0, "lr": 0.2}
    assert Run.new("lenet5", "fashion-mnist", out=tmp_path, batch_size=64).config.lr == 0.1
    adam = Run.new("lenet5", "fashion-mnist", out=tmp_path, opt="adam", batch_size=256)
    assert adam.config.lr == pytest.approx(1e-3 * 256 / 128)  # Adam's general rate, not SGD's
    given = Run.new("lenet5", "fashion-mnist", out=tmp_path, augment="auto", label_smoothing=0.1)
    assert (given.data.augment, given.config.label_smoothing) == ("flip", 0.1)
    assert given.model_defaults == {"lr": 0.2}
    recipe = Run.new(recipe="lenet-fashion", out=tmp_path)  # a recipe is a whole design
    assert (recipe.data.augment, recipe.config.label_smoothing) == ("flip", 0.1)
    assert recipe.model_defaults == {}


def test_a_deterministic_run_leaves_no_global_trace(tmp_path):
    assert torch.are_deterministic_algorithms_enabled() is False
    Run.new("lenet5", out=tmp_path / "r", deterministic=True, **SMALL, **QUIET).train()
    assert torch.are_deterministic_algorithms_enabled() is False


@pytest.mark.parametrize("content", [b"junk\n", pickle.dumps([1, 2, 3])], ids=["text", "pickle"])
def test_a_features_file_that_is_no_archive_gets_no_advice_to_unpickle(tmp_path, content):
    """numpy reads a file that is no .npz as a possible pickle and says to load it with
    allow_pickle: advice that would run a stranger's code. The error names the file and the
    command that makes one instead."""
    path = tmp_path / "f.npz"
    path.write_bytes(content)
    with pytest.raises(CnnzooError, match="not a features .npz file") as err:
        load_features(path)
    assert "pickle" not in str(err.value) and "cnnzoo features" in str(err.value)


@pytest.mark.parametrize(
    "given, says",
    [
        ({"augment": "flips"}, r"augment must be one of none, crop, flip, basic, basic\+erase"),
        ({"img_size": (0, 0)}, r"img_size must be a positive side, \(height, width\)"),
        ({"limit": 0}, "limit must be a positive number of images, got 0"),
    ],
)
def test_run_new_refuses_a_bad_augmentation_or_size_before_any_data_is_read(tmp_path, given, says):
    """Both were accepted by ``Run.new`` and failed only when the data loaded (a size of 0 x 0
    in the first batch's resize)."""
    with pytest.raises(CnnzooError, match=says):
        Run.new("lenet5", "fashion-mnist", out=tmp_path, **given)


def test_finetune_refuses_a_bad_image_count_before_any_data_is_read(tmp_path):
    """``per_class=0`` and ``limit=-1`` were accepted by ``FineTune.new`` and failed, or not, when
    the data loaded."""
    start = tmp_path / "start.pt"
    save_checkpoint(start, "lenet5", {}, create_model("lenet5").state_dict())
    for given in ({"per_class": 0}, {"limit": -1}):
        with pytest.raises(CnnzooError, match="must be a positive number of images"):
            FineTune.new(start, "digits", out=tmp_path / "run", **given)


def test_run_new_takes_img_size_as_timm_does_and_checks_model_args_at_once(tmp_path):
    """``img_size=32`` ended in "'int' object is not iterable"; a misspelt model argument was
    accepted by ``Run.new`` and refused only by ``train()``, after the data had loaded."""
    from cnnzoo.errors import ModelArgumentError
    from cnnzoo.train.run import Run

    sizes = [Run.new("lenet5", "digits", out=tmp_path / "r", img_size=v).data.input_size
             for v in (32, (32, 32), "32x32")]  # fmt: skip
    assert sizes == [(1, 32, 32)] * 3
    with pytest.raises(ModelArgumentError, match="no argument 'actt'; did you mean 'act'"):
        Run.new("lenet5", "digits", out=tmp_path / "r", model_args={"actt": "relu"})
    with pytest.raises(ModelArgumentError, match="drop_path_rate must be in"):
        Run.new("resnet20", "digits", out=tmp_path / "r", model_args={"drop_path_rate": 1.5})
    assert not (tmp_path / "r").exists()


def test_finetune_takes_img_size_as_a_side_too(tmp_path):
    from cnnzoo.train.finetune import FineTune

    start = tmp_path / "start.pt"
    save_checkpoint(start, "lenet5", {}, create_model("lenet5").state_dict())
    sizes = [FineTune.new(start, "digits", out=tmp_path / "t", img_size=v).data.input_size
             for v in (36, (36, 36), "36")]  # fmt: skip
    assert sizes == [(1, 36, 36)] * 3


def test_new_runs_refuse_data_that_cannot_load_before_anything_loads(tmp_path):
    """``Run.new("lenet5", "fashoin-mnist")`` and ``FineTune.new(ckpt, "./nope")`` were accepted
    and failed only in ``train()``. A misspelt name now names the closest dataset."""
    from cnnzoo.errors import DataError
    from cnnzoo.train.finetune import FineTune
    from cnnzoo.train.run import Run

    with pytest.raises(DataError, match="unknown dataset 'fashoin-mnist': did you mean 'fash"):
        Run.new("lenet5", "fashoin-mnist", out=tmp_path / "r")
    start = tmp_path / "start.pt"
    save_checkpoint(start, "lenet5", {}, create_model("lenet5").state_dict())
    with pytest.raises(DataError, match=r"the data folder \./nope does not exist"):
        FineTune.new(start, "./nope", out=tmp_path / "t")
    with pytest.raises(DataError, match="is a file; --data takes a dataset name or an image"):
        Run.new("lenet5", str(start), out=tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["start.pt"]
