"""``cnnzoo export CKPT_OR_MODEL --format onnx|torchscript|exported [--fold-bn] --out FILE``."""

from __future__ import annotations

import argparse

from ._args import img_size, output_file, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export to ONNX, TorchScript or torch.export, checked against the PyTorch model",
        description="Export a model for inference and check the file: ONNX is run by ONNX "
        "Runtime, TorchScript and torch.export archives are loaded back, each on a random batch "
        "of another size than the traced one (the batch dimension is dynamic); the largest "
        "absolute difference to PyTorch's output is printed.",
    )
    p.add_argument(
        "model",
        metavar="CKPT_OR_MODEL",
        help="a cnnzoo checkpoint, a weight file (with --model), or a model name",
    )
    p.add_argument("--model", dest="model_name", help="architecture of a torchvision/timm file")
    p.add_argument(
        "--format",
        choices=["onnx", "torchscript", "exported"],
        default="onnx",
        help="onnx (.onnx), torchscript (.pt, traced), exported (torch.export .pt2)",
    )
    p.add_argument(
        "--fold-bn",
        action="store_true",
        help="fold batch norms into the preceding convolutions first",
    )
    p.add_argument(
        "--img-size", type=img_size, help="input H or HxW (default: the checkpoint's or model's)"
    )
    p.add_argument("--opset", type=positive_int, help="ONNX opset (default: the exporter's)")
    p.add_argument("--out", type=output_file, help="output file (default: MODEL.onnx / .pt / .pt2)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import SUFFIXES, count_batchnorms, export_model, fold_bn
    from ..runs import resolve_model
    from ._options import parse_img_size

    src = resolve_model(args.model, args.model_name)
    hw = parse_img_size(args.img_size) or src.input_size[1:]
    size = (src.input_size[0], *hw)
    model = src.model.eval()
    note = ""
    fold_line = ""
    if args.fold_bn:
        import torch

        before = count_batchnorms(model)
        folded = fold_bn(model, torch.zeros(1, *size))
        note = f", {before - count_batchnorms(folded)} of {before} batch norms folded"
        x = torch.randn(2, *size)
        with torch.no_grad():
            diff = (folded(x) - model(x)).abs().max().item()
        fold_line = (
            f"  folded vs unfolded PyTorch model on a random batch: max abs difference {diff:.3g}"
        )
        model = folded
    out = args.out or f"{src.name}{SUFFIXES[args.format]}"
    res = export_model(model, out, args.format, input_size=size, opset=args.opset)
    runtime = {
        "onnx": "ONNX Runtime",
        "torchscript": "torch.jit.load",
        "exported": "torch.export.load",
    }[args.format]
    shape = "x".join(map(str, size))
    print(
        f"cnnzoo export: {src.name} -> {res.path} ({args.format}, {res.bytes / 1e6:.1f} MB, "
        f"input Nx{shape} with dynamic N{note})"
    )
    if fold_line:
        print(fold_line)
    check = "x".join(map(str, res.check_shape))
    print(
        f"  {runtime} vs PyTorch on a random {check} batch: max abs difference "
        f"{res.max_abs_diff:.3g} (outputs up to {res.max_abs_output:.3g}); {res.seconds:.1f} s"
    )
    return 0
