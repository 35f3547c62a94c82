"""cocotb testbench of the neuron array: replay golden-model layers and random blocks bit for bit.

Run through :mod:`dietsnn.sim.runner` (which writes the stimulus and reads the result); the
environment names the files:

``DIETSNN_TB_PARAMS``   the RTL's ``params.json`` (port layout)
``DIETSNN_TB_STIMULUS`` ``.npz`` with the beats (:class:`~dietsnn.sim.stimulus.Beats` arrays)
                        and ``jobs`` (JSON: image, layer, k, theta, b per job)
``DIETSNN_TB_RESULT``   where the JSON result goes
``DIETSNN_TB_P_VALID`` / ``DIETSNN_TB_P_READY`` / ``DIETSNN_TB_SEED``
                        driver idle and sink back-pressure probabilities (as fractions)

:class:`NeuronArrayTB` has the usual parts: a driver (``i_stream``, random idle cycles, the
stream rule "hold payload while valid and not ready"), a monitor (``o_stream`` and the
membrane debug port on every handshake), the model (expected beats precomputed by the
golden model) and the checker (:func:`dietsnn.sim.check.compare`). Per clock it does one
read or write per port: payloads are packed and unpacked in bulk with numpy.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from dietsnn.sim.check import Report, compare
from dietsnn.sim.codec import Codec
from dietsnn.sim.stimulus import Beats


def load_stimulus(path: str) -> tuple[Beats, list[Any]]:
    """Read the beats and job descriptions the runner wrote."""
    with np.load(path, allow_pickle=False) as z:
        beats = Beats(**{k: z[k] for k in Beats.__dataclass_fields__})
        jobs = [SimpleNamespace(**j) for j in json.loads(bytes(z["jobs"]).decode())]
    return beats, jobs


class NeuronArrayTB:
    """Driver, monitor and checker around one ``neuron_array`` instance.

    Parameters
    ----------
    dut : the cocotb handle of the top level.
    params : the parsed ``params.json``.
    beats, jobs : the stimulus and expected results (:func:`load_stimulus`).
    p_valid : probability that the driver offers a beat in a cycle (1 = no idle cycles).
    p_ready : probability that the sink accepts in a cycle (1 = no back-pressure).
    seed : seed of the idle / back-pressure pattern.
    """

    def __init__(self, dut: Any, params: dict[str, Any], beats: Beats, jobs: list[Any], *,
                 p_valid: float = 1.0, p_ready: float = 1.0, seed: int = 0) -> None:
        self.dut = dut
        self.params = params
        self.beats = beats
        self.jobs = jobs
        self.p_valid = p_valid
        self.p_ready = p_ready
        self.rng = np.random.default_rng(seed)
        self.codec = Codec(params["ports"])
        self.cycles = 0

    async def reset(self) -> None:
        dut = self.dut
        dut.i_stream__valid.value = 0
        dut.o_stream__ready.value = 0
        dut.i_stream__payload.value = 0
        dut.params.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def run(self) -> tuple[list[int], list[int]]:
        """Drive every beat and capture every output beat. Returns (payloads, membranes)."""
        dut = self.dut
        n = len(self.beats)
        words = self.codec.updates(self.beats)
        prm = self.codec.params(self.beats)
        i_valid, i_payload, i_ready = dut.i_stream__valid, dut.i_stream__payload, \
            dut.i_stream__ready
        o_valid, o_ready, o_payload = dut.o_stream__valid, dut.o_stream__ready, \
            dut.o_stream__payload
        membrane, params_port = dut.membrane, dut.params
        out_words: list[int] = []
        mem_words: list[int] = []
        limit = 50 * n + 1000
        chunk = 4096
        offer = ready = np.ones(0, bool)
        i = 0            # next beat to drive
        valid = False    # driving valid this cycle
        rdy = False
        last_prm = None
        cyc = 0
        while len(out_words) < n:
            if cyc % chunk == 0:
                offer = self.rng.random(chunk) < self.p_valid
                ready = self.rng.random(chunk) < self.p_ready
            # -- drive this cycle (the previous handshake was settled at ReadOnly) ----------
            if not valid and i < n and offer[cyc % chunk]:
                valid = True
                i_payload.value = words[i]
                if prm[i] != last_prm:
                    params_port.value = last_prm = prm[i]
                i_valid.value = 1
            new_rdy = bool(ready[cyc % chunk])
            if new_rdy != rdy:
                o_ready.value = rdy = new_rdy
            await ReadOnly()
            # -- sample: handshakes happen at the coming edge ------------------------------
            fire_in = valid and i_ready.value == 1
            if rdy and o_valid.value == 1:
                out_words.append(int(o_payload.value))
                mem_words.append(int(membrane.value))
            await RisingEdge(dut.clk)
            cyc += 1
            if fire_in:
                i += 1
                valid = False
                i_valid.value = 0
            if cyc > limit:
                raise AssertionError(f"timeout: {len(out_words)} of {n} output beats after "
                                     f"{cyc} cycles ({i} beats accepted)")
        i_valid.value = 0
        o_ready.value = 1
        for _ in range(4):  # nothing more may come out
            await ReadOnly()
            assert o_valid.value == 0, "an extra output beat appeared after the last one"
            await RisingEdge(dut.clk)
        self.cycles = cyc
        return out_words, mem_words

    def check(self, out_words: list[int], mem_words: list[int]) -> Report:
        return compare(self.beats, self.jobs, self.codec.outputs(out_words, mem_words))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@cocotb.test()
async def replay(dut: Any) -> None:
    """Replay the stimulus file through the array and check every output bit."""
    params = json.loads(Path(os.environ["DIETSNN_TB_PARAMS"]).read_text())
    beats, jobs = load_stimulus(os.environ["DIETSNN_TB_STIMULUS"])
    tb = NeuronArrayTB(dut, params, beats, jobs,
                       p_valid=_env_float("DIETSNN_TB_P_VALID", 1.0),
                       p_ready=_env_float("DIETSNN_TB_P_READY", 1.0),
                       seed=int(os.environ.get("DIETSNN_TB_SEED", "0")))
    Clock(dut.clk, 10, unit="ns").start()
    await tb.reset()
    t0 = time.perf_counter()
    out_words, mem_words = await tb.run()
    seconds = time.perf_counter() - t0
    rep = tb.check(out_words, mem_words)
    for line in rep.lines():
        dut._log.error(line)
    result = {"beats": rep.beats, "updates": rep.updates, "mismatches": rep.mismatches,
              "cycles": tb.cycles, "seconds": seconds, "details": rep.details}
    path = os.environ.get("DIETSNN_TB_RESULT")
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(path + ".tmp", path)
    dut._log.info("checked %d neuron updates in %d beats, %d cycles: %d mismatches",
                  rep.updates, rep.beats, tb.cycles, rep.mismatches)
    assert rep.mismatches == 0, f"{rep.mismatches} mismatches (first: {rep.lines()[:1]})"
