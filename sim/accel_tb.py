"""cocotb testbench of the whole accelerator (``dietsnn_accel``, v2): AXI4-Stream in and out.

Run through :mod:`dietsnn.sim.accel_runner`, which builds the design and writes the stimulus;
this module is the cocotb test module. Configuration comes from environment variables:

``ACCEL_PARAMS``   the generated ``params.json``
``ACCEL_STIM``     the stimulus ``.npz`` (:mod:`dietsnn.sim.accel_model`): ``beats``
                   ``[N, beats]``, ``index`` (test-set indices), the golden ``prediction``,
                   ``logits``, ``counts``, the cycle model's ``front_cycles`` and
                   ``back_cycles``, and the expected spike-map words ``map<k>``
``ACCEL_OUT``      folder for the results: ``<test>.json`` per test, ``progress.json``
``ACCEL_SEED``     seed of the random idle cycles and back-pressure
``ACCEL_STALLS``   ``1`` (default): random idle cycles on ``s_axis``, back-pressure on
                   ``m_axis``
``ACCEL_EXTRA``    images the reset and bad-frame tests stream (default 2, at most ``N``)

The :class:`AccelTB` has a driver (cocotbext-axi ``AxiStreamSource`` on ``s_axis``), a result
sink (``AxiStreamSink`` on ``m_axis``), a monitor of the ``mon`` port (every spike-map write,
attributed to images: front writes up to each ``f_done`` pulse, back writes up to the next
result), a model (the golden expectations of the stimulus file) and a checker
(:mod:`dietsnn.sim.accel_model`: class, logits, spike counters, the cycle counters against the
cycle model, and every spike-map word, naming layer, step and neuron of the first mismatch).

Tests: :func:`stream_images` (the images back to back), :func:`reset_mid_image` (``rst`` for a
few cycles while both halves compute, then the images again), :func:`bad_frames` (a short and a
long frame before the images: dropped and counted in ``status``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource
from dietsnn.fileio import write_atomic
from dietsnn.sim.accel_model import (
    check_maps,
    check_result,
    decode_debug,
    decode_status,
    field,
    load_stimulus,
    signed32,
)

__all__ = ["AccelTB", "field"]

#: Probability of an idle cycle on ``s_axis`` and of a not-ready cycle on ``m_axis``.
P_IDLE, P_BUSY = 0.2, 0.3
#: Clock period in ns.
PERIOD = 10


def _int(value: Any) -> int:
    """A signal value as an unsigned int, unknown bits (Icarus before their first write) 0."""
    try:
        return value.to_unsigned()
    except ValueError:
        return int(str(value).lower().replace("x", "0").replace("z", "0"), 2)


def _high(sig: Any) -> bool:
    return str(sig.value) == "1"


class AccelTB:
    """Driver, sink, ``mon`` monitor, model and checker around one ``dietsnn_accel``."""

    def __init__(self, dut: Any, params: dict[str, Any], stim: dict[str, np.ndarray], *,
                 seed: int, stalls: bool, out_dir: Path | None = None) -> None:
        self.dut = dut
        self.params = params
        self.stim = stim
        self.rng = random.Random(seed)
        self.stalls = stalls
        self.out_dir = out_dir
        # one frame element per beat (byte_lanes=1): frames are lists of whole beats
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_"), dut.clk,
                                      dut.rst, reset_active_level=True, byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_"), dut.clk, dut.rst,
                                  reset_active_level=True, byte_lanes=1)
        for x in (self.source, self.sink):
            x.log.setLevel(logging.ERROR)  # not every frame at INFO
        if stalls:
            self.source.set_pause_generator(self._pauses(P_IDLE))
            self.sink.set_pause_generator(self._pauses(P_BUSY))
        mf = params["ports"]["mon"]["fields"]
        self._mon = {k: (v["offset"], (1 << v["bits"]) - 1) for k, v in mf.items()}
        self.errors: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.t0 = time.perf_counter()
        self.clear()

    def _pauses(self, p: float) -> Any:
        rng = random.Random(self.rng.random())
        return (rng.random() < p for _ in itertools.count())

    def clear(self) -> None:
        """Forget everything monitored (after a reset)."""
        self.front: list[dict[int, int]] = []
        self.back: list[dict[int, dict[int, int]]] = []
        self.infos: list[dict[str, Any]] = []
        self._f: dict[int, int] = {}
        self._b: dict[int, dict[int, int]] = {}
        self.back_writes = 0
        self.x_samples = 0            # clocks with unknown (X/Z) bits on mon, out of reset
        self.x_fields: dict[str, int] = {}
        self.x_errors = 0             # ... in an enable, or in a write's address or data

    async def reset(self, cycles: int = 3) -> None:
        d = self.dut
        d.rst.value = 1
        await ClockCycles(d.clk, cycles)
        d.rst.value = 0
        await RisingEdge(d.clk)

    # -- driver -----------------------------------------------------------------------------
    def send(self, rows: list[int]) -> None:
        """Queue images (stimulus rows) on ``s_axis``, one frame each."""
        for r in rows:
            self.source.send_nowait(AxiStreamFrame([int(v) for v in self.stim["beats"][r]]))

    def send_frame(self, beats: list[int]) -> None:
        self.source.send_nowait(AxiStreamFrame(beats))

    # -- monitor ----------------------------------------------------------------------------
    async def watch(self) -> None:
        """Sample ``mon`` and ``m_axis.tvalid`` once per clock (at the falling edge, where
        everything of the cycle has settled) and attribute the map writes to images."""
        d, m = self.dut, self._mon
        fe = FallingEdge(d.clk)
        prev_valid = False

        def get(v: int, k: str) -> int:
            off, mask = m[k]
            return (v >> off) & mask

        while True:
            await fe
            if not str(d.rst.value) == "0":
                self._f, self._b, prev_valid = {}, {}, False
                continue
            raw = d.mon.value
            v = _int(raw)
            if not raw.is_resolvable:
                self._unknown(str(raw).lower(), v)
            if get(v, "f_en"):
                self._f[get(v, "f_addr")] = get(v, "f_data")
            if get(v, "f_done"):
                self.front.append(self._f)
                self._f = {}
            if get(v, "b_en"):
                self._b.setdefault(get(v, "b_stage"), {})[get(v, "b_addr")] = get(v, "b_data")
                self.back_writes += 1
            valid = _high(d.m_axis__tvalid)
            if valid and not prev_valid:       # a new result: its debug side data is held
                self.infos.append(decode_debug(_int(d.debug.value), self.params))
                self.back.append(self._b)
                self._b = {}
            prev_valid = valid

    def _unknown(self, bits: str, v: int) -> None:
        """Count unknown bits on ``mon``: harmless in the fields of a port that does not
        write this clock, an error in an enable or in a write's address or data."""
        self.x_samples += 1
        width = len(bits)
        for k, (off, mask) in self._mon.items():
            n = mask.bit_length()
            if any(c in "xz" for c in bits[width - off - n:width - off]):
                self.x_fields[k] = self.x_fields.get(k, 0) + 1
                en = {"f_addr": "f_en", "f_data": "f_en", "b_addr": "b_en", "b_data": "b_en",
                      "b_stage": "b_en"}.get(k)
                if en is None or (v >> self._mon[en][0]) & 1:
                    self.x_errors += 1
                    if self.x_errors <= 3:
                        self.errors.append(f"mon.{k} is unknown ({bits}) while it counts")

    # -- model + checker --------------------------------------------------------------------
    async def collect(self, rows: list[int], test: str) -> None:
        """Receive one result per stimulus row and check it (class, logits, counters,
        cycles, spike maps)."""
        s = self.stim
        cyc = int(max(s["front_cycles"].max(), s["back_cycles"].max()))
        budget = (3 * (cyc + self.params["beats"]) + 2000) * PERIOD
        k = self.params["classes"]
        base = len(self.results)
        for n, r in enumerate(rows):
            try:
                frame = await with_timeout(self.sink.recv(), budget, "ns")
            except TimeoutError:
                self.errors.append(f"{test}: no result for image {n} (row {r}) within "
                                   f"{budget // PERIOD} cycles")
                return
            words = [int(w) for w in frame.tdata]
            info = self.infos[n] if n < len(self.infos) else None
            name = f"{test} image {n} (test index {int(s['index'][r])})"
            if len(words) != k + 1 or info is None:
                self.errors.append(f"{name}: {len(words)} result beats (want {k + 1})"
                                   if info else f"{name}: no debug side data seen")
                continue
            got = {"cls": words[0], "logits": [signed32(w) for w in words[1:]], **info}
            errs, cyc_errs = check_result(r, got, s, self.params, name)
            if n < len(self.front) and n < len(self.back):
                errs += check_maps(r, self.front[n], self.back[n], s, self.params, name)
                got["map_words"] = len(self.front[n]) + sum(map(len, self.back[n].values()))
            else:
                errs.append(f"{name}: spike-map writes not seen")
            got.update(row=r, index=int(s["index"][r]), match=not errs,
                       cycles_ok=not cyc_errs, test=test)
            self.results.append(got)
            self.errors += errs + cyc_errs
            self.dut._log.info(f"{name}: class {got['cls']}, front {got['front_cycles']} "
                               f"back {got['back_cycles']} cycles, "
                               f"{'match' if not errs else 'MISMATCH'}"
                               f"{'' if not cyc_errs else ', CYCLE MODEL ERROR'}")
            self.progress(len(self.results) - base, len(rows), test)

    def progress(self, done: int, total: int, test: str) -> None:
        if self.out_dir is None:
            return
        wall = time.perf_counter() - self.t0
        write_atomic(self.out_dir / "progress.json", json.dumps({
            "test": test, "done": done, "total": total, "wall_s": wall,
            "mismatches": sum(not r["match"] for r in self.results)}))

    def status(self) -> dict[str, int]:
        return decode_status(_int(self.dut.status.value), self.params)

    def save(self, test: str, **extra: Any) -> None:
        if self.out_dir is None:
            return
        out = {"test": test, "results": self.results, "errors": self.errors,
               "wall_s": time.perf_counter() - self.t0,
               "sim_time_ns": cocotb.utils.get_sim_time(unit="ns"),
               "mon_x_samples": self.x_samples, "mon_x_fields": self.x_fields,
               "mon_x_errors": self.x_errors, **extra}
        write_atomic(self.out_dir / f"{test}.json", json.dumps(out))


