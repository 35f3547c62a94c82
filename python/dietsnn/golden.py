"""The bit-exact integer golden model: the specification of the network.

Everything else (training in eval mode, the RTL, every testbench) must agree with this
module bit for bit. Integers only; ``>>>`` is an arithmetic right shift (rounds toward minus
infinity).

Input layer (direct encoding)
    The image arrives as integers ``q`` (``InputSpec.quantize``). The first layer's current
    ``I = W * q + b`` (3x3 conv, zero padding 1, or a linear map) is the same at every step.

Bias
    A conv or linear layer may carry an integer bias ``b`` (one per output channel or
    neuron, :meth:`Model.bias`, zero when absent); it is part of the current at every step:
    ``I_t = W * X_t + b``.

Hidden LIF neuron of layer ``l``, each time step ``t = 1..T``, starting from ``U = 0``::

    U   <- sat_B(U - (U >>> k) + I_t)      (k = 0: no leak, U <- sat_B(U + I_t))
    s_t  = 1 if U > theta else 0           (strict)
    U   <- U - theta * s_t                 (soft reset, by subtraction)

    sat_B(x) = min(max(x, -2^(B-1)), 2^(B-1) - 1)

Hidden inputs are binary spikes, so ``I_t`` of a hidden layer is the sum of the weights of
the inputs that spiked at step ``t`` (accumulate only), plus the bias. Pooling is 2x2
stride-2 OR pooling of spikes (the max of bits), so every hidden input stays a single bit.

Output layer (the last, linear)::

    V <- V + I_t            (no leak, no spike, no saturation)

    |V| <= T * max_j (sum_i |W_ji| + |b_j|)   (Model.output_bits() gives the width)

The prediction is ``argmax_j V_j`` after ``T`` steps; ties go to the lowest index.

Layer-major equals time-major
    The network is feed-forward: the spikes of layer ``l`` at step ``t`` depend only on
    layer ``l-1`` at steps ``1..t``. So evaluating each layer over all ``T`` steps before the
    next (layer-major, as the hardware does: :func:`run`) gives exactly the result of stepping
    the whole network one time step at a time (:func:`run_time_major`). Tests check this.

Exact arithmetic
    Convolutions and linear maps are evaluated as matrix products in float32 (or float64 when
    needed) BLAS. This is exact integer arithmetic: every partial sum is an integer whose
    magnitude is at most ``Model.current_bound(layer)`` (the bias is added afterwards, in
    integers, and the bound includes it), and :func:`_exact_dtype` picks float32
    only when that bound is below 2^24 (float64 below 2^53), where every such integer is
    representable, so the order of the additions cannot change the result.

Implementation
    :func:`run` keeps activations channels-last (``[F, H, W, C]``), unfolds the 3x3 windows
    of a few images at a time into a reused, cache-sized buffer (im2col) for one matrix
    product per block, and updates neurons in place in int32 where ``2^(B-1) + bound <
    2^31`` (nothing can overflow; int64 otherwise). The tests hold it to the plain references:
    :func:`run_time_major` (built on :func:`lif_step`) and a naive loop for :func:`conv3x3`.
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
    spikes = np.empty(currents.shape, dtype=np.uint8)
    u = _lif_run(currents, spikes, leak_shift=leak_shift, threshold=threshold,
                 membrane_bits=membrane_bits)
    return spikes, u


def _lif_run(
    currents: np.ndarray, spikes: np.ndarray, *, leak_shift: int, threshold: int,
    membrane_bits: int
) -> np.ndarray:
    """:func:`lif_step` over ``T`` steps, in place in the dtype of ``currents``.

    ``currents`` is ``[T, ...]`` or ``[1, ...]`` (the same current at every step); ``spikes``
    (uint8 ``[T, ...]``) receives the spikes; returns ``U`` after the last step. The caller
    picks a dtype that cannot overflow: ``2^(B-1) + max|I| < 2^31`` for int32 (:func:`_acc`).
    """
    dt = currents.dtype
    u = np.zeros(spikes.shape[1:], dtype=dt)
    tmp = np.empty_like(u)
    lo, hi = dt.type(-(2 ** (membrane_bits - 1))), dt.type(2 ** (membrane_bits - 1) - 1)
    theta = dt.type(threshold)
    for t in range(spikes.shape[0]):
        if leak_shift:                                   # U <- U - (U >>> k)
            np.right_shift(u, leak_shift, out=tmp)
            u -= tmp
        u += currents[t if currents.shape[0] > 1 else 0]  # U <- sat_B(U + I_t)
        np.clip(u, lo, hi, out=u)
        fired = spikes[t].view(np.bool_)                 # s_t = U > theta
        np.greater(u, theta, out=fired)
        np.multiply(fired, theta, out=tmp)               # U <- U - theta * s_t
        u -= tmp
    return u


def pool_or(spikes: np.ndarray) -> np.ndarray:
    """2x2 stride-2 OR pooling of spike maps ``[..., C, H, W]`` (H, W even)."""
    *lead, c, h, w = spikes.shape
    s = spikes.reshape(*lead, c, h // 2, 2, w // 2, 2)
    return s.max(axis=(-3, -1))


def _pool_or_hwc(x: np.ndarray) -> np.ndarray:
    """:func:`pool_or` for channels-last spike maps ``[F, H, W, C]``."""
    rows = np.maximum(x[:, 0::2], x[:, 1::2])
    return np.maximum(rows[:, :, 0::2], rows[:, :, 1::2])


# --------------------------------------------------------------------------------------------
# Synapses
# --------------------------------------------------------------------------------------------
#: Bytes of one im2col block. Measured on the CIFAR-10 topology (bench/golden_bench.py):
#: with one BLAS thread 1-8 MiB are fastest (16 MiB costs ~15%), but with two BLAS threads
#: on a busy machine small blocks (many short GEMMs) cost 2-4x more CPU; 16 MiB is robust.
CHUNK_BYTES = 1 << 24


def _exact_dtype(bound: int) -> type:
    if bound < 2 ** 24:
        return np.float32
    if bound < 2 ** 53:
        return np.float64
    raise ValueError(f"current bound {bound} too large for exact float accumulation")


def _acc(layer: Layer, bound: int) -> np.dtype:
    """Integer dtype of a layer's currents and membranes: int32 when nothing can overflow."""
    b = layer.membrane_bits or 0
    return np.dtype(np.int32 if 2 ** max(b - 1, 0) + bound < 2 ** 31 else np.int64)


