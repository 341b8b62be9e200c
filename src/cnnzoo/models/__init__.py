"""The zoo. Each family module is imported explicitly; importing it registers its builders."""

from . import alexnet  # noqa: F401
from . import alphago  # noqa: F401
from . import fractalnet  # noqa: F401
from . import googlenet  # noqa: F401
from . import inception  # noqa: F401
from . import inception_resnet_v2  # noqa: F401
from . import inception_v3  # noqa: F401
from . import inception_v4  # noqa: F401
from . import lenet  # noqa: F401
from . import mobilenet  # noqa: F401
from . import nin  # noqa: F401
from . import resnet  # noqa: F401
from . import resnet_cifar  # noqa: F401
from . import vgg  # noqa: F401
from . import zfnet  # noqa: F401
