"""The speedrun tricks as TrainConfig fields and ``cnnzoo train`` options: each one reaches the
model, the optimiser, the loader or the checkpoint, checked against what it must do there (a
hand EMA, a hand schedule, a hand TTA average, bit-identical frozen weights and resumes)."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.cli import main
from cnnzoo.data import load_data
from cnnzoo.train import LRSchedule, TrainConfig, build_optimizer, fit, predict_probs, setup
from cnnzoo.train.loop import final_test
from cnnzoo.train.tricks import DeviceBatches, whitening_filters
from cnnzoo.train.tricks.apply import WHITEN_IMAGES, whitening_images

QUIET = {"progress": False, "tensorboard": False, "plots": False}
pytestmark = pytest.mark.usefixtures("one_thread")


def bn_cnn() -> nn.Module:
    """A first 3x3 conv (whitening), a 3x3 conv after it (dirac), BN layers, dropout."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(16, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", input_size=(1, 16, 16), limit=160)


def cfg(**kw) -> TrainConfig:
    base = {"epochs": 2, "batch_size": 32, "lr": 0.05, "seed": 3, **QUIET}
    return TrainConfig(**{**base, **kw})


def session(model, bundle, config, out):
    return setup(model, bundle, config, out, model_name="bn_cnn", model_args={})


def bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_freeze_bn_scales_keeps_them_bit_identical_through_fit(digits, tmp_path):
    model = bn_cnn()
    for bn in bn_layers(model):  # not all ones, so that "unchanged" means something
        bn.weight.data.uniform_(0.5, 1.5)
    scales = [bn.weight.detach().clone() for bn in bn_layers(model)]
    biases = [bn.bias.detach().clone() for bn in bn_layers(model)]
    fit(model, digits, cfg(freeze_bn_scales=True), tmp_path, model_name="m", model_args={})
    for bn, w, b in zip(bn_layers(model), scales, biases, strict=True):
        assert torch.equal(bn.weight, w)
        assert not torch.equal(bn.bias, b)  # the biases still train


def test_bn_bias_lr_mult_gives_the_biases_their_own_group(digits, tmp_path):
    model = bn_cnn()
    s = session(model, digits, cfg(bn_bias_lr_mult=64.0, weight_decay=5e-4), tmp_path)
    groups = s.state.optimizer.param_groups
    assert len(groups) == 2
    biases = {id(bn.bias) for bn in bn_layers(model)}
    assert {id(p) for p in groups[1]["params"]} == biases
    assert not biases & {id(p) for p in groups[0]["params"]}
    assert groups[1]["initial_lr"] == pytest.approx(64 * groups[0]["initial_lr"])
    assert groups[1]["weight_decay"] == pytest.approx(groups[0]["weight_decay"] / 64)


def test_init_whiten_and_dirac_reach_the_model(digits, tmp_path):
    model = bn_cnn()
    session(model, digits, cfg(init="whiten+dirac"), tmp_path)
    first, second = model[0], model[4]
    images = whitening_images(digits.train, WHITEN_IMAGES, torch.device("cpu"))
    filters = whitening_filters(images, (3, 3))[0]  # 9 filters of 1x3x3: the first 8 fit
    assert torch.allclose(first.weight, filters[:8].float(), atol=1e-5)
    assert not first.weight.requires_grad
    # dirac: channel o of the second conv copies channel o of its input (8 of its 16 outputs)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(second(x)[:, :8], x, atol=1e-6)


def test_warmup_linear_schedule_by_hand():
    config = TrainConfig(sched="warmup-linear", epochs=10, warmup_epochs=2, lr=0.1, min_lr=0.01)
    sched = LRSchedule(build_optimizer(nn.Linear(2, 2), config), config, steps_per_epoch=4)
    # up from 0.01 to 1 over 2 epochs, then down to min_lr / lr = 0.1 at epoch 10
    for epoch, factor in [(0, 0.01), (1, 0.505), (2, 1.0), (6, 0.55), (10, 0.1)]:
        assert sched.factor(4 * epoch) == pytest.approx(factor)


def test_batch_augment_trains_from_device_batches(digits, tmp_path):
    s = session(bn_cnn(), digits, cfg(batch_augment="flip-alt,translate"), tmp_path)
    assert isinstance(s.loader, DeviceBatches)
    assert (s.loader.augment.flip, s.loader.augment.translate) == ("alternate", 2)
    x, y = next(iter(s.loader))
    assert x.shape == (32, 1, 16, 16) and y.dtype == torch.long


