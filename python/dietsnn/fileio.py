"""Atomic file writes and folder locks.

Everything dietsnn writes goes through a temporary file in the same folder and a rename
(:func:`atomic_path`, :func:`write_atomic`), so a reader never sees a half-written file and a
failure leaves the old file (if any) untouched. The result has the permissions an ordinary
``open(path, "w")`` would give: the umask's for a new file, the old file's mode when one is
replaced. Temporary files are named ``.<name>.<pid>-<random>.tmp``; those left by a killed
writer (its process is gone, or the file is older than :data:`STALE_SECONDS`) are removed by
the next write into the same folder.

:func:`folder_lock` keeps two processes from writing one folder (a training run folder, say):
the second gets a :class:`~dietsnn.errors.BusyError` at once.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import BusyError, OutputError

__all__ = ["STALE_SECONDS", "atomic_path", "child", "clean_stale_temps", "folder_lock", "umask",
           "write_atomic"]

#: A temporary file of a writer whose process may still live is removed after this long.
STALE_SECONDS = 3600.0

_TEMP_RE = re.compile(r"\A\..+\.(?:(?P<pid>\d+)-[0-9a-f]+|[A-Za-z0-9_]{8})\.tmp\Z")


def umask() -> int:
    """The process umask, read without changing it where the system allows."""
    with suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    old = os.umask(0o022)  # not thread safe, hence the /proc reading above
    os.umask(old)
    return old


def child(folder: str | os.PathLike, *parts: str) -> Path:
    """``folder / parts...``, refused with :class:`~dietsnn.errors.OutputError` unless it stays
    inside ``folder`` once resolved (parts built from names must never climb out)."""
    base = Path(folder)
    out = base.joinpath(*parts)
    root = base.resolve()
    if not out.resolve().is_relative_to(root) or out.resolve() == root:
        raise OutputError(f"{out}: leaves its folder {base} (a name is not a path)")
    return out


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike, *, now: float | None = None) -> list[Path]:
    """Remove temporary files of killed writes in ``folder``; returns the removed paths.

    A temp file is stale when the process that wrote it is gone or it is older than
    :data:`STALE_SECONDS`. Temps of live writers in this process are never touched.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        pid = int(m.group("pid")) if m.group("pid") else None
        if pid == os.getpid():
            continue
        dead = pid is not None and not _pid_alive(pid)
        if dead or now - st.st_mtime > STALE_SECONDS:
            with suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _prepare(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{path}: cannot create the folder {path.parent}: a file of that "
                          f"name exists") from None
    except OSError as e:
        raise OutputError(f"{path}: cannot create the folder {path.parent}: "
                          f"{e.strerror or e}") from None
    if not path.parent.is_dir():
        raise OutputError(f"{path}: {path.parent} is not a folder")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. The file
    gets the umask's permissions, or keeps the mode of the file it replaces. A ``path`` that
    is a folder, or whose folder cannot be created or written, raises
    :class:`~dietsnn.errors.OutputError` before anything is written.
    """
    path = Path(path)
    _prepare(path)
    clean_stale_temps(path.parent)
    try:
        old_mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        old_mode = None
    mode = old_mode if old_mode is not None else 0o666 & ~umask()
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        raise
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)  # after writing: a read-only mode must not stop the writer
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to the disk (so a rename never exposes an empty file)."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder", *,
                wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (``<folder>/.lock``, ``flock``) while inside.

    A second process raises :class:`~dietsnn.errors.BusyError` at once, naming the holder's
    pid; with ``wait=True`` it waits for the lock instead (processes that share one build).
    The lock goes with the process, so a killed holder never leaves the folder locked.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise BusyError(f"{what} {folder} is in use by another process (pid {holder}); "
                            f"wait for it to finish or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the flock
