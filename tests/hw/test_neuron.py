# amaranth: UnusedElaboratable=no
"""Amaranth-simulator unit tests of NeuronArray: golden reference (ref_*) vs RTL (rtl_*).

Small arrays and a few hundred beats each, so the whole file runs in seconds; the long
bit-exact runs on real layers are the cocotb tests in ``tests/sim``.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from dietsnn.hw.neuron import NeuronArray
from dietsnn.hw.ports import port_map
from dietsnn.sim.check import compare
from dietsnn.sim.codec import Codec
from dietsnn.sim.stimulus import Beats, Job, random_jobs, schedule


# --------------------------------------------------------------------------------------------
# reference and RTL runners on the same stimulus
# --------------------------------------------------------------------------------------------
def ref_lif(jobs: list[Job], beats: Beats) -> tuple[np.ndarray, np.ndarray]:
    """Golden spikes and membranes per beat (``Job`` runs ``golden.lif_step``)."""
    return beats.spikes, beats.membranes


def rtl_lif(dut: NeuronArray, beats: Beats, *, seed: int = 0, p_valid: float = 1.0,
            p_ready: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Run ``beats`` through ``dut`` in the Amaranth simulator with random stalls.

    Returns spikes ``[n, lanes]``, membranes ``[n, lanes]`` and the cycle count.
    """
    codec = Codec(port_map(dut))
    words, prm = codec.updates(beats), codec.params(beats)
    rng = np.random.default_rng(seed)
    n = len(beats)
    got_out: list[int] = []
    got_mem: list[int] = []
    cycles = [0]

    async def producer(ctx):
        i = 0
        while i < n:
            if rng.random() < p_valid:
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload.as_value(), words[i])
                ctx.set(dut.params.as_value(), prm[i])
                _, _, ready = await ctx.tick().sample(dut.i_stream.ready)
                if ready:
                    i += 1
            else:
                ctx.set(dut.i_stream.valid, 0)
                ctx.set(dut.i_stream.payload.as_value(), 0)  # payload is don't-care now
                await ctx.tick()
        ctx.set(dut.i_stream.valid, 0)

    async def consumer(ctx):
        while len(got_out) < n:
            ctx.set(dut.o_stream.ready, int(rng.random() < p_ready))
            _, _, valid, ready, payload, mem = await ctx.tick().sample(
                dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload.as_value(),
                dut.membrane.as_value())
            cycles[0] += 1
            if valid and ready:
                got_out.append(payload)
                got_mem.append(mem)
            assert cycles[0] < 20 * n + 100, "the array stopped producing output"
        for _ in range(4):  # nothing extra comes out
            ctx.set(dut.o_stream.ready, 1)
            _, _, valid = await ctx.tick().sample(dut.o_stream.valid)
            assert not valid, "an extra output beat appeared"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    out = codec.outputs(got_out, got_mem)
    assert np.array_equal(out.addr, beats.addr) and np.array_equal(out.step, beats.step)
    return out.spikes, out.membranes, cycles[0]


def _check(dut: NeuronArray, jobs: list[Job], **kw) -> int:
    beats = schedule(jobs, lanes=dut.lanes, depth=dut.depth)
    spikes, mem, cycles = rtl_lif(dut, beats, **kw)
    from dietsnn.sim.codec import Outputs
    rep = compare(beats, jobs, Outputs(beats.addr, beats.step, spikes, mem))
    assert rep.mismatches == 0, "\n".join(rep.lines())
    ref_spk, ref_mem = ref_lif(jobs, beats)
    live = beats.neuron >= 0
    assert np.array_equal(spikes[live], ref_spk[live])
    assert np.array_equal(mem[live], ref_mem[live])
    return cycles


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("depth", [1, 2])
def test_every_shift_and_width_register_schedule(stages, depth):
    dut = NeuronArray(lanes=4, current_bits=10, membrane_bits=8, depth=depth, timesteps=5,
                      loop_stages=stages)
    jobs = random_jobs(np.random.default_rng(1), updates=3000, lanes=4, timesteps=5,
                       current_bits=10, membrane_bits=8)
    assert {j.membrane_bits for j in jobs} == set(range(2, 9))
    _check(dut, jobs, seed=1, p_valid=0.8, p_ready=0.7)


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_full_throughput_one_update_per_clock(stages):
    # depth = loop_stages: groups interleaved so that no neuron is updated twice in a row
    dut = NeuronArray(lanes=2, current_bits=12, membrane_bits=10, depth=stages, timesteps=4,
                      loop_stages=stages)
    rng = np.random.default_rng(2)
    # 12 groups of 2 neurons per job: whole passes of `stages` groups (a last pass with
    # fewer groups than loop stages would stall on the hazard, by design)
    jobs = [Job(-1, f"full {k}", k, int(rng.integers(1, 512)), 10,
                rng.integers(-2048, 2048, (4, 24))) for k in range(10)]
    beats = schedule(jobs, lanes=2, depth=stages)
    cycles = _check(dut, jobs)
    assert cycles <= len(beats) + dut.latency + 1


def test_back_to_back_same_neuron_stalls_but_stays_exact():
    # two-stage loop, one neuron per lane: each update waits for the previous one
    dut = NeuronArray(lanes=2, current_bits=12, membrane_bits=10, depth=1, timesteps=4,
                      loop_stages=2)
    jobs = random_jobs(np.random.default_rng(3), updates=400, lanes=2, timesteps=4,
                       current_bits=12, membrane_bits=10)
    beats = schedule(jobs, lanes=2, depth=1)
    cycles = _check(dut, jobs)
    assert 2 * len(beats) - 2 <= cycles <= 2 * len(beats) + dut.latency + 1


