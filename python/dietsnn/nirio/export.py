"""Integer model -> NIR graph (``dietsnn export-nir``).

The mapping (the full table with equations is in ``docs/nir.md``), for a time step ``dt``
(default :data:`DEFAULT_DT` = 1e-4 s, the value snnTorch and nirtorch assume)::

    Input            the quantised image q (InputSpec.quantize), floats holding int8 values,
                     presented unchanged at every time step
    conv  (LIF)      Conv2d(3x3, stride 1, padding 1, weight = integer W, bias = integer b or 0)
                     -> LIF(tau = dt * 2^k, r = 2^k, v_leak = 0, v_threshold = theta)  (k >= 1)
                     -> IF(r = 1 / dt, v_threshold = theta)                            (k = 0)
    pool             AvgPool2d(2, 2) -> Threshold(0): the mean of 4 spikes is > 0 exactly when
                     one of them is 1, so this pair is OR pooling, bit for bit
    linear (LIF)     [Flatten] -> Linear(weight = integer W) -> LIF / IF as for conv
                     (Affine(weight = W, bias = integer b) for a layer with a bias)
    output           [Flatten] -> Linear | Affine(as above) -> I(r = 1 / dt) -> Output
                     (the integrator is the accumulator V <- V + I_t)

With these values the forward-Euler step of NIR's equations ``tau dv/dt = (v_leak - v) + r I``
is ``v <- (1 - 2^-k) v + I``: the float image of the integer ``U <- U - (U >>> k) + I``
(which equals ``ceil((1 - 2^-k) U) + I``). What NIR's continuous-time nodes cannot say (the
subtract reset, the membrane saturation to B bits, the shift leak and its rounding, the bit
widths, the input quantisation, T, the class names) goes into node and graph metadata, so
:func:`dietsnn.nirio.importer.from_nir` rebuilds the identical model file.

``snntorch=True`` writes the same network with only the nodes snnTorch's own importer
(``snntorch.import_nir.import_from_nir``, snnTorch 1.0.0) converts, each an exact equivalent::

    IF (k = 0)       LIF(tau = dt * 2^60, r = 2^60): beta = 1 - 2^-60 is 1.0 in float64
    Threshold(0)     LIF(tau = dt, r = 1, v_threshold = 1/8, v_reset = 0): beta = 0, so the
                     membrane is the pooled input itself and it spikes when that is > 1/8,
                     i.e. > 0 (the average of 4 spikes is a multiple of 1/4)
    Flatten+Linear   Conv2d with a kernel the size of its input map (no padding): the same dot
                     products, in C, H, W order; a Linear after a Linear is a 1x1 Conv2d
                     (snnTorch's Flatten counts the batch dimension, NIR's does not)
    I (readout)      left out: the graph outputs the output layer's current every step and
                     the caller sums it over the T steps (the output is [K, 1, 1])

``dt`` must be 1e-4 s (snnTorch hard-codes it). The neuron reset is the one thing snnTorch's
importer does not take from the graph (it always builds ``reset_mechanism="zero"``); see
``docs/nir.md`` for the measured effect of each snnTorch reset setting.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import nir
import numpy as np

from ..fileio import atomic_path
from ..model import Layer, Model
from . import DEFAULT_DT, GRAPH_FORMAT, RESET_SUBTRACT


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("dietsnn")
    except Exception:  # noqa: BLE001 - not installed: the source tree's version is unknown
        return "unknown"


def lif_params(layer: Layer, dt: float) -> dict[str, Any]:
    """NIR parameters of a hidden layer's neurons, as arrays of the layer's output shape.

    ``k >= 1`` gives a ``LIF`` with ``tau = dt * 2^k`` and ``r = tau / dt = 2^k`` (so the
    current enters with gain ``r dt / tau = 1`` and the leak factor is ``1 - dt / tau =
    1 - 2^-k``); ``k = 0`` (no leak) gives an ``IF`` with ``r = 1 / dt`` (``v <- v + I``).
    """
    shape = layer.out_shape
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    k = layer.leak_shift
    if k:
        tau = dt * 2.0 ** k
        return {"tau": full(tau), "r": full(2.0 ** k), "v_leak": full(0.0),
                "v_threshold": full(float(layer.threshold)), "v_reset": full(0.0)}
    return {"r": full(1.0 / dt), "v_threshold": full(float(layer.threshold)),
            "v_reset": full(0.0)}


def _neuron_meta(layer: Layer) -> dict[str, Any]:
    b, k = layer.membrane_bits, layer.leak_shift
    return {
        "dietsnn_layer": layer.name,
        "reset": RESET_SUBTRACT,
        "reset_rule": "U <- U - theta * s (subtract the threshold; v_reset is unused)",
        "threshold_compare": "strict: s = U > theta",
        "leak_shift": k,
        "leak_rule": (f"U <- U - (U >>> {k}) = ceil((1 - 2^-{k}) U), arithmetic shift"
                      if k else "none (k = 0)"),
        "membrane_bits": b,
        "saturation": f"U <- clip(U, -2^{b - 1}, 2^{b - 1} - 1) after adding the current",
    }


def _weights(model: Model, layer: Layer) -> np.ndarray:
    return model.weights[layer.name].astype(np.float32)


def _bias(model: Model, layer: Layer) -> np.ndarray:
    """The integer bias as floats (zeros without one): float32, or float64 where a value
    needs more than float32's 24 bits."""
    b = model.bias(layer)
    return b.astype(np.float32 if np.abs(b).max(initial=0) < 2 ** 24 else np.float64)


