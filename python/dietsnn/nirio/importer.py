"""NIR graph -> integer model (``dietsnn import-nir``).

The graph must be a chain from one ``Input`` to one ``Output`` made of these layers (nodes in
brackets are optional)::

    conv      Conv2d(3x3, stride 1, padding 1 or "same", no dilation/groups, [bias]) -> LIF | IF
    linear    [Flatten] -> Linear | Affine -> LIF | IF
    pool      AvgPool2d | SumPool2d (2x2, stride 2, padding 0) -> Threshold   (= OR pooling)
    output    [Flatten] -> Linear | Affine -> [I] -> Output

A non-zero bias becomes the layer's integer bias (``b_int = b * s / unit``, the same
conversion as the current's; it must be a whole number of current units unless
``approximate``), ``bias_bits`` wide: the node's metadata (a dietsnn graph), else 16 or the
fewest bits that hold it, at most the layer's membrane width (32 on the output).

Neuron parameters are read back with the forward-Euler step of NIR's equations at the time
step ``dt`` (graph metadata ``dt``, else :attr:`ImportOptions.dt`)::

    LIF   v <- (1 - dt/tau) v + (r dt / tau) I      beta = 1 - dt/tau = 1 - 2^-k
    IF    v <- v + r dt I                           k = 0

A mapping is *exact* when the weights are integers, ``beta`` is ``1 - 2^-k`` (or 1), the
threshold over the current gain is an integer, ``v_leak`` is 0 and the reset is the integer
model's (node metadata ``reset: subtract``, as ``dietsnn export-nir`` writes). Otherwise the
node cannot be represented and :class:`NIRImportError` names it, unless
``ImportOptions.approximate`` allows the lossy step (float weights rounded with a per-layer
scale, ``beta`` rounded to the nearest shift, reset-to-zero read as subtract reset, a spiking
or leaky readout read as the accumulator); each such step is listed in
:attr:`ImportReport.approximations`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nir
import numpy as np

from ..errors import InputError
from ..model import (
    CIFAR10_CLASSES,
    InputSpec,
    Layer,
    Model,
    ModelFileError,
    bias_dtype,
    model_from_manifest,
    signed_bits,
    weight_dtype,
)
from . import DEFAULT_DT, GRAPH_FORMAT, RESET_SUBTRACT

NEURONS = (nir.LIF, nir.IF)
DENSE = (nir.Linear, nir.Affine)
POOLS = (nir.AvgPool2d, nir.SumPool2d)
#: Relative tolerance when a float parameter must equal an integer or a power of two.
RTOL = 1e-6


class NIRImportError(InputError):
    """The graph cannot be represented as an integer model; the message names the node."""


def _meta_dt(meta: dict, default: float) -> float:
    """The graph metadata's time step ``dt``: a finite positive number."""
    v = meta.get("dt", default)
    try:
        dt = float(v)
    except (TypeError, ValueError):
        dt = float("nan")
    if isinstance(v, bool) or not (dt > 0 and dt < float("inf")):
        raise NIRImportError(f"graph metadata 'dt' must be a finite positive number, not {v!r}")
    return dt


@dataclass(frozen=True)
class ImportOptions:
    """Choices for graphs that do not carry dietsnn metadata (made by other tools).

    Members
    -------
    approximate : allow the lossy mappings listed in the module docstring.
    weight_bits, membrane_bits : widths of the integer model (dietsnn graphs carry their own).
    timesteps : ``T`` (NIR has no notion of it); default: the graph's metadata, else 5.
    dt : time step for continuous-time parameters when the graph does not record one.
    name, classes : the model's name (default: the file's stem) and class names.
    input : the input quantisation; the graph's input is taken to be ``q * input.scale``
        (the normalised image ``(x / 255 - mean) / std``). Default: mean 0, std 1, scale
        1/127 (pixels in [0, 1] to 0..127).
    """

    approximate: bool = False
    weight_bits: int = 8
    membrane_bits: int = 16
    timesteps: int | None = None
    dt: float = DEFAULT_DT
    name: str | None = None
    classes: tuple[str, ...] | None = None
    input: InputSpec | None = None


