"""`cnnzoo train` options that change the model also change the data it is fed."""

import cnnzoo
from cnnzoo.cli import main


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