def _tap(d: int, n: int) -> tuple[slice, slice]:
    """Output and input index ranges of kernel offset ``d`` (0..2) along an axis of ``n``."""
    return slice(max(0, 1 - d), n - max(0, d - 1)), slice(max(0, d - 1), n - max(0, 1 - d))


def _conv_hwc(x: np.ndarray, wmat: np.ndarray, out_dtype: np.dtype,
              chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Channels-last 3x3 convolution (zero padding 1) of ``x`` ``[F, H, W, C]``.

    ``wmat`` is the float ``[9 C, C_out]`` weight matrix, rows ordered ``(dy, dx, c)``. Blocks
    of images are unfolded (im2col) into a reused buffer whose padding border stays zero, and
    multiplied by ``wmat``; the exact float sums are stored as ``out_dtype`` ``[F, H, W, C_out]``.
    """
    f, h, w, c = x.shape
    step = max(1, min(f, chunk_bytes // (h * w * 9 * c * wmat.itemsize)))
    cols = np.zeros((step, h, w, 3, 3, c), dtype=wmat.dtype)
    out = np.empty((f, h, w, wmat.shape[1]), dtype=out_dtype)
    taps = [(dy, dx, *_tap(dy, h), *_tap(dx, w)) for dy in range(3) for dx in range(3)]
    for i in range(0, f, step):
        b = min(step, f - i)
        for dy, dx, oy, iy, ox, ix in taps:
            cols[:b, oy, ox, dy, dx] = x[i:i + b, iy, ix]
        out[i:i + b] = (cols[:b].reshape(b * h * w, 9 * c) @ wmat).reshape(b, h, w, -1)
    return out


def conv3x3(x: np.ndarray, w: np.ndarray, bound: int, *, chunk_bytes: int = CHUNK_BYTES
            ) -> np.ndarray:
    """3x3 convolution, stride 1, zero padding 1, no bias, computed exactly.

    ``x`` is ``[F, C_in, H, W]`` (integers), ``w`` is ``[C_out, C_in, 3, 3]``; returns int64
    ``[F, C_out, H, W]`` with ``out[f, o, y, x] = sum_{c,dy,dx} w[o, c, dy, dx] *
    x[f, c, y + dy - 1, x + dx - 1]`` (zero outside the image). ``bound`` is the largest
    possible ``|out|`` (for exactness; see the module docstring).
    """
    wmat = w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]).astype(_exact_dtype(bound))
    out = _conv_hwc(np.asarray(x).transpose(0, 2, 3, 1), wmat, np.dtype(np.int64), chunk_bytes)
    return out.transpose(0, 3, 1, 2)


def linear(x: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``out[f, j] = sum_i w[j, i] * x[f, i]`` exactly, for ``x`` ``[F, ...]`` flattened C,H,W."""
    dt = _exact_dtype(bound)
    x = x.reshape(x.shape[0], -1)
    return (x.astype(dt) @ w.T.astype(dt)).astype(np.int64)


def synapses(model: Model, layer: Layer, x: np.ndarray) -> np.ndarray:
    """Current of ``layer`` for inputs ``x`` ``[F, *in_shape]``: int64 ``[F, *out_shape]``,
    the bias included."""
    w = model.weights[layer.name]
    bound = model.current_bound(layer)
    b = model.bias(layer)
    if layer.type == "conv":
        return conv3x3(x, w, bound) + b[:, None, None]
    return linear(x, w, bound) + b


@dataclass(frozen=True)
class _Synapse:
    """A weighted layer prepared for :func:`run`: inputs and outputs are channels-last.

    ``wmat`` is the exact float weight matrix ``[fan_in, out]`` with rows in the order of the
    channels-last input (``(dy, dx, c)`` for a conv, ``(h, w, c)`` for a linear layer after a
    conv or pool); ``acc`` is the integer dtype of currents and membranes; ``bias`` is the
    layer's bias in ``acc`` (``None`` without one), added to every current (channels last).
    """

    layer: Layer
    wmat: np.ndarray
    acc: np.dtype
    bias: np.ndarray | None = None

    @classmethod
    def prepare(cls, model: Model, layer: Layer, prev: Layer | None) -> _Synapse:
        w = model.weights[layer.name]
        bound = model.current_bound(layer)
        dt = _exact_dtype(bound)
        if layer.type == "conv":
            wmat = w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
        elif prev is not None and prev.type != "linear":  # input arrives as [H, W, C]
            c, h, wd = prev.out_shape
            wmat = w.reshape(-1, c, h, wd).transpose(2, 3, 1, 0).reshape(-1, w.shape[0])
        else:
            wmat = w.T
        acc = _acc(layer, bound)
        bias = model.bias(layer).astype(acc) if layer.has_bias else None
        return cls(layer, np.ascontiguousarray(wmat, dtype=dt), acc, bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Currents ``acc [F, *out]`` for channels-last inputs ``x`` ``[F, ...]``."""
        if self.layer.type == "conv":
            out = _conv_hwc(x, self.wmat, self.acc)
        else:
            out = (x.reshape(x.shape[0], -1).astype(self.wmat.dtype) @ self.wmat
                   ).astype(self.acc)
        if self.bias is not None:   # |W x + b| <= bound: no overflow in ``acc`` (_acc)
            out += self.bias
        return out


def _chw(a: np.ndarray, layer: Layer) -> np.ndarray:
    """A channels-last array ``[..., H, W, C]`` of ``layer``'s output as ``[..., C, H, W]``."""
    return np.moveaxis(a, -1, -3) if layer.type != "linear" else a


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


def _run_chunk(model: Model, plan: dict[str, _Synapse], q: np.ndarray, t_steps: int,
               record: frozenset[str]) -> Result:
    """Layer-major evaluation of one block of images; activations are kept channels-last."""
    n = q.shape[0]
    res = Result(logits=np.empty(0), prediction=np.empty(0))
    x: np.ndarray | None = None  # spikes entering the layer: uint8 [T * N, H, W, C] or [T * N, F]
    for layer in model.layers:
        if layer.type == "pool":
            x = _pool_or_hwc(x)
        else:
            syn = plan[layer.name]
            if x is None:  # the image: the first layer's current is the same at every step
                cur = syn(q.transpose(0, 2, 3, 1) if layer.type == "conv" else q)[None]
            else:
                cur = syn(x)
                cur = cur.reshape(t_steps, n, *cur.shape[1:])
            if "currents" in record:
                full = np.broadcast_to(cur, (t_steps, *cur.shape[1:])).swapaxes(0, 1)
                res.currents[layer.name] = _chw(full, layer).astype(np.int64)
            if layer.output:
                if cur.shape[0] == t_steps:
                    res.logits = cur.sum(axis=0, dtype=np.int64)
                else:  # the output layer takes the image directly: T equal currents
                    res.logits = cur[0].astype(np.int64) * t_steps
                break
            spikes = np.empty((t_steps, *cur.shape[1:]), dtype=np.uint8)
            u = _lif_run(cur, spikes, leak_shift=layer.leak_shift, threshold=layer.threshold,
                         membrane_bits=layer.membrane_bits)
            if "membranes" in record:
                res.membranes[layer.name] = _chw(u, layer).astype(np.int64)
            x = spikes.reshape(t_steps * n, *spikes.shape[2:])
        per_step = x.reshape(t_steps, n, -1).sum(axis=2, dtype=np.int64)
        res.spike_counts[layer.name] = per_step.sum(axis=0)
        if "spikes" in record:
            s = x.reshape(t_steps, n, *x.shape[1:]).swapaxes(0, 1)
            res.spikes[layer.name] = np.ascontiguousarray(_chw(s, layer))
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
    plan: dict[str, _Synapse] = {}
    prev: Layer | None = None
    for layer in model.layers:
        if layer.has_weights:
            plan[layer.name] = _Synapse.prepare(model, layer, prev)
        prev = layer
    parts = []
    starts = range(0, q.shape[0], batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"golden {model.name}", unit="batch")
    for i in starts:
        parts.append(_run_chunk(model, plan, q[i:i + batch], t_steps, rec))
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
