"""The command table of ``cnnzoo``: which module defines each command and its one-line help, so
that ``cnnzoo --help`` and ``cnnzoo CMD`` need not import every subcommand module. Data only."""

# Subcommand modules, in the order ``cnnzoo --help`` lists them.
COMMANDS = [
    "models",
    "demo",
    "calc",
    "summary",
    "profile",
    "convert",
    "compare",
    "explore",
    "train",
    "evaluate",
    "predict",
    "features",
    "export",
    "neighbors",
    "viz",
    "finetune",
]

# command -> (module, one-line help), so that `cnnzoo --help` and `cnnzoo CMD` need not import
# every module. A module of COMMANDS none of whose commands is listed here is imported (slower,
# still correct); tests/test_cli_startup.py checks each entry against the module's own help.
HELP = {
    "list": ("models", "list registered models: name, parameters, input size, paper"),
    "show": ("models", "print a model's module tree"),
    "demo": ("demo", "train LeNet-5 on Fashion-MNIST (or digits), evaluate, predict"),
    "calc": ("calc", "the lecture's calculators: conv, pool, fc, rf, stack, separable, inception"),
    "summary": (
        "summary",
        "per-layer output volume, parameters with formula, MACs, memory, receptive field",
    ),
    "profile": (
        "profile",
        "time per layer beside its MACs: GFLOP/s, bytes moved, intensity, roofline (measured)",
    ),
    "convert": ("convert", "turn a torchvision/timm weight file into a cnnzoo checkpoint"),
    "compare": (
        "compare",
        "compare models: parameters, MACs, memory, receptive field, published ImageNet top-1",
    ),
    "explore": (
        "explore",
        "write web pages to explore models: table, graph, receptive fields, memory",
    ),
    "train": (
        "train",
        "train a model on a dataset (checkpoints, metrics.csv, TensorBoard, curves.png)",
    ),
    "evaluate": (
        "evaluate",
        "accuracy, top-5, per-class accuracy and confusion matrix of checkpoints (ensemble)",
    ),
    "predict": ("predict", "top-k classes with probabilities for image files"),
    "features": (
        "features",
        "embed every image of a dataset with a model (pre-logits or any layer) into a .npz",
    ),
    "export": (
        "export",
        "export to ONNX, TorchScript or torch.export, checked against the PyTorch model",
    ),
    "neighbors": (
        "neighbors",
        "nearest neighbours in feature space (exact, L2 or cosine), as a list and a grid",
    ),
    "viz": ("viz", "pictures: first-layer filters, activation maps (PNG)"),
    "finetune": (
        "finetune",
        "fine-tune a checkpoint or torchvision/timm weights on new classes (or linear probe)",
    ),
}

# Commands that train, embed or time on the CPU: --threads, or cnnzoo.threads's policy.
THREADED = {"train", "finetune", "features", "demo", "profile"}
