"""Data loaders on small generated IDX / CIFAR / folder datasets, and their bad-data cases."""

from __future__ import annotations

import gzip
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnzoo.data import DataWarning, load_data, load_image, make_loader
from cnnzoo.data.transforms import augment_batch, random_erase
from cnnzoo.errors import DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


# --- generators (also used by test_train.py / test_evaluate.py) -------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand: magic 0,0,0x08,ndim, big-endian dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(root: Path, n_train=60, n_test=20, gz=True, seed=0) -> dict:
    """A tiny MNIST-layout dataset whose label is visible in the image (a bright row)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 + 2 * label, :] = 255
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(arr)
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
        out[split] = (x, y)
    return out


def write_cifar10(root: Path, n_per_batch=10, seed=0) -> dict:
    """CIFAR-10 python batches (protocol 2, bytes keys, as the real files are)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, (n_per_batch, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
        out[name] = (data, labels)
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    with open(root / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return out


def write_folder(root: Path, classes=("cat", "dog"), n=6, size=(20, 24), seed=0) -> None:
    """A class-per-folder tree of PNGs; class i is tinted in channel i."""
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            a = rng.integers(0, 80, (*size, 3)).astype(np.uint8)
            a[..., ci % 3] = 200
            Image.fromarray(a).save(d / f"{j}.png")


# --- IDX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loads_exact_pixels_and_labels(tmp_path, gz):
    written = write_idx_dataset(tmp_path, gz=gz)
    b = load_data("mnist", data_dir=tmp_path, val_fraction=0.25)
    assert (len(b.train), len(b.val), len(b.test)) == (45, 15, 20)
    assert b.classes == [str(d) for d in range(10)]
    x, y = written["t10k"]
    assert torch.equal(b.test.images[:, 0], torch.from_numpy(x))
    assert b.test.labels.tolist() == y.tolist()
    # train + val together are exactly the training file, nothing lost or duplicated
    both = torch.cat([b.train.images, b.val.images]).flatten(1)
    expect = torch.from_numpy(written["train"][0]).flatten(1)
    assert sorted(map(bytes, both.numpy())) == sorted(map(bytes, expect.numpy()))


def test_idx_padding_to_lenet_input_by_hand(tmp_path):
    written = write_idx_dataset(tmp_path)
    b = load_data("mnist", data_dir=tmp_path, input_size=(1, 32, 32))
    assert b.preprocess["spatial"] == "pad"
    x, _ = b.test[0]
    assert x.shape == (1, 32, 32)
    mean, std = 0.1307, 0.3081
    # a 2-pixel border of zero pixels: normalised to (0 - mean) / std
    assert torch.allclose(x[0, :2], torch.full((2, 32), -mean / std))
    raw = torch.from_numpy(written["t10k"][0][0]).float() / 255
    assert torch.allclose(x[0, 2:30, 2:30], (raw - mean) / std, atol=1e-6)


def test_idx_gray_to_rgb_and_resize(tmp_path):
    write_idx_dataset(tmp_path)
    b = load_data("mnist", data_dir=tmp_path, input_size=(3, 64, 64))
    x, _ = b.test[1]
    assert x.shape == (3, 64, 64) and b.preprocess["spatial"] == "resize"
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_truncated_idx_is_one_clear_error(tmp_path):
    write_idx_dataset(tmp_path, gz=False)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated.*60x28x28"):
        load_data("mnist", data_dir=tmp_path)


def test_truncated_gzip_is_one_clear_error(tmp_path):
    write_idx_dataset(tmp_path, gz=True)
    f = tmp_path / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:15])
    with pytest.raises(DataError, match="t10k-labels"):
        load_data("mnist", data_dir=tmp_path)


