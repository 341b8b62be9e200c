"""The zoo. Each family module is imported explicitly; importing it registers its builders."""

from . import (
    alexnet,  # noqa: F401
    alphago,  # noqa: F401
    fractalnet,  # noqa: F401
    googlenet,  # noqa: F401
    inception,  # noqa: F401
    inception_resnet_v2,  # noqa: F401
    inception_v3,  # noqa: F401
    inception_v4,  # noqa: F401
    lenet,  # noqa: F401
    mobilenet,  # noqa: F401
    nin,  # noqa: F401
    resnet,  # noqa: F401
    resnet9,  # noqa: F401
    resnet_cifar,  # noqa: F401
    vgg,  # noqa: F401
    zfnet,  # noqa: F401
)
