"""The lecture's formulas as calculators: output sizes, parameters, receptive fields, operations.

Pure integer arithmetic, no torch: every function returns a small frozen dataclass with the
numbers, the arithmetic written out the way the notes write it (``(227 - 11 + 2*0)/4 + 1 = 55``,
``(11*11*3+1)*96 = 34,944``), ``to_dict()`` for JSON and ``to_text()`` for the terminal.
Volumes are written in the notes' order, depth last: ``55x55x96`` is height x width x channels.
MACs are multiply-accumulates; FLOPs would be twice as many.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from .errors import CnnzooError
from .notation import format_count, format_short, parse_size

__all__ = [
    "ConvResult",
    "InceptionBranch",
    "InceptionResult",
    "RFLayer",
    "RFResult",
    "SeparableResult",
    "StackResult",
    "CALCULATORS",
    "calculate",
    "conv_output",
    "conv_output_size",
    "FCResult",
    "fc_layer",
    "inception_module",
    "parse_volume",
    "read_volume",
    "pool_output",
    "receptive_field",
    "separable_conv",
    "stack_vs_single",
]


class _Result:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_volume(
    text: str, need_depth: bool = True, option: str = "--input"
) -> tuple[tuple[int, int, int | None], str | None]:
    """Read ``227x227x3`` (the notes' height x width x depth), ``28x28`` or ``32`` with the one
    size parser, :func:`cnnzoo.notation.parse_size`: ``((H, W, C), note)``.

    The depth is None when the text leaves it out, which only ``need_depth=False`` allows; the
    note says when the text was recognisably C x H x W (``3x227x227``) and was read that way.
    """
    size = parse_size(text, option=option)
    if len(re.findall(r"\d+", str(text))) == 3:
        return (size.height, size.width, size.chans), size.note
    if need_depth:
        raise CnnzooError(f"{option} is HxWxC, depth last (e.g. 227x227x3), got {text!r}")
    return (size.height, size.width, None), None


def parse_volume(text: str, need_depth: bool = True) -> tuple[int, int, int | None]:
    """``(H, W, C)`` of :func:`read_volume`, without its note."""
    return read_volume(text, need_depth)[0]


# --------------------------------------------------------------------------------------------
# Output size of a convolution or pooling layer: (W - F + 2P)/S + 1
# --------------------------------------------------------------------------------------------


def _arith(w: int, f: int, s: int, p: int, d: int = 1) -> str:
    fk = f"{d}*({f}-1)+1" if d != 1 else str(f)
    return f"({w} - {fk} + 2*{p})/{s} + 1"


def _suggestions(w: int, f: int, s: int, p: int) -> list[str]:
    """Nearby inputs, strides and paddings for which ``(w - f + 2p)/s + 1`` is a whole number."""
    out = []
    below = next(
        (v for v in range(w - 1, max(f - 2 * p, 1) - 1, -1) if (v - f + 2 * p) % s == 0), None
    )
    above = next(v for v in range(w + 1, w + s + 1) if (v - f + 2 * p) % s == 0)
    sizes = [v for v in (below, above) if v is not None]
    out.append("input " + " or ".join(f"{v} (-> {(v - f + 2 * p) // s + 1})" for v in sizes))
    span = w - f + 2 * p
    strides = [t for t in range(1, span + 1) if span % t == 0 and t != s]
    if strides:
        lo = max((t for t in strides if t < s), default=None)
        hi = min((t for t in strides if s < t <= 2 * s), default=None)  # no far-off strides
        picks = [t for t in (lo, hi) if t is not None]
        out.append("stride " + " or ".join(f"{t} (-> {span // t + 1})" for t in picks))
    pads = [q for q in range(0, p + s + 1) if w - f + 2 * q >= 0 and (w - f + 2 * q) % s == 0]
    if pads:
        q = min(pads, key=lambda q: (abs(q - p), q))
        out.append(f"pad {q} (-> {(w - f + 2 * q) // s + 1})")
    else:
        out.append(f"no padding divides with stride {s} ({w} - {f} is odd, 2*P is even)")
    return out


def conv_output_size(
    w: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1, floor: bool = False
) -> int:
    """One spatial side of a convolution or pooling output: ``(W - F + 2P)/S + 1``.

    A size that does not divide raises a ``CnnzooError`` that shows the arithmetic and the nearest
    inputs, strides and paddings that do divide; ``floor=True`` accepts PyTorch's rounding down
    instead (the rightmost input rows that do not fill a window are dropped).
    """
    for name, v, low in (("input", w, 1), ("kernel", kernel, 1), ("stride", stride, 1)):
        if v < low:
            raise CnnzooError(f"{name} must be >= {low}, got {v}")
    if pad < 0 or dilation < 1:
        raise CnnzooError(f"pad must be >= 0 and dilation >= 1, got pad {pad}, dilation {dilation}")
    f = dilation * (kernel - 1) + 1
    span = w - f + 2 * pad
    if span < 0:
        raise CnnzooError(
            f"the {f}x{f} window does not fit in the padded input: {w} + 2*{pad} < {f}; "
            f"use an input of at least {f - 2 * pad} or pad {-(-(f - w) // 2)}"
        )
    if span % stride and not floor:
        exact = Fraction(span, stride) + 1
        hints = "; ".join(_suggestions(w, f, stride, pad))
        raise CnnzooError(
            f"{_arith(w, kernel, stride, pad, dilation)} = {float(exact):g} is not a whole number. "
            f"Sizes that divide: {hints}; or pass --floor (floor=True) for PyTorch's rounding "
            f"down (-> {span // stride + 1})"
        )
    return span // stride + 1


@dataclass(frozen=True)
class ConvResult(_Result):
    """A convolution or pooling layer on an HxWxC input."""

    layer: str  # "conv" or "pool"
    input: tuple[int, int, int]  # H, W, C of the input
    kernel: int  # F
    stride: int  # S
    pad: int  # P
    output: tuple[int, int, int]  # H, W, C of the output
    arithmetic: str  # "(227 - 11 + 2*0)/4 + 1 = 55"
    params: int  # learnable parameters (0 for pooling)
    param_formula: str  # "(11*11*3+1)*96 = 34,944"
    macs: int  # multiply-accumulates for one image (0 for pooling)
    macs_formula: str  # "55*55*96 * 11*11*3 = 105,415,200"
    activations: int  # output values for one image (per channel when the depth was not given)
    floored: bool = False  # True when (W - F + 2P)/S did not divide and was rounded down

    @property
    def volume(self) -> str:
        """The output in the notes' notation: ``55x55x96`` (``27x27`` when the depth is unknown)."""
        return "x".join(str(n) for n in self.output if n)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "volume": self.volume}

    def to_text(self) -> str:
        lines = [
            f"input      {'x'.join(str(n) for n in self.input if n)}",
            f"output     {self.arithmetic}  ->  {self.volume}",
            f"params     {self.param_formula}",
        ]
        if self.layer == "conv":
            lines.append(
                f"MACs       {self.macs_formula} ({format_short(self.macs)}; FLOPs = 2 x MACs)"
            )
        lines.append(
            f"memory     {self.volume.replace('x', '*')} = {format_count(self.activations)} values "
            f"{'' if self.output[2] else 'per channel '}"
            f"({format_count(self.activations * 4)} bytes as float32)"
        )
        if self.floored:
            lines.append("note       the size does not divide; rounded down as PyTorch does")
        return "\n".join(lines)