def test_missing_dataset_names_all_three_places(tmp_path, monkeypatch):
    """--data-dir, the system folder (with the Debian package that fills it: Fashion-MNIST's
    only, since Debian packages no MNIST) and --download."""
    import cnnzoo.data

    monkeypatch.setattr(cnnzoo.data, "SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(DataError, match=r"--data-dir.*dataset-fashion-mnist.*--download"):
        load_data("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"--data-dir.*--download") as err:
        load_data("mnist", data_dir=tmp_path)
    assert "dataset-fashion-mnist" not in str(err.value)


@pytest.mark.parametrize("spec", ["fashion-mnist", "cifar10"])
def test_a_data_dir_that_is_a_file_is_refused(tmp_path, spec):
    """A file given as --data-dir was passed over in silence: Fashion-MNIST then came from the
    system folder, and CIFAR's error asked for the --data-dir that had been given."""
    wrong = tmp_path / "train-images-idx3-ubyte.gz"
    wrong.write_bytes(b"")
    with pytest.raises(DataError, match=r"--data-dir .*train-images-idx3-ubyte.gz is a file; give"):
        load_data(spec, data_dir=wrong)


@pytest.mark.parametrize("spec", ["fashion-mnist", "cifar10"])
def test_a_data_dir_that_does_not_exist_is_refused(tmp_path, spec):
    """A misspelt --data-dir was passed over in silence: Fashion-MNIST then came from the system
    folder although the user had named another. The system copy is there in this test, so only
    the check can stop the fallback."""
    from cnnzoo.data import SYSTEM_DIR

    if spec == "fashion-mnist" and not (SYSTEM_DIR / spec / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("needs the system's Fashion-MNIST to show that it is not used")
    typo = tmp_path / "fashoin"
    with pytest.raises(DataError, match=r"--data-dir .*fashoin does not exist; give the folder"):
        load_data(spec, data_dir=typo)
    assert not typo.exists()


def test_unknown_spec():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_data("imagenet")


# --- CIFAR ---------------------------------------------------------------------------------


def test_cifar10_batches(tmp_path):
    written = write_cifar10(tmp_path / "cifar-10-batches-py")
    b = load_data("cifar10", data_dir=tmp_path, val_fraction=0.2)
    assert (len(b.train), len(b.val), len(b.test)) == (40, 10, 10)
    assert b.classes == [f"c{i}" for i in range(10)]
    data, labels = written["test_batch"]
    # the python batches hold R, G, B planes of 32x32 row-major
    assert torch.equal(b.test.images[3], torch.from_numpy(data[3].reshape(3, 32, 32)))
    assert b.test.labels.tolist() == labels


def test_cifar_to_grayscale_model(tmp_path):
    write_cifar10(tmp_path)
    b = load_data("cifar10", data_dir=tmp_path, input_size=(1, 32, 32))
    x, _ = b.test[0]
    rgb = b.test.images[0].float() / 255
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]  # ITU-R 601
    expect = (luma - b.preprocess["mean"][0]) / b.preprocess["std"][0]
    assert torch.allclose(x[0], expect, atol=0.02)  # uint8 rounding of the luma


def test_truncated_cifar_batch(tmp_path):
    write_cifar10(tmp_path)
    f = tmp_path / "data_batch_3"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError, match="data_batch_3 is truncated"):
        load_data("cifar10", data_dir=tmp_path)


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_data("cifar10", data_dir=tmp_path)


# --- image folders -------------------------------------------------------------------------


def test_folder_with_splits_and_corrupt_file_skipped(tmp_path):
    write_folder(tmp_path / "train", n=6)
    write_folder(tmp_path / "val", n=2, seed=1)
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(DataWarning, match=r"broken\.png"):
        b = load_data(str(tmp_path), input_size=(3, 16, 16))
    assert b.classes == ["cat", "dog"]
    assert (len(b.train), len(b.val), b.test) == (12, 4, None)
    with pytest.raises(DataError, match="broken.png is not a readable image"):
        load_data(str(tmp_path), input_size=(3, 16, 16), strict=True)


def test_many_unreadable_files_are_named_five_at_most_then_counted(tmp_path):
    """A folder of thousands of non-images printed a warning line each; now the first five are
    named and the rest counted in one line. Every one of them is still left out."""
    from cnnzoo.data.folder import NAMED_SKIPS

    write_folder(tmp_path, n=6)
    bad = [tmp_path / "dog" / f"notes{i}.txt" for i in range(NAMED_SKIPS + 3)]
    for f in bad:
        f.write_text("not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = load_data(str(tmp_path), input_size=(3, 16, 16), val_fraction=0.25)
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(said) == NAMED_SKIPS + 1, said
    assert all(m.startswith("skipped: ") and ".txt is not a readable image" in m
               for m in said[:NAMED_SKIPS])  # fmt: skip
    assert said[-1] == "skipped 3 more unreadable files (8 in all); --strict stops at the first"
    assert len(b.train) + len(b.val) == 12  # the 12 images, none of the 8 text files


def test_flat_folder_is_split_with_seed(tmp_path):
    write_folder(tmp_path, classes=("a", "b", "c"), n=10)
    b1 = load_data(str(tmp_path), input_size=(3, 16, 16), val_fraction=0.2, seed=3)
    b2 = load_data(str(tmp_path), input_size=(3, 16, 16), val_fraction=0.2, seed=3)
    assert (len(b1.train), len(b1.val)) == (24, 6)
    assert torch.equal(b1.val.images, b2.val.images)


def test_folder_resize_matches_pil_centre_crop(tmp_path):
    write_folder(tmp_path / "train", n=1, size=(20, 40))
    b = load_data(str(tmp_path), input_size=(3, 10, 10), val_fraction=0.5)
    # shorter side 20 -> 10 makes it 10x20; the centre crop keeps columns 5..14
    img = Image.open(tmp_path / "train" / "cat" / "0.png").resize((20, 10), Image.BILINEAR)
    expect = torch.from_numpy(np.array(img)[:, 5:15]).permute(2, 0, 1).float()
    got = torch.cat([b.train.images, b.val.images])
    got = got[torch.cat([b.train.labels, b.val.labels]) == 0][0].float()
    assert (got - expect).abs().max() <= 1  # PIL's bilinear and the tensor resize: rounding


def test_empty_class_folder(tmp_path):
    write_folder(tmp_path / "train")
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="class folder .*empty is empty"):
        load_data(str(tmp_path), input_size=(3, 16, 16))


def test_split_with_no_images(tmp_path):
    write_folder(tmp_path / "train")
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="val has no class folders"):
        load_data(str(tmp_path), input_size=(3, 16, 16))