def _setup(dut: Any) -> AccelTB:
    params = json.loads(Path(os.environ["ACCEL_PARAMS"]).read_text())
    stim = load_stimulus(os.environ["ACCEL_STIM"])
    out = os.environ.get("ACCEL_OUT")
    dut.rst.value = 1
    dut.s_axis__tvalid.value = 0
    dut.m_axis__tready.value = 0
    Clock(dut.clk, PERIOD, unit="ns").start()
    return AccelTB(dut, params, stim, seed=int(os.environ.get("ACCEL_SEED", "0")),
                   stalls=os.environ.get("ACCEL_STALLS", "1") == "1",
                   out_dir=Path(out) if out else None)


def _extra(tb: AccelTB) -> list[int]:
    n = len(tb.stim["beats"])
    return list(range(min(n, max(1, int(os.environ.get("ACCEL_EXTRA", "2"))))))


@cocotb.test()
async def stream_images(dut: Any) -> None:
    """Stream every stimulus image and check each result and spike map with the golden
    model, and the cycle counters with the cycle model."""
    tb = _setup(dut)
    await tb.reset()
    cocotb.start_soon(tb.watch())
    rows = list(range(len(tb.stim["beats"])))
    tb.send(rows)
    await tb.collect(rows, "stream_images")
    st = tb.status()
    if st["frames_ok"] != len(rows) or st["frames_short"] or st["frames_long"]:
        tb.errors.append(f"stream_images: status {st}, want {len(rows)} frames ok")
    tb.save("stream_images", status=st)
    assert not tb.errors, "\n".join(tb.errors[:10])