@dataclass
class ImportReport:
    """What :func:`from_nir` did. ``source`` is ``"dietsnn"`` or ``"foreign"``."""

    source: str
    approximations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.approximations


def _arr(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor left in a graph built in memory
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def _desc(name: str, node: Any) -> str:
    return f"node {name!r} ({type(node).__name__})"


def _scalar(v: Any, what: str, name: str, node: Any, *, allow_inf: bool = False) -> float:
    a = _arr(v)
    if a.size == 0 or np.any(np.isnan(a)) or (not allow_inf and np.any(np.isinf(a))):
        raise NIRImportError(f"{_desc(name, node)}: {what} must be finite numbers")
    u = np.unique(a)
    if u.size != 1:
        raise NIRImportError(f"{_desc(name, node)}: {what} differs between neurons "
                             f"({u.size} values); the integer model has one per layer")
    return float(u[0])


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=RTOL if b == 0 else 0.0)


def _pair(v: Any) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).ravel()
    return tuple(int(x) for x in (np.repeat(a, 2) if a.size == 1 else a))


# --------------------------------------------------------------------------------------------
# Graph structure
# --------------------------------------------------------------------------------------------
def _chain(graph: nir.NIRGraph) -> list[tuple[str, Any]]:
    """The nodes from the single Input to the single Output, in order."""
    nodes = graph.nodes
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NIRImportError(f"{_desc(name, node)} is a subgraph (for example a recurrent "
                                 f"RLeaky layer); the integer model is feed-forward")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NIRImportError(f"the graph must have exactly one Input node, found {inputs}")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in graph.edges:
        a, b = str(a), str(b)
        if a not in nodes or b not in nodes:
            raise NIRImportError(f"edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
        pred[b].append(a)
    order, cur = [], inputs[0]
    while True:
        node = nodes[cur]
        order.append((cur, node))
        if len(pred[cur]) > 1:
            raise NIRImportError(f"{_desc(cur, node)} has {len(pred[cur])} inputs "
                                 f"{pred[cur]}; only a chain of layers maps to the integer model")
        if isinstance(node, nir.Output):
            break
        if len(succ[cur]) != 1:
            what = "no successor" if not succ[cur] else f"{len(succ[cur])} successors {succ[cur]}"
            raise NIRImportError(f"{_desc(cur, node)} has {what}; only a chain of layers from "
                                 f"Input to Output maps to the integer model")
        cur = succ[cur][0]
        if any(cur == k for k, _ in order):
            raise NIRImportError(f"{_desc(cur, nodes[cur])} closes a loop (recurrence); the "
                                 f"integer model is feed-forward")
    off = sorted(set(nodes) - {k for k, _ in order})
    if off:
        raise NIRImportError(f"node(s) {off} are not on the path from Input to Output")
    return order


def _input_shape(name: str, node: nir.Input) -> tuple[int, int, int]:
    shape = tuple(int(x) for x in np.atleast_1d(np.asarray(node.input_type["input"])))
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]  # a batch dimension of 1 left in by the exporter
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (1, *shape)  # type: ignore[return-value]
    if len(shape) == 1:
        return (1, 1, shape[0])
    raise NIRImportError(f"{_desc(name, node)}: input shape {list(shape)} is not [C, H, W], "
                         f"[H, W] or [F]")


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    opts: ImportOptions
    report: ImportReport
    dt: float
    ours: bool
    input_unit: float  # graph input = q * input_unit
    node: str = ""     # the node being converted (named by errors)

    def lossy(self, name: str, node: Any, what: str, hint: str) -> None:
        if not self.opts.approximate:
            raise NIRImportError(f"{_desc(name, node)}: {what}; {hint}")
        self.report.approximations.append(f"{_desc(name, node)}: {what}")