def _dense_meta(layer: Layer) -> dict[str, Any]:
    """Node metadata of a conv or linear layer: its name and the widths of W and b."""
    meta: dict[str, Any] = {"dietsnn_layer": layer.name, "weight_bits": layer.weight_bits}
    if layer.has_bias:
        meta["bias_bits"] = layer.bias_bits
    return meta


#: ``log2(tau / dt)`` of the LIF that stands for an IF in the snnTorch flavour: large enough
#: that ``1 - dt / tau`` rounds to exactly 1.0 in float64.
IF_AS_LIF_SHIFT = 60
#: Threshold of the memoryless LIF that stands for OR pooling's ``Threshold(0)`` in the
#: snnTorch flavour: between 0 and the smallest non-zero average of four spikes (1/4).
OR_THRESHOLD = 0.125


def _snntorch_neuron(layer: Layer, dt: float) -> nir.LIF:
    """The hidden neurons as a NIR ``LIF`` only (snnTorch maps ``IF`` to ``beta = 0.9``), of
    shape ``[F, 1, 1]`` after a linear layer (written as a convolution)."""
    shape = layer.out_shape if len(layer.out_shape) == 3 else (layer.out_shape[0], 1, 1)
    p = {k: v.reshape(shape) for k, v in lif_params(layer, dt).items()}
    if layer.leak_shift:
        return nir.LIF(**p, metadata=_neuron_meta(layer))
    big = 2.0 ** IF_AS_LIF_SHIFT
    return nir.LIF(tau=np.full(shape, dt * big), r=np.full(shape, big),
                   v_leak=np.zeros(shape), v_threshold=p["v_threshold"],
                   v_reset=np.zeros(shape),
                   metadata={**_neuron_meta(layer), "if_as_lif":
                             f"IF written as LIF with tau = dt * 2^{IF_AS_LIF_SHIFT} (beta = 1.0 "
                             f"in float64), r = tau / dt (current gain 1)"})


def _dense_as_conv(model: Model, layer: Layer, shape: tuple[int, ...]) -> nir.Conv2d:
    """A linear layer as the equivalent Conv2d over its whole input map (snnTorch flavour)."""
    c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
    f_out = layer.out_shape[0]
    return nir.Conv2d(
        input_shape=(h, w), weight=_weights(model, layer).reshape(f_out, c, h, w),
        stride=1, padding=0, dilation=1, groups=1, bias=_bias(model, layer),
        metadata={**_dense_meta(layer),
                  "linear_as_conv": f"Linear {f_out}x{c * h * w} (flattened C, H, W) as a "
                                    f"{h}x{w} convolution without padding"})


