import pytest
import torch

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.registry import register_model


def test_unknown_name_suggests_closest():
    with pytest.raises(cnnzoo.UnknownModelError, match="did you mean lenet5"):
        cnnzoo.create_model("lenet6")


def test_duplicate_name_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register_model
        def lenet5(**kwargs):  # noqa: F811
            """A second LeNet-5."""


def test_list_models_wildcard_sorted():
    names = cnnzoo.list_models("*")
    assert names == sorted(names)
    assert "lenet5" in cnnzoo.list_models("len*")
    assert cnnzoo.list_models("nomatch*") == []


def test_meta_device_allocates_nothing():
    model = cnnzoo.create_model("lenet5", device="meta")
    assert all(p.is_meta for p in model.parameters())


def test_too_small_input_names_layer_and_minimum():
    model = cnnzoo.create_model("lenet5")
    with pytest.raises(cnnzoo.InputTooSmallError, match=r"'features.6' \(Conv2d\).*32x32"):
        model(torch.randn(1, 1, 16, 16))


def test_wrong_channels_says_fix():
    model = cnnzoo.create_model("lenet5")
    with pytest.raises(cnnzoo.CnnzooError, match="in_chans=3"):
        model(torch.randn(1, 3, 32, 32))


def test_cli_unknown_model_one_line(capsys):
    assert main(["show", "resnet5O"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown model" in err


def test_cli_list(capsys):
    assert main(["list", "lenet*"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "61,706" in out and "32x32x1" in out
