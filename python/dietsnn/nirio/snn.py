"""Run a NIR graph in snnTorch, through snnTorch's own NIR importer.

snnTorch's ``import_from_nir`` is ``nirtorch.nir_to_torch(graph, node_map)`` where the node
map sends each NIR node through ``snntorch.import_nir._nir_to_snntorch_module``. This module
uses the same converter for every node it handles correctly and extends the node map where
snnTorch 1.0.0's importer has no entry or a known defect (each documented in docs/nir.md):

- ``LIF``: snnTorch computes ``beta = 1 - dt / tau`` (dt = 1e-4) and the threshold itself, but
  always builds ``reset_mechanism="zero"``; a node whose metadata says ``reset: subtract`` is
  rebuilt as the same ``snn.Leaky`` with subtract reset.
- ``IF``: snnTorch builds ``snn.Leaky(beta=0.9)`` and rejects ``r != 1``; an IF node is
  ``v <- v + r dt I``, i.e. ``snn.Leaky(beta=1, threshold=v_threshold / (r dt))``.
- ``Flatten``: NIR counts dimensions without the batch; ``torch.nn.Flatten`` counts it.
- ``Threshold`` (OR pooling after ``AvgPool2d``) and ``I`` (the output accumulator) have no
  entry: a Heaviside ``x > threshold`` and a stateful integrator ``v <- v + r dt x``.

Neurons are snnTorch's own ``snn.Leaky`` (``reset_delay=False``, hidden state inside).

:func:`stock_module` is snnTorch's ``import_from_nir`` itself, unchanged, for graphs written
with ``export-nir --snntorch`` (only nodes it converts; the output is the output layer's
current each step, summed over T here). It always builds ``reset_mechanism="zero"``;
:func:`set_reset` rebuilds the hidden neurons with another snnTorch reset setting.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import nir
import nirtorch
import numpy as np
import snntorch as snn
import torch
from snntorch.import_nir import _nir_to_snntorch_module

#: The time step snnTorch's importer assumes (``dt = 1e-4`` in ``import_nir.py``).
SNNTORCH_DT = 1e-4


class Heaviside(torch.nn.Module):
    """NIR ``Threshold``: ``z = 1 if x > threshold else 0`` (strict), elementwise."""

    def __init__(self, threshold: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(np.asarray(threshold),
                                                          dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Integrator(torch.nn.Module):
    """NIR ``I`` stepped with ``dt``: ``v <- v + r dt x``; state passed by nirtorch."""

    def __init__(self, gain: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("gain", torch.as_tensor(np.asarray(gain), dtype=torch.float32))

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = x * self.gain if state is None else state + x * self.gain
        return v, v


def _uniform(values: Any, what: str, node_name: str) -> float:
    u = np.unique(np.asarray(values, dtype=np.float64))
    if u.size != 1:
        raise ValueError(f"node {node_name!r}: snnTorch needs one {what} per layer, "
                         f"found {u.size} different values")
    return float(u[0])


def _leaky(beta: float | torch.Tensor, threshold: float, reset: str, *,
           reset_delay: bool = False) -> snn.Leaky:
    return snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True,
                     reset_delay=reset_delay)


def _map_lif(node: nir.LIF) -> torch.nn.Module:
    mod = _nir_to_snntorch_module(node, init_hidden=True)  # snnTorch's own conversion
    if node.metadata.get("reset") == "subtract":
        mod = _leaky(mod.beta.detach().clone(), float(mod.threshold), "subtract")
    return mod


def _map_if(node: nir.IF) -> torch.nn.Module:
    gain = _uniform(node.r, "r", "IF") * SNNTORCH_DT
    thr = _uniform(node.v_threshold, "v_threshold", "IF") / gain
    if node.metadata.get("reset") == "subtract":
        # With beta = 1 snnTorch's delayed subtract reset (m <- m + I - theta * s_prev,
        # spike on m > theta) is the integer rule exactly; its immediate reset skips a spike
        # when the membrane left above threshold after a reset meets a small current.
        return _leaky(1.0, thr, "subtract", reset_delay=True)
    return _leaky(1.0, thr, "zero")


def _map_flatten(node: nir.Flatten) -> torch.nn.Module:
    shift = lambda d: d + 1 if d >= 0 else d  # noqa: E731 - skip the batch dimension
    return torch.nn.Flatten(shift(int(node.start_dim)), shift(int(node.end_dim)))


def node_map() -> dict[type, Any]:
    """snnTorch's NIR node map (as in ``import_from_nir``) with the extensions listed above."""
    snntorch_map = {
        cls: (lambda n: _nir_to_snntorch_module(n, init_hidden=True))
        for cls in (nir.Affine, nir.Linear, nir.Conv2d, nir.AvgPool2d, nir.CubaLIF)
    }
    return {**snntorch_map, nir.LIF: _map_lif, nir.IF: _map_if, nir.Flatten: _map_flatten,
            nir.Threshold: lambda n: Heaviside(n.threshold),
            nir.I: lambda n: Integrator(np.asarray(n.r) * SNNTORCH_DT)}


