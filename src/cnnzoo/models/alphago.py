"""AlphaGo's supervised-learning policy network (Silver et al. 2016, Mastering the game of Go with
deep neural networks and tree search, Methods: "Neural network architecture").

A fully convolutional network over the board: the input is a stack of 48 feature planes of the
19x19 board (stones, liberties, ladders ...), every hidden layer keeps the board size by zero
padding, and the output is one logit per board point: the softmax over them is the probability
of playing each move.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CnnzooError, ModelArgumentError
from ..registry import register_model
from ._base import ZooModel
from .features import sequential_points
from .layers import check_count, he_init_


class PolicyHead(nn.Module):
    """1x1 convolution with one filter and no shared bias, plus one bias per board point."""

    def __init__(self, in_chs: int, board_size: int) -> None:
        super().__init__()
        self.board_size = board_size
        self.conv = nn.Conv2d(in_chs, 1, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(board_size * board_size))  # position-dependent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.conv(x), 1) + self.bias  # N x board_size**2 move logits


class AlphaGoPolicy(ZooModel):
    """The SL policy network: CONV 5x5 then CONV 3x3 layers of ``width`` filters, each with ReLU,
    then the position-biased 1x1 policy head.

    ``num_classes`` is tied to the board: it must be ``board_size**2`` (the default) or 0.
    ``forward_features`` gives the last hidden layer (N x width x board x board);
    ``forward_head(x, pre_logits=True)`` (and ``num_classes=0``) gives it globally
    average-pooled (N x width), the pooled features of the common interface; the move logits
    themselves need the whole map, not the pooled vector.
    """

    head_name = "classifier"

    def __init__(
        self,
        num_classes: int | None = None,
        in_chans: int = 48,
        board_size: int = 19,
        width: int = 192,
        depth: int = 12,
    ) -> None:
        super().__init__()
        if board_size < 1:
            raise ModelArgumentError(f"board_size must be >= 1, got {board_size}")
        if depth < 1:
            raise ModelArgumentError(f"depth (hidden conv layers) must be >= 1, got {depth}")
        check_count("in_chans", in_chans, 1)
        self.board_size = board_size
        num_classes = board_size * board_size if num_classes is None else num_classes
        self._check_num_classes(num_classes)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, width
        # Layer 1 zero-pads the board to (board+4)^2 for its 5x5 filters; layers 2..depth pad
        # to (board+2)^2 for 3x3: every hidden layer is board x board.
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 5, padding=2), nn.ReLU(inplace=True)]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = self.new_head(num_classes)
        self.init_weights()

    def _check_num_classes(self, num_classes: int) -> None:
        moves = self.board_size * self.board_size
        if num_classes not in (0, moves):
            raise ModelArgumentError(
                f"alphago_policy has one output per board point: num_classes must be "
                f"{moves} (board_size={self.board_size}) or 0 for pooled features, got "
                f"{num_classes}; for another board pass board_size (num_classes follows it)"
            )

    def init_weights(self) -> None:
        """He init for the ReLU convolutions; the head's position biases start at zero."""
        he_init_(self)
        if isinstance(self.classifier, PolicyHead):
            nn.init.zeros_(self.classifier.bias)

    def feature_points(self) -> list[tuple[str, int]]:
        """The last hidden layer (every layer keeps the board's size: stride 1)."""
        return sequential_points(self.features, "features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequential(self.features, x)  # N x 192 x 19 x 19

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or not self.num_classes:
            return x.mean((2, 3))  # N x 192
        if tuple(x.shape[-2:]) != (self.board_size, self.board_size):
            raise CnnzooError(
                f"alphago_policy was built for a {self.board_size}x{self.board_size} board, got "
                f"{x.shape[-2]}x{x.shape[-1]} planes; build it with board_size={x.shape[-1]}"
            )
        return self.classifier(x)  # N x 361: softmax over them gives the move probabilities

    def new_head(self, num_classes: int) -> nn.Module:
        """The 1x1 policy convolution with one bias per board point (zero at first)."""
        self._check_num_classes(num_classes)
        if not num_classes:
            return nn.Identity()
        head = PolicyHead(self.num_features, self.board_size)
        he_init_(head)
        nn.init.zeros_(head.bias)
        return head


@register_model(input_size=(48, 19, 19))
def alphago_policy(**kwargs) -> AlphaGoPolicy:
    """AlphaGo SL policy network (Silver et al. 2016, Mastering the game of Go with deep NNs).

    19x19x48 input planes; layer 1: 192 filters 5x5 (zero-padded to 23x23), ReLU; layers 2-12:
    192 filters 3x3 (padded to 21x21), ReLU; layer 13: one 1x1 filter with a different bias
    for each of the 361 points -> 361 move logits. The paper's k=192 network, 13 layers with
    weights: 3,882,793 parameters. ``board_size``, ``width`` (k) and ``depth`` (hidden layers)
    are arguments.
    """
    return AlphaGoPolicy(**kwargs)