def _spatial(h: int, w: int, kernel: int, stride: int, pad: int, dilation: int, floor: bool):
    sides = []
    for side_name, v in (("height", h), ("width", w)):
        try:
            sides.append(conv_output_size(v, kernel, stride, pad, dilation, floor))
        except CnnzooError as err:
            if h != w:  # a non-square input: say which side fails
                raise CnnzooError(f"{side_name}: {err}") from None
            raise
    f = dilation * (kernel - 1) + 1
    floored = any((v - f + 2 * pad) % stride for v in (h, w))
    text = _arith(h, kernel, stride, pad, dilation)
    exact = Fraction(h - f + 2 * pad, stride) + 1
    text += f" = {float(exact):g}" + (f" -> {sides[0]} (floor)" if exact.denominator > 1 else "")
    if h != w:
        exact_w = Fraction(w - f + 2 * pad, stride) + 1
        text += f"; {_arith(w, kernel, stride, pad, dilation)} = {float(exact_w):g}"
        text += f" -> {sides[1]} (floor)" if exact_w.denominator > 1 else ""
    return sides[0], sides[1], text, floored


def conv_output(
    input: tuple[int, int, int] | str,
    filters: int,
    kernel: int,
    stride: int = 1,
    pad: int = 0,
    *,
    bias: bool = True,
    groups: int = 1,
    dilation: int = 1,
    floor: bool = False,
) -> ConvResult:
    """A convolution layer of ``filters`` FxF filters on an HxWxC input, as the notes compute it.

    Output ``(W - F + 2P)/S + 1`` per side (an error if it does not divide, unless ``floor``);
    parameters ``(F*F*C/groups + 1)*K`` (no ``+1`` without bias); MACs per image
    ``H'*W'*K * F*F*C/groups``. ``conv_output("227x227x3", 96, 11, 4)`` is AlexNet's CONV1:
    55x55x96 and 34,944 parameters.
    """
    h, w, c = parse_volume(input) if isinstance(input, str) else input
    if filters < 1:
        raise CnnzooError(f"the number of filters must be >= 1, got {filters}")
    if groups < 1 or c % groups or filters % groups:
        raise CnnzooError(
            f"groups must divide both the input depth and the filters, got groups {groups} "
            f"for depth {c} and {filters} filters"
        )
    oh, ow, text, floored = _spatial(h, w, kernel, stride, pad, dilation, floor)
    cin = c // groups
    per_filter = kernel * kernel * cin
    params = (per_filter + int(bias)) * filters
    macs = oh * ow * filters * per_filter
    fan = f"{kernel}*{kernel}*{cin}"
    formula = f"({fan}+1)*{filters}" if bias else f"({fan})*{filters}"
    return ConvResult(
        layer="conv",
        input=(h, w, c),
        kernel=kernel,
        stride=stride,
        pad=pad,
        output=(oh, ow, filters),
        arithmetic=text,
        params=params,
        param_formula=f"{formula} = {format_count(params)}",
        macs=macs,
        macs_formula=f"{oh}*{ow}*{filters} * {fan} = {format_count(macs)}",
        activations=oh * ow * filters,
        floored=floored,
    )