def test_all_files_unreadable_in_a_class(tmp_path):
    write_folder(tmp_path, classes=("a", "b"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match="holds no readable images"):
            load_data(str(tmp_path), input_size=(3, 16, 16))


def test_load_image_equals_the_dataset_item(tmp_path):
    write_idx_dataset(tmp_path / "idx")
    b = load_data("mnist", data_dir=tmp_path / "idx", input_size=(3, 32, 32))
    png = tmp_path / "x.png"
    Image.fromarray(b.test.images[5, 0].numpy()).save(png)
    assert torch.allclose(load_image(png, b.preprocess), b.test[5][0])


# --- digits, augmentation, loader ----------------------------------------------------------


def test_digits_bundled():
    from sklearn.datasets import load_digits

    b = load_data("digits", input_size=(1, 8, 8))
    assert len(b.train) + len(b.val) + len(b.test) == len(load_digits().images) == 1797
    assert b.test.images.max() == 255  # 16 -> 255


def test_random_crop_is_a_window_of_the_padded_image():
    x = torch.rand(6, 2, 8, 8)
    g = torch.Generator().manual_seed(1)
    out = augment_batch(x, "crop", g)
    padded = F.pad(x, (1, 1, 1, 1))  # pad = 8 // 8
    for i in range(6):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert not all(torch.equal(out[i], x[i]) for i in range(6))


def test_flip_is_per_image():
    x = torch.rand(64, 1, 4, 4)
    out = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_random_erase_replaces_one_rectangle_of_the_stated_area():
    x = torch.full((4000, 2, 16, 12), -1.0)  # noise lies in [0, 1], so erased pixels show
    out = random_erase(x, generator=torch.Generator().manual_seed(0))
    erased = (out >= 0).all(1)  # n x h x w: every channel of an erased pixel is noise
    assert torch.equal((out >= 0).any(1), erased)
    hit = erased.flatten(1).any(1)
    assert 0.47 < hit.float().mean() < 0.53  # p = 0.5
    for m in erased[hit][:200]:  # the erased pixels are exactly their bounding box
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        box = m[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and box.sum() == m.sum()
    # area uniform in [0.02, 0.4] of the image: mean 0.21; clipping long sides lowers it a little
    area = erased[hit].flatten(1).float().mean(1)
    assert area.min() >= 2 / (16 * 12) and area.max() <= 0.5
    assert 0.17 < area.mean() < 0.22
    assert torch.equal(out[~hit], x[~hit])


def test_basic_erase_is_basic_then_erase():
    x = torch.rand(32, 1, 8, 8)
    basic = augment_batch(x, "basic", torch.Generator().manual_seed(3))
    both = augment_batch(x, "basic+erase", torch.Generator().manual_seed(3))
    changed = (basic != both).flatten(1).any(1)
    assert 4 < changed.sum() < 28  # about half the images get a rectangle
    assert torch.equal(basic[~changed], both[~changed])


def test_loader_epoch_order_and_sharding(tmp_path):
    write_idx_dataset(tmp_path, n_train=50)
    ds = load_data("mnist", data_dir=tmp_path, val_fraction=0.2).train  # 40 images
    ds.labels = torch.arange(40)  # label = index, to see which images a batch holds

    def seen(loader, epoch):
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader]).tolist()

    one = make_loader(ds, 7, shuffle=True, seed=5)
    assert sorted(seen(one, 0)) == list(range(40))
    assert seen(one, 0) == seen(one, 0) and seen(one, 0) != seen(one, 1)
    ranks = [make_loader(ds, 7, shuffle=True, seed=5, rank=r, world_size=3) for r in range(3)]
    shards = [seen(r, 2) for r in ranks]
    assert all(len(s) == 14 for s in shards)  # 40 padded to 42
    assert set().union(*shards) == set(range(40))


