"""``cnnzoo features CKPT_OR_MODEL --data DIR_OR_DATASET --out feats.npz``: an embedding per image.

Also the helpers the other transfer-learning commands share: ``resolve_model`` (a checkpoint, a
torchvision/timm weight file with ``--model``, or a registered name) and ``load_rows`` (the
images of a dataset split, in a fixed order that a features file can refer back to).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._args import img_size, output_file, positive_int

SPLITS = ("all", "train", "val", "test")
WEIGHT_SUFFIXES = {".pt", ".pth", ".pt2", ".ckpt", ".safetensors", ".bin", ".tar"}


@dataclass
class ModelSource:
    """A model ready to use, and where it came from."""

    model: nn.Module
    name: str  # registered name
    model_args: dict  # create_model arguments that rebuild it
    input_size: tuple[int, int, int]  # (C, H, W) it expects
    preprocess: dict | None  # the checkpoint's preprocessing (None: not trained by cnnzoo)
    classes: list[str] | None  # the checkpoint's class names
    source: str  # checkpoint or weight-file path, or "" for fresh random weights


def resolve_model(
    spec: str, model_name: str | None = None, num_classes: int | None = None
) -> ModelSource:
    """``spec`` is a cnnzoo checkpoint, a torchvision/timm weight file (then ``model_name`` says
    which architecture to build), or a registered model name (random weights)."""
    from ..checkpoint import load_checkpoint, model_from_checkpoint
    from ..errors import CheckpointError
    from ..registry import create_model, get_model_info

    path = Path(spec)
    if path.is_file():
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as err:
            if model_name is None or "not a cnnzoo checkpoint" not in str(err):
                raise
            ckpt = None
        if ckpt is not None:
            model, ckpt = model_from_checkpoint(ckpt, expect_model=model_name)
            pre = ckpt.get("preprocess") or None
            size = tuple(pre["input_size"]) if pre else _default_size(ckpt["model"], model)
            return ModelSource(
                model,
                ckpt["model"],
                dict(ckpt["model_args"]),
                size,
                pre,
                ckpt.get("classes"),
                str(path),
            )
        from ..pretrained import load_pretrained

        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        model = create_model(model_name, **kwargs)
        load_pretrained(model, path)
        return ModelSource(
            model, model_name, kwargs, _default_size(model_name, model), None, None, str(path)
        )
    if path.suffix.lower() in WEIGHT_SUFFIXES or "/" in spec:
        raise CheckpointError(f"{spec} does not exist (or is not a file)")
    name = model_name or spec
    if model_name is not None and spec != model_name:
        get_model_info(spec)  # an unknown name: the registry's message with suggestions
    get_model_info(name)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = create_model(name, **kwargs)
    return ModelSource(model, name, kwargs, _default_size(name, model), None, None, "")


def _default_size(name: str, model: nn.Module) -> tuple[int, int, int]:
    from ..registry import get_model_info

    c, h, w = get_model_info(name).input_size
    return (getattr(model, "in_chans", c), h, w)


def load_rows(
    data: str,
    split: str,
    input_size: tuple[int, int, int],
    data_dir: str | None = None,
    limit: int | None = None,
    preprocess: dict | None = None,
):
    """The images of ``split`` (or of every split, in train, val, test order, for ``"all"``) as one
    dataset, with the split name and the index within the split of each row, and the class names.

    With the checkpoint's ``preprocess``, the images are normalised with the statistics the model
    was trained with rather than the new data's own.
    """
    from ..data import TensorImageDataset, load_data
    from ..errors import DataError

    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    bundle = load_data(data, data_dir=data_dir, input_size=tuple(input_size), limit=limit)
    parts = [s for s in ("train", "val", "test") if getattr(bundle, s) is not None]
    if split != "all":
        bundle.split(split)  # a clear error for a missing split
        parts = [split]
    pre = dict(bundle.preprocess)
    if preprocess and len(preprocess.get("mean", [])) == input_size[0]:
        pre["mean"], pre["std"] = list(preprocess["mean"]), list(preprocess["std"])
    sets = [getattr(bundle, s) for s in parts]
    images = torch.cat([d.images for d in sets])
    labels = torch.cat([d.labels for d in sets])
    ds = TensorImageDataset(images, labels, pre, name=f"{data}:{split}")
    split_of = [s for s, d in zip(parts, sets, strict=True) for _ in range(len(d))]
    index = torch.cat([torch.arange(len(d)) for d in sets])
    return ds, split_of, index, list(bundle.classes)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="embed every image of a dataset with a model (pre-logits or any layer) into a .npz",
        description="Embed every image of a dataset or image folder: the pre-logits features by "
        "default (AlexNet/VGG FC7, ResNet's pooled vector) or the output of --layer, with labels, "
        "split and index of each image and the class names, saved with numpy.savez.",
    )
    p.add_argument(
        "model",
        metavar="CKPT_OR_MODEL",
        help="a cnnzoo checkpoint, a weight file (with --model), or a model name",
    )
    p.add_argument("--model", dest="model_name", help="architecture of a torchvision/timm file")
    p.add_argument(
        "--data",
        required=True,
        help="fashion-mnist, mnist, cifar10, cifar100, digits, or an image folder",
    )
    p.add_argument("--data-dir", help="directory with the dataset files (IDX, CIFAR batches)")
    p.add_argument("--split", choices=SPLITS, default="all", help="which images (default: all)")
    p.add_argument("--limit", type=positive_int, help="at most this many images of each split")
    p.add_argument("--layer", help="a module name (see `cnnzoo show`); default: pre-logits")
    p.add_argument(
        "--pool",
        choices=["flatten", "avg", "max"],
        default="flatten",
        help="how a --layer feature map becomes a vector (default: flatten)",
    )
    p.add_argument(
        "--img-size", type=img_size, help="input H or HxW (default: the checkpoint's or model's)"
    )
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument(
        "--out",
        type=output_file,
        default="features.npz",
        help="output file (default: features.npz)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    import numpy as np

    from ..data import make_loader
    from ..errors import CnnzooError
    from ..transfer import extract_features

    if args.batch_size < 1:
        raise CnnzooError(f"--batch-size must be positive, got {args.batch_size}")
    from .train import parse_img_size

    src = resolve_model(args.model, args.model_name)
    hw = parse_img_size(args.img_size)
    if hw is not None:
        src.input_size = (src.input_size[0], *hw)
    ds, split_of, index, classes = load_rows(
        args.data, args.split, src.input_size, args.data_dir, args.limit, src.preprocess
    )
    loader = make_loader(ds, args.batch_size)
    feats, labels = extract_features(
        src.model, loader, layer=args.layer, pool=args.pool, progress=not args.no_progress
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": src.name,
        "model_source": str(Path(src.source).resolve()) if src.source else "",
        "layer": args.layer or "",
        "pool": args.pool,
        "data": args.data,
        "data_dir": args.data_dir or "",
        "split": args.split,
        "limit": args.limit,
        "input_size": list(src.input_size),
        "preprocess": ds.preprocess,
    }
    with open(out, "wb") as f:  # savez would append .npz to a name without it
        np.savez(
            f,
            features=feats.numpy(),
            labels=labels.numpy(),
            split=np.array(split_of),
            index=index.numpy(),
            classes=np.array(classes),
            meta=np.array(json.dumps(meta)),
        )
    where = args.layer or "pre-logits"
    random = "" if src.source else " (random weights: no checkpoint given)"
    print(
        f"cnnzoo features: {feats.shape[0]:,} images x {feats.shape[1]:,} features ({src.name} "
        f"{where}{random}) -> {out}"
    )
    return 0


def read_features(path: str | Path) -> dict:
    """A file written by ``cnnzoo features`` as a dict of tensors, lists and the ``meta`` dict."""
    import numpy as np

    from ..errors import CnnzooError

    path = Path(path)
    if not path.is_file():
        raise CnnzooError(f"features file {path} does not exist; make one with `cnnzoo features`")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise CnnzooError(f"{path} is not a features .npz file: {err}") from None
    missing = {"features", "labels", "split", "index", "classes", "meta"} - set(data)
    if missing:
        raise CnnzooError(
            f"{path} is not a `cnnzoo features` file: no {', '.join(sorted(missing))}"
        )
    return {
        "features": torch.from_numpy(data["features"]),
        "labels": torch.from_numpy(data["labels"]).long(),
        "split": [str(s) for s in data["split"]],
        "index": torch.from_numpy(data["index"]).long(),
        "classes": [str(c) for c in data["classes"]],
        "meta": json.loads(str(data["meta"])),
    }