def pool_output(
    input: tuple[int, int, int | None] | str,
    kernel: int,
    stride: int | None = None,
    pad: int = 0,
    *,
    floor: bool = False,
) -> ConvResult:
    """A pooling layer: the same output-size rule, the depth unchanged, and 0 parameters.

    ``stride`` defaults to the kernel size, as in PyTorch. ``pool_output("55x55x96", 3, 2)`` is
    AlexNet's POOL1: 27x27x96.
    """
    h, w, c = parse_volume(input, need_depth=False) if isinstance(input, str) else input
    stride = kernel if stride is None else stride
    oh, ow, text, floored = _spatial(h, w, kernel, stride, pad, 1, floor)
    depth = c if c is not None else 0
    return ConvResult(
        layer="pool",
        input=(h, w, depth),
        kernel=kernel,
        stride=stride,
        pad=pad,
        output=(oh, ow, depth),
        arithmetic=text,
        params=0,
        param_formula="0 (pooling has nothing to learn)",
        macs=0,
        macs_formula="0 (comparisons or additions, not multiply-accumulates)",
        activations=oh * ow * (depth or 1),
        floored=floored,
    )


@dataclass(frozen=True)
class FCResult(_Result):
    """A fully-connected layer on a flattened volume."""

    input: tuple[int, ...]  # the volume it reads, e.g. (6, 6, 256), or (4096,)
    in_features: int  # its number of values: 6*6*256 = 9,216
    out_features: int  # neurons
    params: int  # (in + 1) * out
    param_formula: str  # "(6*6*256+1)*4096 = 37,752,832"
    macs: int  # in * out for one image

    def to_text(self) -> str:
        vol = "x".join(map(str, self.input))
        return "\n".join(
            [
                f"input      {vol} = {format_count(self.in_features)} values (flattened)",
                f"output     {self.out_features}",
                f"params     {self.param_formula}",
                f"MACs       {format_count(self.in_features)}*{self.out_features} = "
                f"{format_count(self.macs)} "
                f"({format_short(self.macs)}; FLOPs = 2 x MACs)",
            ]
        )


