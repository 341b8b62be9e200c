"""``cnnzoo demo``: the README's main job, on data that needs no download."""

from __future__ import annotations

import argparse
import time

import torch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a tour of the zoo that needs no download")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..registry import create_model, get_model_info, list_models

    print(f"cnnzoo: {len(list_models())} architectures; a forward pass of each at a small batch\n")
    for name in list_models():
        info = get_model_info(name)
        model = create_model(name).eval()
        x = torch.randn(1, *info.input_size)
        start = time.perf_counter()
        with torch.no_grad():
            y = model(x)
        ms = (time.perf_counter() - start) * 1e3
        params = sum(p.numel() for p in model.parameters())
        shape = "x".join(map(str, x.shape[1:]))
        print(f"{name:<22} {shape:>10} -> {tuple(y.shape)!s:<12} {params:>13,} params {ms:8.1f} ms")
    return 0
