"""The image-selection rule (dietsnn.selection): representative, reproducible, recorded."""

from __future__ import annotations

import numpy as np
import pytest
from dietsnn.selection import (
    indices_sha256,
    select_images,
    select_subset,
    selection_record,
)

#: A class-sorted split like the JPEG CIFAR-10 test set: 10 classes of 1,000.
SORTED = np.repeat(np.arange(10), 1000)


def _sim_rule(total: int, n: int, start: int = 0) -> np.ndarray:
    """sim/accel_runner.select_images as it is today (the rule the estimate must match)."""
    return (start + np.arange(n) * (total // n)) % total


@pytest.mark.parametrize("n", [1, 10, 50, 100, 200, 1000, 10000])
def test_spread_equals_the_simulators_rule_when_n_divides_the_set(n):
    np.testing.assert_array_equal(select_images(10000, n), _sim_rule(10000, n))
    np.testing.assert_array_equal(select_images(SORTED, n), _sim_rule(10000, n))
    np.testing.assert_array_equal(select_images(10000, n, start=7), _sim_rule(10000, n, 7))


@pytest.mark.parametrize("n", [10, 30, 100, 300, 3000, 9999])
def test_spread_covers_every_class_evenly(n):
    idx = select_images(SORTED, n)
    assert len(np.unique(idx)) == n
    counts = np.bincount(SORTED[idx], minlength=10)
    assert counts.max() - counts.min() <= 1, counts
    # the first n images, the old behaviour, are one class for n <= 1000
    assert len(np.unique(SORTED[:min(n, 1000)])) == 1


def test_spread_sorts_an_unsorted_split_by_class_first():
    rng = np.random.default_rng(1)
    labels = rng.permutation(SORTED)
    idx = select_images(labels, 100)
    assert np.all(np.bincount(labels[idx], minlength=10) == 10)
    # the same positions in the class-sorted order
    order = np.argsort(labels, kind="stable")
    np.testing.assert_array_equal(idx, order[_sim_rule(10000, 100)])


@pytest.mark.parametrize("n", [10, 64, 100, 257])
def test_stratified_is_seeded_and_balanced(n):
    a = select_images(SORTED, n, mode="stratified", seed=3)
    b = select_images(SORTED, n, mode="stratified", seed=3)
    c = select_images(SORTED, n, mode="stratified", seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == n and np.all(np.diff(a) > 0)
    counts = np.bincount(SORTED[a], minlength=10)
    assert list(counts) == [n // 10 + (i < n % 10) for i in range(10)]


def test_bad_requests_say_what_is_wrong():
    with pytest.raises(ValueError, match="1..100"):
        select_images(100, 0)
    with pytest.raises(ValueError, match="1..100"):
        select_images(100, 101)
    with pytest.raises(ValueError, match="mode"):
        select_images(100, 5, mode="first")
    with pytest.raises(ValueError, match="needs the labels"):
        select_images(100, 5, mode="stratified")
    with pytest.raises(ValueError, match="spread"):
        select_images(SORTED, 5, mode="stratified", start=3)
    with pytest.raises(ValueError, match="class 1 has 2 images"):
        select_images(np.array([0] * 10 + [1] * 2), 6, mode="stratified")


def test_record_lists_short_selections_and_hashes_all():
    idx = select_images(SORTED, 100)
    rec = selection_record(idx, split="test", total=10000, labels=SORTED[idx], dataset="x")
    assert rec["count"] == 100 and rec["indices"] == idx.tolist()
    assert rec["per_class"] == {str(c): 10 for c in range(10)}
    assert rec["sha256"] == indices_sha256(idx) and len(rec["sha256"]) == 64
    assert "start=0, mode='spread'" in rec["rule"]
    big = select_images(SORTED, 5000, mode="stratified", seed=2)
    rec = selection_record(big, split="test", total=10000, mode="stratified", seed=2)
    assert "indices" not in rec and rec["seed"] == 2 and rec["count"] == 5000
    # the record reproduces the selection
    again = select_images(SORTED, rec["count"], mode=rec["mode"], seed=rec["seed"])
    assert indices_sha256(again) == rec["sha256"]


def test_select_subset_returns_images_labels_and_record():
    class DS:
        labels = SORTED
        images = np.arange(10000)
        source = "synthetic"

    images, labels, rec = select_subset(DS, 20, split="test")
    np.testing.assert_array_equal(images, select_images(10000, 20))
    assert np.all(np.bincount(labels) == 2) and rec["dataset"] == "synthetic"
    images, _, rec = select_subset(DS, None, split="test")
    assert len(images) == 10000 and rec["count"] == 10000 and "indices" not in rec