def fc_layer(
    input: tuple[int, ...] | str | int, out_features: int, *, bias: bool = True
) -> FCResult:
    """A fully-connected layer: every input value to every neuron, ``(in + 1) * out`` parameters.

    ``fc_layer("6x6x256", 4096)`` is AlexNet's FC6: 9,216 inputs, 37,752,832 parameters.
    """
    if isinstance(input, int):
        dims: tuple[int, ...] = (input,)
    elif isinstance(input, str):
        try:
            dims = tuple(int(p) for p in re.split(r"[x*×, ]+", input.strip().lower()) if p)
        except ValueError:
            dims = ()
        if not dims:
            raise CnnzooError(f"the input is a volume HxWxC or a count, got {input!r}")
    else:
        dims = tuple(input)
    if min(dims, default=0) < 1 or out_features < 1:
        raise CnnzooError(f"sizes must be positive, got input {input!r}, output {out_features}")
    n_in = 1
    for d in dims:
        n_in *= d
    fan = "*".join(map(str, dims))
    params = (n_in + int(bias)) * out_features
    formula = f"({fan}+1)*{out_features}" if bias else f"{fan}*{out_features}"
    return FCResult(
        dims, n_in, out_features, params, f"{formula} = {format_count(params)}", n_in * out_features
    )


# --------------------------------------------------------------------------------------------
# Receptive field of a stack
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RFLayer(_Result):
    kernel: int  # F
    stride: int  # S
    dilation: int  # spacing of the kernel taps (1 = ordinary)
    rf: int  # receptive field after this layer, in input pixels
    jump: int  # effective stride after this layer: input pixels between neighbouring outputs
    formula: str  # "7 = 5 + (3-1)*1"


@dataclass(frozen=True)
class RFResult(_Result):
    layers: list[RFLayer]
    rf: int  # receptive field of one unit of the last layer
    jump: int  # effective stride of the last layer

    def to_text(self) -> str:
        lines = [f"{'layer':<8}{'kernel/stride':<15}{'rf = rf_prev + (F-1)*jump_prev':<34}jump"]
        for i, lay in enumerate(self.layers, 1):
            ks = f"{lay.kernel}/{lay.stride}" + (f" d{lay.dilation}" if lay.dilation > 1 else "")
            lines.append(f"{i:<8}{ks:<15}{lay.formula:<34}{lay.jump}")
        lines.append(f"receptive field {self.rf}x{self.rf}, effective stride {self.jump}")
        return "\n".join(lines)


def receptive_field(layers: Sequence[tuple[int, ...] | str]) -> RFResult:
    """Receptive field and effective stride (jump) of a stack of layers.

    Each layer is ``(kernel, stride)`` or ``(kernel, stride, dilation)``, or a string ``"3/1"``,
    ``"3"`` (stride 1) or ``"3/1/2"`` (dilation 2). The recurrence: ``rf = rf_prev + (F - 1) *
    jump_prev`` with ``F = dilation*(kernel-1)+1``, and ``jump = jump_prev * S``. Padding moves
    the field but does not change its size. Three 3/1 layers give 7, as one 7x7 does.
    """
    if not layers:
        raise CnnzooError("give at least one layer, e.g. 3/1 3/1 3/1")
    rf, jump, out = 1, 1, []
    for spec in layers:
        k, s, d = _parse_layer(spec)
        f = d * (k - 1) + 1
        new = rf + (f - 1) * jump
        out.append(RFLayer(k, s, d, new, jump * s, f"{new} = {rf} + ({f}-1)*{jump}"))
        rf, jump = new, jump * s
    return RFResult(out, rf, jump)


