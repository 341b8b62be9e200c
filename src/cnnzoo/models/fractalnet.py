"""FractalNet (Larsson, Maire & Shakhnarovich 2016): ultra-deep networks without residuals.

A fractal block with ``C`` columns is the expansion rule applied ``C - 1`` times:

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z))

where ``conv`` is 3x3 conv-BN-ReLU and ``join`` is the element-wise mean of its inputs. Drawn out,
column ``i`` (0 = shallowest) is a chain of ``2**i`` convolutions, the deepest has ``2**(C-1)``, and
every point where several columns end a convolution at the same depth is one join of all of them
(the paper's Figure 1: the last join of a 4-column block averages 4 inputs).

Drop-path regularises the block during training. Local: each join drops each of its inputs with
probability ``p`` (0.15), keeping at least one. Global: one column is picked for the whole network
and every join keeps only that column's input, so the network is that plain chain of convolutions.
The paper mixes them per mini-batch, half local and half global. Evaluation uses every column;
``set_column(-1)`` evaluates the deepest column alone (the paper's "deepest column" rows).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .layers import GlobalPool, check_count


class FractalConv(nn.Sequential):
    """3x3 conv -> dropout at the block's rate -> BatchNorm -> ReLU.

    The paper does not say where dropout goes; the authors' Caffe model (as its re-implementers
    report) puts it right after every convolution, and so does cnnzoo.
    """

    def __init__(self, in_chs: int, out_chs: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False)  # BN's shift is the bias
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)


def join_schedule(num_columns: int) -> list[tuple[int, ...]]:
    """For each depth step ``t = 1 .. 2**(C-1)``, the columns that end a convolution at ``t``.

    Column ``i`` has ``2**i`` convolutions spread over the block's depth, one every
    ``2**(C-1-i)`` steps. A step with two or more columns is a join. For C=3:
    ``[(2,), (1, 2), (2,), (0, 1, 2)]``.
    """
    depth = 2 ** (num_columns - 1)
    return [
        tuple(i for i in range(num_columns) if t % 2 ** (num_columns - 1 - i) == 0)
        for t in range(1, depth + 1)
    ]


def local_drop_mask(n: int, p: float) -> torch.Tensor:
    """Which of a join's ``n`` inputs survive: each is dropped with probability ``p``; if all
    would be, one chosen uniformly survives (so each input is dropped w.p. ``p - p**n / n``)."""
    keep = torch.rand(n) >= p
    if not keep.any():
        keep[torch.randint(n, ())] = True
    return keep


class FractalBlock(nn.Module):
    """One fractal block: ``num_columns`` columns from ``in_chs`` to ``out_chs`` channels."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        num_columns: int,
        drop_rate: float = 0.0,
        local_drop: float = 0.15,
    ) -> None:
        super().__init__()
        self.num_columns, self.local_drop = num_columns, local_drop
        self.columns = nn.ModuleList(
            nn.Sequential(
                *(
                    FractalConv(in_chs if j == 0 else out_chs, out_chs, drop_rate)
                    for j in range(2**i)
                )
            )
            for i in range(num_columns)
        )
        self.schedule = join_schedule(num_columns)

    def join(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Element-wise mean of the inputs that survive local drop-path (all of them in eval)."""
        if self.training and self.local_drop > 0:
            keep = local_drop_mask(len(inputs), self.local_drop)
            inputs = [x for x, k in zip(inputs, keep.tolist(), strict=True) if k]
        return inputs[0] if len(inputs) == 1 else torch.stack(inputs).mean(0)

    def forward(self, x: torch.Tensor, column: int | None = None) -> torch.Tensor:
        if column is not None:  # global drop-path: every join keeps only this column's input
            return self.columns[column](x)
        top = self.num_columns - 1
        inputs = [x] * self.num_columns  # what each column's next convolution reads
        for t, active in enumerate(self.schedule, start=1):
            outs = [self.columns[i][t // 2 ** (top - i) - 1](inputs[i]) for i in active]
            y = outs[0] if len(outs) == 1 else self.join(outs)
            for i in active:
                inputs[i] = y
        return y


class FractalNet(ZooModel):
    """FractalNet for 32x32 images: ``B`` fractal blocks, 2x2 max pooling after each, then FC.

    ``channels`` gives each block's width (the paper's CIFAR nets: 64, 128, 256, 512, 512) and
    ``num_columns`` is C (the longest path has ``B * 2**(C-1)`` convolutions). Defaults are the
    paper's regularised setting: dropout ``drop_rates`` per block (default 0, .1, .2, .3, .4; one
    number sets every block), local drop-path ``local_drop`` and global drop-path for a
    ``global_drop`` fraction of mini-batches; zeros turn them off. ``column`` runs one column only.
    Departures: the fifth 2x2 max pooling is a global max pooling in the head (the same at 32x32,
    and any input of at least 16x16 then works); join comes before pooling, as the paper's text
    says (its Caffe code pooled first).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: tuple[int, ...] = (64, 128, 256, 512, 512),
        num_columns: int = 4,
        drop_rates: tuple[float, ...] | float | None = None,
        local_drop: float = 0.15,
        global_drop: float = 0.5,
        column: int | None = None,
        global_pool: str = "max",
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        if num_columns < 1:
            raise ModelArgumentError(f"num_columns must be at least 1, got {num_columns}")
        if not channels:
            raise ModelArgumentError(f"channels needs one width per block, got {channels}")
        if drop_rates is None:  # the paper's 0%, 10%, 20%, ... per block
            drop_rates = tuple(round(0.1 * b, 2) for b in range(len(channels)))
        elif isinstance(drop_rates, (int, float)):
            drop_rates = (float(drop_rates),) * len(channels)
        drop_rates = tuple(drop_rates)
        if len(drop_rates) != len(channels):
            raise ModelArgumentError(
                f"drop_rates needs one rate per block ({len(channels)}), got {drop_rates}"
            )
        for name, p in [("local_drop", local_drop), ("global_drop", global_drop)]:
            if not 0.0 <= p <= 1.0:
                raise ModelArgumentError(f"{name} must be in [0, 1], got {p}")
        if any(not 0.0 <= p < 1.0 for p in drop_rates):
            raise ModelArgumentError(f"drop_rates must be in [0, 1), got {drop_rates}")
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, channels[-1]
        self.num_columns, self.global_drop = num_columns, global_drop
        blocks, in_chs = [], in_chans
        for out_chs, rate in zip(channels, drop_rates, strict=True):
            blocks.append(FractalBlock(in_chs, out_chs, num_columns, rate, local_drop))
            in_chs = out_chs
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2)
        self.global_pool = GlobalPool("max")  # the last block's 2x2 pool at 32x32
        self.fc = self.new_head(num_classes)
        if global_pool != "max":
            self._set_global_pool(global_pool, num_classes)
        self.column: int | None = None
        self.set_column(column)
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Glorot, Caffe's "xavier" filler
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def set_column(self, column: int | None) -> None:
        """Run only column ``column`` (0 = shallowest, -1 = deepest), or all of them (``None``)."""
        if column is not None:
            if not -self.num_columns <= column < self.num_columns:
                raise ModelArgumentError(
                    f"column must be in [{-self.num_columns}, {self.num_columns - 1}] or None, "
                    f"got {column}"
                )
            column %= self.num_columns
        self.column = column

    def sample_column(self) -> int | None:
        """The column this forward pass runs: the fixed one, a global drop-path draw, or None."""
        if self.column is not None:
            return self.column
        if self.training and self.global_drop > 0 and torch.rand(()) < self.global_drop:
            return int(torch.randint(self.num_columns, ()))
        return None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        column = self.sample_column()  # one draw per mini-batch, shared by every block
        for b, block in enumerate(self.blocks):
            if b:
                x = self.pool(x)  # 32 -> 16 -> 8 -> 4 -> 2
            x = block(x, column)
        return x  # N x 512 x 2 x 2 at 32x32

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # N x 512
        return x if pre_logits else self.fc(x)

    def feature_points(self) -> list[tuple[str, int]]:
        """Each fractal block, before the pool that follows it (strides 1, 2, 4, ...)."""
        return [(f"blocks.{b}", 2**b) for b in range(len(self.blocks))]


@register_model(input_size=(3, 32, 32))
def fractalnet(**kwargs) -> FractalNet:
    """FractalNet, 40 layers (Larsson et al. 2016, Ultra-deep neural networks w/o residuals)."""
    return FractalNet(num_columns=4, **kwargs)


@register_model(input_size=(3, 32, 32))
def fractalnet20(**kwargs) -> FractalNet:
    """FractalNet, 20 layers (Larsson et al. 2016, Table 1's CIFAR net: B=5, C=3)."""
    return FractalNet(num_columns=3, **kwargs)