def snntorch_module(graph: nir.NIRGraph) -> torch.nn.Module:
    """An executable snnTorch network (a ``torch.fx.GraphModule``) for ``graph``.

    Call it once per time step: ``out, state = net(x, state)`` (``state=None`` first).
    """
    dt = float(graph.metadata.get("dt", SNNTORCH_DT))
    if not np.isclose(dt, SNNTORCH_DT, rtol=1e-12, atol=0):
        raise ValueError(f"the graph's time step is dt = {dt} s but snnTorch's NIR importer "
                         f"assumes dt = {SNNTORCH_DT} s; export with the default dt")
    return nirtorch.nir_to_torch(graph, node_map())


#: snnTorch reset settings measured against the golden model: (reset_mechanism, reset_delay).
RESET_SETTINGS = (("zero", False), ("zero", True), ("subtract", False), ("subtract", True))


def stock_module(graph: nir.NIRGraph) -> torch.nn.Module:
    """snnTorch's own ``snntorch.import_nir.import_from_nir(graph)``, unchanged (its progress
    prints are swallowed). For graphs from ``to_nir(model, snntorch=True)``."""
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):
        return import_from_nir(graph)


def hidden_neurons(net: torch.nn.Module, graph: nir.NIRGraph) -> list[str]:
    """Names of the modules of ``net`` that are the model's hidden LIF layers (the graph's
    neuron nodes written for a dietsnn layer, not the OR-pooling thresholds)."""
    return [k for k, n in graph.nodes.items()
            if isinstance(n, (nir.LIF, nir.IF)) and "leak_shift" in (n.metadata or {})
            and isinstance(getattr(net, k, None), snn.Leaky)]


def set_reset(net: torch.nn.Module, graph: nir.NIRGraph, reset: str,
              reset_delay: bool) -> list[str]:
    """Rebuild every hidden ``snn.Leaky`` of ``net`` with the same beta and threshold and the
    given ``reset_mechanism`` (``"zero"`` or ``"subtract"``) and ``reset_delay``; returns the
    module names changed."""
    names = hidden_neurons(net, graph)
    for k in names:
        mod = getattr(net, k)
        setattr(net, k, _leaky(mod.beta.detach().clone(), mod.threshold.detach().clone(), reset,
                               reset_delay=reset_delay))
    return names


def reset_neurons(net: torch.nn.Module) -> None:
    """Zero the membranes of every snnTorch neuron in ``net`` (between input batches)."""
    for m in net.modules():
        if isinstance(m, snn.SpikingNeuron) and hasattr(m, "reset_mem"):
            m.reset_mem()


@torch.no_grad()
def run_snntorch(net: torch.nn.Module, q: np.ndarray, timesteps: int, *,
                 batch: int = 32, accumulate: bool = False) -> np.ndarray:
    """Run ``net`` for ``timesteps`` steps on inputs ``q`` ``[N, ...]`` (the same input every
    step); returns the graph output after the last step (``accumulate``: its sum over the
    steps), float64 ``[N, ...]``.
    """
    outs = []
    for i in range(0, len(q), batch):
        x = torch.as_tensor(np.asarray(q[i:i + batch]), dtype=torch.float32)
        reset_neurons(net)
        state, total = None, 0.0
        for _ in range(timesteps):
            y, state = net(x, state)
            total = total + y.double()
        outs.append((total if accumulate else y.double()).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))