def _parse_layer(spec: tuple[int, ...] | str) -> tuple[int, int, int]:
    if isinstance(spec, str):
        try:
            nums = tuple(int(p) for p in spec.strip().split("/"))
        except ValueError:
            nums = ()
        if not 1 <= len(nums) <= 3:
            raise CnnzooError(
                f"a layer is KERNEL/STRIDE (e.g. 3/1, 11/4) or KERNEL/STRIDE/DILATION, got {spec!r}"
            )
    else:
        nums = tuple(spec)
    k, s, d = (tuple(nums) + (1, 1))[:3]
    if min(k, s, d) < 1:
        raise CnnzooError(f"kernel, stride and dilation must be >= 1, got {spec!r}")
    return k, s, d


# --------------------------------------------------------------------------------------------
# VGG: a stack of small filters against one large one
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackResult(_Result):
    channels: int  # C, input and output depth of every layer
    n: int  # number of small layers
    kernel: int  # their size (3)
    single_kernel: int  # the one layer with the same receptive field (7)
    stack_weights: int  # n * (k^2 C^2)
    single_weights: int  # K^2 C^2
    stack_params: int  # with biases: n * (k^2 C^2 + C)
    single_params: int  # with bias: K^2 C^2 + C
    ratio: float  # stack_weights / single_weights (27/49 for three 3x3)
    formula: str = field(default="")

    def to_text(self) -> str:
        n, k, big, c = self.n, self.kernel, self.single_kernel, self.channels
        return "\n".join(
            [
                f"receptive field: {n} stacked {k}x{k} (stride 1) = {big}x{big}",
                f"weights  {n}*({k}^2*C^2) = {n}*({k * k}*{c}^2) = "
                f"{format_count(self.stack_weights)}"
                f"   vs   {big}^2*C^2 = {big * big}*{c}^2 = {format_count(self.single_weights)}",
                f"+biases  {format_count(self.stack_params)}   vs   "
                f"{format_count(self.single_params)}",
                f"ratio    {n * k * k}/{big * big} = {self.ratio:.3f} "
                f"({(1 - self.ratio) * 100:.0f}% fewer), with {n} non-linearities instead of 1",
            ]
        )


def stack_vs_single(channels: int, n: int = 3, kernel: int = 3) -> StackResult:
    """``n`` stacked ``kernel``x``kernel`` stride-1 layers against the one layer with the same
    receptive field (``n*(kernel-1)+1``), C channels in and out: ``3*(3^2 C^2)`` vs ``7^2 C^2``."""
    if channels < 1 or n < 1 or kernel < 1:
        raise CnnzooError(
            f"channels, n and kernel must be >= 1, got channels {channels}, n {n}, kernel {kernel}"
        )
    big = n * (kernel - 1) + 1
    small_w, big_w = n * kernel * kernel * channels**2, big * big * channels**2
    return StackResult(
        channels=channels,
        n=n,
        kernel=kernel,
        single_kernel=big,
        stack_weights=small_w,
        single_weights=big_w,
        stack_params=small_w + n * channels,
        single_params=big_w + channels,
        ratio=small_w / big_w,
        formula=f"{n}*({kernel}^2 C^2) vs {big}^2 C^2",
    )