@cocotb.test()
async def reset_mid_image(dut: Any) -> None:
    """``rst`` for a few cycles while the back computes one image and the front the next;
    then the same images again: every result must be right."""
    tb = _setup(dut)
    await tb.reset()
    cocotb.start_soon(tb.watch())
    rows = _extra(tb)
    tb.send(rows + rows)
    limit = 3 * int(tb.stim["front_cycles"].max() + tb.params["beats"]) + 2000
    for _ in range(limit):
        await RisingEdge(dut.clk)
        if tb.back_writes >= 10:
            break
    else:
        tb.errors.append(f"reset_mid_image: no back-stage write within {limit} cycles")
    before = {"front_images": len(tb.front), "results": len(tb.infos),
              "back_writes": tb.back_writes}
    tb.source.clear()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    tb.sink.clear()
    tb.clear()
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    st0 = tb.status()
    if any(st0.values()):
        tb.errors.append(f"reset_mid_image: status after reset {st0}, want zeros")
    tb.send(rows)
    await tb.collect(rows, "reset_mid_image")
    st = tb.status()
    if st["frames_ok"] != len(rows):
        tb.errors.append(f"reset_mid_image: status {st}, want {len(rows)} frames ok")
    tb.save("reset_mid_image", status=st, before_reset=before)
    assert not tb.errors, "\n".join(tb.errors[:10])


@cocotb.test()
async def bad_frames(dut: Any) -> None:
    """A short frame (``tlast`` early) before the first image and a long frame (no ``tlast``
    on the last beat, more beats, then ``tlast``) before the last: both dropped and counted,
    the images right."""
    tb = _setup(dut)
    await tb.reset()
    cocotb.start_soon(tb.watch())
    rows = _extra(tb)
    beats = [int(v) for v in tb.stim["beats"][rows[0]]]
    tb.send_frame(beats[: len(beats) // 2])                     # short, before the first
    tb.send(rows[:-1])
    tb.send_frame(beats + beats[:5])                            # long, before the last
    tb.send(rows[-1:])          # (with two or more images, while the accelerator computes)
    await tb.collect(rows, "bad_frames")
    st = tb.status()
    want = {"frames_ok": len(rows), "frames_short": 1, "frames_long": 1}
    if st != want:
        tb.errors.append(f"bad_frames: status {st}, want {want}")
    tb.save("bad_frames", status=st)
    assert not tb.errors, "\n".join(tb.errors[:10])