@torch.no_grad()
def compare_with_golden(model: Any, q: np.ndarray, *, graph: nir.NIRGraph | None = None,
                        batch: int = 32, keep: bool = False, stock: bool = False,
                        reset: str | None = None, reset_delay: bool = False
                        ) -> dict[str, Any]:
    """Run ``model`` as exported to NIR in snnTorch and compare with the golden model.

    Parameters
    ----------
    model : a :class:`dietsnn.model.Model`.
    q : quantised images ``[N, C, H, W]`` (``model.input.quantize``).
    graph : the NIR graph to run (default: ``to_nir(model)``, or ``to_nir(model,
        snntorch=True)`` with ``stock``).
    stock : import with snnTorch's own ``import_from_nir`` (:func:`stock_module`) instead of
        the extended node map (:func:`snntorch_module`).
    reset, reset_delay : rebuild the hidden neurons with this snnTorch reset setting
        (:func:`set_reset`); ``reset`` None keeps what the importer built.

    Returns
    -------
    A JSON-ready dict: ``images``, ``agreement`` (fraction of equal predictions),
    ``logits_equal`` (fraction of images whose T-step output equals the integer logits
    exactly), ``max_abs_logit_diff``, ``spike_agreement`` per hidden layer (fraction of equal
    spike bits over all steps and neurons), ``prediction`` and ``golden_prediction`` lists;
    with ``keep``, also ``logits`` (float64 ``[N, K]``) and ``spikes`` (per LIF layer, uint8
    ``[N, T, ...]``) from snnTorch, which are not JSON.
    """
    from .. import golden
    from .export import to_nir

    graph = to_nir(model, snntorch=stock) if graph is None else graph
    net = stock_module(graph) if stock else snntorch_module(graph)
    if reset is not None:
        set_reset(net, graph, reset, reset_delay)
    accumulate = (graph.metadata or {}).get("flavour") == "snntorch"
    t_steps = model.timesteps
    lif_names = {f"{x.name}_lif": x.name for x in model.lif_layers}
    spikes: dict[str, list[torch.Tensor]] = {k: [] for k in lif_names.values()}

    def hook(name: str) -> Any:
        return lambda _m, _i, out: spikes[name].append(out.detach().to(torch.uint8).clone())

    handles = [getattr(net, k).register_forward_hook(hook(v)) for k, v in lif_names.items()
               if hasattr(net, k)]
    try:
        logits = run_snntorch(net, q, t_steps, batch=batch, accumulate=accumulate)
        logits = logits.reshape(len(logits), -1)
    finally:
        for h in handles:
            h.remove()
    ref = golden.run(model, q, record={"spikes"}, batch=batch)
    agree: dict[str, float] = {}
    kept: dict[str, np.ndarray] = {}
    for name, parts in spikes.items():
        # hooks fire per batch and step: regroup to [N, T, ...] like the golden record
        per_batch = [torch.stack(parts[i:i + t_steps], dim=1)
                     for i in range(0, len(parts), t_steps)]
        kept[name] = torch.cat(per_batch).numpy().reshape(ref.spikes[name].shape)
        agree[name] = float(np.mean(kept[name] == ref.spikes[name]))
    pred = np.argmax(logits, axis=1)
    extra = {"logits": logits, "spikes": kept} if keep else {}
    return {**extra,
        "images": int(len(q)),
        "agreement": float(np.mean(pred == ref.prediction)) if len(q) else 1.0,
        "logits_equal": float(np.mean(np.all(logits == ref.logits, axis=1))) if len(q) else 1.0,
        "max_abs_logit_diff": float(np.abs(logits - ref.logits).max(initial=0.0)),
        "spike_agreement": agree,
        "prediction": pred.tolist(),
        "golden_prediction": ref.prediction.tolist(),
    }


# --------------------------------------------------------------------------------------------
# snnTorch network -> NIR graph -> integer model
# --------------------------------------------------------------------------------------------
def _extract_module(module: torch.nn.Module) -> Any:
    """snnTorch's own module converter (``snntorch.export_nir._extract_snntorch_module``),
    plus ``MaxPool2d``: written as ``AvgPool2d`` marked for an OR threshold (inserted by
    :func:`snntorch_graph`); on 0/1 spikes the maximum of a window is its OR."""
    from snntorch.export_nir import _extract_snntorch_module

    if isinstance(module, torch.nn.MaxPool2d):
        pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
        if module.dilation not in (1, (1, 1)) or module.ceil_mode:
            raise ValueError(f"MaxPool2d with dilation {module.dilation} / ceil_mode "
                             f"{module.ceil_mode}: the integer model pools 2x2, stride 2")
        return nir.AvgPool2d(kernel_size=pair(module.kernel_size),
                             stride=pair(module.stride or module.kernel_size),
                             padding=pair(module.padding),
                             metadata={"pooling": "max", "source": "torch.nn.MaxPool2d"})
    return _extract_snntorch_module(module)