def _integer_bias(ctx: _Ctx, name: str, node: Any, outputs: int,
                  gain_to_int: float) -> np.ndarray | None:
    """The node's bias in integer current units (int64 ``[outputs]``), or ``None`` when it
    has none or an all-zero one (kept when a dietsnn graph records ``bias_bits``)."""
    bias = getattr(node, "bias", None)
    keep = ctx.ours and node.metadata.get("bias_bits") is not None
    if bias is None:
        return None
    b = _arr(bias).astype(np.float64)
    if b.size != outputs:
        raise NIRImportError(f"{_desc(name, node)}: bias of shape {list(b.shape)}; expected "
                             f"{outputs} values, one per output")
    b = b.reshape(outputs)
    if not np.all(np.isfinite(b)):
        raise NIRImportError(f"{_desc(name, node)}: the bias must be finite numbers")
    if not keep and not np.any(b != 0):
        return None
    bf = b * gain_to_int
    bi = np.rint(bf)
    if not np.all(np.isclose(bf, bi, rtol=RTOL, atol=1e-9)):
        ctx.lossy(name, node, "bias rounded to whole current units",
                  "the integer bias is a whole number of the layer's current units: pass "
                  "--approximate to round it")
    return bi.astype(np.int64)


def _bias_bits(ctx: _Ctx, name: str, node: Any, b: np.ndarray, top: int) -> int:
    """Width of the integer bias ``b``: the node's metadata, else 16 or what ``b`` needs;
    at most ``top`` (the membrane width, 32 on the output)."""
    lo, hi = int(b.min(initial=0)), int(b.max(initial=0))
    need = signed_bits(max(-lo - 1, hi, 0))
    meta = node.metadata.get("bias_bits") if ctx.ours else None
    bits = int(meta) if meta is not None else max(need, min(16, top))
    if not need <= bits <= top:
        raise NIRImportError(f"{_desc(name, node)}: bias {lo}..{hi} (integer units) needs "
                             f"{need} bits; the layer allows {bits} (at most {top}: its "
                             f"membrane width, 32 on the output)")
    return bits


def _conv_is_dense(node: nir.Conv2d, shape: tuple[int, ...]) -> bool:
    """A Conv2d whose kernel covers its whole input map without padding (stride 1, no
    dilation or groups) is a linear layer over the flattened C, H, W input; an input ``[F]``
    counts as ``[F, 1, 1]`` (``export-nir --snntorch`` writes linear layers so)."""
    w = _arr(node.weight)
    c, h, wd = shape if len(shape) == 3 else (shape[0], 1, 1) if len(shape) == 1 else (0, 0, 0)
    pad = node.padding
    no_pad = (_pair(pad) == (0, 0)) if not isinstance(pad, str) else pad == "valid"
    return (w.ndim == 4 and tuple(w.shape[1:]) == (c, h, wd) and no_pad
            and _pair(node.stride) == (1, 1) and _pair(node.dilation) == (1, 1)
            and int(np.asarray(node.groups)) == 1)


def _memoryless(ctx: _Ctx, node: nir.LIF) -> bool:
    """A LIF with ``tau = dt`` (``beta = 0``): it forgets its membrane every step, so it is a
    Heaviside of its input whatever its reset (``export-nir --snntorch`` writes OR pooling's
    ``Threshold`` so)."""
    tau = _arr(node.tau)
    return tau.size > 0 and bool(np.all(np.isclose(tau, ctx.dt, rtol=RTOL, atol=0)))


def _memoryless_threshold(ctx: _Ctx, name: str, node: nir.LIF) -> float:
    """The input level above which a memoryless LIF spikes (``v_threshold / gain``)."""
    if _scalar(node.v_leak, "v_leak", name, node) != 0:
        raise NIRImportError(f"{_desc(name, node)}: v_leak is not 0; a LIF after pooling must "
                             f"be a plain threshold to express OR pooling")
    gain = _scalar(node.r, "r", name, node) * ctx.dt / _scalar(node.tau, "tau", name, node)
    if not gain > 0:
        raise NIRImportError(f"{_desc(name, node)}: the current gain r*dt/tau must be "
                             f"positive, not {gain}")
    return _scalar(node.v_threshold, "v_threshold", name, node) / gain


