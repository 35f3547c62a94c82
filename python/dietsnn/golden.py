"""The bit-exact integer golden model: the specification of the network.

Everything else (training in eval mode, the RTL, every testbench) must agree with this
module bit for bit. Integers only; ``>>>`` is an arithmetic right shift (rounds toward minus
infinity).

Input layer (direct encoding)
    The image arrives as integers ``q`` (``InputSpec.quantize``). The first layer's current
    ``I = W * q`` (3x3 conv, zero padding 1, or a linear map) is the same at every time step.

Hidden LIF neuron of layer ``l``, each time step ``t = 1..T``, starting from ``U = 0``::

    U   <- sat_B(U - (U >>> k) + I_t)      (k = 0: no leak, U <- sat_B(U + I_t))
    s_t  = 1 if U > theta else 0           (strict)
    U   <- U - theta * s_t                 (soft reset, by subtraction)

    sat_B(x) = min(max(x, -2^(B-1)), 2^(B-1) - 1)

Hidden inputs are binary spikes, so ``I_t`` of a hidden layer is the sum of the weights of
the inputs that spiked at step ``t`` (accumulate only). Pooling is 2x2 stride-2 OR pooling of
spikes (the max of bits), so every hidden input stays a single bit.

Output layer (the last, linear)::

    V <- V + I_t            (no leak, no spike, no saturation)

    |V| <= T * max_j sum_i |W_ji|   (Model.output_bits() gives the width that holds it)

The prediction is ``argmax_j V_j`` after ``T`` steps; ties go to the lowest index.

Layer-major equals time-major
    The network is feed-forward: the spikes of layer ``l`` at step ``t`` depend only on
    layer ``l-1`` at steps ``1..t``. So evaluating each layer over all ``T`` steps before the
    next (layer-major, as the hardware does: :func:`run`) gives exactly the result of stepping
    the whole network one time step at a time (:func:`run_time_major`). Tests check this.

Exact arithmetic
    Convolutions and linear maps are evaluated as matrix products in float32 (or float64 when
    needed) BLAS. This is exact integer arithmetic: every partial sum is an integer whose
    magnitude is at most ``Model.current_bound(layer)``, and :func:`_exact_dtype` picks float32
    only when that bound is below 2^24 (float64 below 2^53), where every such integer is
    representable, so the order of the additions cannot change the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .model import Layer, Model

RECORDABLE = frozenset({"spikes", "membranes", "currents"})


# --------------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------------
def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """``sat_B``: clip to the signed ``bits``-bit range ``[-2^(B-1), 2^(B-1) - 1]``."""
    return np.clip(x, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def lif_step(
    u: np.ndarray, current: np.ndarray, *, leak_shift: int, threshold: int, membrane_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """One LIF time step. Returns ``(U_new, spikes)``; see the module docstring.

    ``u`` and ``current`` are int64 arrays of the same shape; spikes are uint8 (0 or 1).
    """
    if leak_shift:
        u = u - (u >> leak_shift)
    u = saturate(u + current, membrane_bits)
    s = u > threshold
    return u - threshold * s, s.astype(np.uint8)


def lif_layer(
    currents: np.ndarray, *, leak_shift: int, threshold: int, membrane_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run a LIF layer over all time steps.

    Parameters
    ----------
    currents : int ``[T, ...]`` input current per time step.

    Returns
    -------
    spikes : uint8 ``[T, ...]``; membranes : int64 ``[...]`` after the last step.
    """
    currents = np.asarray(currents, dtype=np.int64)
    u = np.zeros(currents.shape[1:], dtype=np.int64)
    spikes = np.empty(currents.shape, dtype=np.uint8)
    for t in range(currents.shape[0]):
        u, spikes[t] = lif_step(u, currents[t], leak_shift=leak_shift, threshold=threshold,
                                membrane_bits=membrane_bits)
    return spikes, u


