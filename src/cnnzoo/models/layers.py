"""Building blocks shared by several families. Each is a plain ``nn.Module`` with torchvision/timm
attribute names, so weight files of the peers load key by key."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelArgumentError


class PadSkippingConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes a one-pixel output from the input pixels and taps its window
    covers, skipping the taps that only ever see zero padding (a linear layer when the window
    holds a single pixel).

    An ImageNet ResNet fed 32x32 images runs its last stage on 1x1 maps: a 3x3 convolution with
    padding 1 there multiplies eight of its nine taps by padding, and PyTorch's CPU kernels compute
    them anyway (a fifth of ResNet-18's work at 32x32). The result and the gradients are the
    convolution's (the skipped taps' gradient is zero either way), autograd keeps the same tensors
    (views of the input and of the weight), the weights and state_dict keys are ``nn.Conv2d``'s,
    and every other case is ``nn.Conv2d``'s own forward. On the meta device (``cnnzoo.analyze``)
    it is always the convolution, so the analyzer counts what the architecture defines.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            isinstance(self.padding, str)  # "same"/"valid"
            or self.groups != 1
            or self.dilation != (1, 1)
            or self.padding_mode != "zeros"
            or x.device.type == "meta"
        ):
            return super().forward(x)
        h, w = x.shape[-2:]
        (kh, kw), (ph, pw), (sh, sw) = self.kernel_size, self.padding, self.stride
        if (h + 2 * ph - kh) // sh != 0 or (w + 2 * pw - kw) // sw != 0:  # not a 1x1 output
            return super().forward(x)
        # the output's window starts at -padding: input rows 0..hh-1 meet taps ph..ph+hh-1
        hh, ww = min(h, kh - ph), min(w, kw - pw)
        if hh == ww == 1:
            return F.linear(x[..., 0, 0], self.weight[:, :, ph, pw], self.bias)[..., None, None]
        taps = self.weight[:, :, ph : ph + hh, pw : pw + ww]
        return F.conv2d(x[..., :hh, :ww], taps, self.bias)


class ConvBNAct(nn.Sequential):
    """Conv -> BatchNorm -> ReLU (torchvision's ``BasicConv2d``: ``conv``, ``bn``)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        eps: float = 1e-5,
        act: bool = True,
    ) -> None:
        if padding is None:  # "same" padding for odd kernels at stride 1
            ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = (ks[0] // 2, ks[1] // 2)
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``p`` (stochastic depth).

    The survivors are scaled by ``1/(1-p)`` during training so that eval mode is the identity; the
    paper (Huang et al. 2016) instead scales by the survival probability at test time, which is
    the same expectation.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """``drop_path`` as a module; ``p`` is the probability of dropping the branch."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        check_rate("drop-path probability", p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2017): global average pool, FC-ReLU-FC-sigmoid, rescale.

    ``fc1``/``fc2`` are 1x1 convolutions with bias, as in timm's ``SEModule``.
    """

    def __init__(self, channels: int, reduction: int = 16, rd_channels: int | None = None) -> None:
        super().__init__()
        rd = rd_channels or max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # squeeze: N x C x 1 x 1
        return x * self.gate(self.fc2(self.act(self.fc1(s))))  # excite


class DepthwiseSeparableConv(nn.Module):
    """MobileNet's block: 3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU.

    Parameters ``C*(k*k + C')`` (without BN) instead of ``C*k*k*C'`` for a standard convolution.
    ``act_layer`` swaps the ReLU (``nn.ReLU6`` is what TensorFlow's and timm's MobileNets use).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        kernel_size: int = 3,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.dw = ConvBNAct(in_chs, in_chs, kernel_size, stride, groups=in_chs)
        self.pw = ConvBNAct(in_chs, out_chs, 1)
        if act_layer is not nn.ReLU:
            self.dw.act = act_layer(inplace=True)
            self.pw.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


def he_init_(module: nn.Module) -> None:
    """He (Kaiming) normal init for convolutions, N(0, 0.01) for linear layers, BN to (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


POOL_TYPES = ("avg", "max", "")  # timm's global_pool values ("" keeps the map: no pooling)


class GlobalPool(nn.Module):
    """timm's ``global_pool``: ``"avg"`` or ``"max"`` over the whole map then flatten (N x C), or
    ``""``, no pooling at all (N x C x H x W, for a model without classifier).

    Holds ``pool`` and ``flatten`` as child modules (no parameters), so that the analyzer sees
    the standard pooling layer.
    """

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        check_choice("global_pool", pool_type, POOL_TYPES)
        self.pool_type = pool_type
        pools = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}
        self.pool = pools[pool_type](1) if pool_type else nn.Identity()
        self.flatten = nn.Flatten(1) if pool_type else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(x))

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


# --- argument checks shared by every family (they raise ModelArgumentError) --------------------


def check_rate(name: str, value: float, closed: bool = False) -> None:
    """A probability: in [0, 1) (or [0, 1] when ``closed``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ModelArgumentError(f"{name} must be in {interval}, got {value!r}")


def check_choice(name: str, value: object, choices: tuple) -> None:
    """One of ``choices``; the message lists them."""
    if value not in choices:
        names = [repr(c) for c in choices]
        valid = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ModelArgumentError(f"{name} must be {valid}, got {value!r}")


def check_count(name: str, value: object, minimum: int) -> None:
    """An integer of at least ``minimum`` (``num_classes`` >= 0, ``in_chans`` >= 1)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ModelArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
