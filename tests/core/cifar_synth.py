"""Synthetic CIFAR-10 in every accepted form, for the core tests.

Synthetic images encode where they come from, so order and labels can be checked exactly
(PNG is lossless): pixel ``[0, 0, 0]`` is ``10 * class + index`` and pixel ``[1, 0, 0]``
is ``1`` for train, ``2`` for test; the rest is fixed-seed noise.
"""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import numpy as np
from dietsnn.data import CLASSES

SPLIT_TAG = {"train": 1, "test": 2}


def synth_image(split: str, label: int, index: int) -> np.ndarray:
    """A deterministic uint8 [3, 32, 32] image tagged with its split, class and index."""
    rng = np.random.default_rng(1000 * SPLIT_TAG[split] + 10 * label + index)
    im = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    im[0, 0, 0] = 10 * label + index
    im[1, 0, 0] = SPLIT_TAG[split]
    return im


def expected(split: str, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels in the order a loader must return them (class, then file name)."""
    items = [(c, i) for c in range(10) for i in range(per_class)]
    return (np.stack([synth_image(split, c, i) for c, i in items]),
            np.array([c for c, _ in items], dtype=np.int64))


def _encode(im: np.ndarray, fmt: str) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0))).save(buf, format=fmt)
    return buf.getvalue()


def tree_files(per_class: dict[str, int], ext: str = "png") -> dict[str, bytes]:
    """Relative path -> encoded image for a ``split/<class>/NNNN.ext`` tree.

    Files are named in reverse so that sorting, not creation order, sets the order.
    """
    fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}[ext]
    out = {}
    for split, n in per_class.items():
        for c, cls in enumerate(CLASSES):
            for i in reversed(range(n)):
                out[f"{split}/{cls}/{i:04d}.{ext}"] = _encode(synth_image(split, c, i), fmt)
    return out


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, blob in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    return root


def write_tar(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tf:
        for rel, blob in files.items():
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path


def _s(b: bytes) -> bytes:
    """A Python 2 ``str`` opcode (SHORT_BINSTRING / BINSTRING)."""
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A pickle laid out exactly like the official (Python 2, protocol 2) CIFAR-10 batches."""
    n = images.shape[0]
    out = [b"\x80\x02}(", _s(b"batch_label"), _s(b"synthetic batch"), _s(b"data")]
    out += [b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n", b"K\x00\x85",
            _s(b"b"), b"\x87R"]
    out += [b"(K\x01", b"J" + struct.pack("<i", n), b"M\x00\x0c\x86"]  # shape (n, 3072)
    out += [b"cnumpy\ndtype\n", _s(b"u1"), b"K\x00K\x01\x87R"]
    out += [b"(K\x03", _s(b"|"), b"NNN", b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"]
    out += [b"\x89", _s(images.reshape(n, -1).tobytes()), b"tb"]
    out += [_s(b"labels"), b"](", b"".join(b"K" + bytes([int(x)]) for x in labels), b"eu."]
    return b"".join(out)


def batch_files(per_class: int) -> dict[str, bytes]:
    """``data_batch_1..5`` and ``test_batch``; train images are spread over the 5 batches."""
    out = {}
    for split in ("train", "test"):
        images, labels = expected(split, per_class)
        parts = np.array_split(np.arange(len(labels)), 5 if split == "train" else 1)
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        for name, idx in zip(names, parts, strict=True):
            out[name] = py2_batch(images[idx], labels[idx].tolist())
    out["batches.meta"] = b"\x80\x02}."
    return out