def test_ema_checkpoint_holds_a_hand_average(digits, tmp_path):
    """A hook after every optimiser step folds the weights into an average by hand; the
    checkpoint's weights must be that average, its train state the last training weights."""
    model, decay = bn_cnn(), 0.8
    names = [n for n, _ in model.named_parameters()]
    hand = {n: p.detach().clone().double() for n, p in model.named_parameters()}
    last = {}

    def after_step(optimizer, args, kwargs):
        for n, p in model.named_parameters():
            hand[n] = decay * hand[n] + (1 - decay) * p.detach().double()
            last[n] = p.detach().clone()

    handle = register_optimizer_step_post_hook(after_step)
    try:
        fit(model, digits, cfg(ema=decay), tmp_path, model_name="m", model_args={})
    finally:
        handle.remove()
    ckpt = load_checkpoint(tmp_path / "last.pt")
    for n in names:
        assert torch.allclose(ckpt["state_dict"][n].double(), hand[n], atol=1e-6), n
        assert torch.equal(ckpt["ema"]["weights"][n], last[n]), n
        assert torch.equal(model.state_dict()[n], ckpt["state_dict"][n])  # fit hands it back
    assert ckpt["ema"]["calls"] == 2 * 5  # 2 epochs of ceil(144 / 32) steps


def test_resume_with_every_trick_equals_uninterrupted(digits, tmp_path):
    config = cfg(epochs=3, deterministic=True, init="whiten+dirac", freeze_bn_scales=True,
                 bn_bias_lr_mult=16.0, ema=0.9, ema_every=2, batch_augment="flip-alt+translate",
                 sched="warmup-linear", warmup_epochs=1)  # fmt: skip

    def run(out, resume=None, stop_after=None):
        torch.manual_seed(0)
        model = bn_cnn()

        def stop(epoch, row):
            if epoch == stop_after:
                raise SystemExit("killed")

        with contextlib.suppress(SystemExit):
            fit(model, digits, config, out, model_name="m", model_args={}, resume=resume,
                on_epoch_end=stop)  # fmt: skip
        return model

    whole = run(tmp_path / "a")
    run(tmp_path / "b", stop_after=1)
    resumed = run(tmp_path / "b", resume=tmp_path / "b")
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    ea = load_checkpoint(tmp_path / "a" / "last.pt")["ema"]
    eb = load_checkpoint(tmp_path / "b" / "last.pt")["ema"]
    assert ea["calls"] == eb["calls"]
    assert all(torch.equal(ea["weights"][k], eb["weights"][k]) for k in ea["weights"])