def pool_or(spikes: np.ndarray) -> np.ndarray:
    """2x2 stride-2 OR pooling of spike maps ``[..., C, H, W]`` (H, W even)."""
    *lead, c, h, w = spikes.shape
    s = spikes.reshape(*lead, c, h // 2, 2, w // 2, 2)
    return s.max(axis=(-3, -1))


# --------------------------------------------------------------------------------------------
# Synapses
# --------------------------------------------------------------------------------------------
def _exact_dtype(bound: int) -> type:
    if bound < 2 ** 24:
        return np.float32
    if bound < 2 ** 53:
        return np.float64
    raise ValueError(f"current bound {bound} too large for exact float accumulation")


def conv3x3(x: np.ndarray, w: np.ndarray, bound: int, *, chunk_bytes: int = 1 << 25) -> np.ndarray:
    """3x3 convolution, stride 1, zero padding 1, no bias, computed exactly.

    ``x`` is ``[F, C_in, H, W]`` (integers), ``w`` is ``[C_out, C_in, 3, 3]``; returns int64
    ``[F, C_out, H, W]`` with ``out[f, o, y, x] = sum_{c,dy,dx} w[o, c, dy, dx] *
    x[f, c, y + dy - 1, x + dx - 1]`` (zero outside the image). ``bound`` is the largest
    possible ``|out|`` (for exactness; see the module docstring).
    """
    dt = _exact_dtype(bound)
    f, c, h, wd = x.shape
    co = w.shape[0]
    # channels-last, padded: [F, H+2, W+2, C]
    xp = np.zeros((f, h + 2, wd + 2, c), dtype=dt)
    xp[:, 1:-1, 1:-1, :] = x.transpose(0, 2, 3, 1)
    wm = w.transpose(2, 3, 1, 0).reshape(9 * c, co).astype(dt)  # rows ordered (dy, dx, c)
    out = np.empty((f, h, wd, co), dtype=dt)
    step = max(1, chunk_bytes // (h * wd * 9 * c * np.dtype(dt).itemsize))
    for i in range(0, f, step):
        blk = xp[i:i + step]
        cols = np.concatenate(
            [blk[:, dy:dy + h, dx:dx + wd, :] for dy in range(3) for dx in range(3)], axis=-1)
        out[i:i + step] = (cols.reshape(-1, 9 * c) @ wm).reshape(-1, h, wd, co)
    return out.transpose(0, 3, 1, 2).astype(np.int64)


def linear(x: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``out[f, j] = sum_i w[j, i] * x[f, i]`` exactly, for ``x`` ``[F, ...]`` flattened C,H,W."""
    dt = _exact_dtype(bound)
    x = x.reshape(x.shape[0], -1)
    return (x.astype(dt) @ w.T.astype(dt)).astype(np.int64)


def synapses(model: Model, layer: Layer, x: np.ndarray) -> np.ndarray:
    """Current of ``layer`` for inputs ``x`` ``[F, *in_shape]``: int64 ``[F, *out_shape]``."""
    w = model.weights[layer.name]
    bound = model.current_bound(layer)
    if layer.type == "conv":
        return conv3x3(x, w, bound)
    return linear(x, w, bound)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------
@dataclass
class Result:
    """Outputs of :func:`run` for ``N`` images.

    Members
    -------
    logits : int64 ``[N, classes]``, the output membrane ``V`` after ``T`` steps.
    prediction : int64 ``[N]``, ``argmax`` of the logits (ties to the lowest index).
    spikes : per layer name (LIF and pool layers), uint8 ``[N, T, *out_shape]``; filled when
        ``"spikes"`` is recorded.
    membranes : per LIF layer, int64 ``[N, *out_shape]`` after the last step (``"membranes"``).
    currents : per LIF layer and the output layer, int64 ``[N, T, *out_shape]``
        (``"currents"``); the first layer's current repeats over ``T``.
    spike_counts : per layer name (LIF and pool), int64 ``[N]``: total spikes over all steps
        and neurons; always filled.
    """

    logits: np.ndarray
    prediction: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    membranes: dict[str, np.ndarray] = field(default_factory=dict)
    currents: dict[str, np.ndarray] = field(default_factory=dict)
    spike_counts: dict[str, np.ndarray] = field(default_factory=dict)


def _check_images(model: Model, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != model.input.shape:
        raise ValueError(f"images must be [N, {', '.join(map(str, model.input.shape))}] "
                         f"quantised integers, not {list(images.shape)}")
    if not np.issubdtype(images.dtype, np.integer):
        raise ValueError(f"images must be integers (quantised with model.input.quantize), "
                         f"not {images.dtype}")
    qmax = 2 ** (model.input.bits - 1) - 1
    if images.size and (images.min() < -qmax or images.max() > qmax):
        raise ValueError(f"image values must lie in {-qmax}..{qmax}")
    return images


def argmax_lowest(v: np.ndarray) -> np.ndarray:
    """``argmax`` over the last axis; ties go to the lowest index (numpy's rule)."""
    return np.argmax(v, axis=-1)


def _run_chunk(model: Model, q: np.ndarray, t_steps: int, record: frozenset[str]) -> Result:
    n = q.shape[0]
    res = Result(logits=np.empty(0), prediction=np.empty(0))
    x: np.ndarray | None = None  # spikes [T, N, ...] entering the current layer
    for layer in model.layers:
        if layer.type == "pool":
            x = pool_or(x)
        else:
            if x is None:  # first layer: same current at every step
                cur = synapses(model, layer, q)
                cur = np.broadcast_to(cur[None], (t_steps, *cur.shape))
            else:
                flat = x.reshape(t_steps * n, *x.shape[2:])
                cur = synapses(model, layer, flat).reshape(t_steps, n, *layer.out_shape)
            if "currents" in record:
                res.currents[layer.name] = np.ascontiguousarray(cur.swapaxes(0, 1))
            if layer.output:
                res.logits = cur.sum(axis=0)
                break
            x, u = lif_layer(cur, leak_shift=layer.leak_shift, threshold=layer.threshold,
                             membrane_bits=layer.membrane_bits)
            if "membranes" in record:
                res.membranes[layer.name] = u
        res.spike_counts[layer.name] = x.reshape(t_steps, n, -1).sum(axis=(0, 2), dtype=np.int64)
        if "spikes" in record:
            res.spikes[layer.name] = np.ascontiguousarray(x.swapaxes(0, 1))
    res.prediction = argmax_lowest(res.logits)
    return res


def _record_set(record: Iterable[str] | None) -> frozenset[str]:
    rec = frozenset(record or ())
    if not rec <= RECORDABLE:
        raise ValueError(f"record must be a subset of {sorted(RECORDABLE)}, "
                         f"not {sorted(rec)}")
    return rec


def run(
    model: Model,
    images: np.ndarray,
    *,
    timesteps: int | None = None,
    record: Iterable[str] | None = None,
    batch: int = 64,
    progress: bool = False,
) -> Result:
    """Run the integer network layer-major on quantised images ``[N, C, H, W]``.

    ``timesteps`` overrides the model's ``T``; ``record`` is a subset of ``{"spikes",
    "membranes", "currents"}`` (memory grows with N: record on small batches).
    """
    q = _check_images(model, images)
    t_steps = model.timesteps if timesteps is None else int(timesteps)
    if t_steps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps}")
    rec = _record_set(record)
    parts = []
    starts = range(0, q.shape[0], batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"golden {model.name}", unit="batch")
    for i in starts:
        parts.append(_run_chunk(model, q[i:i + batch], t_steps, rec))
    return _concat(parts, model)


def _concat(parts: list[Result], model: Model) -> Result:
    if not parts:
        k = model.output_layer.out_shape[0]
        return Result(logits=np.zeros((0, k), np.int64), prediction=np.zeros(0, np.int64))
    if len(parts) == 1:
        return parts[0]
    out = Result(logits=np.concatenate([p.logits for p in parts]),
                 prediction=np.concatenate([p.prediction for p in parts]))
    for name in ("spikes", "membranes", "currents", "spike_counts"):
        d = getattr(out, name)
        for key in getattr(parts[0], name):
            d[key] = np.concatenate([getattr(p, name)[key] for p in parts])
    return out


def run_time_major(
    model: Model, images: np.ndarray, *, timesteps: int | None = None
) -> Result:
    """Reference evaluation one time step at a time through the whole network.

    Slow; it exists to check that it equals :func:`run` (layer-major). Records spikes and
    final membranes.
    """
    q = _check_images(model, images)
    t_steps = model.timesteps if timesteps is None else int(timesteps)
    n = q.shape[0]
    u = {x.name: np.zeros((n, *x.out_shape), np.int64) for x in model.lif_layers}
    spikes = {x.name: np.zeros((n, t_steps, *x.out_shape), np.uint8)
              for x in model.layers if not x.output}
    v = np.zeros((n, model.output_layer.out_shape[0]), np.int64)
    first = synapses(model, model.layers[0], q)
    for t in range(t_steps):
        x = None
        for layer in model.layers:
            if layer.type == "pool":
                x = pool_or(x)
            else:
                cur = first if x is None else synapses(model, layer, x)
                if layer.output:
                    v = v + cur
                    break
                u[layer.name], x = lif_step(u[layer.name], cur, leak_shift=layer.leak_shift,
                                            threshold=layer.threshold,
                                            membrane_bits=layer.membrane_bits)
            spikes[layer.name][:, t] = x
    counts = {k: s.reshape(n, -1).sum(axis=1, dtype=np.int64) for k, s in spikes.items()}
    return Result(logits=v, prediction=argmax_lowest(v), spikes=spikes, membranes=u,
                  spike_counts=counts)


def accuracy(model: Model, images_u8: np.ndarray, labels: np.ndarray, **kw) -> float:
    """Fraction of uint8 images ``[N, C, H, W]`` classified as ``labels``."""
    pred = run(model, model.input.quantize(images_u8), **kw).prediction
    return float(np.mean(pred == np.asarray(labels))) if len(labels) else 0.0
