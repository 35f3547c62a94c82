"""snnTorch's own NIR importer runs ``export-nir --snntorch`` (issue 14, item 4).

The export writes only nodes ``snntorch.import_nir.import_from_nir`` converts (docs/nir.md,
"The snnTorch flavour"); the test reads the file with NIR's type check, imports it with
snnTorch's importer, unchanged, runs 300 real CIFAR-10 test images (spread over the classes)
for T steps, sums the output, and compares the predictions with the golden model, for each
snnTorch reset setting. Measured on the shipped ``tiny`` model (k = 3, 2), 300 images:

============================================  =========  ==============================
snnTorch setting of the hidden ``snn.Leaky``   agreement  spikes agreeing conv1 / conv2
============================================  =========  ==============================
``zero`` (what ``import_from_nir`` builds)      0.797      0.9683 / 0.9932
``zero``, ``reset_delay=True``                   0.797      the same (identical rule)
``subtract``, ``reset_delay=False``              0.953      0.99995 / 0.99953
``subtract``, ``reset_delay=True``               0.877      0.9772 / 0.9949
============================================  =========  ==============================

The integer model subtracts the threshold and decays the reset membrane; snnTorch's
immediate subtract reset is closest (its leak is not rounded and it subtracts once more from
a membrane the last reset left above threshold), the delayed one subtracts an undecayed
threshold, reset to zero loses the residue. Without leak (k = 0) the flavour is bit-exact.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.model import Model

nir = pytest.importorskip("nir", reason="needs nir")
snntorch = pytest.importorskip("snntorch", reason="needs snntorch")
pytest.importorskip("nirtorch", reason="needs nirtorch")
torch = pytest.importorskip("torch", reason="needs torch")

from dietsnn.nirio.export import to_nir  # noqa: E402
from dietsnn.nirio.importer import ImportOptions, from_nir, import_nir  # noqa: E402
from dietsnn.nirio.snn import compare_with_golden, set_reset  # noqa: E402

#: Measured agreement with the golden model on 300 spread test images (module docstring),
#: each floor a few points below it.
FLOORS = {("zero", False): 0.76, ("zero", True): 0.76, ("subtract", False): 0.92,
          ("subtract", True): 0.84}
N_IMAGES = 300


@pytest.fixture(scope="module")
def tiny():
    from dietsnn.model import load, shipped_models

    path = shipped_models().get("tiny")
    if path is None:
        pytest.skip("the shipped tiny model is absent")
    return load(path)


@pytest.fixture(scope="module")
def spread_images():
    from dietsnn.data import DataError, load_cifar10
    from dietsnn.selection import select_subset

    try:
        ds = load_cifar10("test", download=False, progress=False)
    except DataError as e:
        pytest.skip(f"CIFAR-10 test images are not available: {e}")
    images, labels, _ = select_subset(ds, N_IMAGES, split="test")
    return images, labels


def _run_stock(net, q: np.ndarray, timesteps: int) -> np.ndarray:
    """Sum of the graph output over T, batch by batch (membranes zeroed between batches)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(q), 100):
            for m in net.modules():
                if isinstance(m, snntorch.SpikingNeuron):
                    m.reset_mem()
            x = torch.as_tensor(q[i:i + 100], dtype=torch.float32)
            state, total = None, 0.0
            for _ in range(timesteps):
                y, state = net(x, state)
                total = total + y.double()
            out.append(total.reshape(len(x), -1).numpy())
    return np.concatenate(out)