def _check_conv(name: str, node: nir.Conv2d, shape: tuple[int, ...]) -> None:
    w = _arr(node.weight)
    if len(shape) != 3:
        raise NIRImportError(f"{_desc(name, node)}: input {list(shape)} is not [C, H, W]")
    if w.ndim != 4 or w.shape[2:] != (3, 3) or w.shape[1] != shape[0]:
        raise NIRImportError(f"{_desc(name, node)}: weight {list(w.shape)} is not "
                             f"[C_out, {shape[0]}, 3, 3]; the integer model has 3x3 convolutions")
    pad = node.padding
    pad_ok = pad == "same" if isinstance(pad, str) else _pair(pad) == (1, 1)
    if not pad_ok or _pair(node.stride) != (1, 1) or _pair(node.dilation) != (1, 1) \
            or int(np.asarray(node.groups)) != 1:
        raise NIRImportError(f"{_desc(name, node)}: stride {_pair(node.stride)}, padding "
                             f"{pad!r}, dilation {_pair(node.dilation)}, groups {node.groups}; "
                             f"the integer model needs stride 1, padding 1, dilation 1, groups 1")


def _integer_weights(ctx: _Ctx, name: str, node: Any) -> tuple[np.ndarray, int, float]:
    """``(W_int, weight_bits, s)`` with ``W_int = W * s``; ``I_int = I_graph * s / unit``."""
    w = _arr(node.weight)
    if not np.all(np.isfinite(w)):
        raise NIRImportError(f"{_desc(name, node)}: weights must be finite numbers")
    meta_bits = node.metadata.get("weight_bits") if ctx.ours else None
    if np.all(w == np.rint(w)):
        lo, hi = int(w.min(initial=0)), int(w.max(initial=0))
        need = max(signed_bits(max(-lo - 1, hi)), 2)
        bits = int(meta_bits) if meta_bits is not None else max(ctx.opts.weight_bits, need)
        if need <= bits <= 16:
            return w.astype(weight_dtype(bits)), bits, 1.0
        if not ctx.opts.approximate:
            raise NIRImportError(f"{_desc(name, node)}: integer weights {lo}..{hi} need "
                                 f"{need} bits, more than the integer model's 16")
    bits = int(meta_bits) if meta_bits is not None else ctx.opts.weight_bits
    qmax = 2 ** (bits - 1) - 1
    peak = float(np.abs(w).max(initial=0.0))
    s = qmax / peak if peak > 0 else 1.0
    ctx.lossy(name, node, f"float weights rounded to {bits}-bit integers (scale {s:.6g})",
              "the integer model needs integer weights: pass --approximate to round them "
              "with a per-layer scale")
    return np.clip(np.rint(w * s), -qmax, qmax).astype(weight_dtype(bits)), bits, s


