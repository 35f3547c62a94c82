"""Which images a command runs: one selection rule for every subset of a data split.

The CIFAR-10 splits as read from the JPEG archive are sorted by class, so the *first* ``N``
images of the test set are one class (the first 1,000 are all airplanes) and any figure
measured on them is biased. Every command that runs a subset (``estimate``, ``sweep``,
``baseline``, ``accuracy-vs-t``, ``eval``, ``nir-snntorch``) picks it with
:func:`select_images` and records what it picked with :func:`selection_record`.

Two rules:

``spread`` (default)
    ``N`` positions evenly spaced over the set in class order::

        index_i = order[(start + (i * total) // N) % total],   i = 0 .. N-1

    where ``order`` is the stable class-sorted order of the labels (the identity for a split
    that is already sorted, like the JPEG archive's; without labels, the identity). Each class
    gets ``N / classes`` images to within one when the classes are of equal size. When ``N``
    divides ``total`` this is exactly ``dietsnn.sim.accel_runner.select_images(total, N,
    start)`` (``start + i * (total // N)``); otherwise this rule also reaches the end of the
    set, where ``i * (total // N)`` stops short of the last classes.
``stratified``
    Seeded random (``numpy.random.default_rng(seed)``), the same count from every class:
    ``N // classes`` each, one more for the first ``N % classes`` classes (in label order).
    Returned in ascending index order. Needs the labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MODES", "select_images", "select_subset", "selection_record", "indices_sha256"]

#: The selection rules of :func:`select_images`.
MODES = ("spread", "stratified")
#: Indices are listed in full in a record up to this count (the hash is always there).
MAX_LISTED = 1000


def select_images(labels_or_total: int | Sequence[int] | np.ndarray, n: int, *,
                  start: int = 0, mode: str = "spread", seed: int = 0) -> np.ndarray:
    """Indices of ``n`` representative images of a split (module docstring for the rules).

    Parameters
    ----------
    labels_or_total : the split's labels (``[total]`` integers), or only its size for
        ``spread`` over a set already in class order.
    n : how many images, ``1 <= n <= total``.
    start : ``spread`` only: offset of the first position (wraps around).
    mode : ``"spread"`` or ``"stratified"``.
    seed : ``stratified`` only: the random generator's seed.

    Returns
    -------
    ``int64 [n]`` distinct indices into the split.

    Raises
    ------
    ValueError : a bad ``n``, ``mode`` or ``start``, ``stratified`` without labels, or a class
        with fewer images than its share.
    """
    if isinstance(labels_or_total, (int, np.integer)):
        total, labels = int(labels_or_total), None
    else:
        labels = np.asarray(labels_or_total)
        if labels.ndim != 1:
            raise ValueError(f"labels must be one-dimensional, not of shape {labels.shape}")
        total = len(labels)
    if mode not in MODES:
        raise ValueError(f"selection mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= total:
        raise ValueError(f"the number of images must be in 1..{total}, not {n!r}")
    n = int(n)
    if mode == "spread":
        pos = (int(start) + (np.arange(n, dtype=np.int64) * total) // n) % total
        if labels is None:
            return pos
        order = np.argsort(labels, kind="stable")
        return order[pos].astype(np.int64)
    if start:
        raise ValueError("start applies to the 'spread' selection only")
    if labels is None:
        raise ValueError("the 'stratified' selection needs the labels, not only the count")
    classes = np.unique(labels)
    per = np.full(len(classes), n // len(classes), dtype=np.int64)
    per[:n % len(classes)] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, k in zip(classes, per, strict=True):
        members = np.flatnonzero(labels == c)
        if k > len(members):
            raise ValueError(f"class {c} has {len(members)} images, fewer than the {k} a "
                             f"stratified selection of {n} needs")
        picked.append(rng.choice(members, size=int(k), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def indices_sha256(indices: np.ndarray) -> str:
    """SHA-256 of the indices as little-endian int64, in the given order."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def selection_record(indices: np.ndarray, *, split: str, total: int, mode: str = "spread",
                     start: int = 0, seed: int = 0, labels: np.ndarray | None = None,
                     dataset: str | None = None) -> dict[str, Any]:
    """What a JSON output records about its images: the rule and its arguments, the count,
    the SHA-256 of the indices (:func:`indices_sha256`), the indices themselves when there are
    at most :data:`MAX_LISTED`, and the number of images per class when ``labels`` (of the
    selected images) are given."""
    idx = np.asarray(indices, dtype=np.int64)
    rec: dict[str, Any] = {"split": split, "mode": mode, "count": int(len(idx)),
                           "total": int(total)}
    if dataset is not None:
        rec["dataset"] = dataset
    if mode == "spread":
        rec["start"] = int(start)
    else:
        rec["seed"] = int(seed)
    rec["rule"] = ("dietsnn.selection.select_images(labels, count, "
                   + (f"start={int(start)}, mode='spread')" if mode == "spread"
                      else f"mode='stratified', seed={int(seed)})"))
    rec["sha256"] = indices_sha256(idx)
    if labels is not None:
        vals, counts = np.unique(np.asarray(labels), return_counts=True)
        rec["per_class"] = {str(int(v)): int(c) for v, c in zip(vals, counts, strict=True)}
    if len(idx) <= MAX_LISTED:
        rec["indices"] = idx.tolist()
    return rec


def select_subset(dataset: Any, n: int | None, *, split: str, mode: str = "spread",
                  seed: int = 0, start: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(images, labels, record)`` of ``n`` images of a :class:`dietsnn.data.Dataset` chosen
    by :func:`select_images` (``n`` None or 0: the whole split, in stored order); the record
    is :func:`selection_record`'s."""
    labels = np.asarray(dataset.labels)
    total = len(labels)
    if not n:
        idx = np.arange(total, dtype=np.int64)
    else:
        idx = select_images(labels, n, start=start, mode=mode, seed=seed)
    rec = selection_record(idx, split=split, total=total, mode=mode, start=start, seed=seed,
                           labels=labels[idx], dataset=getattr(dataset, "source", None))
    return dataset.images[idx], labels[idx], rec
