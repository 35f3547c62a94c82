"""cocotb checks of the neuron array on Verilator and Icarus, driven by cocotb_tools.runner.

Each test builds in its own folder. The main check replays every LIF layer of two real
CIFAR-10 test images through the golden model and the RTL (the shipped ``tiny`` model when
present, else ``random_model("8C-P-16C-P-10", seed=0)``), followed by 100,000 random
corner-case neuron updates, with random idle cycles and back-pressure, and requires every
spike and membrane to match.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dietsnn.hw import tools
from dietsnn.model import shipped_models
from dietsnn.sim.runner import CheckConfig, image_jobs, make_random_jobs, run_neuron_check
from dietsnn.topology import random_model

RANDOM_UPDATES = 100_000
SIMULATORS = ["verilator", "icarus"]


def _model():
    if "tiny" in shipped_models():
        from dietsnn.model import load_model
        return load_model("tiny")
    return random_model("8C-P-16C-P-10", seed=0)


@pytest.fixture(scope="module")
def cifar_images():
    """The first two CIFAR-10 test images, or the reason they are not available."""
    try:
        from dietsnn.data import DataError, load_cifar10
    except ImportError:
        return "dietsnn.data is not available"
    try:
        return load_cifar10(split="test").images[:2]
    except (DataError, OSError) as e:
        return f"CIFAR-10 test set not available: {e}"


def _skip_without(sim: str) -> None:
    why = tools.simulator_available(sim)
    if why:
        pytest.skip(why)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_real_layers_and_random_stimulus_bit_exact(sim, cifar_images, tmp_path):
    _skip_without(sim)
    model = _model()
    have_images = not isinstance(cifar_images, str)
    jobs_img = image_jobs(model, cifar_images) if have_images else []
    cfg = CheckConfig(simulator=sim, build_dir=tmp_path / f"neuron-{sim}", p_valid=0.85,
                      p_ready=0.75, seed=11)
    res = run_neuron_check(
        cfg, lambda p: jobs_img + make_random_jobs(p, updates=RANDOM_UPDATES, seed=5),
        model=model, lanes=16)
    assert res["mismatches"] == 0, json.dumps(res["details"][:5], indent=1)
    img_updates = 2 * model.timesteps * sum(x.neurons for x in model.lif_layers)
    assert res["updates"] >= RANDOM_UPDATES + (img_updates if have_images else 0)
    assert res["cycles"] > res["beats"]  # the stalls really happened
    if not have_images:
        pytest.skip(f"random stimulus passed; real layers not checked: {cifar_images}")
    assert res["images"] == 2


def test_memory_schedule_on_icarus(cifar_images, tmp_path):
    _skip_without("icarus")
    model = _model()
    jobs_img = [] if isinstance(cifar_images, str) else image_jobs(model, cifar_images[:1])
    cfg = CheckConfig(simulator="icarus", build_dir=tmp_path / "neuron-mem", p_valid=0.9,
                      p_ready=0.7, seed=3)
    res = run_neuron_check(cfg, lambda p: jobs_img + make_random_jobs(p, updates=5000, seed=2),
                           model=model, lanes=16, schedule_name="memory")
    assert res["schedule"] == "memory"
    assert res["mismatches"] == 0, json.dumps(res["details"][:5], indent=1)


def test_checker_reports_a_wrong_bit(tmp_path):
    """Corrupt one expected spike: the testbench must name image, layer, neuron and step."""
    _skip_without("icarus")
    model = random_model("8C-P-16C-P-10", seed=0)
    cfg = CheckConfig(simulator="icarus", build_dir=tmp_path / "neuron-bad", seed=1)

    def jobs_for(p):
        jobs = make_random_jobs(p, updates=2000, seed=4)
        jobs[1].spikes[2, 5] ^= 1
        return jobs

    res = run_neuron_check(cfg, jobs_for, model=model, lanes=16)
    assert res["mismatches"] == 1
    d = res["details"][0]
    assert (d["layer"].startswith("random 1"), d["neuron"], d["step"]) == (True, 5, 2)
    assert d["expected"]["spike"] != d["actual"]["spike"]
    assert np.isin(["image", "expected", "actual"], list(d)).all()