@pytest.mark.skipif(
    not FASHION.is_dir(), reason="Fashion-MNIST not installed (dataset-fashion-mnist)"
)
def test_fashion_mnist_system_files():
    b = load_data("fashion-mnist", input_size=(1, 32, 32))
    assert len(b.train) + len(b.val) == 60000 and len(b.test) == 10000
    assert b.classes[9] == "Ankle boot"
    assert torch.bincount(b.test.labels).tolist() == [1000] * 10
    # the published mean of the training pixels
    assert abs(b.train.images.float().mean().item() / 255 - 0.2860) < 0.002


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for name, n in (("train", 30), ("test", 10)):
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        batch = {b"data": data, b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine]}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f, protocol=2)
    b = load_data("cifar100", data_dir=tmp_path)
    assert len(b.classes) == 100 and b.classes[42] == "f42"
    assert b.test.labels.tolist() == fine


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(tvd, "MNIST", offline)
    with pytest.raises(DataError, match=r"downloading mnist into .* failed: .*no network"):
        load_data("mnist", data_dir=tmp_path, download=True)


def test_exif_orientation_is_applied(tmp_path):
    from cnnzoo.data import open_image

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.new("RGB", (20, 10), (200, 0, 0)).save(tmp_path / "photo.jpg", exif=exif)
    assert open_image(tmp_path / "photo.jpg", 3).shape == (3, 20, 10)  # upright: 10 wide, 20 high


def test_lazy_folder_reads_the_same_images(tmp_path):
    write_folder(tmp_path / "train", n=5)
    write_folder(tmp_path / "test", n=3, seed=2)
    (tmp_path / "test" / "cat" / "junk.png").write_text("not an image")
    with pytest.warns(DataWarning, match="junk.png"):
        eager = load_data(str(tmp_path), input_size=(3, 16, 16), in_memory=True)
    with pytest.warns(DataWarning, match="junk.png"):
        lazy = load_data(str(tmp_path), input_size=(3, 16, 16), in_memory=False)
    assert type(lazy.test).__name__ == "FolderDataset" and len(lazy.test) == len(eager.test) == 6
    # 10 training images: the lazy sample for the statistics is all of them
    assert lazy.preprocess["mean"] == pytest.approx(eager.preprocess["mean"])
    lazy.test.preprocess = eager.preprocess  # the same pipeline, to compare pixels exactly
    for i in range(6):
        assert torch.allclose(lazy.test[i][0], eager.test[i][0], atol=1e-6), i
    assert lazy.test[4][1] == eager.test[4][1]
    loader = make_loader(lazy.train, 4, shuffle=True)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 16, 16) and y.dtype == torch.long