@pytest.mark.parametrize("stages", [1, 2, 3])
@pytest.mark.parametrize("depth", [3, 5, 70])
def test_memory_schedule_with_forwarding(depth, stages):
    dut = NeuronArray(lanes=3, current_bits=9, membrane_bits=8, depth=depth, timesteps=6,
                      loop_stages=stages)
    rng = np.random.default_rng(depth)
    jobs = random_jobs(rng, updates=1500, lanes=3, timesteps=6, current_bits=9,
                       membrane_bits=8)
    _check(dut, jobs, seed=depth, p_valid=0.85, p_ready=0.75)


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_memory_schedule_back_to_back_same_address(stages):
    # depth 4 but one group per job: every beat hits the address just written
    dut = NeuronArray(lanes=2, current_bits=8, membrane_bits=8, depth=4, timesteps=7,
                      loop_stages=stages)
    rng = np.random.default_rng(9)
    jobs = [Job(-1, "b2b", k, 40, 8, rng.integers(-128, 128, (7, 2))) for k in range(8)]
    _check(dut, jobs)
    _check(dut, jobs, seed=3, p_ready=0.5)


def test_heavy_back_pressure_loses_nothing():
    # the sink takes a beat only 15% of the time: the FIFO credit must hold the input
    dut = NeuronArray(lanes=2, current_bits=9, membrane_bits=8, depth=3, timesteps=4)
    jobs = random_jobs(np.random.default_rng(8), updates=600, lanes=2, timesteps=4,
                       current_bits=9, membrane_bits=8)
    _check(dut, jobs, seed=8, p_valid=0.9, p_ready=0.15)


def test_random_addresses_any_order():
    # a random interleaving of neurons (not a schedule() order): hazards, hits and misses
    dut = NeuronArray(lanes=2, current_bits=9, membrane_bits=8, depth=4, timesteps=6)
    rng = np.random.default_rng(5)
    job = Job(-1, "any", 1, 30, 8, rng.integers(-256, 256, (6, 8)))
    order = np.concatenate([rng.permutation(4) for _ in range(6)])  # a group per address
    seen = np.zeros(4, int)
    rows = []
    for g in order:
        rows.append((g, seen[g]))
        seen[g] += 1
    idx = np.array([g * 6 + t for g, t in rows])
    base = schedule([job], lanes=2, depth=1)          # neuron-major: row g*T + t
    beats = Beats(addr=np.array([g for g, _ in rows]), step=base.step[idx],
                  current=base.current[idx], params=base.params[idx], spikes=base.spikes[idx],
                  membranes=base.membranes[idx], job=base.job[idx], neuron=base.neuron[idx])
    spikes, mem, _ = rtl_lif(dut, beats, seed=7, p_valid=0.7, p_ready=0.6)
    live = beats.neuron >= 0
    assert np.array_equal(spikes[live], beats.spikes[live])
    assert np.array_equal(mem[live], beats.membranes[live])


def test_threshold_at_membrane_maximum():
    # theta = 2^(b-1) - 1: a saturated membrane equals theta and must not spike
    dut = NeuronArray(lanes=4, current_bits=10, membrane_bits=6, depth=2, timesteps=3)
    cur = np.array([[511, 31, 32, -512], [511, 0, 1, -512], [-3, 0, 0, 511]])
    jobs = [Job(-1, "edge", k, 31, 6, cur) for k in (0, 1, 5)]
    jobs += [Job(-1, "edge", 0, t, 6, cur) for t in (1, 30)]
    _check(dut, jobs)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"lanes": 0}, "lanes must be an integer in 1..64, not 0"),
    ({"lanes": 65}, "lanes must be an integer in 1..64, not 65"),
    ({"lanes": 2.0}, "lanes must be an integer in 1..64, not 2.0"),
    ({"current_bits": 1}, "current_bits must be an integer in 2..48, not 1"),
    ({"membrane_bits": 33}, "membrane_bits must be an integer in 2..32, not 33"),
    ({"depth": 0}, "depth must be an integer (neurons per lane) in 1..1048576, not 0"),
    ({"timesteps": True}, "timesteps must be an integer (largest T) in 1..1024, not True"),
    ({"loop_stages": 4}, "loop_stages must be an integer in 1..3, not 4"),
])
def test_constructor_checks(kw, msg):
    args = {"lanes": 4, "current_bits": 8, "membrane_bits": 8, "depth": 1, "timesteps": 4,
            "loop_stages": 2}
    args.update(kw)
    with pytest.raises((ValueError, TypeError)) as e:
        NeuronArray(**args)
    assert str(e.value) == msg


def test_constructor_is_keyword_only_and_parameters_read_only():
    with pytest.raises(TypeError):
        NeuronArray(4, 8, 8)  # type: ignore[misc]
    dut = NeuronArray(lanes=4, current_bits=8, membrane_bits=8, depth=3, timesteps=5)
    assert (dut.lanes, dut.addr_bits, dut.step_bits, dut.leak_bits) == (4, 2, 3, 3)
    assert (dut.loop_stages, dut.latency, dut.fifo_depth) == (3, 4, 8)
    with pytest.raises(AttributeError):
        dut.lanes = 5  # type: ignore[misc]
