"""Datasets for training and evaluation: ``load_data(spec) -> DataBundle`` and ``load_image``.

Specs: ``fashion-mnist`` and ``mnist`` (IDX files), ``cifar10`` and ``cifar100`` (python batches),
``digits`` (scikit-learn's bundled 8x8 digits) or the path of a class-per-folder image tree. Every
split is a ``TensorImageDataset``: uint8 images in memory, preprocessed per batch to the model's
``input_size`` (channels, padding or resize, normalisation) as ``bundle.preprocess`` says; the
same dict, stored in a checkpoint, preprocesses single images for ``predict`` (``load_image``).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from .datasets import BatchLoader, SamplerLoader, TensorImageDataset, make_loader
from .folder import (
    DataWarning,
    FitToSize,
    FolderDataset,
    fit_to_size,
    image_transform,
    open_image,
    read_folder,
    scan_folder,
)
from .readers import read_cifar, read_digits, read_idx_pair
from .transforms import (
    AUGMENTS,
    INTERPOLATIONS,
    augment_batch,
    make_preprocess,
    normalize,
    to_model_space,
)

__all__ = [
    "AUGMENTS",
    "BatchLoader",
    "DataBundle",
    "DataWarning",
    "FitToSize",
    "FolderDataset",
    "SamplerLoader",
    "TensorImageDataset",
    "augment_batch",
    "check_data_spec",
    "check_split_args",
    "check_trainable",
    "load_data",
    "image_transform",
    "load_image",
    "open_image",
    "make_loader",
    "DATASETS",
]

SYSTEM_DIR = Path("/usr/share/datasets")  # where Debian's dataset-fashion-mnist installs the files

# name: (torchvision class, folder names to look in, class names, mean, std); the statistics are
# the usual published ones for the training split, in [0, 1] pixel units.
IDX_SETS = {
    "mnist": ("MNIST", [str(d) for d in range(10)], [0.1307], [0.3081]),
    "fashion-mnist": (
        "FashionMNIST",
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],  # fmt: skip
        [0.2860],
        [0.3530],
    ),
}
CIFAR_SETS = {
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [0.4914, 0.4822, 0.4465],
        [0.2470, 0.2435, 0.2616],
    ),
    "cifar100": (
        "CIFAR100",
        "cifar-100-python",
        [0.5071, 0.4865, 0.4409],
        [0.2673, 0.2564, 0.2762],
    ),
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]  # fmt: skip
ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100"}  # fmt: skip
DATASETS = ["fashion-mnist", "mnist", "cifar10", "cifar100", "digits"]
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class DataBundle:
    """The splits of a dataset, ready for a model. ``test`` is None for an image tree without a
    ``test/`` folder."""

    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset | None
    classes: list[str]  # class names, index = label
    preprocess: dict  # what ``load_image`` and ``predict`` need; stored in checkpoints
    name: str = ""  # the spec it was loaded from
    source: str = ""  # where the files came from

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def set_preprocess(self, preprocess: dict) -> None:
        """Use ``preprocess`` for every split (e.g. a pretrained model's normalisation)."""
        self.preprocess = preprocess
        for ds in (self.train, self.val, self.test):
            if ds is not None:
                ds.preprocess = preprocess

    def split(self, name: str) -> TensorImageDataset:
        """``"train"``, ``"val"`` or ``"test"`` (a missing test split is an error saying so)."""
        ds = {"train": self.train, "val": self.val, "test": self.test}.get(name, KeyError)
        if ds is KeyError:
            raise DataError(f"split must be train, val or test, got {name!r}")
        if ds is None:
            raise DataError(f"{self.name} has no {name} split; use --split val")
        return ds


def check_data_spec(spec: str) -> None:
    """Refuse a ``--data`` that is neither a dataset name nor an image folder: ``load_data``'s
    first check, which ``Run.new`` and ``FineTune.new`` make before anything loads."""
    key = ALIASES.get(spec.lower(), spec.lower())
    if key in IDX_SETS or key in CIFAR_SETS or key == "digits" or Path(spec).is_dir():
        return
    if Path(spec).exists():
        raise DataError(f"{spec} is a file; --data takes a dataset name or an image folder")
    if os.sep in spec or spec.startswith((".", "~")):  # meant as a folder, not a name
        raise DataError(
            f"the data folder {spec} does not exist; check the path, or use one of "
            f"{', '.join(DATASETS)}"
        )
    close = difflib.get_close_matches(key, [*DATASETS, *ALIASES], n=1, cutoff=0.6)
    hint = f"did you mean {ALIASES.get(close[0], close[0])!r}? " if close else ""
    raise DataError(
        f"unknown dataset {spec!r}: {hint}use one of {', '.join(DATASETS)} or an image folder path"
    )


def check_split_args(
    augment: str, val_fraction: float, limit: int | None = None, per_class: int | None = None
) -> None:
    """Refuse an augmentation, a validation share or an image count no split can be made with
    (``load_data``'s and ``cnnzoo.runs.DataSpec``'s arguments)."""
    if augment not in AUGMENTS:
        raise DataError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
    if not 0.0 < val_fraction < 1.0:  # 0 is not "no validation": every run validates
        raise DataError(
            f"val_fraction must be above 0 and below 1 (the share of the training images that "
            f"validates), got {val_fraction}"
        )
    for name, n in (("limit", limit), ("per_class", per_class)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise DataError(f"{name} must be a positive number of images, got {n!r}")


def load_data(
    spec: str,
    data_dir: str | os.PathLike | None = None,
    input_size: tuple[int, int, int] | None = None,
    augment: str = "none",
    val_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    download: bool = False,
    limit: int | None = None,
    test_fraction: float = 0.2,
    in_memory: bool | None = None,
    stratify: bool = True,
    interpolation: str = "bilinear",
) -> DataBundle:
    """Load a dataset by name or folder path (see the module doc).

    ``input_size`` is the model's ``(C, H, W)`` (default: the data's); ``augment`` applies to the
    training split only (``none``, ``crop``, ``flip``, ``basic`` = crop with padding + flip).
    ``val_fraction`` of the training data (a split seeded by ``seed``) validates when the dataset
    has no validation split; ``test_fraction`` likewise makes a test split for ``digits``.
    ``limit`` caps every split at that many images (quick runs). ``strict`` turns a skipped
    unreadable image into an error; ``download`` lets torchvision fetch a missing dataset.
    ``in_memory`` (image folders): decode every image once at load time (the default when the
    decoded folder fits in 2 GiB) or, if False, decode each image when it is used.
    ``stratify``: draw the validation split class by class, so that every class keeps at least
    one training image (False: one random draw over all images, as cnnzoo 0.1 did).
    ``interpolation``: the resize filter (``"bicubic"`` for weights trained with it, as their
    ``pretrained_cfg`` says), for image folders when they are read and for a dataset whose images
    are resized per batch; kept in ``bundle.preprocess``.
    """
    check_split_args(augment, val_fraction, limit=limit)
    if interpolation not in INTERPOLATIONS:
        raise DataError(
            f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}"
        )
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} is a file; give the folder that holds the data")
    key = ALIASES.get(spec.lower(), spec.lower())
    builtin = key in IDX_SETS or key in CIFAR_SETS
    # a misspelt folder would otherwise be passed over for the system folder
    if builtin and data_dir is not None and not download and not Path(data_dir).exists():
        raise DataError(
            f"--data-dir {data_dir} does not exist; give the folder that holds the {key} "
            f"files, or leave --data-dir out to look in {SYSTEM_DIR / key}"
        )
    check_data_spec(spec)
    g = torch.Generator().manual_seed(seed)
    if key in IDX_SETS:
        bundle = _load_idx(key, data_dir, input_size, download)
    elif key in CIFAR_SETS:
        bundle = _load_cifar(key, data_dir, input_size, download)
    elif key == "digits":
        bundle = _load_digits(input_size, test_fraction, g)
    else:  # an image folder, as check_data_spec found
        bundle = _load_folder(
            Path(spec), input_size or (3, 224, 224), strict, in_memory, interpolation
        )
    bundle.name = spec
    if interpolation != "bilinear":
        bundle.set_preprocess({**bundle.preprocess, "interpolation": interpolation})
    if bundle.val is None:
        split = _split_per_class if stratify else _split
        bundle.train, bundle.val = split(bundle.train, val_fraction, g)
    if limit is not None:
        bundle.train = _first(bundle.train, limit, g)
        bundle.val = _first(bundle.val, limit, g)
        bundle.test = _first(bundle.test, limit, g) if bundle.test is not None else None
    for part in ("train", "val", "test"):
        ds = getattr(bundle, part)
        if ds is not None and len(ds) == 0:
            raise DataError(f"the {part} split of {spec} has no images")
        if ds is not None:
            ds.name = f"{spec}:{part}"
    bundle.train.augment = augment
    return bundle