def _neuron(ctx: _Ctx, name: str, node: Any, gain_to_int: float) -> dict[str, int]:
    """``leak_shift``, ``threshold``, ``membrane_bits`` of a LIF / IF node.

    ``gain_to_int`` converts graph current to integer current (``s / unit``).
    """
    meta = node.metadata if ctx.ours else {}
    reset = node.metadata.get("reset")  # the dietsnn convention, honoured on any graph
    if isinstance(node, nir.LIF):
        tau = _scalar(node.tau, "tau", name, node, allow_inf=True)
        r = _scalar(node.r, "r", name, node)
        if _scalar(node.v_leak, "v_leak", name, node) != 0:
            raise NIRImportError(f"{_desc(name, node)}: v_leak is not 0; the integer model's "
                                 f"membrane decays towards 0")
        if not tau > 0:
            raise NIRImportError(f"{_desc(name, node)}: tau must be positive, not {tau}")
        decay = ctx.dt / tau  # 1 - beta
        gain = r * ctx.dt / tau
        k_float = -math.log2(decay) if decay > 0 else math.inf
        if math.isinf(k_float) or 1.0 - decay == 1.0:  # beta is 1.0 in float64: no leak
            k = 0
        else:
            k = max(1, round(k_float))
            if not (_close(k_float, k) and decay <= 0.5):
                ctx.lossy(name, node, f"leak factor beta = 1 - dt/tau = {1 - decay:.6g} rounded "
                                      f"to 1 - 2^-{k} = {1 - 2.0 ** -k:.6g}",
                          "the integer leak is U >>> k (beta = 1 - 2^-k): pass --approximate "
                          "to round it to the nearest shift")
    else:
        k = 0
        gain = _scalar(node.r, "r", name, node) * ctx.dt
    if not gain > 0:
        raise NIRImportError(f"{_desc(name, node)}: the current gain r*dt/tau must be "
                             f"positive, not {gain}")
    if reset != RESET_SUBTRACT:
        v_reset = _scalar(node.v_reset, "v_reset", name, node) if node.v_reset is not None else 0
        if v_reset != 0:
            raise NIRImportError(f"{_desc(name, node)}: v_reset = {v_reset}; the integer "
                                 f"model resets by subtracting the threshold")
        ctx.lossy(name, node, "reset to v_reset = 0 read as reset by subtraction",
                  "NIR resets the membrane to v_reset but the integer model subtracts the "
                  "threshold; snnTorch's exporter writes v_reset = 0 even for its default "
                  "subtract reset: pass --approximate if the network was trained with subtract "
                  "reset")
    bits = int(meta.get("membrane_bits", ctx.opts.membrane_bits))
    theta_f = _scalar(node.v_threshold, "v_threshold", name, node) / gain * gain_to_int
    theta = int(np.rint(theta_f))
    if not _close(theta_f, theta):
        ctx.lossy(name, node, f"threshold {theta_f:.6g} (integer units) rounded to {theta}",
                  "the integer threshold must be a whole number of weight units: pass "
                  "--approximate to round it")
    if not 0 < theta < 2 ** (bits - 1):
        raise NIRImportError(f"{_desc(name, node)}: threshold {theta} (integer units) is not "
                             f"in 1..{2 ** (bits - 1) - 1} for {bits}-bit membranes (widen them "
                             f"with --membrane-bits, or quantise the input more coarsely)")
    if k >= bits:
        raise NIRImportError(f"{_desc(name, node)}: leak shift {k} must be below the "
                             f"membrane width {bits}")
    return {"leak_shift": k, "threshold": theta, "membrane_bits": bits}


def _with_bias(ctx: _Ctx, name: str, node: Any, biases: dict[str, np.ndarray],
               b: np.ndarray | None, layer: Layer) -> Layer:
    """``layer`` with the integer bias ``b`` of ``node`` (stored in ``biases``), if any."""
    if b is None:
        return layer
    bits = _bias_bits(ctx, name, node, b, layer.membrane_bits if layer.is_lif else 32)
    biases[layer.name] = b.astype(bias_dtype(bits))
    return replace(layer, bias_bits=bits)


def _readout(ctx: _Ctx, name: str, node: Any) -> None:
    """A node between the output Linear and Output: the accumulator or an approximation."""
    if isinstance(node, nir.I):
        gain = _scalar(node.r, "r", name, node) * ctx.dt
        if not _close(gain, 1.0):
            if not gain > 0:
                raise NIRImportError(f"{_desc(name, node)}: integrator gain r*dt = {gain} "
                                     f"must be positive")
            ctx.report.notes.append(f"{_desc(name, node)}: integrator gain r*dt = {gain:.6g} "
                                    f"dropped (a positive scale: same predictions)")
        return
    if isinstance(node, (nir.LIF, nir.IF, nir.LI)):
        ctx.lossy(name, node, "readout neuron read as the non-spiking accumulator "
                              "V <- V + I_t (argmax of the summed output current)",
                  "the integer model's output layer accumulates its current without leak or "
                  "spikes: pass --approximate to read this readout that way")
        return
    raise NIRImportError(f"{_desc(name, node)} after the output layer cannot be represented; "
                         f"the output is an integrator (I) or the Output node itself")


