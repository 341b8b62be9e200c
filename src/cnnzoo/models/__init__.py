"""The zoo. Each family module is imported explicitly; importing it registers its builders."""

from . import lenet  # noqa: F401
from . import mobilenet  # noqa: F401