# --------------------------------------------------------------------------------------------
# MobileNet: depthwise-separable convolution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeparableResult(_Result):
    c_in: int  # C
    c_out: int  # C'
    kernel: int  # k
    size: tuple[int, int] | None  # output H, W at which MACs are counted (stride 1)
    standard_params: int  # C*k*k*C'
    depthwise_params: int  # C*k*k
    pointwise_params: int  # C*C'
    separable_params: int  # C*(k*k + C')
    standard_macs: int | None  # H*W*C*k*k*C'
    separable_macs: int | None  # H*W*C*(k*k + C')
    ratio: float  # separable / standard = 1/C' + 1/k^2
    bias: bool  # whether the parameter counts include biases

    def to_text(self) -> str:
        c, co, k = self.c_in, self.c_out, self.kernel
        b1, b2 = (f" + {co}", f" + {c} + {co}") if self.bias else ("", "")
        lines = [
            f"standard {k}x{k} conv      C*k*k*C'{' + C' if self.bias else ''}"
            f" = {c}*{k}*{k}*{co}{b1} = {format_count(self.standard_params)}",
            f"depthwise separable    C*(k*k + C'){' + C + C' if self.bias else ''}"
            f" = {c}*({k}*{k} + {co}){b2} = {format_count(self.separable_params)}"
            f"  (depthwise {format_count(self.depthwise_params)} "
            f"+ pointwise {format_count(self.pointwise_params)})",
        ]
        if self.size is not None:
            h, w = self.size
            lines += [
                f"{f'MACs at {h}x{w}':<23}standard {h}*{w}*{c}*{k}*{k}*{co} = "
                f"{format_count(self.standard_macs)} ({format_short(self.standard_macs)})",
                f"                       separable {h}*{w}*{c}*({k}*{k} + {co}) = "
                f"{format_count(self.separable_macs)} ({format_short(self.separable_macs)})",
            ]
        lines.append(
            f"ratio                  1/C' + 1/k^2 = 1/{co} + 1/{k * k} = {self.ratio:.4f} "
            f"({1 / self.ratio:.1f}x fewer{' weights and MACs' if not self.bias else ' MACs'})"
        )
        return "\n".join(lines)


def separable_conv(
    c_in: int,
    c_out: int,
    kernel: int = 3,
    size: tuple[int, int] | int | None = None,
    *,
    bias: bool = False,
) -> SeparableResult:
    """A standard kxk convolution C -> C' against MobileNet's depthwise kxk + pointwise 1x1.

    Parameters ``C*k*k*C'`` vs ``C*(k*k + C')`` (the notes count no biases: MobileNet follows
    each convolution with batch norm); MACs at an output of ``size`` (HxW, stride 1) are the
    parameters times H*W. The ratio ``1/C' + 1/k^2`` holds for both without biases.
    """
    if min(c_in, c_out, kernel) < 1:
        raise CnnzooError(f"C, C' and k must be >= 1, got C {c_in}, C' {c_out}, k {kernel}")
    if isinstance(size, int):
        size = (size, size)
    if size is not None and min(size) < 1:
        raise CnnzooError(f"the spatial size must be positive, got {size}")
    std_w, dw_w, pw_w = c_in * kernel * kernel * c_out, c_in * kernel * kernel, c_in * c_out
    hw = size[0] * size[1] if size is not None else None
    return SeparableResult(
        c_in=c_in,
        c_out=c_out,
        kernel=kernel,
        size=tuple(size) if size is not None else None,
        standard_params=std_w + (c_out if bias else 0),
        depthwise_params=dw_w + (c_in if bias else 0),
        pointwise_params=pw_w + (c_out if bias else 0),
        separable_params=dw_w + pw_w + (c_in + c_out if bias else 0),
        standard_macs=hw * std_w if hw is not None else None,
        separable_macs=hw * (dw_w + pw_w) if hw is not None else None,
        ratio=(dw_w + pw_w) / std_w,
        bias=bias,
    )


# --------------------------------------------------------------------------------------------
# GoogLeNet: naive against bottleneck Inception module
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InceptionBranch(_Result):
    name: str  # "[3x3 conv, 192]" as the slide writes it
    kernel: int  # k (0 for the pooling branch)
    c_in: int  # depth this convolution reads
    c_out: int  # depth it writes
    macs: int  # H*W*C_out*k*k*C_in
    params: int  # k*k*C_in*C_out (+ C_out with biases)
    formula: str  # "28*28*192*3*3*256 = 346,816,512"


