"""CPU speed: the fused LIF kernel (``lif_kernel.c``, built on first use, loaded with ctypes)
and the allocator setting that layer-major training wants.

One C pass over memory per layer and direction replaces the ~10 PyTorch kernels per time
step of the eager loop (4-5x less time in the LIF, see ``bench/train_speed.py``). It is used
for contiguous float32 CPU tensors; everything else (CUDA, float64) takes the eager loop in
:mod:`dietsnn.quant.lif`, which computes the same equations.

The shared library is compiled with the system C compiler (``$CC``, else ``cc``) into
``<cache>/kernels/`` (``<cache>`` as for the data: ``DIETSNN_CACHE`` or ``~/.cache/dietsnn``),
named by a hash of the source, the flags, the compiler and the CPU, and written atomically.
``DIETSNN_LIF_KERNEL=0`` turns the kernel off; a missing or failing compiler falls back to the
eager loop with one warning.

Layer-major training allocates a few tensors of tens of MB per layer and step; glibc returns
such blocks to the OS on every free, and the next step pays a page fault per 4 kB to get them
back (about 10% of a CPU training step). :func:`keep_freed_memory` tells glibc to keep them.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from dietsnn.data import cache_dir
from dietsnn.fileio import atomic_path

SOURCE = Path(__file__).with_name("lif_kernel.c")
# -ffp-contract=off: no fused multiply-adds, so the float path rounds as PyTorch's eager loop
# does; the integer (QAT) path is exact either way.
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math",
         "-fPIC", "-shared", "-fopenmp", "-std=c99"]

_lib: ctypes.CDLL | None = None
_tried = False


def enabled() -> bool:
    """False when ``DIETSNN_LIF_KERNEL`` is ``0`` (force the eager loop)."""
    return os.environ.get("DIETSNN_LIF_KERNEL", "1").strip() not in ("0", "false", "no", "off")


def _cpu_key() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _compiler() -> str | None:
    cc = os.environ.get("CC") or "cc"
    return shutil.which(cc) or shutil.which("gcc")


def library_path(cc: str) -> Path:
    """Where the library for this source, compiler, flags and CPU lives."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(FLAGS).encode(), version.encode(),
                 _cpu_key().encode()):
        h.update(part)
    return cache_dir() / "kernels" / f"lif-{h.hexdigest()[:16]}.so"


def build(cc: str) -> Path:
    """Compile the kernel (if not cached) and return the library's path.

    Raises ``RuntimeError`` with the compiler's message when compilation fails.
    """
    out = library_path(cc)
    if out.exists():
        return out
    with atomic_path(out) as tmp:
        r = subprocess.run([cc, *FLAGS, str(SOURCE), "-o", str(tmp), "-lm"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{cc} could not build {SOURCE}:\n{r.stderr.strip()}")
    return out


def load() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (disabled, not Linux/macOS, or no compiler)."""
    global _lib, _tried
    if _tried or not enabled():
        return _lib if enabled() else None
    _tried = True
    if sys.platform == "win32":
        return None
    cc = _compiler()
    if cc is None:
        warnings.warn("dietsnn: no C compiler (set CC): the LIF runs as a slower eager loop",
                      RuntimeWarning, stacklevel=2)
        return None
    try:
        lib = ctypes.CDLL(str(build(cc)))
    except (OSError, RuntimeError) as e:
        warnings.warn(f"dietsnn: the fused LIF kernel is unavailable ({e}); using the eager "
                      "loop", RuntimeWarning, stacklevel=2)
        return None
    ptr, i64, c_int, c_f = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float)
    lib.dietsnn_lif_forward.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, c_int, c_int, c_int,
                                        c_f, c_f, c_f, c_f, c_int]
    lib.dietsnn_lif_forward.restype = c_int
    lib.dietsnn_lif_backward.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, c_int, c_f, c_f,
                                         c_int, ctypes.POINTER(ctypes.c_double),
                                         ctypes.POINTER(ctypes.c_double)]
    lib.dietsnn_lif_backward.restype = c_int
    _lib = lib
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """True when the kernel can take these tensors (CPU, float32, contiguous) and is loaded."""
    if not all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
               for t in tensors):
        return False
    return load() is not None


def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed memory instead of returning it to the OS.

    Sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, not from fresh ``mmap`` pages) and
    a 2 GB ``M_TRIM_THRESHOLD``. Process-wide and meant for training processes; returns False
    (and changes nothing) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def _check(rc: int) -> None:
    if rc != 0:
        raise MemoryError("dietsnn: the LIF kernel could not allocate its work buffers")


def forward(current: torch.Tensor, t_steps: int, static: bool, theta: float, leak: float,
            quant: bool, bounds: tuple[float, float] | None,
            pool: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Output spikes and the pre-reset membranes ``P`` (``[T, *shape]``); see ``lif_kernel.c``.

    ``current`` is ``[T, *shape]``, or ``shape`` when ``static`` (the same current every
    step). ``leak`` is ``lam`` (float mode) or ``m = 2^-k`` (quantised; 0 for no leak). With
    ``pool``, ``shape`` is channels-last ``[N, H, W, C]`` (``H``, ``W`` even) and the output is
    the 2x2 max-pooled spikes ``[T, N, H/2, W/2, C]``.
    """
    shape = tuple(current.shape if static else current.shape[1:])
    n = math.prod(shape)
    pre = torch.empty((t_steps, *shape), dtype=torch.float32)
    row = chan = 0
    if pool:
        nb, h, w, chan = shape
        row = w * chan
        out = torch.empty((t_steps, nb, h // 2, w // 2, chan), dtype=torch.float32)
    else:
        out = torch.empty_like(pre)
    lo, hi = bounds if bounds is not None else (0.0, 0.0)
    _check(_lib.dietsnn_lif_forward(
        current.data_ptr(), out.data_ptr(), pre.data_ptr(), t_steps, n, row, chan, int(static),
        int(quant), int(bounds is not None), theta, leak, lo, hi, torch.get_num_threads()))
    return out, pre


def backward(pre: torch.Tensor, grad: torch.Tensor, static: bool, theta: float, lam: float,
             pool: bool = False) -> tuple[torch.Tensor, float, float]:
    """``dL/dI`` (summed over T when ``static``), ``dL/dtheta`` and ``dL/dlam``.

    ``grad`` is the gradient of :func:`forward`'s output (pooled when ``pool``).
    """
    t_steps = pre.shape[0]
    shape = tuple(pre.shape[1:])
    row = chan = 0
    if pool:
        _, _, w, chan = shape
        row = w * chan
    g_cur = torch.empty(shape if static else pre.shape, dtype=torch.float32)
    g_theta, g_lam = ctypes.c_double(), ctypes.c_double()
    _check(_lib.dietsnn_lif_backward(
        pre.data_ptr(), grad.data_ptr(), g_cur.data_ptr(), t_steps, math.prod(shape), row, chan,
        int(static), theta, lam, torch.get_num_threads(), ctypes.byref(g_theta),
        ctypes.byref(g_lam)))
    return g_cur, g_theta.value, g_lam.value