def test_snntorch_importer_runs_the_export(tiny, spread_images, tmp_path, capsys):
    from dietsnn.cli import main
    from snntorch.import_nir import import_from_nir

    path = tmp_path / "tiny.nir"
    assert main(["export-nir", "--model", "tiny", "--snntorch", "--out", str(path),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["flavour"] == "snntorch" and "I" not in info["node_types"]
    assert "Threshold" not in info["node_types"] and "Flatten" not in info["node_types"]
    images, labels = spread_images
    q = tiny.input.quantize(images)
    ref = golden.run(tiny, q)
    measured = {}
    for setting in FLOORS:
        graph = nir.read(str(path))  # NIR's own type check passes
        net = import_from_nir(graph)  # snnTorch's importer, unchanged
        if setting != ("zero", False):  # what import_from_nir builds
            assert len(set_reset(net, graph, *setting)) == len(tiny.lif_layers)
        pred = np.argmax(_run_stock(net, q, tiny.timesteps), axis=1)
        measured[setting] = float(np.mean(pred == ref.prediction))
    print(f"\n[stock snnTorch importer, tiny, {len(q)} images] agreement per (reset, delay): "
          f"{measured}; golden accuracy {np.mean(ref.prediction == labels):.4f}")
    for setting, floor in FLOORS.items():
        assert measured[setting] >= floor, (setting, measured)
    assert measured[("subtract", False)] > measured[("zero", False)]


def test_without_leak_the_flavour_is_bit_exact_in_snntorch(tiny, spread_images):
    """k = 0 everywhere: snnTorch's importer with subtract reset and reset_delay=True (the
    integer rule for beta = 1) gives the integer logits exactly."""
    layers = tuple(dataclasses.replace(x, leak_shift=0) if x.is_lif else x
                   for x in tiny.layers)
    m0 = Model(name="tiny-k0", timesteps=tiny.timesteps, input=tiny.input, layers=layers,
               weights=tiny.weights, classes=tiny.classes, kind="random-test")
    q = m0.input.quantize(spread_images[0][:64])
    res = compare_with_golden(m0, q, stock=True, reset="subtract", reset_delay=True)
    assert res["logits_equal"] == 1.0 and res["max_abs_logit_diff"] == 0.0, res
    assert all(v == 1.0 for v in res["spike_agreement"].values())


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("arch", ["8C-P-16C-P-10", "8C-P-16C-P-32L-10", "4C-4C-P-20L-12L-10"])
def test_snntorch_flavour_round_trips_exactly(arch, bias, tmp_path):
    from dietsnn.nirio.export import export_nir
    from dietsnn.topology import random_model

    m = random_model(arch, seed=4, bias=bias)
    layers = tuple(dataclasses.replace(x, leak_shift=i % 3) if x.is_lif else x
                   for i, x in enumerate(m.layers))  # k = 0, 1, 2: IF written as LIF too
    m = dataclasses.replace(m, layers=layers)
    path = export_nir(m, tmp_path / "m.nir", snntorch=True)
    graph = nir.read(str(path))
    assert {type(n).__name__ for n in graph.nodes.values()} <= {
        "Input", "Conv2d", "LIF", "AvgPool2d", "Output"}
    back, report = import_nir(path)
    assert report.exact and report.source == "dietsnn" and not report.notes
    assert back.manifest() == m.manifest()
    for k, w in m.weights.items():
        assert back.weights[k].dtype == w.dtype and np.array_equal(back.weights[k], w)
    # the foreign reading of the same nodes (metadata stripped) gives the same network
    for node in graph.nodes.values():
        node.metadata = {}
    foreign, _ = from_nir(nir.NIRGraph(graph.nodes, graph.edges, metadata={}),
                          ImportOptions(approximate=True, membrane_bits=24))
    assert [x.leak_shift for x in foreign.layers] == [x.leak_shift for x in m.layers]
    assert [x.type for x in foreign.layers] == [x.type for x in m.layers]
    for a, b in zip(foreign.layers, m.layers, strict=True):
        if b.has_weights:
            assert np.array_equal(foreign.weights[a.name], m.weights[b.name]), a.name
            if b is not m.layers[0]:    # (the first's is in units of the assumed input)
                assert np.array_equal(foreign.bias(a), m.bias(b)), a.name


def test_snntorch_flavour_needs_snntorchs_dt():
    from dietsnn.topology import random_model

    with pytest.raises(ValueError, match="needs dt = 0.0001"):
        to_nir(random_model("4C-P-10", seed=0), dt=1e-3, snntorch=True)


def test_cli_nir_snntorch_stock(tiny, spread_images, capsys):
    from dietsnn.cli import main

    assert main(["nir-snntorch", "--model", "tiny", "--images", "30", "--stock", "--reset",
                 "subtract", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["importer"] == "snntorch.import_nir.import_from_nir"
    assert info["reset"] == "subtract" and info["reset_delay"] is False
    assert info["images"] == 30 and info["selection"]["per_class"] == {
        str(c): 3 for c in range(10)}
    assert 0.0 <= info["agreement"] <= 1.0