@dataclass(frozen=True)
class InceptionResult(_Result):
    input: tuple[int, int, int]  # H, W, C
    naive: list[InceptionBranch]  # the slide's three convolutions (and the 3x3 pool, 0 MACs)
    bottleneck: list[InceptionBranch]  # the slide's six convolutions (and the pool)
    naive_macs: int
    bottleneck_macs: int
    naive_params: int
    bottleneck_params: int
    naive_depth: int  # output depth of the concatenation: 128+192+96+256 = 672 for the slide
    bottleneck_depth: int  # 128+192+96+64 = 480 for the slide
    note: str = ""  # where the notes' own figures for this module differ from the sum of rows

    def to_text(self) -> str:
        h, w, c = self.input
        lines = [f"input {h}x{w}x{c}; MACs = H*W*C_out*k*k*C_in (FLOPs = 2 x MACs)", ""]
        for title, rows, macs, depth, params in (
            ("naive module", self.naive, self.naive_macs, self.naive_depth, self.naive_params),
            (
                "with 1x1 bottlenecks",
                self.bottleneck,
                self.bottleneck_macs,
                self.bottleneck_depth,
                self.bottleneck_params,
            ),
        ):
            lines.append(f"{title}:")
            for b in rows:
                lines.append(f"  {b.name:<22}{b.formula}")
            lines.append(
                f"  {'total':<22}{format_count(macs)} MACs ({format_short(macs)} ops), "
                f"{format_count(params)} weights, output {h}x{w}x{depth}"
            )
            lines.append("")
        saved = 1 - self.bottleneck_macs / self.naive_macs
        lines.append(
            f"operations {format_short(self.naive_macs)} -> {format_short(self.bottleneck_macs)} "
            f"(-{saved * 100:.0f}%); depth {self.naive_depth} -> {self.bottleneck_depth} "
            f"(-{(1 - self.bottleneck_depth / self.naive_depth) * 100:.0f}%)"
        )
        if self.note:
            lines.append(f"note: {self.note}")
        return "\n".join(lines)


def _branch(name: str, h: int, w: int, k: int, c_in: int, c_out: int, bias: bool):
    macs = h * w * c_out * k * k * c_in
    params = k * k * c_in * c_out + (c_out if bias else 0)
    return InceptionBranch(
        name, k, c_in, c_out, macs, params, f"{h}*{w}*{c_out}*{k}*{k}*{c_in} = {format_count(macs)}"
    )


# The example module of the notes' GoogLeNet slides (28x28x256 in).
_NOTES_INCEPTION = dict(ch1x1=128, ch3x3=192, ch5x5=96, reduce3x3=64, reduce5x5=64, pool_proj=64)


