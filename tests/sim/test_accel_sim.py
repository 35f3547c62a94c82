"""The whole accelerator (v2) under cocotb (Icarus and Verilator) on real CIFAR-10 test images.

The ``tiny`` model (``models/tiny.npz``) at 16 lanes, three test images spread over the set:
the testbench (:mod:`dietsnn.sim.accel_tb`) streams them through the generated Verilog on
AXI4-Stream with random idle cycles on the input and back-pressure on the output; the class,
all ten logits, every spike counter and every spike-map word written must equal the golden
model's, and the RTL's front and back cycle counters the cycle model's. The same run resets
the accelerator in the middle of an image and sends a short and a long frame, which must be
dropped and counted. Icarus runs the reset and bad-frame tests on one image (it simulates
about 2,000 clocks per second here), Verilator on two.

The checker's own logic (beats, map words, naming the first wrong neuron) and the argument
checks are tested without a simulator.
"""

from __future__ import annotations

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.errors import CLIError
from dietsnn.hw.accel import image_cycles, make_plan
from dietsnn.selection import select_images
from dietsnn.sim import accel_model
from dietsnn.sim.accel_runner import (
    ROOT,
    TESTS,
    check_lanes,
    default_lanes,
    find_simulator,
    pick_model,
    run_accel_sim,
)

SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def test_set():
    try:
        from dietsnn.data import DataError, load_cifar10
    except ImportError:
        pytest.skip("dietsnn.data is not available")
    try:
        return load_cifar10(split="test", progress=False)
    except (DataError, OSError) as e:
        pytest.skip(f"CIFAR-10 test set not available: {e}")


@pytest.mark.parametrize("sim", SIMULATORS)
def test_tiny_model_three_images_reset_and_bad_frames(sim, test_set):
    why = find_simulator(sim)
    if why:
        pytest.skip(why)
    model = pick_model("tiny")
    res = run_accel_sim(dict(model=model, images=3, simulator=sim, lanes=16, seed=7,
                             stalls=True, extra_images=1 if sim == "icarus" else 2,
                             progress=False,
                             build_dir=ROOT / "build" / "sim" / f"pytest-tiny-L16-{sim}"))
    assert not res["errors"], res["errors"]
    assert res["mismatches"] == 0 and not res["failed"]
    assert set(res["tests"]) == set(TESTS)
    assert all(t["passed"] for t in res["tests"].values())
    assert res["tests"]["bad_frames"]["status"]["frames_short"] == 1
    assert res["tests"]["bad_frames"]["status"]["frames_long"] == 1
    assert res["images"] == 3 and res["simulator"] == sim and res["lanes"] == 16
    idx = select_images(test_set.labels, 3)
    assert res["selection"]["indices"] == idx.tolist()
    # the RTL's counters (checked in the testbench) against the cycle model, once more here
    ref = golden.run(model, model.input.quantize(test_set.images[idx]), record={"spikes"})
    plan = make_plan(model, 16)
    stream = [d for d in res["details"] if d["test"] == "stream_images"]
    for i, d in enumerate(stream):
        c = image_cycles(model, ref, i, lanes=16, plan=plan)
        assert (d["front_cycles"], d["back_cycles"]) == (c.front, c.back)
        assert d["cls"] == int(ref.prediction[i])
        assert d["map_words"] == sum(len(accel_model.map_words(ref.spikes[k][i:i + 1], 16)[0])
                                     for k in ("pool1", "pool2"))
    assert res["cycle_model_errors"] == 0
    assert res["interval_mean"] == pytest.approx(
        np.mean([max(d["front_cycles"], d["back_cycles"]) + 1 for d in stream]))


# ---- without a simulator -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_params():
    from dietsnn.hw.accel.core import Accelerator
    from dietsnn.hw.accel.gen import params_json
    return params_json(Accelerator(pick_model("tiny"), lanes=16))


def test_beats_pack_pixels_channel_major(tiny_params):
    q = np.arange(-8, 3 * 32 * 32 - 8, dtype=np.int64).reshape(1, 3, 32, 32) % 256 - 128
    beats = accel_model.beats_of(tiny_params, q)
    assert beats.shape == (1, tiny_params["beats"])
    flat = q.reshape(-1)
    for b in (0, 1, 767):
        want = sum((int(v) & 0xFF) << (8 * j) for j, v in enumerate(flat[4 * b:4 * b + 4]))
        assert int(beats[0, b]) == want


def test_map_words_layout():
    s = np.zeros((1, 2, 20, 3, 2), np.uint8)      # N, T, C, H, W; 20 channels, 16 lanes
    s[0, 1, 17, 2, 1] = 1                            # t 1, group 1 bit 1, y 2, x 1
    w = accel_model.map_words(s, 16)
    assert w.shape == (1, 2 * 3 * 2 * 2)
    addr = ((1 * 3 + 2) * 2 + 1) * 2 + 1
    assert np.flatnonzero(w[0]).tolist() == [addr] and int(w[0, addr]) == 1 << 1


def test_checker_names_layer_step_and_neuron(tiny_params):
    p = tiny_params
    layers = accel_model.map_layers(p)
    exp = {"map0": np.zeros((1, 5 * 16 * 16), np.uint64),
           "map1": np.zeros((1, 5 * 8 * 8), np.uint64)}
    front = {a: 0 for a in range(5 * 16 * 16)}
    back = {0: {a: 0 for a in range(5 * 8 * 8)}}
    assert accel_model.check_maps(0, front, back, exp, p) == []
    back[0][(2 * 8 + 3) * 8 + 4] = 1 << 5            # t 2, y 3, x 4, channel 5
    errs = accel_model.check_maps(0, front, back, exp, p, "img")
    assert len(errs) == 1 and layers[1]["name"] == "pool2"
    assert "layer pool2 step 2 neuron (c 5, y 3, x 4): RTL spike 1, golden 0" in errs[0]
    del front[7]
    errs = accel_model.check_maps(0, front, back, exp, p, "img")
    assert "layer pool1 step 0: word 7" in errs[0] and "never written" in errs[0]


def test_result_and_cycle_checks(tiny_params):
    exp = {"prediction": np.array([3]), "logits": np.arange(10)[None],
           "counts": np.array([[1, 2, 3, 4]]), "front_cycles": np.array([100]),
           "back_cycles": np.array([50])}
    got = {"cls": 3, "logits": list(range(10)), "counts": [1, 2, 3, 4], "front_cycles": 100,
           "back_cycles": 50}
    assert accel_model.check_result(0, got, exp, tiny_params) == ([], [])
    errs, cyc = accel_model.check_result(0, {**got, "counts": [1, 2, 9, 4], "back_cycles": 51},
                                         exp, tiny_params)
    assert errs == ["image 0: spike counts differ: conv2 9 (golden 3)"]
    assert cyc == ["image 0: back_cycles 51, cycle model 50"]


@pytest.mark.parametrize("args, msg", [
    (dict(images=0), "--images must be 1 or more, not 0"),
    (dict(images=3, lanes=3), "--lanes must be a power of two in 4..64"),
    (dict(images=3, lanes=128), "--lanes must be a power of two in 4..64"),
    (dict(images=3, tests="stream_images,nope"), "--tests: unknown test nope"),
    (dict(images=3, simulator="xsim"), "--simulator must be one of"),
])
def test_bad_arguments_are_one_line_cli_errors(args, msg):
    with pytest.raises(CLIError) as e:
        run_accel_sim(dict(model="tiny", **args))
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_default_lanes():
    assert default_lanes(pick_model("tiny")) == 16
    assert default_lanes(pick_model("cifar10")) == 32
    assert check_lanes(8) == 8
