"""The sample input the receptive-field view draws on: a Fashion-MNIST image at the model's size.

The first test image of Fashion-MNIST (an ankle boot) is read from the system's copy of the data
set when there is one, else from the copy bundled with cnnzoo (``static/sample.png``, the same
image), then resized to the model's input height and width so that one page pixel is one input
pixel, and embedded in the page as a PNG ``data:`` URL.
"""

from __future__ import annotations

import base64
import io
from functools import cache
from importlib import resources

from PIL import Image

from ..data import SYSTEM_DIR

_TEST_IMAGES = SYSTEM_DIR / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"


@cache
def _source() -> Image.Image:
    if _TEST_IMAGES.is_file():
        from ..data.readers import read_idx

        return Image.fromarray(read_idx(_TEST_IMAGES)[0].numpy())
    with resources.files(__package__).joinpath("static/sample.png").open("rb") as f:
        return Image.open(f).convert("L")


@cache
def sample_image(height: int, width: int) -> str:
    """The sample as a ``data:image/png;base64,...`` URL of ``height`` x ``width`` grey pixels
    (Fashion-MNIST is grey; a colour model sees it as three equal channels)."""
    image = _source().resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
