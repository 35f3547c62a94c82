"""cocotb testbench of the whole accelerator (``dietsnn_accel``): images in, class out.

Run through :mod:`dietsnn.sim.accel_runner` (which builds the design and writes the stimulus);
this module is the cocotb test module. Configuration comes from environment variables:

``ACCEL_PARAMS``   the generated ``params.json``
``ACCEL_STIM``     ``.npz`` with ``q`` (quantised images ``[N, C, H, W]``), ``logits``,
                   ``prediction`` and ``counts`` (``[N, counters]``) from the golden model
``ACCEL_RESULT``   where to write the per-image results (JSON)
``ACCEL_SEED``     seed of the random idle cycles and back-pressure
``ACCEL_STALLS``   ``1``: random idle cycles on the input and back-pressure on the output

The :class:`AccelTB` has a driver (pixels, channel-major, with random idle cycles), a monitor
(results, with random back-pressure, checking that ``valid`` and the payload hold while not
ready), a model (the golden results from the stimulus file) and a checker (class, every logit
and every spike counter, bit for bit).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge


def field(value: int, spec: dict[str, Any], index: int = 0) -> int:
    """Field ``index`` of a packed port value described by a ``params.json`` entry."""
    off = spec["offset"] + index * spec["bits"]
    v = (value >> off) & ((1 << spec["bits"]) - 1)
    if spec["signed"] and v >> (spec["bits"] - 1):
        v -= 1 << spec["bits"]
    return v


def high(sig: Any) -> bool:
    """The signal is 1 (an unknown value, as before the first event in Icarus, is not)."""
    return str(sig.value) == "1"


class AccelTB:
    """Driver, monitor, model and checker around one ``dietsnn_accel`` instance."""

    def __init__(self, dut: Any, params: dict[str, Any], stim: dict[str, np.ndarray],
                 *, seed: int, stalls: bool) -> None:
        self.dut = dut
        self.params = params
        self.q = stim["q"]
        self.expected = stim
        self.rng = random.Random(seed)
        self.stalls = stalls
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []

    async def reset(self) -> None:
        d = self.dut
        d.i__valid.value = 0
        d.i__payload.value = 0
        d.o__ready.value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, 3)
        d.rst.value = 0
        await RisingEdge(d.clk)

    # -- driver ---------------------------------------------------------------------------
    async def drive(self) -> None:
        d = self.dut
        bits = self.params["in_bits"]
        mask = (1 << bits) - 1
        for img in self.q:
            for v in img.reshape(-1).tolist():  # channel-major: c, y, x
                if self.stalls and self.rng.random() < 0.05:
                    d.i__valid.value = 0
                    await ClockCycles(d.clk, self.rng.randint(1, 3))
                d.i__valid.value = 1
                d.i__payload.value = int(v) & mask
                while True:
                    await ReadOnly()
                    if high(d.i__ready):
                        await RisingEdge(d.clk)  # the handshake happens at this edge
                        break
                    await RisingEdge(d.i__ready)  # busy: sleep until ready rises
            d.i__valid.value = 0

    # -- monitor --------------------------------------------------------------------------
    async def monitor(self, n: int) -> None:
        d = self.dut
        ports = self.params["ports"]
        out, dbg = ports["o__payload"]["fields"], ports["debug"]["fields"]
        k = self.params["classes"]
        for i in range(n):
            await ReadOnly()
            if not high(d.o__valid):
                await RisingEdge(d.o__valid)
            await ReadOnly()
            t_valid = cocotb.utils.get_sim_time(unit="ns")
            held = d.o__payload.value.to_unsigned()
            await RisingEdge(d.clk)
            if self.stalls:  # back-pressure: payload and valid must hold
                for _ in range(self.rng.randint(0, 4)):
                    await ReadOnly()
                    if not high(d.o__valid) or d.o__payload.value.to_unsigned() != held:
                        self.errors.append(f"image {i}: o changed while not ready")
                    await RisingEdge(d.clk)
            d.o__ready.value = 1
            await ReadOnly()
            payload = d.o__payload.value.to_unsigned()
            debug = d.debug.value.to_unsigned()
            await RisingEdge(d.clk)
            d.o__ready.value = 0
            res = {
                "cls": field(payload, out["cls"]),
                "logits": [field(payload, out["logits"], j) for j in range(k)],
                "counts": [field(debug, dbg["counts"], j) for j in range(dbg["counts"]["count"])],
                "compute_cycles": field(debug, dbg["cycles"]),
                "valid_ns": t_valid,
            }
            self.results.append(res)
            self.check(i, res)
            d._log.info(f"image {i}: class {res['cls']}, {res['compute_cycles']} cycles, "
                        f"{'match' if res['match'] else 'MISMATCH'}")

    # -- model + checker ------------------------------------------------------------------
    def check(self, i: int, res: dict[str, Any]) -> None:
        e = self.expected
        want = {"cls": int(e["prediction"][i]), "logits": [int(v) for v in e["logits"][i]],
                "counts": [int(v) for v in e["counts"][i]]}
        bad = [key for key in want if res[key] != want[key]]
        res["match"] = not bad
        if bad:
            self.errors.append(f"image {i}: " + "; ".join(
                f"{key} got {res[key]} want {want[key]}" for key in bad))


@cocotb.test()
async def accel_images(dut: Any) -> None:
    """Stream the stimulus images and compare every result with the golden model."""
    params = json.loads(Path(os.environ["ACCEL_PARAMS"]).read_text())
    with np.load(os.environ["ACCEL_STIM"]) as f:
        stim = {k: f[k] for k in f.files}
    tb = AccelTB(dut, params, stim, seed=int(os.environ.get("ACCEL_SEED", "0")),
                 stalls=os.environ.get("ACCEL_STALLS", "1") == "1")
    Clock(dut.clk, 10, unit="ns").start()
    await tb.reset()
    n = len(stim["q"])
    t0 = time.perf_counter()
    cocotb.start_soon(tb.drive())
    await tb.monitor(n)
    wall = time.perf_counter() - t0
    out = {"results": tb.results, "errors": tb.errors, "wall_s": wall,
           "sim_time_ns": cocotb.utils.get_sim_time(unit="ns")}
    path = Path(os.environ["ACCEL_RESULT"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)
    assert not tb.errors, "\n".join(tb.errors[:10])
