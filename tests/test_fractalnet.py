"""FractalNet: the expansion rule, join by mean, local and global drop-path, measured."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.models.fractalnet import FractalBlock, FractalNet, join_schedule, local_drop_mask
from helpers import n_params

pytestmark = pytest.mark.usefixtures("one_thread")


def test_join_schedule_is_figure_1():
    # Figure 1 of the paper: in a 3-column block the deepest column joins the middle one after
    # its 2nd conv and all three after its 4th; in a 4-column block joins come after the deepest
    # column's 2nd (2 inputs), 4th (3 inputs), 6th (2 inputs) and 8th (4 inputs) convolutions.
    assert join_schedule(1) == [(0,)]
    assert join_schedule(3) == [(2,), (1, 2), (2,), (0, 1, 2)]
    joins4 = [(t, cols) for t, cols in enumerate(join_schedule(4), 1) if len(cols) > 1]
    assert joins4 == [(2, (2, 3)), (4, (1, 2, 3)), (6, (2, 3)), (8, (0, 1, 2, 3))]


def expansion_rule(k: int, z: torch.Tensor, cols: list[nn.Sequential], nxt: dict) -> list:
    """The paper's rule f_{k}(z) = join(f_{k-1}(f_{k-1}(z)), conv(z)), written recursively.

    Returns the inputs of the final join (the outer join absorbs the last join of the inner
    f_{k-1}, as drawn in Figure 1); ``cols`` are the block's columns, shallowest first, and ``nxt``
    counts the convolutions of each column used so far.
    """

    def conv(col: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        i = nxt.setdefault(id(col), 0)
        nxt[id(col)] = i + 1
        return col[i](x)

    if k == 1:
        return [conv(cols[0], z)]
    first = torch.stack(expansion_rule(k - 1, z, cols[1:], nxt)).mean(0)
    second = expansion_rule(k - 1, first, cols[1:], nxt)
    return second + [conv(cols[0], z)]


@pytest.mark.parametrize("columns", [1, 2, 3, 4])
def test_block_is_the_expansion_rule(columns):
    block = FractalBlock(2, 3, columns).eval()
    for m in block.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    z = torch.randn(2, 2, 6, 6)
    with torch.no_grad():
        nxt: dict = {}
        ref = torch.stack(expansion_rule(columns, z, list(block.columns), nxt)).mean(0)
        assert sorted(nxt.values()) == [2**i for i in range(columns)]  # every conv used once
        assert torch.allclose(block(z), ref, atol=1e-6)


def test_eval_is_deterministic_and_uses_all_columns():
    model = FractalNet(channels=(4, 8), num_columns=3, drop_rates=(0.1, 0.2)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(2)
        b = model(x)
        assert torch.equal(a, b)
        # The same as the network with drop-path and dropout switched off.
        plain = FractalNet(
            channels=(4, 8), num_columns=3, drop_rates=0.0, local_drop=0.0, global_drop=0.0
        ).eval()
        plain.load_state_dict(model.state_dict())
        assert torch.allclose(plain(x), a)


def test_local_drop_path_probability_measured():
    # A 2-column block has one join with 2 inputs: the 1-conv column A and the 2-conv column B.
    # Each input is dropped with p = 0.15 unless both would be, then one of them survives:
    # P(a given input dropped) = p - p**2 / 2 = 0.15 - 0.0225 / 2 = 0.13875, never both.
    block = FractalBlock(1, 1, num_columns=2, local_drop=0.15).train()
    z = torch.randn(2, 1, 4, 4)
    with torch.no_grad():
        a = block.columns[0](z)
        b = block.columns[1](z)
        both = (a + b) / 2
        assert not torch.allclose(a, b) and not torch.allclose(a, both)
        draws, dropped_a, dropped_b = 1000, 0, 0
        for _ in range(draws):
            out = block(z)
            kept_a, kept_b = torch.allclose(out, a), torch.allclose(out, b)
            assert kept_a + kept_b + torch.allclose(out, both) == 1  # exactly one case
            dropped_a += kept_b
            dropped_b += kept_a
    expected = 0.15 - 0.15**2 / 2
    # Binomial standard deviation sqrt(0.139 * 0.861 / 1000) = 0.011; allow 4 of them.
    assert abs(dropped_a / draws - expected) < 0.044
    assert abs(dropped_b / draws - expected) < 0.044


@pytest.mark.parametrize("n", [2, 3, 4])
def test_local_drop_mask_rates(n):
    p, draws = 0.15, 20000
    masks = torch.stack([local_drop_mask(n, p) for _ in range(draws)])
    assert masks.any(1).all()  # at least one input always survives
    # Dropped independently with p, except when all n would be: p**n, and then 1 of n survives.
    expected = p - p**n / n
    assert (1 - masks.float().mean(0) - expected).abs().max() < 0.012  # ~4.7 sd at n=2


def column_chain(model: FractalNet, x: torch.Tensor, c: int) -> torch.Tensor:
    """The network reduced to column ``c``: its convolutions in every block, pooling between."""
    for b, block in enumerate(model.blocks):
        if b:
            x = nn.functional.max_pool2d(x, 2)
        for conv in block.columns[c]:
            x = conv(x)
    return model.fc(torch.amax(x, dim=(2, 3)))


def test_global_drop_path_is_exactly_one_column():
    model = FractalNet(channels=(4, 8), num_columns=3, drop_rates=0.0, global_drop=1.0).train()
    x = torch.randn(2, 3, 16, 16)
    counts = [0, 0, 0]
    for _ in range(30):
        model.zero_grad(set_to_none=True)
        out = model(x)
        with torch.no_grad():
            matches = [c for c in range(3) if torch.allclose(out, column_chain(model, x, c))]
        assert len(matches) == 1
        c = matches[0]
        counts[c] += 1
        # Only that column was computed: the other columns' weights get no gradient.
        out.sum().backward()
        for b in model.blocks:
            for i, col in enumerate(b.columns):
                has_grad = [p.grad is not None for p in col.parameters()]
                assert all(has_grad) if i == c else not any(has_grad)
    assert min(counts) >= 3  # uniform over 3 columns: 10 expected each


def test_local_global_mixed_half_and_half():
    # One 2-column block: a global batch is one column (probability 1/2); a local batch is one
    # column when the single join keeps one input: 1 - (1 - p)**2 = 0.2775. Expected fraction of
    # single-column outputs: 0.5 + 0.5 * 0.2775 = 0.63875.
    model = FractalNet(channels=(2,), num_columns=2, drop_rates=0.0).train()
    assert (model.global_drop, model.blocks[0].local_drop) == (0.5, 0.15)
    x = torch.randn(2, 3, 8, 8)
    draws, single = 1000, 0
    with torch.no_grad():
        chains = [column_chain(model, x, c) for c in range(2)]
        for _ in range(draws):
            out = model(x)
            single += any(torch.allclose(out, ch) for ch in chains)
    # Binomial sd sqrt(0.639 * 0.361 / 1000) = 0.0152; allow 4 of them.
    assert abs(single / draws - 0.63875) < 0.06


def test_single_column_evaluation():
    model = FractalNet(channels=(4, 8), num_columns=3).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        full = model(x)
        model.set_column(-1)  # the deepest column alone
        assert model.column == 2
        assert torch.allclose(model(x), column_chain(model, x, 2))
        assert not torch.allclose(model(x), full)
        model.set_column(0)
        assert torch.allclose(model(x), column_chain(model, x, 0))
        model.set_column(None)
        assert torch.allclose(model(x), full)
    with pytest.raises(ValueError, match="column must be in"):
        model.set_column(3)


def fractal_params_by_hand(channels, columns, num_classes=10, in_chans=3):
    """Per block: C first convolutions in*out*9, 2**C - 1 - C more out*out*9 (no bias: BN),
    BN scale and shift 2*out per convolution; then the classifier."""
    total, c_in = 0, in_chans
    for c in channels:
        convs = 2**columns - 1
        total += columns * c_in * c * 9 + (convs - columns) * c * c * 9 + convs * 2 * c
        c_in = c
    return total + c_in * num_classes + num_classes


def test_parameter_counts():
    # fractalnet20 (Table 1's 20-layer CIFAR net, C=3, widths 64-128-256-512-512):
    # conv weights 3*3*64*9 + 4*64*64*9 + 3*64*128*9 + 4*128*128*9 + 3*128*256*9 + 4*256*256*9
    #            + 3*256*512*9 + 4*512*512*9 + 3*512*512*9 + 4*512*512*9 = 33,698,880.
    # The paper prints 38.6M for this net; its own stated widths give 33.7M (independent
    # re-implementations find the same), see the README.
    m20 = cnnzoo.create_model("fractalnet20", device="meta")
    conv_w = sum(p.numel() for k, p in m20.named_parameters() if k.endswith("conv.weight"))
    assert conv_w == 33_698_880
    assert n_params(m20) == fractal_params_by_hand((64, 128, 256, 512, 512), 3) == 33_724_618
    # fractalnet (C=4, 40 layers on the longest path, 15 convolutions per block).
    m40 = cnnzoo.create_model("fractalnet", device="meta")
    assert n_params(m40) == fractal_params_by_hand((64, 128, 256, 512, 512), 4) == 76_106_634
    assert sum(len(b.columns[-1]) for b in m40.blocks) == 40
    assert sum(isinstance(m, nn.Conv2d) for m in m40.modules()) == 5 * 15
    # The paper's per-block dropout rates.
    rates = [b.columns[0][0].drop.p for b in m40.blocks[1:]]
    assert rates == [0.1, 0.2, 0.3, 0.4] and isinstance(
        m40.blocks[0].columns[0][0].drop, nn.Identity
    )


def test_full_size_shapes_on_meta():
    model = cnnzoo.create_model("fractalnet", device="meta").eval()
    feats = model.forward_features(torch.empty(1, 3, 32, 32, device="meta"))
    assert tuple(feats.shape) == (1, 512, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 2, 512 channels
    assert tuple(model.forward_head(feats).shape) == (1, 10)


def test_interface_forward_backward_no_nans():
    model = FractalNet(num_classes=5, in_chans=1, channels=(4, 8, 8), num_columns=3).train()
    assert (model.num_classes, model.in_chans, model.num_features) == (5, 1, 8)
    x = torch.randn(2, 1, 20, 20)  # not 32x32: global pooling takes any size of 4x4 or more
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert torch.allclose(pre, feats.amax((2, 3)))
        assert torch.allclose(model.forward_head(feats), model.get_classifier()(pre))
        model.reset_classifier(0)
        assert model(x).shape == (2, 8)
    with pytest.raises(ValueError, match="drop_rates"):
        FractalNet(channels=(4, 8), drop_rates=(0.1,))
    with pytest.raises(ValueError, match="num_columns"):
        FractalNet(num_columns=0)


@pytest.mark.slow
def test_full_size_fractalnet20_trains_one_step():
    model = cnnzoo.create_model("fractalnet20", num_classes=100).train()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([3, 97])
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - torch.log(torch.tensor(100.0))) < 3
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 100) and torch.isfinite(out).all()