def load_image(path: str | os.PathLike, preprocess: dict) -> torch.Tensor:
    """One image file as the normalised C x H x W tensor a model trained with ``preprocess`` wants.

    The image is first fitted (shorter side, centre crop) to the dataset's source size, e.g. 28x28
    for Fashion-MNIST, then goes through the same pipeline as the training data.
    """
    c = preprocess["input_size"][0]
    x = image_transform(preprocess)(open_image(path, c))
    return normalize(to_model_space(x[None], preprocess), preprocess)[0]


def _split(ds: TensorImageDataset, fraction: float, g: torch.Generator):
    n_val = max(1, round(len(ds) * fraction))
    if len(ds) - n_val < 1:
        raise DataError(f"{ds.name or 'the dataset'} has {len(ds)} images: too few to split")
    order = torch.randperm(len(ds), generator=g)
    return ds.subset(order[n_val:]), ds.subset(order[:n_val], augment="none")


def _split_per_class(ds: TensorImageDataset, fraction: float, g: torch.Generator):
    """As many validation images as one random draw would take (``round(n * fraction)``), shared
    among the classes in proportion to their sizes (largest remainders first), so that every
    class keeps at least one training image where it has two or more."""
    labels = torch.as_tensor(ds.labels)
    classes = torch.unique(labels).tolist()
    rows = {c: torch.nonzero(labels == c).flatten() for c in classes}
    rows = {c: r[torch.randperm(len(r), generator=g)] for c, r in rows.items()}
    total = max(1, round(len(ds) * fraction))
    share = {c: len(r) * fraction for c, r in rows.items()}
    n_val = {c: min(int(share[c]), len(rows[c]) - 1) for c in classes}
    for c in sorted(classes, key=lambda c: share[c] - int(share[c]), reverse=True):
        if sum(n_val.values()) >= total:
            break
        if n_val[c] < len(rows[c]) - 1:
            n_val[c] += 1
    val = [rows[c][: n_val[c]] for c in classes]
    train = [rows[c][n_val[c] :] for c in classes]
    val_rows = torch.cat(val).sort().values
    if len(val_rows) == 0:  # one image per class: no split keeps them all (training refuses it)
        return _split(ds, fraction, g)
    return ds.subset(torch.cat(train).sort().values), ds.subset(val_rows, augment="none")


