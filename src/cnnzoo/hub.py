"""Published ImageNet weights by name: ``create_model(name, pretrained=True)``.

Which weights exist is data: ``resources/weights.json``, written by
``scripts/gen_weights_table.py`` from torchvision's and timm's own metadata, lists for each cnnzoo
architecture that equals a published one its weight files (URL or Hugging Face repository, file
name, expected hash, licence, the top-1 the source reports, the preprocessing they were trained
with). The first entry of a name is its default; ``"name.tag"`` picks another.

The files are fetched the way their publishers' own libraries fetch them, into the same caches:

- torchvision's through torch.hub: ``torch.hub.get_dir()/checkpoints/<file>`` (``TORCH_HOME``
  moves it). A file already there is used as it is, with no network, as torch.hub trusts its
  cache; a download is checked against the SHA-256 prefix in torchvision's file name, and a
  mismatch is refused and nothing is left behind.
- timm's from the Hugging Face Hub by ``huggingface_hub.hf_hub_download`` (its cache,
  ``HF_HOME`` / ``HF_HUB_CACHE``; ``HF_HUB_OFFLINE=1`` uses only what is cached). timm's
  configuration publishes no hash; the Hub publishes each large file's SHA-256 (its ETag, the
  name of the cached blob), and a fresh download is hashed against it: a mismatch is refused
  and removed from the cache. A file already cached is trusted.

Without a network and without the file: one ``WeightsError`` line naming the file, its URL and
the folder to put it in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from importlib import resources
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from .errors import WeightsError

HF_URL = "https://huggingface.co/{repo}/resolve/main/{file}"


@functools.cache
def _table_file() -> dict:
    text = resources.files("cnnzoo").joinpath("resources/weights.json").read_text("utf-8")
    return json.loads(text)


def weights_table() -> dict[str, list[dict]]:
    """Registered name -> its published weights (default first), as in ``weights.json``."""
    return _table_file()["models"]


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in label order (torchvision's ``categories``)."""
    text = resources.files("cnnzoo").joinpath("resources/imagenet_classes.txt").read_text("utf-8")
    return tuple(text.splitlines())


def published_weights(name: str, tag: str | None = None) -> dict:
    """The table entry of ``name``'s default weights, or of ``tag``; one line if there is none."""
    entries = weights_table().get(name)
    if not entries:
        have = ", ".join(sorted(weights_table()))
        raise WeightsError(
            f"{name} has no published weights (cnnzoo's {name} equals no torchvision or timm "
            f"model); pretrained=True works for: {have}"
        )
    if tag is None:
        return entries[0]
    for entry in entries:
        if entry["tag"] == tag:
            return entry
    tags = ", ".join(f"{name}.{e['tag']}" for e in entries)
    raise WeightsError(f"{name} has no weights tagged {tag!r}; it has {tags}")


def weight_url(entry: dict) -> str:
    """Where the file is published."""
    if entry["source"] == "torchvision":
        return entry["url"]
    return HF_URL.format(repo=entry["hf_hub_id"], file=entry["file_name"])


def weight_file(entry: dict, progress: bool | None = None) -> Path:
    """The local file of a table entry: from its cache, else downloaded into it."""
    if progress is None:
        progress = sys.stderr.isatty()
    if entry["source"] == "torchvision":
        return _torch_hub_file(entry, progress)
    return _hf_hub_file(entry)


def _torch_hub_file(entry: dict, progress: bool) -> Path:
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    dst = folder / entry["file_name"]
    if dst.is_file():
        return dst
    url = entry["url"]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), entry["hash_prefix"], progress=progress)
    except RuntimeError as err:  # torch.hub's hash check; it has removed the partial file
        if "invalid hash" not in str(err):
            raise
        got = str(err).rsplit("got ", 1)[-1].strip(')"')
        raise WeightsError(
            f"{url} does not match the SHA-256 prefix {entry['hash_prefix']} its name publishes "
            f"(got {got[:16]}...): refused, nothing was kept in {folder}"
        ) from None
    except (URLError, OSError) as err:
        raise _not_cached(entry, folder, getattr(err, "reason", None) or err) from None
    return dst