def inception_module(
    input: tuple[int, int, int] | str = (28, 28, 256),
    ch1x1: int = 128,
    ch3x3: int = 192,
    ch5x5: int = 96,
    reduce3x3: int = 64,
    reduce5x5: int = 64,
    pool_proj: int = 64,
    *,
    bias: bool = False,
) -> InceptionResult:
    """The naive Inception module against the one with 1x1 bottlenecks, on an HxWxC input.

    Defaults are the notes' example: 28x28x256 in; 1x1 128, 3x3 192, 5x5 96 branches and a 3x3
    max pool (stride 1, padded, so it keeps all C channels); the bottleneck version puts 1x1
    convolutions of ``reduce3x3``/``reduce5x5`` before the 3x3/5x5 and ``pool_proj`` after the
    pool. Every branch keeps HxW ("same" padding). Pooling costs comparisons, not MACs.
    """
    h, w, c = parse_volume(input) if isinstance(input, str) else input
    widths = dict(
        ch1x1=ch1x1,
        ch3x3=ch3x3,
        ch5x5=ch5x5,
        reduce3x3=reduce3x3,
        reduce5x5=reduce5x5,
        pool_proj=pool_proj,
    )
    bad = {k: v for k, v in widths.items() if v < 1}
    if bad or min(h, w, c) < 1:
        raise CnnzooError(f"every width and size must be >= 1, got {bad or (h, w, c)}")
    pool = InceptionBranch("[3x3 pool]", 0, c, c, 0, 0, f"max pool keeps depth {c}, 0 MACs")
    naive = [
        _branch(f"[1x1 conv, {ch1x1}]", h, w, 1, c, ch1x1, bias),
        _branch(f"[3x3 conv, {ch3x3}]", h, w, 3, c, ch3x3, bias),
        _branch(f"[5x5 conv, {ch5x5}]", h, w, 5, c, ch5x5, bias),
        pool,
    ]
    bottle = [
        _branch(f"[1x1 conv, {reduce3x3}]", h, w, 1, c, reduce3x3, bias),
        _branch(f"[1x1 conv, {reduce5x5}]", h, w, 1, c, reduce5x5, bias),
        _branch(f"[1x1 conv, {ch1x1}]", h, w, 1, c, ch1x1, bias),
        _branch(f"[3x3 conv, {ch3x3}]", h, w, 3, reduce3x3, ch3x3, bias),
        _branch(f"[5x5 conv, {ch5x5}]", h, w, 5, reduce5x5, ch5x5, bias),
        dataclasses.replace(pool, formula="max pool, 0 MACs"),
        _branch(f"[1x1 conv, {pool_proj}]", h, w, 1, c, pool_proj, bias),
    ]
    naive_macs, bottle_macs = sum(b.macs for b in naive), sum(b.macs for b in bottle)
    note = ""
    if (h, w, c) == (28, 28, 256) and widths == _NOTES_INCEPTION:
        # The slide prints 854M and 358M (-58%); its six bottleneck rows add up to 271M.
        note = (
            f"the notes state 854M -> 358M ops (-58%); the naive rows do add up to "
            f"{format_short(naive_macs)}, but the bottleneck rows add up to "
            f"{format_short(bottle_macs)}, "
            f"not 358M (-{(1 - bottle_macs / naive_macs) * 100:.0f}%, not -58%)"
        )
    return InceptionResult(
        input=(h, w, c),
        naive=naive,
        bottleneck=bottle,
        naive_macs=naive_macs,
        bottleneck_macs=bottle_macs,
        naive_params=sum(b.params for b in naive),
        bottleneck_params=sum(b.params for b in bottle),
        naive_depth=ch1x1 + ch3x3 + ch5x5 + c,
        bottleneck_depth=ch1x1 + ch3x3 + ch5x5 + pool_proj,
        note=note,
    )


# --------------------------------------------------------------------------------------------
# The calculators by name, with options as text (the command line's)
# --------------------------------------------------------------------------------------------

CALCULATORS = {
    f.__name__: f
    for f in (
        conv_output,
        pool_output,
        fc_layer,
        receptive_field,
        stack_vs_single,
        separable_conv,
        inception_module,
    )
}


def calculate(
    function: str, options: dict, note: Callable[[str], None] = lambda text: None
) -> _Result:
    """Call the calculator named ``function`` (a key of ``CALCULATORS``) with ``options`` as the
    command line gives them, ``input`` and ``size`` as text: volumes are read with
    :func:`read_volume`, and ``note`` is told, before any arithmetic, of each one read as
    C x H x W. ``fc_layer`` also takes a flat count (``4096``), ``pool_output`` a volume without
    depth, ``separable_conv`` a ``size`` HxW."""
    options = dict(options)

    def volume(key: str, need_depth: bool) -> tuple[int, int, int | None]:
        value, said = read_volume(options[key], need_depth, f"--{key}")
        if said:
            note(said)
        return value

    if isinstance(options.get("input"), str):
        flat = function == "fc_layer" and len(re.findall(r"\d+", options["input"])) != 3
        if not flat:
            options["input"] = volume("input", need_depth=function != "pool_output")
    if function == "separable_conv" and isinstance(options.get("size"), str):
        options["size"] = volume("size", need_depth=False)[:2]
    return CALCULATORS[function](**options)