def check_trainable(bundle: DataBundle) -> None:
    """Refuse data a classifier cannot learn from: one class only, or a class with no training
    image (it would be learnt from nothing and scored anyway)."""
    if bundle.num_classes < 2:
        raise DataError(
            f"{bundle.name or 'the data'} has {bundle.num_classes} class"
            f"{'' if bundle.num_classes == 1 else 'es'}"
            f"{' (' + bundle.classes[0] + ')' if bundle.classes else ''}; a classifier needs at "
            f"least two (for an image folder: one sub-folder per class)"
        )
    labels = getattr(bundle.train, "labels", None)
    if labels is None:  # any map-style dataset: its labels are not known without reading it
        return
    present = set(torch.as_tensor(labels).unique().tolist())
    absent = [c for i, c in enumerate(bundle.classes) if i not in present]
    if absent:
        raise DataError(
            f"class {absent[0]!r}{f' and {len(absent) - 1} more' if len(absent) > 1 else ''} of "
            f"{bundle.name or 'the data'} has no training image; add images or raise --limit"
        )


def _first(ds: TensorImageDataset, limit: int, g: torch.Generator) -> TensorImageDataset:
    if len(ds) <= limit:
        return ds
    return ds.subset(torch.randperm(len(ds), generator=g)[:limit])  # random: classes stay mixed


def _bundle(train_xy, test_xy, classes, mean, std, input_size, source) -> DataBundle:
    x, _ = train_xy
    size = input_size or (x.shape[1], x.shape[2], x.shape[3])
    pre = make_preprocess(size, tuple(x.shape[-2:]), mean, std)
    train = TensorImageDataset(*train_xy, pre)
    test = TensorImageDataset(*test_xy, pre) if test_xy is not None else None
    return DataBundle(train, None, test, classes, pre, source=source)


def _find_idx(folder: Path) -> dict | None:
    found = {}
    for split, names in IDX_FILES.items():
        paths = []
        for base in names:
            hit = next((folder / f for f in (base, base + ".gz") if (folder / f).is_file()), None)
            if hit is None:
                return None
            paths.append(hit)
        found[split] = paths
    return found


def _load_idx(key, data_dir, input_size, download) -> DataBundle:
    tv_name, classes, mean, std = IDX_SETS[key]
    candidates = []
    if data_dir is not None:
        d = Path(data_dir)
        candidates += [d, d / key, d / tv_name / "raw"]
    candidates.append(SYSTEM_DIR / key)
    files = next(((c, f) for c in candidates if (f := _find_idx(c)) is not None), None)
    if files is None and download:
        files = _download_idx(key, tv_name, data_dir)
    if files is None:
        where = f"--data-dir {data_dir}" if data_dir else "no --data-dir given"
        # Debian packages Fashion-MNIST (dataset-fashion-mnist), not MNIST
        apt = "install the Debian package dataset-fashion-mnist, " if key == "fashion-mnist" else ""
        raise DataError(
            f"{key} not found ({where}; not in {SYSTEM_DIR / key}"
            + ("" if download else "; --download not given")
            + f"): pass --data-dir with the IDX files, {apt}or add --download on a machine with "
            "a network"
        )
    folder, found = files
    train = read_idx_pair(*found["train"])
    test = read_idx_pair(*found["test"])
    return _bundle(train, test, classes, mean, std, input_size, str(folder))