def reflect_shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved by (dy, dx), the border reflected, index by index."""
    h, w = x.shape[-2:]

    def r(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    rows = torch.tensor([r(i - dy, h) for i in range(h)])
    cols = torch.tensor([r(j - dx, w) for j in range(w)])
    return x[..., rows, :][..., cols]


def test_six_view_tta_is_the_weighted_average_of_the_named_views():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    x = torch.randn(6, 1, 8, 8)

    def sm(v):
        return F.softmax(model(v), 1)

    with torch.no_grad():
        plain, moved = sm(x) + sm(x.flip(-1)), torch.zeros(6, 5)
        for d in (1, -1):
            v = reflect_shift(x, d, d)
            moved += sm(v) + sm(v.flip(-1))
        hand = plain / 4 + moved / 8
    batches = [(x, torch.zeros(6, dtype=torch.long))]
    probs, _ = predict_probs(model, batches, "cpu", tta="flip,translate")
    assert torch.allclose(probs, hand, atol=1e-6)
    flip, _ = predict_probs(model, batches, "cpu", tta="flip")
    with torch.no_grad():
        assert torch.allclose(flip, plain / 2, atol=1e-6)


def test_train_ends_with_the_tta_test_figure(digits, tmp_path):
    model = bn_cnn()
    config = cfg(epochs=1, test_tta="translate,flip", channels_last=False)
    fit(model, digits, config, tmp_path, model_name="bn_cnn", model_args={})
    got = final_test(model, digits, config, tmp_path)
    assert got["test_tta"] == "flip,translate"  # one spelling, whatever was typed
    recorded = json.loads((tmp_path / "test.json").read_text())
    with torch.no_grad():  # the six views by hand, on the test split, from the saved weights
        model.load_state_dict(load_checkpoint(tmp_path / "last.pt")["state_dict"])
        model.eval()
        x, y = digits.test.get_batch(torch.arange(len(digits.test)))
        p = (F.softmax(model(x), 1) + F.softmax(model(x.flip(-1)), 1)) / 4
        for d in (1, -1):
            v = reflect_shift(x, d, d)
            p += (F.softmax(model(v), 1) + F.softmax(model(v.flip(-1)), 1)) / 8
        ref = (p.argmax(1) == y).double().mean().item()
    assert recorded["accuracy"] == got["test_acc_last"] == pytest.approx(ref)
    assert recorded["tta"] == "flip,translate"


def exit_status(argv: list[str]) -> int:
    """``cnnzoo ARGV``'s exit status, from an argparse error as from a returned one."""
    try:
        return main(argv)
    except SystemExit as err:
        return err.code


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--init", "orthogonal"], "argument --init: invalid choice: 'orthogonal'"),
        (["--bn-bias-lr-mult", "0"], "argument --bn-bias-lr-mult: expected a positive number"),
        (["--ema", "1.5"], "argument --ema: expected a decay in (0, 1]"),
        (["--batch-augment", "mixup"], "unknown augmentation 'mixup'"),
        (["--test-tta", "rotate"], "unknown test-time augmentation 'rotate'"),
        (["--sched", "warmup-cosine"], "sched must be one of"),
    ],
)
def test_bad_trick_values_are_one_line_and_status_2(argv, message, tmp_path, capsys):
    code = exit_status(["train", "lenet5", "--data", "digits", "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_evaluate_tta_option_checked(tmp_path, capsys):
    assert exit_status(["evaluate", str(tmp_path), "--tta", "flip,flip"]) == 2
    assert "names a view twice" in capsys.readouterr().err


def test_speedrun_recipes_from_python_are_the_command_lines():
    from cnnzoo.train.recipes import RECIPES

    for name in ("fashion-94-5min", "fashion-95-20min", "cifar10-94"):
        config = TrainConfig.from_recipe(name)
        recipe = RECIPES[name]
        assert (config.init, config.ema, config.test_tta) == (
            recipe["init"],
            recipe["ema"],
            recipe["test_tta"],
        )
        assert config.bn_bias_lr_mult == 64.0 and config.freeze_bn_scales


def test_cifar10_recipe_runs_unchanged_on_the_cpu_from_python_batches(tmp_path):
    """The GPU recipe's code paths (mixed precision, channels-last, data and augmentation on the
    device, whitening of a 3-channel first layer, EMA, six-view TTA) on CIFAR-10's python batch
    format, with a net cut down so that the CPU runs it in seconds."""
    from cnnzoo.train import Run
    from test_data import write_cifar10

    write_cifar10(tmp_path / "cifar-10-batches-py", n_per_batch=12)
    run = Run.new(recipe="cifar10-94", data_dir=str(tmp_path), out=tmp_path / "run",
                  model_args={"widths": (8, 8, 8, 8)}, epochs=1, batch_size=16, device="cpu",
                  val_fraction=0.2, progress=False)  # fmt: skip
    assert run.config.amp and run.config.channels_last and run.config.batch_augment != "none"
    result = run.train()
    recorded = json.loads((tmp_path / "run" / "test.json").read_text())
    assert recorded["n"] == 12 and recorded["tta"] == "flip,translate"
    assert result["test_acc_last"] == recorded["accuracy"]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["ema"]["calls"] == 3  # ceil(48 / 16) steps
    # the first layer: the 8 largest of the 27 whitening filters of a 3x3 RGB patch, frozen
    images = whitening_images(run.load_data().train, WHITEN_IMAGES, torch.device("cpu"))
    filters = whitening_filters(images, (3, 3))[0][:8].float()
    assert torch.allclose(ckpt["state_dict"]["prep.conv.weight"], filters, atol=1e-5)
    assert torch.equal(
        ckpt["ema"]["weights"]["prep.conv.weight"], ckpt["state_dict"]["prep.conv.weight"]
    )


def test_the_cuda_precision_path_fp16_with_a_grad_scaler_runs_on_the_cpu(digits, tmp_path):
    """CUDA's mixed precision (fp16 autocast and a gradient scaler), with the data on the device,
    exercised where there is no GPU: the scaler steps, its state is saved for a resume."""
    model = bn_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    config = cfg(epochs=1, amp=True, amp_dtype="float16", batch_augment="flip-alt", ema=0.9)
    s = session(model, digits, config, tmp_path / "s")
    assert isinstance(s.state.scaler, torch.amp.GradScaler)
    fit(model, digits, config, tmp_path / "f", model_name="m", model_args={})
    ckpt = load_checkpoint(tmp_path / "f" / "last.pt")
    assert ckpt["scaler"]["scale"] > 0
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
    assert any(moved) and all(torch.isfinite(p).all() for p in model.parameters())
