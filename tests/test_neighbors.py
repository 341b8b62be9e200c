"""The library side of `cnnzoo neighbors`, on a features file whose answers are known by hand."""

from __future__ import annotations

import pytest
import torch

from cnnzoo.errors import CnnzooError
from cnnzoo.neighbors import find_neighbors


def features(points, labels):
    n = len(points)
    return {
        "features": torch.tensor(points, dtype=torch.float32),
        "labels": torch.tensor(labels),
        "split": ["train"] * n,
        "index": torch.arange(n),
        "classes": ["a", "b"],
        "meta": {"model": "toy", "model_source": None},
    }


# two clusters on a line: rows 0-2 near 0 (class a), rows 3-5 near 10 (class b), and row 2 is
# of class b although it lies with the a's
FEATS = features([[0.0], [1.0], [2.5], [10.0], [11.0], [13.0]], [0, 0, 1, 1, 1, 1])


def test_rows_never_find_themselves_and_precision_is_the_hand_count():
    result = find_neighbors(FEATS, ["0", "-1"], k=2, metric="l2", sample=0)
    # row 0: nearest 1 (d 1) then 2 (d 2.5); row 5: 4 (d 2) then 3 (d 3)
    assert result.index.tolist() == [[1, 2], [4, 3]]
    torch.testing.assert_close(result.distances, torch.tensor([[1.0, 2.5], [2.0, 3.0]]))
    assert result.precision == pytest.approx((1 / 2 + 2 / 2) / 2)  # row 0: one of two is an a
    assert result.lines()[0] == "query row 0: a  (train #0)"


def test_a_row_query_may_be_an_int_or_alone():
    """In Python ``find_neighbors(feats, 5)`` failed on ``int.lstrip``, and ``"-1"`` alone was
    read as the queries "-" and "1"."""
    want = find_neighbors(FEATS, ["-1"], k=2, sample=0).index.tolist()
    assert want == [[4, 3]]  # row 5, as the hand count above
    for given in (-1, "-1", [-1], [5]):
        assert find_neighbors(FEATS, given, k=2, sample=0).index.tolist() == want, given


def test_leave_one_out_precision_over_every_row_with_its_chance():
    result = find_neighbors(FEATS, ["1"], k=1, metric="l2", sample=6)
    m, p, chance = result.sampled
    # the nearest other row: 0->1, 1->0, 2->1 (b vs a: miss), 3->4, 4->3, 5->4: 5 hits of 6
    assert m == 6 and p == pytest.approx(5 / 6)
    assert chance == pytest.approx((2 / 6) ** 2 + (4 / 6) ** 2)


@pytest.mark.parametrize("query", ["6", "-7", "not-a-file.png"])
def test_a_query_that_is_no_row_and_no_file_is_one_line(query):
    with pytest.raises(CnnzooError, match="row"):
        find_neighbors(FEATS, [query], k=1, sample=0)


def test_an_image_query_needs_features_from_a_checkpoint(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    with pytest.raises(CnnzooError, match="randomly initialised toy"):
        find_neighbors(FEATS, [str(image)], k=1, sample=0)