def to_nir(model: Model, *, dt: float = DEFAULT_DT, snntorch: bool = False) -> nir.NIRGraph:
    """The NIR graph of ``model`` (see the module docstring for the mapping).

    Parameters
    ----------
    model : the integer network.
    dt : time step in seconds that NIR's continuous-time parameters are expressed in.
    snntorch : write only nodes snnTorch's ``import_from_nir`` converts (module docstring);
        the graph's output is then the output layer's current at each step, to be summed
        over T by the caller. Needs ``dt = 1e-4``.
    """
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, not {dt!r}")
    dt = float(dt)
    if snntorch and dt != DEFAULT_DT:
        raise ValueError(f"the snnTorch flavour needs dt = {DEFAULT_DT:g} s (snnTorch's "
                         f"importer assumes it), not {dt!r}")
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(
        input_type={"input": np.array(model.input.shape)},
        metadata={"encoding": "q = InputSpec.quantize(pixels) (see graph metadata 'input'), "
                              "presented unchanged at every time step"})}
    chain = ["input"]
    shape: tuple[int, ...] = model.input.shape

    def add(name: str, node: nir.NIRNode) -> None:
        nodes[name] = node
        chain.append(name)

    for layer in model.layers:
        if layer.type == "pool":
            c, h, w = layer.out_shape
            meta = {"dietsnn_layer": layer.name, "pooling": "or",
                    "rule": "2x2 stride 2 OR of spikes = Threshold(0) of their average"}
            add(layer.name, nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                          padding=np.array([0, 0]), metadata=dict(meta)))
            if snntorch:
                add(f"{layer.name}_or", nir.LIF(
                    tau=np.full((c, h, w), dt), r=np.ones((c, h, w)), v_leak=np.zeros((c, h, w)),
                    v_threshold=np.full((c, h, w), OR_THRESHOLD), v_reset=np.zeros((c, h, w)),
                    metadata={**meta, "threshold_as_lif": "Threshold(0) written as a LIF with "
                              "beta = 0 (tau = dt), gain 1, threshold 1/8, reset to 0"}))
            else:
                add(f"{layer.name}_or", nir.Threshold(threshold=np.zeros((c, h, w)),
                                                      metadata=dict(meta)))
        elif layer.type == "conv":
            add(layer.name, nir.Conv2d(
                input_shape=tuple(layer.in_shape[1:]), weight=_weights(model, layer),
                stride=1, padding=1, dilation=1, groups=1, bias=_bias(model, layer),
                metadata={**_dense_meta(layer), "padding_mode": "zeros"}))
        elif snntorch:
            add(layer.name, _dense_as_conv(model, layer, shape))
        else:
            if len(shape) > 1:
                add(f"{layer.name}_flatten", nir.Flatten(
                    input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                    metadata={"dietsnn_layer": layer.name, "order": "C, H, W"}))
            if layer.has_bias:
                add(layer.name, nir.Affine(weight=_weights(model, layer),
                                           bias=_bias(model, layer),
                                           metadata=_dense_meta(layer)))
            else:
                add(layer.name, nir.Linear(weight=_weights(model, layer),
                                           metadata=_dense_meta(layer)))
        if layer.is_lif and snntorch:
            add(f"{layer.name}_lif", _snntorch_neuron(layer, dt))
        elif layer.is_lif:
            p = lif_params(layer, dt)
            cls = nir.LIF if layer.leak_shift else nir.IF
            add(f"{layer.name}_lif", cls(**p, metadata=_neuron_meta(layer)))
        elif layer.output and not snntorch:
            k = layer.out_shape[0]
            add(f"{layer.name}_sum", nir.I(r=np.full(k, 1.0 / dt), metadata={
                "dietsnn_layer": layer.name, "readout": "accumulate",
                "rule": "V <- V + I_t (no leak, no spike, no saturation); prediction = "
                        "argmax of V after T steps, ties to the lowest index"}))
        shape = layer.out_shape
    if snntorch:
        shape = (shape[0], 1, 1)
    add("output", nir.Output(output_type={"output": np.array(shape)}))
    edges = list(zip(chain[:-1], chain[1:], strict=True))
    manifest = model.manifest()
    metadata = {
        "producer": f"dietsnn {_version()}",
        "dietsnn_format": GRAPH_FORMAT,
        "dt": dt,
        "timesteps": model.timesteps,
        "input": json.dumps(model.input.to_json()),
        "classes": json.dumps(list(model.classes)),
        "manifest": json.dumps(manifest),
        "semantics": (
            "discrete time, T steps of dt; the input current of the first layer repeats every "
            "step; every current includes its layer's bias; hidden neurons: "
            "U <- sat_B(U - (U >>> k) + I), s = U > theta, U <- U - theta s; OR pooling; "
            "output V = sum over T of its current; weights, biases and thresholds in integer "
            "units"),
    }
    if snntorch:
        metadata["flavour"] = "snntorch"
        metadata["readout"] = (
            "the graph outputs the output layer's current [K, 1, 1] at every step; the "
            "integer model's output V is its sum over the T steps (prediction: argmax of V)")
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_graph(graph: nir.NIRGraph, path: str | os.PathLike) -> Path:
    """Write a NIR graph (HDF5) atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)
    return path


def export_nir(model: Model, path: str | os.PathLike, *, dt: float = DEFAULT_DT,
               snntorch: bool = False) -> Path:
    """Write ``model`` as a NIR file (HDF5, ``.nir``) at ``path``; returns the path.
    ``snntorch`` selects the flavour snnTorch's importer reads (:func:`to_nir`)."""
    return write_graph(to_nir(model, dt=dt, snntorch=snntorch), path)
