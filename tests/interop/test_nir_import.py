"""Importing NIR graphs made elsewhere: exact mappings, approximations, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir", reason="the NIR tests need the interop extra (nir)")
from dietsnn import golden  # noqa: E402
from dietsnn.cli import main  # noqa: E402
from dietsnn.nirio.importer import ImportOptions, NIRImportError, from_nir  # noqa: E402

# snnTorch 1.0.0 exports through nirtorch.extract_nir_graph, which nirtorch 2.6 deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning")

DT = 1e-4
RNG = np.random.default_rng(7)


def _lif(shape, k: int, theta: float, **meta):
    f = lambda v: np.full(shape, float(v))  # noqa: E731
    return nir.LIF(tau=f(DT * 2 ** k), r=f(2 ** k), v_leak=f(0), v_threshold=f(theta),
                   v_reset=f(0), metadata=meta)


def _graph(*nodes: tuple[str, nir.NIRNode], shape=(2, 8, 8), metadata=None) -> nir.NIRGraph:
    all_nodes = {"input": nir.Input(input_type={"input": np.array(shape)}), **dict(nodes)}
    last = list(all_nodes)[-1]
    out = all_nodes[last].output_type["output"] if all_nodes[last].output_type else None
    all_nodes["output"] = nir.Output(output_type={"output": np.array(out)})
    names = list(all_nodes)
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(names[:-1], names[1:], strict=True)),
                        metadata=metadata or {}, type_check=False)


def _conv(c_in=2, c_out=3, **kw):
    w = RNG.integers(-20, 21, (c_out, c_in, 3, 3)).astype(np.float32)
    args = dict(input_shape=(8, 8), weight=w, stride=1, padding=1, dilation=1, groups=1,
                bias=np.zeros(c_out, np.float32))
    args.update(kw)
    return nir.Conv2d(**args)


def _foreign_exact_graph():
    """A hand-made graph that maps exactly: integer weights, beta = 1 - 2^-2, subtract reset
    stated in node metadata, OR pooling as SumPool2d + Threshold, an integrator readout."""
    fc_w = RNG.integers(-9, 10, (4, 3 * 4 * 4)).astype(np.float32)
    return _graph(
        ("c", _conv()),
        ("n", _lif((3, 8, 8), 2, 40.0, reset="subtract")),
        ("p", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                            padding=np.array([0, 0]))),
        ("t", nir.Threshold(threshold=np.full((3, 4, 4), 0.5))),
        ("f", nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0)),
        ("l", nir.Linear(weight=fc_w)),
        ("i", nir.I(r=np.full(4, 1 / DT))),
    )


def test_foreign_graph_maps_exactly():
    g = _foreign_exact_graph()
    spec_unit = 1 / 127  # default input quantisation: graph input = q / 127
    m, report = from_nir(g, ImportOptions(timesteps=4, name="hand"))
    assert report.exact and report.source == "foreign"
    assert [x.type for x in m.layers] == ["conv", "pool", "linear"]
    conv = m.layers[0]
    assert conv.leak_shift == 2 and conv.membrane_bits == 16
    assert conv.threshold == round(40 / spec_unit)  # current in q units is 127x the graph's
    assert np.array_equal(m.weights[conv.name], g.nodes["c"].weight.astype(np.int8))
    assert np.array_equal(m.weights["fc1"], g.nodes["l"].weight.astype(np.int8))
    assert m.timesteps == 4 and m.name == "hand" and m.classes == ("class0", "class1",
                                                                   "class2", "class3")
    golden.run(m, np.zeros((1, 2, 8, 8), np.int8))  # a valid, runnable model


def test_bigger_integer_weights_choose_a_wider_type():
    g = _graph(("c", _conv(weight=np.full((3, 2, 3, 3), 300, np.float32))),
               ("n", _lif((3, 8, 8), 1, 1000.0, reset="subtract")),
               ("f", nir.Flatten(input_type={"input": np.array([3, 8, 8])}, start_dim=0)),
               ("l", nir.Linear(weight=np.ones((2, 192), np.float32))))
    m, report = from_nir(g, ImportOptions(input=None, membrane_bits=24))
    assert m.layers[0].weight_bits == 10 and m.weights["conv1"].dtype == np.int16
    assert any("sums it over T" in n for n in report.notes)


@pytest.mark.parametrize(("nodes", "node", "phrase"), [
    ([("c", _conv(stride=2))], "'c' (Conv2d)", "stride"),
    ([("c", _conv(bias=np.array([np.nan, 0, 0], np.float32)))], "'c' (Conv2d)",
     "bias must be finite"),
    ([("c", _conv()), ("n", nir.CubaLIF(tau_syn=np.ones(1), tau_mem=np.ones(1), r=np.ones(1),
                                        v_leak=np.zeros(1), v_threshold=np.ones(1)))],
     "'n' (CubaLIF)", "not LIF or IF"),
    ([("c", _conv()), ("n", nir.LIF(tau=np.full(1, 2 * DT), r=np.full(1, 2.0),
                                    v_leak=np.ones(1), v_threshold=np.ones(1)))],
     "'n' (LIF)", "v_leak"),
    ([("c", _conv()), ("n", _lif((3, 8, 8), 1, 1.0)),
      ("p", nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                          padding=np.array([0, 0])))],
     "'p' (AvgPool2d)", "OR"),
    ([("c", _conv()), ("n", _lif((3, 8, 8), 1, 1.0)), ("d", nir.Delay(delay=np.ones(1)))],
     "'d' (Delay)", "cannot be represented"),
])
def test_unrepresentable_nodes_are_named(nodes, node, phrase):
    with pytest.raises(NIRImportError) as e:
        from_nir(_graph(*nodes), ImportOptions(approximate=True))
    assert node in str(e.value) and phrase in str(e.value)


def test_branching_and_recurrence_are_refused():
    g = _foreign_exact_graph()
    g.edges.append(("c", "l"))
    with pytest.raises(NIRImportError, match="'l' .* 2 inputs|'c' .* 2 successors"):
        from_nir(g)
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                              "output": nir.Output(output_type={"output": np.array([3])})},
                       edges=[("input", "output")], type_check=False)
    g = _graph(("rnn", sub), shape=(3,))
    with pytest.raises(NIRImportError, match="'rnn' .*subgraph"):
        from_nir(g)


def _snntorch_graph(beta: float, *, pool: bool = False):
    """A small snnTorch network (Leaky neurons) exported through snnTorch's own NIR converter.

    snnTorch 1.0.0's ``export_to_nir`` ends with ``graph.infer_types()``, which fails under
    nir 1.0.8 for every Leaky layer (it writes scalar neuron parameters, shape ``[]``); the
    graph is built by the same call minus that last step.
    """
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    nirtorch = pytest.importorskip("nirtorch")
    from snntorch.export_nir import _extract_snntorch_module

    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 4, 3, padding=1, bias=False),
              snn.Leaky(beta=beta, threshold=0.5, init_hidden=True)]
    if pool:
        layers.append(torch.nn.AvgPool2d(2))
    layers += [torch.nn.Flatten(), torch.nn.Linear(4 * (16 if pool else 64), 10, bias=False),
               snn.Leaky(beta=0.9, init_hidden=True, output=True)]
    net = torch.nn.Sequential(*layers)
    return nirtorch.extract_nir_graph(
        net, _extract_snntorch_module, torch.randn(1, 3, 8, 8), model_name="snntorch",
        ignore_submodules_of=[snn.RLeaky, snn.RSynaptic], ignore_dims=[0])


def test_snntorch_graph_needs_approximation_and_says_why():
    g = _snntorch_graph(0.875)
    with pytest.raises(NIRImportError, match=r"node '0' \(Conv2d\): float weights"):
        from_nir(g)
    m, report = from_nir(g, ImportOptions(approximate=True, membrane_bits=24))
    text = "\n".join(report.approximations)
    assert "reset to v_reset = 0 read as reset by subtraction" in text
    assert "readout neuron" in text and "float weights" in text
    assert "leak factor" not in text  # 0.875 = 1 - 2^-3 exactly
    conv = m.layers[0]
    assert conv.leak_shift == 3 and m.layers[-1].output
    assert np.abs(m.weights[conv.name]).max() == 127
    assert m.provenance["approximations"] == report.approximations


def test_snntorch_graph_leak_is_rounded_to_a_shift():
    _, report = from_nir(_snntorch_graph(0.9), ImportOptions(approximate=True,
                                                             membrane_bits=24))
    assert any("beta = 1 - dt/tau = 0.9 rounded to 1 - 2^-3" in a
               for a in report.approximations)


def test_snntorch_average_pooling_is_refused():
    with pytest.raises(NIRImportError, match=r"node '2' \(AvgPool2d\).*OR"):
        from_nir(_snntorch_graph(0.875, pool=True), ImportOptions(approximate=True,
                                                                   membrane_bits=24))


def test_cli_import_of_a_foreign_file(tmp_path, capsys):
    path = tmp_path / "hand.nir"
    nir.write(path, _foreign_exact_graph())
    out = tmp_path / "hand.npz"
    assert main(["import-nir", "--in", str(path), "--out", str(out), "--timesteps", "3",
                 "--input-mean", "0.5,0.5", "--input-std", "0.25,0.25", "--input-scale",
                 "0.125", "--classes", "a,b,c,d", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["exact"] and info["source"] == "foreign" and info["timesteps"] == 3
    from dietsnn.model import load
    m = load(out)
    assert m.input.mean == (0.5, 0.5) and m.input.scale == 0.125
    assert m.layers[0].threshold == 40 * 8  # graph current / input scale
    assert m.classes == ("a", "b", "c", "d")
    assert main(["import-nir", "--in", str(path), "--out", str(out), "--input-mean", "0"]) == 1
    assert "together" in capsys.readouterr().err


def test_bad_metadata_and_weights_are_one_line_errors(tmp_path):
    """``dt = "abc"`` in the graph metadata and an infinite weight: one clear line, exit 1."""
    import subprocess
    import sys

    import nir
    import numpy as np

    exe = [sys.executable, "-m", "dietsnn.cli"]
    src = tmp_path / "t.nir"
    from dietsnn.model import load_model
    from dietsnn.nirio.export import to_nir
    nir.write(str(src), to_nir(load_model("tiny")))
    g = nir.read(str(src))
    g.metadata["dt"] = "abc"
    nir.write(str(tmp_path / "dt.nir"), g)
    g = nir.read(str(src))
    node = next(n for n in g.nodes.values() if hasattr(n, "weight"))
    w = np.array(node.weight, dtype=float)
    w.flat[0] = np.inf
    node.weight = w
    nir.write(str(tmp_path / "inf.nir"), g)
    for name, msg in (("dt.nir", "'dt' must be a finite positive number"),
                      ("inf.nir", "weights must be finite numbers")):
        r = subprocess.run([*exe, "import-nir", "--in", str(tmp_path / name), "--out",
                            str(tmp_path / "m.npz")], capture_output=True, text=True)
        assert r.returncode == 1 and msg in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
