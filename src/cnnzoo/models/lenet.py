"""LeNet-5 (LeCun et al. 1998), the classic C1-S2-C3-S4-C5-F6-output network."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from ._base import ZooModel
from .features import sequential_points
from .layers import check_choice, check_count


class LeNet5(ZooModel):
    """LeNet-5 on 32x32 grey images.

    Departures from the paper, as in every modern re-implementation: C3 connects to all six S2
    maps (the paper's partial connection table gives 1,516 weights there instead of 2,416), S2/S4
    are average pooling without the trainable coefficient and bias, the activations are tanh, and
    the output layer is a linear layer instead of Euclidean RBF units. Parameters: 61,706.

    ``act="relu"`` and ``pool="max"`` give the "modern LeNet" of many tutorials (same parameters).
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, act: str = "tanh", pool: str = "avg"
    ) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 0)
        check_count("in_chans", in_chans, 1)
        check_choice("act", act, ("tanh", "relu"))
        check_choice("pool", pool, ("avg", "max"))
        Act = nn.Tanh if act == "tanh" else nn.ReLU
        Pool = nn.AvgPool2d if pool == "avg" else nn.MaxPool2d
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, 84
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5),  # C1: 6@28x28
            Act(),
            Pool(2),  # S2: 6@14x14
            nn.Conv2d(6, 16, 5),  # C3: 16@10x10
            Act(),
            Pool(2),  # S4: 16@5x5
            nn.Conv2d(16, 120, 5),  # C5: 120@1x1
            Act(),
        )
        self.pre_logits = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), Act())  # F6
        self.fc = self.new_head(num_classes)
        self.init_weights(act)

    def init_weights(self, act: str = "tanh") -> None:
        """Glorot's uniform initialisation, with torch's gain for tanh (5/3; the paper drew from
        U(-2.4/fan_in, 2.4/fan_in)) and gain 1 for ReLU. Against gain 1, tanh's gain adds 0.5
        points to five epochs of the defaults on Fashion-MNIST; ReLU's sqrt(2) killed one seed of
        five of the ``lenet-91`` recipe (peak rate 0.2) in its second epoch (docs/training.md)."""
        gain = nn.init.calculate_gain("tanh") if act == "tanh" else 1.0
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight, gain=gain)
                nn.init.zeros_(m.bias)

    def feature_points(self) -> list[tuple[str, int]]:
        """C1 and C3 after their activation (strides 1, 2) and C5 (4)."""
        return sequential_points(self.features, "features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_sequential(self.features, x)  # N x 120 x 1 x 1

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)  # N x 84
        return x if pre_logits else self.fc(x)


# A 61,706-parameter network underfits Fashion-MNIST in the epochs it is trained for: flips and
# label smoothing cost it accuracy in every run measured (5 epochs on three seeds, 10 and 20 on
# one), and it trains best at twice the general rate (docs/training.md, "The defaults").
LENET5_TRAIN_DEFAULTS = {"augment": "none", "label_smoothing": 0.0, "lr": 0.2}


@register_model(input_size=(1, 32, 32), train_defaults=LENET5_TRAIN_DEFAULTS)
def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 (LeCun et al. 1998, Gradient-based learning applied to document recognition)."""
    return LeNet5(**kwargs)
