"""torch.hub entry points: every registered cnnzoo model, by its name.

    model = torch.hub.load("<owner>/cnnzoo", "resnet50", pretrained=True)
    model = torch.hub.load("/path/to/checkout", "vgg16", source="local", num_classes=10)
    torch.hub.list("/path/to/checkout", source="local")

Each entry point is ``cnnzoo.create_model(name, **kwargs)``. The checkout's own ``src/`` goes
first on ``sys.path``, so this works from a clone where cnnzoo is not installed (and uses the
clone's code where another cnnzoo is).
"""

# torch.hub lists every public callable here as a model: helpers are imported under "_" names.
import sys as _sys
from functools import partial as _partial
from functools import update_wrapper as _update_wrapper
from pathlib import Path as _Path

dependencies = ["torch", "torchvision"]

_SRC = str(_Path(__file__).resolve().parent / "src")
if _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)

from cnnzoo import registry as _registry  # noqa: E402


def _entry_point(name, info):
    fn = _update_wrapper(_partial(_registry.create_model, name), info.builder)
    fn.__doc__ = f"{info.builder.__doc__ or name}\n\nArguments: those of cnnzoo.create_model."
    return fn


globals().update({n: _entry_point(n, i) for n, i in _registry.get_model_infos().items()})
