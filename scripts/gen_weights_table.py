"""Write src/cnnzoo/resources/weights.json and imagenet_classes.txt from torchvision's and
timm's own metadata (the installed packages: nothing is downloaded).

An architecture enters the table only if it equals the published one: the peer's randomly
initialised model (batch-norm statistics randomised too) is saved, loaded into cnnzoo's model
through ``cnnzoo.load_pretrained`` with strict key and shape matching and nothing dropped, and
both must give the same outputs on the same input. What fails is printed and left out.

    PYTHONPATH=src python scripts/gen_weights_table.py          # rewrite the two files
    PYTHONPATH=src python scripts/gen_weights_table.py --check  # exit 1 if they would change
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

import cnnzoo

RESOURCES = Path(__file__).resolve().parents[1] / "src" / "cnnzoo" / "resources"

# cnnzoo name -> torchvision's, for the architectures that may equal one of torchvision's
TORCHVISION = {
    "alexnet_tv": "alexnet",
    **{n: n for n in ("vgg11", "vgg13", "vgg16", "vgg19")},
    **{f"{n}_bn": f"{n}_bn" for n in ("vgg11", "vgg13", "vgg16", "vgg19")},
    "googlenet": "googlenet",
    "inception_v3": "inception_v3",
    **{f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    "wide_resnet50_2": "wide_resnet50_2",
    "resnext50_32x4d": "resnext50_32x4d",
    "resnext101_32x8d": "resnext101_32x8d",
}
# cnnzoo name -> timm's architecture
TIMM = {
    **{n: n for n in TORCHVISION if n != "alexnet_tv" and n != "googlenet"},
    "inception_v4": "inception_v4",
    "inception_resnet_v2": "inception_resnet_v2",
    "se_resnet50": "seresnet50",
    "se_resnext50_32x4d": "seresnext50_32x4d",
    "mobilenet_v1": "mobilenetv1_100",
}
# constructor arguments the published weights need (torchvision sets the same when it loads them)
MODEL_ARGS = {
    ("torchvision", "googlenet"): {"transform_input": True},
    ("torchvision", "inception_v3"): {"transform_input": True},
    ("timm", "inception_v3"): {"aux_logits": False},  # timm builds it without the aux head
    ("timm", "mobilenet_v1"): {"act": "relu6"},
}
# torchvision's weight names -> timm-style tags
TV_TAGS = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}
TIMM_FILE = "model.safetensors"  # what timm's hub loader reads first
# timm's published ImageNet-1k results (its repository's results table, not part of the package)
TIMM_RESULTS = Path(__file__).resolve().parent / "data" / "timm_results_imagenet.csv"
# the side of the comparison's input: small (the outputs agree at any size both accept), but
# large enough for the Inception stems
SIDE = {"inception_v3": 107, "inception_v4": 107, "inception_resnet_v2": 107}


def _randomize_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def same_architecture(name: str, peer: torch.nn.Module, model_args: dict, size: int) -> str | None:
    """None if cnnzoo's ``name`` takes the peer's weights strictly and then computes the same;
    else why not."""
    peer.eval()
    _randomize_bn(peer)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peer.pth"
        torch.save(peer.state_dict(), path)
        model = cnnzoo.create_model(name, **model_args).eval()
        try:
            result = cnnzoo.load_pretrained(model, path, num_classes_mismatch="error")
        except cnnzoo.CnnzooError as err:
            return str(err)
    if result.dropped:
        return f"dropped {result.dropped}"
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(x), peer(x)
    if a.shape != b.shape or not torch.allclose(a, b, atol=1e-4, rtol=1e-3):
        return f"outputs differ (max {float((a - b).abs().max()):.3g})"
    return None


def _tv_transforms(weights) -> dict:
    """crop, resize, interpolation, mean and std of a torchvision weight's eval transform."""
    preset = weights.transforms
    defaults = {
        k: p.default
        for k, p in inspect.signature(preset.func.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    t = {**defaults, **preset.keywords}
    crop = t["crop_size"]
    return {
        "input_size": [3, crop, crop],
        "interpolation": t["interpolation"].value,
        "crop_pct": round(crop / t["resize_size"], 4),
        "mean": list(t["mean"]),
        "std": list(t["std"]),
    }


def torchvision_entries(name: str, tv_name: str) -> list[dict]:
    from torchvision.models import get_model, get_model_weights

    args = MODEL_ARGS.get(("torchvision", name), {})
    peer = get_model(tv_name, weights=None, **args)
    why = same_architecture(name, peer, args, SIDE.get(name, 64))
    if why:
        print(f"  {name}: not torchvision's {tv_name}: {why}", file=sys.stderr)
        return []
    entries = []
    for w in get_model_weights(tv_name):
        if w.name not in TV_TAGS or not w.meta.get("categories"):
            continue
        file_name = w.url.rsplit("/", 1)[-1]
        entries.append(
            {
                "tag": TV_TAGS[w.name],
                "source": "torchvision",
                "architecture": f"torchvision.models.{tv_name}",
                "weights": f"{type(w).__name__}.{w.name}",
                "url": w.url,
                "hf_hub_id": None,
                "file_name": file_name,
                "hash_prefix": file_name.rsplit("-", 1)[-1].split(".")[0],
                "sha256": None,
                "license": None,  # torchvision publishes none per file; see the recipe
                "recipe": w.meta.get("recipe"),
                "top1": w.meta["_metrics"]["ImageNet-1K"]["acc@1"],
                **_tv_transforms(w),
                "num_classes": len(w.meta["categories"]),
                "model_args": args,
            }
        )
    return entries


def timm_results() -> dict[str, dict]:
    """``"arch.tag"`` -> its row of timm's results table (top1, img_size, crop_pct, ...)."""
    import csv

    with open(TIMM_RESULTS, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {row["model"]: row for row in rows}


def _timm_top1(row: dict | None) -> dict:
    """The table's top-1 and the test size timm measured it at (which may differ from the
    training input_size: timm tests some weights at 288)."""
    if row is None:
        return {"top1": None}
    return {
        "top1": float(row["top1"]),
        "top1_img_size": int(row["img_size"]),
        "top1_crop_pct": float(row["crop_pct"]),
    }


def timm_entries(name: str, arch: str, taken: set[str]) -> list[dict]:
    import timm
    from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg, is_model_pretrained

    if not is_model_pretrained(arch):
        return []
    tags = [t.split(".", 1)[1] for t in get_arch_pretrained_cfgs(arch)]  # timm's default first
    args = MODEL_ARGS.get(("timm", name), {})
    cfgs = [get_pretrained_cfg(f"{arch}.{t}") for t in tags]
    cfgs = [(t, c) for t, c in zip(tags, cfgs, strict=True) if c.num_classes == 1000]
    cfgs = [(t, c) for t, c in cfgs if c.hf_hub_id and t not in taken]
    if not cfgs:
        return []
    peer = timm.create_model(arch, pretrained=False)
    why = same_architecture(name, peer, args, SIDE.get(name, 64))
    if why:
        print(f"  {name}: not timm's {arch}: {why}", file=sys.stderr)
        return []
    results = timm_results()
    return [
        {
            "tag": tag,
            "source": "timm",
            "architecture": f"timm {arch}",
            "weights": f"{arch}.{tag}",
            "url": None,
            "hf_hub_id": cfg.hf_hub_id,
            "file_name": cfg.hf_hub_filename or TIMM_FILE,
            "hash_prefix": None,
            "sha256": None,  # not in timm's configuration: the hub client's own checks apply
            "license": cfg.license,
            "recipe": None,
            **_timm_top1(results.get(f"{arch}.{tag}")),  # None: not in timm's table
            "input_size": list(cfg.input_size),
            "interpolation": cfg.interpolation,
            "crop_pct": cfg.crop_pct,
            "mean": list(cfg.mean),
            "std": list(cfg.std),
            "num_classes": cfg.num_classes,
            "model_args": args,
        }
        for tag, cfg in cfgs
    ]


def build_table() -> tuple[dict, list[str]]:
    import timm
    import torchvision
    from torchvision.models import ResNet50_Weights

    models: dict[str, list[dict]] = {}
    for name in sorted(set(TORCHVISION) | set(TIMM)):
        print(f"checking {name}", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entries = torchvision_entries(name, TORCHVISION[name]) if name in TORCHVISION else []
            if name in TIMM:
                entries += timm_entries(name, TIMM[name], {e["tag"] for e in entries})
        if entries:
            models[name] = entries
    table = {
        "about": "Published ImageNet-1k weights of the cnnzoo architectures that equal a "
        "torchvision or timm model; the first entry of each name is its default. Generated by "
        "scripts/gen_weights_table.py from the installed packages' metadata: do not edit.",
        "torchvision": torchvision.__version__.split("+")[0],
        "timm": timm.__version__,
        "models": models,
    }
    return table, list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the files would change")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    table, classes = build_table()
    outputs = {
        RESOURCES / "weights.json": json.dumps(table, indent=1) + "\n",
        RESOURCES / "imagenet_classes.txt": "\n".join(classes) + "\n",
    }
    stale = [p for p, text in outputs.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p} is out of date: run scripts/gen_weights_table.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in outputs.items():
        p.write_text(text)
    n = sum(len(v) for v in table["models"].values())
    print(f"{len(table['models'])} architectures, {n} weight files -> {RESOURCES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
