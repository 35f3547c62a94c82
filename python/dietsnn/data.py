"""CIFAR-10 in its common forms, decoded once and cached as plain arrays.

:func:`load_cifar10` returns a :class:`Dataset` (uint8 images ``[N, 3, 32, 32]`` in NCHW
order, int64 labels in the standard CIFAR-10 class order) from any of these forms:

- the official Python release: the folder ``cifar-10-batches-py`` (``data_batch_1..5``,
  ``test_batch``) or its ``cifar-10-python.tar.gz``; the pickles are read with a restricted
  unpickler that only builds numpy arrays, never arbitrary objects;
- an image-folder tree ``train|test/<class>/*.png|jpg|jpeg`` (optionally inside one wrapping
  folder), as a folder, a ``.tar`` or a ``.tar.gz``; the label is the index of the class folder
  in :data:`CLASSES`, and images are read in sorted (class, file name) order.

Where ``data`` is not given the places below are tried in order, and the first one that exists
is used (nothing is downloaded while a local copy exists):

1. the environment variable ``DIETSNN_DATA`` (which must then exist);
2. ``shared/datasets/cifar10-jpeg.tar.gz`` beside the repository (``<repo>/../shared``);
3. ``<cache>/cifar-10-batches-py``;
4. the official ``cifar-10-python.tar.gz``, downloaded into ``<cache>`` and checked by MD5.

``<cache>`` is ``DIETSNN_CACHE`` or ``~/.cache/dietsnn``. Decoded archives and image trees are
cached there as ``.npz`` (keyed by the source's path, sizes and modification times, written
atomically), so a second load takes well under a second.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import lzma
import os
import pickle
import re
import sys
import tarfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, OutputError, one_line
from .fileio import atomic_path
from .model import CIFAR10_CLASSES

CLASSES = CIFAR10_CLASSES
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCHES_DIR = "cifar-10-batches-py"
SHARED_ARCHIVE = Path("shared") / "datasets" / "cifar10-jpeg.tar.gz"
_BATCH_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_BATCH_RE = re.compile(r"^(?:[^/]+/)?(data_batch_[1-5]|test_batch)$")
_TREE_RE = re.compile(r"^(?:[^/]+/)?(train|test)/([^/]+)/([^/]+)$")
_CACHE_VERSION = 1
#: Limits on untrusted data (each checked before the bytes are read or decoded).
MAX_BATCH_BYTES = 64 << 20  # one python batch file (the official ones are 31 MB)
MAX_IMAGE_BYTES = 1 << 20  # one encoded image file (a 32x32 PNG or JPEG is a few kB)
MAX_IMAGES = 100_000  # images of one split in an image tree
MAX_TAR_MEMBERS = 300_000  # members of an archive (the image-tree tarball has ~60,000)
#: What reading a damaged archive can raise.
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                   lzma.LZMAError)
_FORMS = ("expected the CIFAR-10 python release ('cifar-10-batches-py' folder or "
          "'cifar-10-python.tar.gz') or an image tree 'train|test/<class>/*.png|jpg|jpeg' "
          "(folder, .tar or .tar.gz)")



@dataclass(frozen=True)
class Dataset:
    """One split of CIFAR-10.

    Members
    -------
    images : uint8 ``[N, 3, 32, 32]``, channels R, G, B (NCHW).
    labels : int64 ``[N]``, indices into ``classes``.
    classes : the 10 class names in the standard label order.
    source : where the data came from (path, and the form).
    split : ``"train"`` or ``"test"``.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# --------------------------------------------------------------------------------------------