def _layers(ctx: _Ctx, chain: list[tuple[str, Any]], shape0: tuple[int, int, int]
            ) -> tuple[list[Layer], dict[str, np.ndarray], dict[str, np.ndarray]]:
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    biases: dict[str, np.ndarray] = {}
    counts = {"conv": 0, "pool": 0, "linear": 0}
    taken: set[str] = set()
    shape: tuple[int, ...] = shape0
    i, n = 1, len(chain) - 1  # chain[0] is Input, chain[-1] is Output

    def layer_name(node: Any, kind: str) -> str:
        want = node.metadata.get("dietsnn_layer") if ctx.ours else None
        if isinstance(want, str) and want not in taken:
            taken.add(want)
            return want
        counts[kind] += 1
        base = {"conv": "conv", "pool": "pool", "linear": "fc"}[kind]
        name = f"{base}{counts[kind]}"
        while name in taken:
            counts[kind] += 1
            name = f"{base}{counts[kind]}"
        taken.add(name)
        return name

    def nxt(j: int) -> tuple[str, Any]:
        return chain[j] if j < len(chain) else ("", None)

    while i < n:
        name, node = chain[i]
        ctx.node = _desc(name, node)
        unit = ctx.input_unit if not layers else 1.0
        if isinstance(node, POOLS):
            if len(shape) != 3 or not layers or not (layers[-1].is_lif
                                                      or layers[-1].type == "pool"):
                raise NIRImportError(f"{_desc(name, node)}: pooling must follow the spikes of "
                                     f"a conv layer")
            if (_pair(node.kernel_size), _pair(node.stride), _pair(node.padding)) != \
                    ((2, 2), (2, 2), (0, 0)):
                raise NIRImportError(f"{_desc(name, node)}: kernel {_pair(node.kernel_size)}, "
                                     f"stride {_pair(node.stride)}, padding "
                                     f"{_pair(node.padding)}; the integer model pools 2x2, "
                                     f"stride 2, no padding")
            tname, tnode = nxt(i + 1)
            smallest = 0.25 if isinstance(node, nir.AvgPool2d) else 1.0
            if isinstance(tnode, nir.LIF) and _memoryless(ctx, tnode):
                thr = _memoryless_threshold(ctx, tname, tnode)
            elif not isinstance(tnode, nir.Threshold):
                raise NIRImportError(
                    f"{_desc(name, node)}: {type(node).__name__} of spikes passes fractions or "
                    f"counts to the next layer, but the integer model pools by OR (max of "
                    f"spikes); follow it with a Threshold node (threshold 0) to express OR")
            else:
                thr = _scalar(tnode.threshold, "threshold", tname, tnode)
            if not 0 <= thr < smallest:
                raise NIRImportError(f"{_desc(tname, tnode)}: threshold {thr} after "
                                     f"{type(node).__name__} is not OR pooling (needs 0 <= "
                                     f"threshold < {smallest})")
            out = (shape[0], shape[1] // 2, shape[2] // 2)
            layers.append(Layer(layer_name(node, "pool"), "pool", shape, out))
            shape, i = out, i + 2
            continue
        if isinstance(node, nir.Flatten):
            if not (isinstance(nxt(i + 1)[1], DENSE)):
                raise NIRImportError(f"{_desc(name, node)}: a Flatten must feed a Linear layer")
            i += 1
            continue
        dense_conv = isinstance(node, nir.Conv2d) and _conv_is_dense(node, shape)
        if isinstance(node, nir.Conv2d) and not dense_conv:
            _check_conv(name, node, shape)
            kind, out = "conv", (int(_arr(node.weight).shape[0]), *shape[1:])
        elif isinstance(node, DENSE) or dense_conv:
            w = _arr(node.weight)
            if dense_conv:  # [F_out, C, H, W] over the whole map: a linear layer
                w = w.reshape(w.shape[0], -1)
            f_in = int(np.prod(shape))
            if w.ndim != 2 or w.shape[1] != f_in:
                raise NIRImportError(f"{_desc(name, node)}: weight {list(w.shape)} does not "
                                     f"take the {f_in} inputs of the layer before "
                                     f"({list(shape)}, flattened C, H, W)")
            kind, out = "linear", (int(w.shape[0]),)
        else:
            raise NIRImportError(f"{_desc(name, node)} cannot be represented: the integer model "
                                 f"has 3x3 conv, linear, LIF/IF neurons, OR pooling and an "
                                 f"accumulating output only")
        lname = layer_name(node, kind)
        w_int, bits, s = _integer_weights(ctx, name, node)
        if dense_conv:
            w_int = w_int.reshape(w_int.shape[0], -1)
        in_shape = shape if kind == "conv" else (int(np.prod(shape)),)
        b_int = _integer_bias(ctx, name, node, out[0], s / unit)
        nname, nnode = nxt(i + 1)
        rest = [x for _, x in chain[i + 1:]]
        is_output = kind == "linear" and (
            isinstance(nnode, nir.Output)
            or (len(rest) == 2 and isinstance(rest[1], nir.Output)
                and not (ctx.ours and isinstance(nnode, NEURONS))))
        if is_output:
            if not isinstance(nnode, nir.Output):
                _readout(ctx, nname, nnode)
            elif not ctx.ours:
                ctx.report.notes.append(f"{_desc(name, node)}: the graph outputs its current "
                                        f"every step; the output layer sums it over T")
            layers.append(_with_bias(ctx, name, node, biases, b_int, Layer(
                lname, "linear", in_shape, out, weight_bits=bits, output=True)))
            weights[lname] = w_int
            shape, i = out, n
            break
        if not isinstance(nnode, NEURONS):
            got = _desc(nname, nnode) if nnode is not None else "nothing"
            raise NIRImportError(f"{_desc(name, node)} feeds {got}, not LIF or IF neurons; "
                                 f"every hidden conv / linear layer needs its spiking neurons")
        p = _neuron(ctx, nname, nnode, s / unit)
        layers.append(_with_bias(ctx, name, node, biases, b_int,
                                 Layer(lname, kind, in_shape, out, weight_bits=bits, **p)))
        weights[lname] = w_int
        shape, i = out, i + 2
    if not layers or not layers[-1].output:
        raise NIRImportError("the graph does not end in an output layer (Linear, optionally "
                             "followed by an integrator I, then Output)")
    return layers, weights, biases


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def _meta_json(meta: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise NIRImportError(f"graph metadata {key!r} is missing or not JSON ({e}) although "
                             f"'dietsnn_format' says the graph was written by dietsnn") from None


def from_nir(graph: nir.NIRGraph, options: ImportOptions | None = None, *,
             source_name: str = "nir") -> tuple[Model, ImportReport]:
    """Build the integer model of ``graph``.

    Raises
    ------
    NIRImportError : a node cannot be represented (the message names it and says why).
    """
    opts = options or ImportOptions()
    meta = dict(graph.metadata or {})
    ours = str(meta.get("dietsnn_format", "")) == GRAPH_FORMAT
    report = ImportReport(source="dietsnn" if ours else "foreign")
    chain = _chain(graph)
    shape = _input_shape(*chain[0])
    if ours:
        manifest = _meta_json(meta, "manifest")
        try:
            inp = manifest["input"]
            spec = InputSpec(**{**inp, "shape": tuple(inp["shape"]), "mean": tuple(inp["mean"]),
                                "std": tuple(inp["std"])})
        except (KeyError, TypeError, ModelFileError) as e:
            raise NIRImportError(f"graph metadata 'manifest': bad field 'input' ({e})") from None
        if spec.shape != shape:
            raise NIRImportError(f"node {chain[0][0]!r} (Input): shape {list(shape)} differs "
                                 f"from the recorded input {list(spec.shape)}")
        ctx = _Ctx(opts, report, _meta_dt(meta, DEFAULT_DT), True, 1.0)
    else:
        c = shape[0]
        spec = opts.input or InputSpec(shape=shape, mean=(0.0,) * c, std=(1.0,) * c,
                                       scale=1.0 / 127.0, bits=8)
        if spec.shape != shape:
            raise NIRImportError(f"the input quantisation is for {list(spec.shape)} but node "
                                 f"{chain[0][0]!r} (Input) is {list(shape)}")
        ctx = _Ctx(opts, report, _meta_dt(meta, opts.dt), False, spec.scale)
    try:
        layers, weights, biases = _layers(ctx, chain, shape)
    except ModelFileError as e:  # a shape the integer model does not allow (e.g. odd pooling)
        raise NIRImportError(str(e)) from None
    except NIRImportError:
        raise
    except (ValueError, TypeError, ArithmeticError, IndexError, AttributeError) as e:
        # a parameter of the wrong kind (a string, a ragged or empty array, ...)
        raise NIRImportError(f"{ctx.node or 'graph'}: malformed parameter "
                             f"({type(e).__name__}: {e})") from None
    if ours:
        man = dict(manifest)
        man["layers"] = [x.to_json() for x in layers]
        if biases:
            man["version"] = 2
        if opts.timesteps is not None:
            man["timesteps"] = opts.timesteps
        if manifest.get("layers") != man["layers"]:
            report.notes.append("the graph's layers differ from the manifest recorded at "
                                "export (edited graph?): the graph's values were used")
        try:
            return model_from_manifest(man, weights, source_name, biases), report
        except ModelFileError as e:
            raise NIRImportError(str(e)) from None
    k = layers[-1].out_shape[0]
    classes = opts.classes or (CIFAR10_CLASSES if k == 10 and shape == (3, 32, 32)
                               else tuple(f"class{j}" for j in range(k)))
    timesteps = opts.timesteps or int(meta.get("timesteps", 5))
    if opts.timesteps is None and "timesteps" not in meta:
        report.notes.append("NIR has no number of time steps: T = 5 assumed (--timesteps)")
    provenance = {"imported_from": "nir", "file": source_name, "dt": ctx.dt,
                  "nir_version": getattr(nir, "__version__", "unknown"),
                  "approximations": list(report.approximations),
                  "input_assumed": opts.input is None}
    try:
        model = Model(name=opts.name or Path(source_name).stem or "nir", timesteps=timesteps,
                      input=spec, layers=tuple(layers), weights=weights, classes=classes,
                      kind="trained", provenance=provenance, metrics={}, biases=biases)
    except ModelFileError as e:
        raise NIRImportError(str(e)) from None
    return model, report


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a NIR file without NIR's type check (snnTorch's graphs often fail it)."""
    p = Path(path)
    if not p.is_file():
        raise NIRImportError(f"{p}: no such file")
    try:
        return nir.read(p, type_check=False)
    except Exception as e:  # noqa: BLE001 - h5py / nir raise many kinds
        raise NIRImportError(f"{p}: not a readable NIR file ({type(e).__name__}: {e})") from None


def import_nir(path: str | os.PathLike, options: ImportOptions | None = None
               ) -> tuple[Model, ImportReport]:
    """Read the NIR file at ``path`` into an integer model (see :func:`from_nir`)."""
    graph = read_graph(path)
    try:
        return from_nir(graph, options, source_name=Path(path).name)
    except NIRImportError as e:
        raise NIRImportError(f"{path}: {e}") from None
