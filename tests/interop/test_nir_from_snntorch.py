"""snnTorch-built networks come in: max pooling on spikes as OR pooling (issue 14, item 4),
biases as the integer model's bias (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from dietsnn import golden

torch = pytest.importorskip("torch", reason="needs torch")
snn = pytest.importorskip("snntorch", reason="needs snntorch")
pytest.importorskip("nirtorch", reason="needs nirtorch")

from dietsnn.nirio.importer import ImportOptions, NIRImportError  # noqa: E402
from dietsnn.nirio.snn import from_snntorch, snntorch_graph  # noqa: E402

SAMPLE = (1, 3, 16, 16)


def _net(*, bias: bool = False, pool: str = "max") -> torch.nn.Module:
    torch.manual_seed(0)
    pooling = {"max": lambda: torch.nn.MaxPool2d(2), "avg": lambda: torch.nn.AvgPool2d(2)}[pool]
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        snn.Leaky(beta=0.875, threshold=0.5, init_hidden=True),
        pooling(),
        torch.nn.Conv2d(8, 16, 3, padding=1, bias=False),
        snn.Leaky(beta=0.75, threshold=0.5, init_hidden=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 4 * 4, 10, bias=False))


def test_max_pooling_network_imports_with_or_pooling():
    graph, route = snntorch_graph(_net(), torch.zeros(SAMPLE))
    assert "extract_nir_graph" in route  # export_to_nir drops MaxPool2d in snnTorch 1.0.0
    kinds = {k: type(n).__name__ for k, n in graph.nodes.items()}
    assert kinds["2"] == "AvgPool2d" and kinds["2_or"] == "Threshold"
    assert ("2", "2_or") in graph.edges and ("2_or", "3") in graph.edges
    model, report = from_snntorch(_net(), torch.zeros(SAMPLE),
                                  ImportOptions(approximate=True, membrane_bits=24))
    assert [x.type for x in model.layers] == ["conv", "pool", "conv", "pool", "linear"]
    assert [x.leak_shift for x in model.lif_layers] == [3, 2]
    assert any("reset_mechanism='subtract', reset_delay=True" in n for n in report.notes)
    assert not any("pool" in a.lower() for a in report.approximations)  # OR is exact
    # without --approximate the float weights and the reset are refused, naming the node
    with pytest.raises(NIRImportError, match=r"node '0' \(Conv2d\): float weights"):
        from_snntorch(_net(), torch.zeros(SAMPLE))


def test_max_pool_of_spikes_is_the_golden_or_pooling():
    """torch's MaxPool2d(2) on 0/1 spikes equals the integer model's OR pooling, bit for
    bit (the mapping MaxPool2d -> AvgPool2d + Threshold(0) relies on it)."""
    rng = np.random.default_rng(0)
    for rate in (0.05, 0.3, 0.7):
        s = (rng.random((6, 4, 5, 8, 8)) < rate).astype(np.uint8)  # [N, T, C, H, W]
        flat = torch.as_tensor(s.reshape(-1, 5, 8, 8), dtype=torch.float32)
        mx = torch.nn.MaxPool2d(2)(flat).numpy().reshape(6, 4, 5, 4, 4)
        avg = torch.nn.AvgPool2d(2)(flat).numpy().reshape(6, 4, 5, 4, 4) > 0
        assert np.array_equal(mx, golden.pool_or(s)) and np.array_equal(avg, mx)


def test_bias_becomes_the_integer_bias():
    """A float bias comes in as ``rint(b * s / unit)``, the weights' scale over the input
    unit, and the rounding is listed as an approximation."""
    net = _net(bias=True)
    model, report = from_snntorch(net, torch.zeros(SAMPLE),
                                  ImportOptions(approximate=True, membrane_bits=24))
    first = model.layers[0]
    assert first.has_bias and not any(x.has_bias for x in model.layers[1:])
    w = net[0].weight.detach().numpy()
    s = (2 ** (first.weight_bits - 1) - 1) / np.abs(w).max()
    want = np.rint(net[0].bias.detach().numpy().astype(np.float64) * s / model.input.scale)
    assert np.array_equal(model.biases[first.name], want)
    assert any("bias rounded" in a for a in report.approximations)


def test_average_pooling_is_still_refused():
    with pytest.raises(NIRImportError, match=r"node '2' \(AvgPool2d\).*OR"):
        from_snntorch(_net(pool="avg"), torch.zeros(SAMPLE),
                      ImportOptions(approximate=True, membrane_bits=24))


def test_worked_example_snntorch_model_to_estimate(tmp_path, capsys):
    """docs/nir.md's worked example: an snnTorch CIFAR-10 network -> model file -> estimate."""
    import json

    from dietsnn.cli import main
    from dietsnn.data import DataError, load_cifar10
    from dietsnn.model import InputSpec

    try:
        load_cifar10("test", download=False, progress=False)
    except DataError as e:
        pytest.skip(f"CIFAR-10 test images are not available: {e}")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        snn.Leaky(beta=0.875, threshold=1.0, init_hidden=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1, bias=False),
        snn.Leaky(beta=0.75, threshold=1.0, init_hidden=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 8 * 8, 10, bias=False))
    spec = InputSpec(shape=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465),
                     std=(0.2470, 0.2435, 0.2616), scale=1 / 32, bits=8)
    model, report = from_snntorch(net, torch.zeros(1, 3, 32, 32), ImportOptions(
        approximate=True, membrane_bits=24, timesteps=5, name="my_snn", input=spec))
    path = model.save(tmp_path / "my_snn.npz")
    assert main(["estimate", "--model", str(path), "--images", "20", "--no-synth",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"]["name"] == "my_snn" and r["selection"]["count"] == 20
    assert r["energy"]["ann_macs"] > 0 and r["accuracy"]["images"] == 20