def _download_idx(key, tv_name, data_dir):
    import torchvision.datasets as tvd

    root = Path(data_dir or Path.home() / ".cache" / "cnnzoo")
    try:
        getattr(tvd, tv_name)(root, train=True, download=True)
        getattr(tvd, tv_name)(root, train=False, download=True)
    except Exception as err:  # any network or disk failure: say so, then the generic message
        raise DataError(f"downloading {key} into {root} failed: {err}") from None
    folder = root / tv_name / "raw"
    found = _find_idx(folder)
    return (folder, found) if found else None


def _load_cifar(key, data_dir, input_size, download) -> DataBundle:
    tv_name, sub, mean, std = CIFAR_SETS[key]
    candidates = []
    if data_dir is not None:
        d = Path(data_dir)
        candidates += [d, d / sub, d / key / sub, d / key]
    candidates.append(SYSTEM_DIR / key / sub)
    marker = "data_batch_1" if key == "cifar10" else "train"
    root = next((c for c in candidates if (c / marker).is_file()), None)
    if root is None and download:
        import torchvision.datasets as tvd

        base = Path(data_dir or Path.home() / ".cache" / "cnnzoo")
        try:
            getattr(tvd, tv_name)(base, train=True, download=True)
        except Exception as err:
            raise DataError(f"downloading {key} into {base} failed: {err}") from None
        root = base / sub
    if root is None:
        raise DataError(
            f"{key} not found: pass --data-dir with the python batches ({sub}/{marker}, ...) "
            "or add --download on a machine with a network"
        )
    data = read_cifar(root)
    classes = data["classes"] or (CIFAR10_CLASSES if key == "cifar10" else None)
    if classes is None:
        classes = [str(i) for i in range(int(data["train"][1].max()) + 1)]
    return _bundle(data["train"], data["test"], classes, mean, std, input_size, str(root))


def _load_digits(input_size, test_fraction, g) -> DataBundle:
    x, y = read_digits()
    order = torch.randperm(len(x), generator=g)
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    mean, std = _stats(x[train])
    return _bundle((x[train], y[train]), (x[test], y[test]), [str(d) for d in range(10)], mean, std,
                   input_size, "sklearn.datasets.load_digits")  # fmt: skip


def _stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    xf = x.float().div_(255).transpose(0, 1).reshape(x.shape[1], -1)
    return xf.mean(1).tolist(), xf.std(1).clamp_min(1e-3).tolist()


IN_MEMORY_BYTES = 2 * 1024**3  # image folders larger than this once decoded are read lazily


def folder_splits(root: Path) -> dict[str, Path | None]:
    """The folders an image folder's splits are read from: its ``train``, ``val`` (or ``valid``,
    ``validation``) and ``test`` sub-folders when it has a ``train``, else the folder itself as
    the training split."""
    sub = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" not in sub:
        return {"train": root, "val": None, "test": None}
    val_dir = next((sub[k] for k in ("val", "valid", "validation") if k in sub), None)
    return {"train": sub["train"], "val": val_dir, "test": sub.get("test")}


def _load_folder(
    root: Path, input_size, strict: bool, in_memory: bool | None, interpolation: str = "bilinear"
) -> DataBundle:
    c, h, w = input_size
    dirs = folder_splits(root)
    if in_memory is None:
        n = sum(len(p) for d in dirs.values() if d for p in scan_folder(d, None)[0])
        in_memory = n * c * h * w <= IN_MEMORY_BYTES
    parts, classes = {}, None
    for part, d in dirs.items():
        if d is not None:
            x, y, classes = read_folder(d, classes, c, (h, w), strict, in_memory, interpolation)
            parts[part] = (x, y)
    if in_memory:
        mean, std = _stats(parts["train"][0])
    else:  # statistics of a seeded sample of 256 training images
        files = parts["train"][0]
        pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))[:256]
        mean, std = _stats(
            torch.stack([fit_to_size(open_image(files[i], c), (h, w), interpolation) for i in pick])
        )
    pre = make_preprocess((c, h, w), (h, w), mean, std)
    kind = TensorImageDataset if in_memory else FolderDataset
    mk = {part: kind(*xy, pre) for part, xy in parts.items()}
    return DataBundle(mk["train"], mk.get("val"), mk.get("test"), classes, pre, source=str(root))
