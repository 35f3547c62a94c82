"""The accelerator in Amaranth's simulator on small networks: bit-exact against the golden
model (class, logits, every spike counter), the cycle model exact against the RTL's cycle
counter, the loadable-weights stream, and the argument checks.

The networks are small (8x8 or 6x6 images) so that every schedule corner runs in seconds:
2x2 pooled and unpooled stages, several channel groups per layer, channel counts that are
not a multiple of the lanes, hidden linear layers, and T long enough to stall the dense stage.
The full-size check with cocotb (Icarus and Verilator) is in tests/sim/test_accel_sim.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from dietsnn import golden
from dietsnn.hw.accel import Accelerator, PlanError, generate, make_plan
from dietsnn.hw.accel.cycles import compute_cycles, cycle_bound, cycles_per_image
from dietsnn.hw.accel.loader import load_beats
from dietsnn.model import InputSpec
from dietsnn.topology import random_model


def _model(arch: str, hw: int, t: int, seed: int = 3):
    return random_model(arch, seed=seed, input_spec=InputSpec(shape=(3, hw, hw)), timesteps=t)


def _images(model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c, h, w = model.input.shape
    return model.input.quantize(rng.integers(0, 256, (n, c, h, w), dtype=np.uint8))


def simulate(dut: Accelerator, q: np.ndarray, beats=()) -> list[dict]:
    """Stream ``q`` through ``dut`` (after the ``wload`` beats); one dict per image."""
    p = dut.plan
    out: list[dict] = []

    async def bench(ctx):
        for addr, value in beats:
            ctx.set(dut.wload.valid, 1)
            ctx.set(dut.wload.payload.addr, addr)
            ctx.set(dut.wload.payload.data, value)
            await ctx.tick().until(dut.wload.ready)
        if beats:
            ctx.set(dut.wload.valid, 0)
        for img in q:
            for v in img.ravel().tolist():
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, v)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 1)
            await ctx.tick().until(dut.o.valid)
            ctx.set(dut.o.ready, 0)
            out.append({
                "cls": ctx.get(dut.o.payload.cls),
                "logits": [ctx.get(dut.o.payload.logits[j]) for j in range(p.classes)],
                "counts": [ctx.get(dut.debug.counts[j]) for j in range(len(p.counters))],
                "cycles": ctx.get(dut.debug.cycles),
            })

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


CASES = [
    # arch, image size, T, lanes: what it exercises
    ("4C-P-8C-P-10", 8, 3, 4),        # pooled stages, 2 output groups (dense not folded)
    ("8C-8C-P-16C-P-10", 8, 4, 4),    # an unpooled conv -> conv stage, 2..4 groups
    ("6C-P-10C-P-32L-10", 8, 3, 4),   # channels not a multiple of lanes, hidden linear
    ("4C-4C-P-5", 6, 15, 8),          # T > 4*C_in: the dense stage must stall; 6x6 image
    ("4C-P-8C-10", 6, 20, 8),         # folded dense stage (2 pixels at once), stalling
    ("4C-P-8C-P-10", 8, 3, 16),       # folded dense and event-driven stages (two banks)
    ("4C-P-4C-P-4C-5", 4, 3, 8),      # folded stages down to a 1x1 map
]


@pytest.mark.parametrize("arch,hw,t,lanes", CASES)
def test_bit_exact_and_cycle_model_exact(arch, hw, t, lanes):
    model = _model(arch, hw, t)
    q = _images(model, 2 if hw < 8 else 1)
    ref = golden.run(model, q, record={"spikes"})
    dut = Accelerator(model, lanes=lanes)
    got = simulate(dut, q)
    want_cycles = compute_cycles(model, ref, lanes=lanes)
    for i, r in enumerate(got):
        assert r["cls"] == ref.prediction[i]
        assert r["logits"] == ref.logits[i].tolist()
        assert r["counts"] == [int(ref.spike_counts[c][i]) for c in dut.plan.counters]
        assert r["cycles"] == want_cycles[i]
    total = cycles_per_image(model, ref, lanes=lanes)
    assert (total == want_cycles + dut.plan.pixels + 1).all()
    assert (cycle_bound(model, ref, lanes=lanes) <= total).all()


@pytest.mark.parametrize("lanes", [8, 16])  # 16: folded stages, two weight banks
def test_loadable_weights_run_a_second_model(lanes):
    a = _model("4C-P-8C-P-10", 8, 3, seed=3)
    b = _model("4C-P-8C-P-10", 8, 3, seed=4)  # other weights and thresholds
    q = _images(a, 1)
    dut = Accelerator(a, lanes=lanes, weights="loadable")
    got = simulate(dut, q, beats=load_beats(dut.plan, b))
    want = golden.run(b, q)
    assert got[0]["logits"] == want.logits[0].tolist()
    assert got[0]["logits"] != golden.run(a, q).logits[0].tolist()


def test_load_beats_refuse_another_shape():
    plan = make_plan(_model("4C-P-8C-P-10", 8, 3), 8)
    with pytest.raises(PlanError, match="not the shape"):
        load_beats(plan, _model("4C-P-16C-P-10", 8, 3))


def test_argument_checks(tmp_path):
    m = _model("4C-P-8C-P-10", 8, 3)
    with pytest.raises(ValueError, match="lanes must be a positive power of two, not 3"):
        Accelerator(m, lanes=3)
    with pytest.raises(ValueError, match="weights must be one of rom, loadable"):
        Accelerator(m, lanes=4, weights="flash")
    with pytest.raises(ValueError, match="lanes \\* weight_bits >= 37"):
        Accelerator(m, lanes=4, weights="loadable")
    with pytest.raises(PlanError, match="first layer must be a conv"):
        make_plan(_model("16L-10", 8, 3), 4)
    with pytest.raises(PlanError, match="must follow a conv"):
        make_plan(_model("4C-P-P-10", 8, 3), 4)


def test_cycle_model_needs_spikes():
    m = _model("4C-P-8C-P-10", 8, 3)
    with pytest.raises(ValueError, match="record=\\{'spikes'\\}"):
        cycles_per_image(m, golden.run(m, _images(m, 1)), lanes=4)


def test_generate_writes_verilog_and_params(tmp_path):
    import json
    m = _model("4C-P-8C-P-10", 8, 3)
    paths = generate(m, lanes=4, out_dir=tmp_path)
    text = paths["verilog"].read_text()
    assert "module dietsnn_accel" in text
    params = json.loads(paths["params"].read_text())
    assert params["lanes"] == 4 and params["counters"] == ["conv1", "pool1", "conv2", "pool2"]
    assert params["ports"]["o__payload"]["fields"]["logits"]["count"] == 10
    assert [s["kind"] for s in params["stages"]] == ["dense", "conv", "out"]