def _or_after_max_pools(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Insert ``Threshold(0)`` after every node written for a ``MaxPool2d``."""
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for name, node in graph.nodes.items():
        if (node.metadata or {}).get("pooling") != "max":
            continue
        t = f"{name}_or"
        nodes[t] = nir.Threshold(threshold=np.zeros(1), metadata={
            "pooling": "max", "rule": "max of 0/1 spikes = OR = Threshold(0) of their mean"})
        edges = [(t, b) if a == name else (a, b) for a, b in edges] + [(name, t)]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}),
                        type_check=False)


def snntorch_graph(net: torch.nn.Module, sample: torch.Tensor) -> tuple[nir.NIRGraph, str]:
    """The NIR graph of an snnTorch network, and how it was made.

    ``snntorch.export_to_nir(net, sample)`` when it succeeds and converts every module; else
    (snnTorch 1.0.0 fails on every ``snn.Leaky`` network, and drops ``MaxPool2d``) the same
    converter through ``nirtorch.extract_nir_graph`` without the failing type inference,
    with ``MaxPool2d`` as OR pooling (``AvgPool2d`` then ``Threshold(0)``, exact on spikes).
    ``sample`` is one input batch, e.g. ``torch.zeros(1, 3, 32, 32)``.
    """
    from snntorch.export_nir import export_to_nir

    has_max = any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    if not has_max:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                graph = export_to_nir(net, sample)
            if all(n is not None for n in graph.nodes.values()):
                return graph, "snntorch.export_to_nir"
        except Exception:  # noqa: BLE001 - snnTorch 1.0.0 raises several kinds here
            pass
    with contextlib.redirect_stdout(io.StringIO()):
        graph = nirtorch.extract_nir_graph(
            net, _extract_module, sample, model_name="snntorch",
            ignore_submodules_of=[snn.RLeaky, snn.RSynaptic], ignore_dims=[0])
    missing = [k for k, n in graph.nodes.items() if n is None]
    if missing:
        kinds = {k: type(dict(net.named_modules()).get(k)).__name__ for k in missing}
        raise ValueError(f"module(s) {kinds} have no NIR equivalent in snnTorch's converter")
    return _or_after_max_pools(graph), ("snntorch's converter via nirtorch.extract_nir_graph"
                                        " (export_to_nir fails on this network)")


def from_snntorch(net: torch.nn.Module, sample: torch.Tensor, options: Any = None
                  ) -> tuple[Any, Any]:
    """Import an snnTorch network as an integer model: :func:`snntorch_graph`, then
    :func:`dietsnn.nirio.importer.from_nir`. Returns ``(model, report)``.

    ``options`` is an :class:`~dietsnn.nirio.importer.ImportOptions`; snnTorch networks
    need ``approximate=True`` (float weights, reset to ``v_reset = 0``). Every ``snn.Leaky``
    reset setting is listed in ``report.notes`` (docs/nir.md: reset timing).

    Raises
    ------
    NIRImportError : a module cannot be represented (for example a bias), naming its node
        (the module's name in ``net``).
    """
    from .importer import NIRImportError, from_nir

    try:
        graph, route = snntorch_graph(net, sample)
    except ValueError as e:
        raise NIRImportError(str(e)) from None
    model, report = from_nir(graph, options, source_name="snntorch")
    report.notes.append(f"graph made by {route}")
    for name, mod in net.named_modules():
        if isinstance(mod, snn.Leaky):
            report.notes.append(
                f"snnTorch layer {name!r}: reset_mechanism={mod.reset_mechanism!r}, "
                f"reset_delay={mod.reset_delay}; the integer model subtracts the threshold "
                f"right after the spike (docs/nir.md, reset timing)")
    return model, report