def _hf_hub_file(entry: dict) -> Path:
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
        )
    except ImportError:
        raise WeightsError(
            f"{entry['hf_hub_id']} is on the Hugging Face Hub: pip install huggingface_hub"
        ) from None
    cached = try_to_load_from_cache(entry["hf_hub_id"], entry["file_name"])
    try:
        path = Path(hf_hub_download(entry["hf_hub_id"], entry["file_name"]))
    except (EntryNotFoundError, HfHubHTTPError, OSError) as err:
        if constants.HF_HUB_OFFLINE:
            why = "offline (HF_HUB_OFFLINE is set)"
        elif isinstance(err, LocalEntryNotFoundError):  # the client's fallback to its cache
            why = "the Hub cannot be reached"
        else:
            why = err
        raise _not_cached(entry, Path(constants.HF_HUB_CACHE), why) from None
    if not isinstance(cached, str):  # downloaded now: a file already cached is trusted
        _check_hub_sha256(entry, path)
    return path


def _check_hub_sha256(entry: dict, path: Path) -> None:
    """huggingface_hub stores a large file under the ETag the Hub sends for it, the SHA-256 the
    Hub publishes, and checks only the size of what it received: hash the bytes against it, and
    on a mismatch remove the file from the cache and refuse it."""
    blob = path.resolve()
    published = blob.name
    if len(published) != 64 or any(ch not in "0123456789abcdef" for ch in published):
        return  # a small file's ETag is a git hash, not a SHA-256 of its bytes
    digest = hashlib.sha256()
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    got = digest.hexdigest()
    if got != published:
        for p in (path, blob):
            p.unlink(missing_ok=True)
        raise WeightsError(
            f"{weight_url(entry)} does not match the SHA-256 the Hub publishes for it "
            f"({published[:16]}..., got {got[:16]}...): refused, removed from {blob.parent}"
        )


def _not_cached(entry: dict, folder: Path, why: object) -> WeightsError:
    why = str(why).strip().splitlines()[0] if str(why).strip() else type(why).__name__
    if entry["source"] == "torchvision":
        fix = f"download {weight_url(entry)} and put the file in {folder}/"
    else:  # the Hugging Face cache is a tree of snapshots: its client must lay it out
        fix = (
            f"it is {weight_url(entry)}; on a connected machine run `huggingface-cli download "
            f"{entry['hf_hub_id']} {entry['file_name']}` and copy its cache to {folder}"
        )
    return WeightsError(
        f"{entry['file_name']} is not cached and cannot be downloaded ({why}): {fix}"
    )


def pretrained_cfg(model: nn.Module, entry: dict) -> dict:
    """timm's ``pretrained_cfg`` of ``model`` loaded with ``entry``'s weights: the preprocessing
    they expect and where they come from; class names only when the head is the published one."""
    from .models._base import generic_cfg

    same_head = getattr(model, "num_classes", None) == entry["num_classes"]
    return {
        **generic_cfg(model),
        "input_size": tuple(entry["input_size"]),
        "interpolation": entry["interpolation"],
        "crop_pct": entry["crop_pct"],
        "mean": tuple(entry["mean"]),
        "std": tuple(entry["std"]),
        "label_names": list(imagenet_classes()) if same_head else None,
        "tag": entry["tag"],
        "source": entry["source"],
        "architecture": entry["architecture"],
        "url": weight_url(entry),
        "hf_hub_id": entry.get("hf_hub_id"),
        "file_name": entry["file_name"],
        "hash_prefix": entry.get("hash_prefix"),
        "sha256": entry.get("sha256"),
        "license": entry.get("license"),
        "top1": entry.get("top1"),
        "model_args": dict(entry["model_args"]),  # what create_model added for these weights
    }


# what a checkpoint records of the published weights its run started from, beside their name
PROVENANCE_KEYS = ("source", "architecture", "url", "hf_hub_id", "file_name", "hash_prefix",
                   "sha256", "license", "top1")  # fmt: skip


def weights_provenance(name: str, cfg: dict) -> dict:
    """Which published weights a model loaded (its ``pretrained_cfg``): ``"resnet18.tv_in1k"``,
    where the file is published, the hash to check it by, its licence and the top-1 its
    publisher reports; a checkpoint of a run that started from them keeps this."""
    base = name.split(".", 1)[0]
    return {"name": f"{base}.{cfg['tag']}", **{k: cfg[k] for k in PROVENANCE_KEYS if cfg.get(k)}}


def load_published(model: nn.Module, entry: dict) -> None:
    """Load ``entry``'s weights into ``model`` (a classifier for another class count stays new)
    and set its ``pretrained_cfg``."""
    from .pretrained import load_pretrained

    load_pretrained(model, weight_file(entry))
    model.pretrained_cfg = pretrained_cfg(model, entry)
