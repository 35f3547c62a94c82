"""The whole accelerator under cocotb (Icarus and Verilator) on real CIFAR-10 test images.

The ``tiny`` model (``models/tiny.npz``; until it lands a fixed-seed random model of the same
topology) at 16 lanes: three test images stream through the generated Verilog with random
idle cycles on the input and back-pressure on the output; the class, all ten logits and every
layer's spike count must equal the golden model's, and the RTL's cycle counter must equal the
cycle model's prediction.
"""

from __future__ import annotations

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.hw.accel.cycles import compute_cycles
from dietsnn.sim.accel_runner import find_simulator, pick_model, run_accel_sim, select_images

SIMULATORS = ["icarus", "verilator"]


@pytest.fixture(scope="module")
def test_set():
    try:
        from dietsnn.data import DataError, load_cifar10
    except ImportError:
        pytest.skip("dietsnn.data is not available")
    try:
        return load_cifar10(split="test")
    except (DataError, OSError) as e:
        pytest.skip(f"CIFAR-10 test set not available: {e}")


@pytest.mark.parametrize("sim", SIMULATORS)
def test_tiny_model_on_three_images_bit_exact(sim, test_set, tmp_path):
    why = find_simulator(sim)
    if why:
        pytest.skip(why)
    model = pick_model("tiny")
    res = run_accel_sim(dict(model=model, images=3, simulator=sim, lanes=16, seed=7,
                             stalls=True, build_dir=tmp_path / f"accel-{sim}"))
    assert res["images"] == 3
    assert res["mismatches"] == 0, res["errors"]
    assert not res["errors"]
    idx = select_images(len(test_set.labels), 3)
    ref = golden.run(model, model.input.quantize(test_set.images[idx]), record={"spikes"})
    assert np.array_equal(np.array(res["compute_cycles"]), compute_cycles(model, ref, lanes=16))
    assert res["simulator"] == sim and res["simulated_time_us"] > 0