# Locating the data
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``DIETSNN_CACHE`` or ``~/.cache/dietsnn``."""
    env = os.environ.get("DIETSNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dietsnn"


def repo_root() -> Path:
    """The repository root (``python/dietsnn/data.py`` lives two levels below it)."""
    return Path(__file__).resolve().parents[2]


def default_sources() -> list[Path]:
    """The local places tried, in order, when no ``data`` is given (after ``DIETSNN_DATA``)."""
    return [repo_root().parent / SHARED_ARCHIVE, cache_dir() / BATCHES_DIR]


def _expand(path: str | os.PathLike, what: str) -> Path:
    """``~`` and ``~user`` expanded; an unknown user is a :class:`DataError`."""
    try:
        return Path(path).expanduser()
    except RuntimeError as e:  # ~nosuchuser
        raise DataError(f"{what}: cannot expand '~': {e}") from None


def find_data(data: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Resolve where to read CIFAR-10 from (see the module docstring for the order)."""
    if data is not None:
        p = _expand(data, str(data))
        if not p.exists():
            raise DataError(f"{p}: no such file or folder; {_FORMS}")
        return p
    env = os.environ.get("DIETSNN_DATA")
    if env:
        p = _expand(env, f"DIETSNN_DATA={env}")
        if not p.exists():
            raise DataError(f"DIETSNN_DATA={env}: no such file or folder; {_FORMS}")
        return p
    looked = default_sources()
    for p in looked:
        if p.exists():
            return p
    archive = cache_dir() / ARCHIVE_NAME
    if archive.is_file():
        return archive
    where = ", ".join(["DIETSNN_DATA (unset)", *map(str, looked), str(archive)])
    if not download:
        raise DataError(f"CIFAR-10 not found; looked in {where}")
    try:
        return fetch_official(cache_dir())
    except DataError as e:
        raise DataError(f"CIFAR-10 not found; looked in {where}; download failed: {e}") from None


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` (a temporary path). Replaced in tests."""
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        while chunk := r.read(1 << 20):
            f.write(chunk)


def fetch_official(folder: Path) -> Path:
    """Download the official ``cifar-10-python.tar.gz`` into ``folder``, checking its MD5."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / ARCHIVE_NAME
    with atomic_path(dest) as tmp:
        print(f"dietsnn: downloading {URL}", file=sys.stderr)
        try:
            _download(URL, tmp)
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, HTTP errors
            raise DataError(f"{URL}: {e}") from None
        md5 = hashlib.md5(tmp.read_bytes()).hexdigest()
        if md5 != MD5:
            raise DataError(f"{URL}: MD5 {md5} does not match the official {MD5}")
    return dest


# --------------------------------------------------------------------------------------------
# The official python release
# --------------------------------------------------------------------------------------------
def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    core = getattr(np, "_core", None)
    if core is None:  # numpy < 2
        core = np.core  # type: ignore[attr-defined]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray,
                                              ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        allowed[(f"{mod}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only; every other class is refused."""

    _allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str) -> object:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch "
                                         f"holds only numpy arrays, lists and bytes")
        return obj


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # any malformed pickle: report it as a data problem
        raise DataError(f"{where}: not a CIFAR-10 python batch: {one_line(e)}") from None
    if not isinstance(d, dict):
        raise DataError(f"{where}: a CIFAR-10 batch is a dict, not {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    images, labels = d.get("data"), d.get("labels")
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3 * 32 * 32):
        desc = (f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray)
                else type(images).__name__)
        raise DataError(f"{where}: field 'data' must be uint8 [N, 3072], not {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field 'labels' must be a list of integers") from None
    if labels.shape != (images.shape[0],) or (labels.size and (labels.min() < 0
                                                               or labels.max() > 9)):
        raise DataError(f"{where}: field 'labels' must hold {images.shape[0]} labels in 0..9")
    return images.reshape(-1, 3, 32, 32), labels


def _concat_batches(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _load_batches_dir(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = []
    for name in _BATCH_FILES[split]:
        f = folder / name
        if not f.is_file():
            raise DataError(f"{folder}: missing {name}; expected the official "
                            f"'{BATCHES_DIR}' folder ({', '.join(_BATCH_FILES[split])})")
        _check_size(f.stat().st_size, MAX_BATCH_BYTES, str(f), "a CIFAR-10 batch file")
        parts.append(_read_batch(f.read_bytes(), str(f)))
    return _concat_batches(parts)


def _check_size(size: int, limit: int, where: str, what: str) -> None:
    if size > limit:
        raise DataError(f"{where}: {size} bytes, more than {limit} for {what}; refused")


def _load_batches_tar(tf: tarfile.TarFile, path: Path, split: str) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    want = _BATCH_FILES[split]
    found: dict[str, bytes] = {}
    for m in _members(tf, path):
        match = _BATCH_RE.match(m.name)
        if m.isfile() and match and match.group(1) in want:
            found[match.group(1)] = _read_member(tf, m, path, MAX_BATCH_BYTES,
                                                 "a CIFAR-10 batch file")
    missing = [n for n in want if n not in found]
    if missing:
        raise DataError(f"{path}: archive lacks {', '.join(missing)}; expected the official "
                        f"'{ARCHIVE_NAME}'")
    return _concat_batches([_read_batch(found[n], f"{path}:{n}") for n in want])


# --------------------------------------------------------------------------------------------
# Image trees
# --------------------------------------------------------------------------------------------
def _label_of(cls: str, where: str) -> int:
    if cls not in CLASSES:
        raise DataError(f"{where}: unknown class folder {cls!r}; expected one of "
                        f"{', '.join(CLASSES)}")
    return CLASSES.index(cls)


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _decode(items: list[tuple[int, str, Callable[[], bytes]]], where: str,
            progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(label, name, read)`` triples, sorted by (label, name), to arrays."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    items = sorted(items, key=lambda x: (x[0], x[1]))
    images = np.empty((len(items), 32, 32, 3), dtype=np.uint8)
    bar = tqdm(items, desc=f"decoding {Path(where).name}", unit="img", disable=not progress,
               file=sys.stderr, mininterval=0.5, leave=False)
    for i, (_, name, read) in enumerate(bar):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                # open reads the header only: the canvas is checked before any decoding
                with Image.open(io.BytesIO(read())) as im:
                    if im.size != (32, 32):
                        raise DataError(f"{where}: {name} is {im.size[0]}x{im.size[1]}, "
                                        f"expected a 32x32 image")
                    images[i] = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise DataError(f"{where}: cannot decode {name}: {one_line(e)}") from None
    labels = np.fromiter((x[0] for x in items), dtype=np.int64, count=len(items))
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels


def _tree_root(folder: Path) -> Path | None:
    """``folder`` or its single wrapping subfolder, whichever holds ``train``/``test``."""
    if any((folder / s).is_dir() for s in SPLITS):
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and any((subs[0] / s).is_dir() for s in SPLITS):
        return subs[0]
    return None


def _tree_files(root: Path, split: str) -> list[tuple[int, Path]]:
    base = root / split
    if not base.is_dir():
        raise DataError(f"{root}: no '{split}' folder; {_FORMS}")
    out = []
    for cdir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = _label_of(cdir.name, str(cdir))
        out += [(label, f) for f in cdir.iterdir() if f.is_file() and _is_image(f.name)]
    if not out:
        raise DataError(f"{base}: no images; expected {split}/<class>/*.png|jpg|jpeg")
    if len(out) > MAX_IMAGES:
        raise DataError(f"{base}: {len(out)} images, more than {MAX_IMAGES}; refused")
    return out


def _load_tree_dir(root: Path, split: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    files = _tree_files(root, split)
    for _, f in files:
        _check_size(f.stat().st_size, MAX_IMAGE_BYTES, str(f), "an image file")
    items = [(label, f.name, f.read_bytes) for label, f in files]
    return _decode(items, str(root), progress)


def _members(tf: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """The members of ``tf``, refusing archives with more than :data:`MAX_TAR_MEMBERS`."""
    for i, m in enumerate(tf):
        if i >= MAX_TAR_MEMBERS:
            raise DataError(f"{path}: more than {MAX_TAR_MEMBERS} archive members; refused")
        yield m


def _read_member(tf: tarfile.TarFile, m: tarfile.TarInfo, path: Path, limit: int,
                 what: str) -> bytes:
    """A member's bytes; its declared size is checked against ``limit`` before reading."""
    _check_size(m.size, limit, f"{path}:{m.name}", what)
    f = tf.extractfile(m)
    if f is None:
        raise DataError(f"{path}: cannot read member {m.name}")
    return f.read()


def _load_tree_tar(tf: tarfile.TarFile, path: Path, split: str,
                   progress: bool) -> tuple[np.ndarray, np.ndarray]:
    items: list[tuple[int, str, Callable[[], bytes]]] = []
    for m in _members(tf, path):
        match = _TREE_RE.match(m.name.removeprefix("./"))
        if not (m.isfile() and match and match.group(1) == split):
            continue
        label = _label_of(match.group(2), f"{path}:{m.name}")
        if _is_image(match.group(3)):
            if len(items) >= MAX_IMAGES:
                raise DataError(f"{path}: more than {MAX_IMAGES} images under '{split}/'; "
                                f"refused")
            blob = _read_member(tf, m, path, MAX_IMAGE_BYTES, "an image file")
            items.append((label, match.group(3), lambda b=blob: b))
    if not items:
        raise DataError(f"{path}: no images under '{split}/<class>/'; {_FORMS}")
    return _decode(items, str(path), progress)


# --------------------------------------------------------------------------------------------
# Dispatch and cache
# --------------------------------------------------------------------------------------------
def _is_batches_dir(p: Path) -> bool:
    return any((p / n).is_file() for names in _BATCH_FILES.values() for n in names)


def _tar_kind(path: Path) -> str:
    """``"batches"`` or ``"tree"``, from the member names of a tar archive."""
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:  # stops at the first CIFAR-10 member: cheap even for a big .tar.gz
                name = m.name.removeprefix("./")
                if _BATCH_RE.match(name):
                    return "batches"
                if _TREE_RE.match(name):
                    return "tree"
    except _ARCHIVE_ERRORS as e:
        raise DataError(f"{path}: cannot read the archive (truncated or corrupt?): {e}") from None
    raise DataError(f"{path}: archive holds no CIFAR-10 data; {_FORMS}")


def _stamp(paths: Iterable[Path]) -> list[str]:
    out = []
    for p in paths:
        st = p.stat()
        out.append(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return out


def _cache_path(kind: str, stamp: list[str], split: str) -> Path:
    h = hashlib.sha256("\n".join([f"v{_CACHE_VERSION}", kind, split, *stamp]).encode())
    return cache_dir() / f"cifar10-{split}-{h.hexdigest()[:20]}.npz"


def _cache_read(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, 32, 32)
            or labels.dtype != np.int64 or labels.shape != images.shape[:1]):
        return None
    return images, labels


def _cache_write(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write atomically; a cache that cannot be written is skipped with a warning."""
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, images=images, labels=labels)
    except (OSError, OutputError) as e:
        print(f"dietsnn: warning: cannot write the data cache {path}: {e}", file=sys.stderr)


def _cached(kind: str, stamp_paths: Iterator[Path] | list[Path], split: str,
            load: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    cpath = _cache_path(kind, _stamp(stamp_paths), split)
    hit = _cache_read(cpath) if cpath.is_file() else None
    if hit is not None:
        return hit
    images, labels = load()
    _cache_write(cpath, images, labels)
    return images, labels


def _load_from(path: Path, split: str, progress: bool) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                str]:
    if path.is_dir():
        if _is_batches_dir(path):
            return _load_batches_dir(path, split), f"{path} (python batches)"
        if (sub := path / BATCHES_DIR).is_dir():
            return _load_batches_dir(sub, split), f"{sub} (python batches)"
        root = _tree_root(path)
        if root is None:
            raise DataError(f"{path}: neither a '{BATCHES_DIR}' folder nor an image tree; "
                            f"{_FORMS}")
        files = [f for _, f in _tree_files(root, split)]
        return (_cached("tree-dir", sorted(files), split,
                        lambda: _load_tree_dir(root, split, progress)),
                f"{root} (image folder)")
    if not path.is_file():
        raise DataError(f"{path}: not a file or folder; {_FORMS}")
    try:
        is_tar = tarfile.is_tarfile(path)
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise DataError(f"{path}: cannot read the archive (truncated or corrupt?): {e}") from None
    if not is_tar:
        raise DataError(f"{path}: not a tar archive (truncated or of another kind); {_FORMS}")

    def load() -> tuple[np.ndarray, np.ndarray]:
        kind = _tar_kind(path)
        try:
            with tarfile.open(path, "r:*") as tf:
                if kind == "batches":
                    return _load_batches_tar(tf, path, split)
                return _load_tree_tar(tf, path, split, progress)
        except _ARCHIVE_ERRORS as e:
            raise DataError(f"{path}: cannot read the archive (truncated or corrupt?): "
                            f"{e}") from None

    return _cached("tar", [path], split, load), f"{path} (archive)"


def load_cifar10(
    split: str = "train",
    data: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load one split of CIFAR-10.

    Parameters
    ----------
    split : ``"train"`` (50,000 images) or ``"test"`` (10,000).
    data : a folder or archive in one of the accepted forms (module docstring); ``None``
        searches ``DIETSNN_DATA``, the shared data set, the cache, then downloads.
    download : allow the official download when nothing local is found.
    progress : show a progress bar on stderr while decoding images.

    Raises
    ------
    DataError : the data is missing or malformed (the message names the path and the form).
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    path = find_data(data, download=download)
    (images, labels), source = _load_from(path, split, progress)
    return Dataset(images=images, labels=labels, classes=CLASSES, source=source, split=split)
