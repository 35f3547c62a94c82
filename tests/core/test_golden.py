"""The golden model against hand-computed traces and independent plain implementations."""

from __future__ import annotations

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.model import InputSpec, Model
from dietsnn.topology import build_layers, random_model

SMALL = InputSpec(shape=(3, 8, 8))


# --------------------------------------------------------------------------------------------
# Neurons: hand-computed traces
# --------------------------------------------------------------------------------------------
def _trace_lif_step(currents, **kw):
    u = np.zeros(1, np.int64)
    us, ss = [], []
    for c in currents:
        u, s = golden.lif_step(u, np.array([c], np.int64), **kw)
        us.append(int(u[0]))
        ss.append(int(s[0]))
    return us, ss


def _trace_lif_layer(currents, **kw):
    # one step at a time cannot see U, so run prefixes: U after step t is U of the t-prefix
    us = [int(golden.lif_layer(np.array(currents[:t + 1])[:, None], **kw)[1][0])
          for t in range(len(currents))]
    spikes = golden.lif_layer(np.array(currents)[:, None], **kw)[0][:, 0]
    return us, [int(s) for s in spikes]


def _trace_int32(currents, **kw):
    """The in-place int32 kernel that :func:`golden.run` uses."""
    us, ss = [], []
    for t in range(len(currents)):
        cur = np.array(currents[:t + 1], np.int32)[:, None]
        spikes = np.empty(cur.shape, np.uint8)
        u = golden._lif_run(cur, spikes, **kw)
        assert u.dtype == np.int32
        us.append(int(u[0]))
        ss = [int(s) for s in spikes[:, 0]]
    return us, ss


TRACES = [_trace_lif_step, _trace_lif_layer, _trace_int32]


@pytest.mark.parametrize("trace", TRACES)
def test_leak_saturation_threshold_trace(trace):
    # B = 8 (range -128..127), k = 1, theta = 10
    currents = [12, 9, 200, -300, 0, 1, 0, 0, 0, 0, 0]
    u, s = trace(currents, leak_shift=1, threshold=10, membrane_bits=8)
    # t1: 0 - 0 + 12 = 12 > 10: spike, 12 - 10 = 2
    # t2: 2 - (2 >>> 1 = 1) + 9 = 10: exactly at threshold, no spike
    # t3: 10 - 5 + 200 = 205 -> saturates to 127: spike, 117
    # t4: 117 - 58 - 300 = -241 -> saturates to -128
    # t5: -128 - (-128 >>> 1 = -64) = -64;  t6: -64 + 32 + 1 = -31
    # t7: -31 >>> 1 = -16 (toward minus infinity, not -15): -31 + 16 = -15
    # t8: -15 + 8 = -7;  t9: -7 + 4 = -3;  t10: -3 + 2 = -1;  t11: -1 >>> 1 = -1: -1 + 1 = 0
    assert u == [2, 10, 117, -128, -64, -31, -15, -7, -3, -1, 0]
    assert s == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("trace", TRACES)
def test_no_leak_and_soft_reset_trace(trace):
    # k = 0: an IF neuron; theta = 5; reset subtracts theta (one spike per step at most)
    currents = [3, 3, 3, -10, 20, 0, 0, 0, 0]
    u, s = trace(currents, leak_shift=0, threshold=5, membrane_bits=16)
    assert u == [3, 1, 4, -6, 9, 4, 4, 4, 4]
    assert s == [0, 1, 0, 0, 1, 1, 0, 0, 0]
    u, s = trace([50, 0, 0, 0, 0], leak_shift=0, threshold=10, membrane_bits=16)
    assert u == [40, 30, 20, 10, 10] and s == [1, 1, 1, 1, 0]


@pytest.mark.parametrize("trace", TRACES)
def test_saturation_at_both_ends(trace):
    u, s = trace([30000, 30000, -70000, -70000], leak_shift=0, threshold=1000,
                 membrane_bits=16)
    # 30000 > 1000: spike -> 29000; 59000 -> sat 32767: spike -> 31767; -38233 -> sat -32768
    assert u == [29000, 31767, -32768, -32768]
    assert s == [1, 1, 0, 0]


@pytest.mark.parametrize("trace", TRACES)
def test_large_leak_shift(trace):
    # k = B - 1 = 7: U - (U >>> 7) is U for |U| < 128 except negatives lose -1 -> +1
    u, s = trace([-5, 0, 100], leak_shift=7, threshold=100, membrane_bits=8)
    assert u == [-5, -4, 97] and s == [0, 0, 0]


def test_lif_step_matches_plain_integer_formula():
    rng = np.random.default_rng(7)
    for k, theta, b in [(0, 1, 2), (1, 3, 4), (3, 200, 12), (5, 9000, 16), (2, 7, 32)]:
        lo, hi = -(2 ** (b - 1)), 2 ** (b - 1) - 1
        u0 = rng.integers(lo, hi + 1, 500)
        cur = rng.integers(-3 * 2 ** (b - 1), 3 * 2 ** (b - 1), 500)
        u, s = golden.lif_step(u0, cur, leak_shift=k, threshold=theta, membrane_bits=b)
        for i in range(500):  # Python integers: >> is an arithmetic shift, floor division
            v = u0[i] - (u0[i] // 2 ** k if k else 0) + cur[i]
            v = min(max(v, lo), hi)
            fire = v > theta
            assert s[i] == fire and u[i] == v - theta * fire


# --------------------------------------------------------------------------------------------
# Pooling and synapses against naive loops
# --------------------------------------------------------------------------------------------
def test_pool_or_hand_example():
    x = np.array([[[0, 1, 0, 0],
                   [0, 0, 0, 0],
                   [1, 1, 0, 0],
                   [1, 1, 0, 1]]], np.uint8)
    np.testing.assert_array_equal(golden.pool_or(x), [[[1, 0], [1, 1]]])


def test_pool_or_random_and_channels_last():
    rng = np.random.default_rng(1)
    x = (rng.random((2, 5, 3, 6, 4)) < 0.2).astype(np.uint8)  # [N, T, C, H, W]
    out = golden.pool_or(x)
    want = np.zeros((2, 5, 3, 3, 2), np.uint8)
    for idx in np.ndindex(*want.shape):
        *lead, y, z = idx
        want[idx] = x[(*lead, slice(2 * y, 2 * y + 2), slice(2 * z, 2 * z + 2))].max()
    np.testing.assert_array_equal(out, want)
    hwc = golden._pool_or_hwc(x.reshape(10, 3, 6, 4).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(hwc.transpose(0, 3, 1, 2), want.reshape(10, 3, 3, 2))


def naive_conv3x3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Loop-by-loop 3x3 convolution with zero padding, in Python integers."""
    f, c, h, wd = x.shape
    out = np.zeros((f, w.shape[0], h, wd), np.int64)
    for n in range(f):
        for o in range(w.shape[0]):
            for y in range(h):
                for z in range(wd):
                    acc = 0
                    for ci in range(c):
                        for dy in range(3):
                            for dx in range(3):
                                yy, zz = y + dy - 1, z + dx - 1
                                if 0 <= yy < h and 0 <= zz < wd:
                                    acc += int(w[o, ci, dy, dx]) * int(x[n, ci, yy, zz])
                    out[n, o, y, z] = acc
    return out


def shift_conv3x3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact int64 convolution by nine shifted integer einsums (no BLAS, no floats)."""
    f, c, h, wd = x.shape
    xp = np.zeros((f, c, h + 2, wd + 2), np.int64)
    xp[:, :, 1:-1, 1:-1] = x
    out = np.zeros((f, w.shape[0], h, wd), np.int64)
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("fchw,oc->fohw", xp[:, :, dy:dy + h, dx:dx + wd],
                             w[:, :, dy, dx].astype(np.int64))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 1), (3, 1, 2, 6), (1, 4, 4, 4)])
def test_conv3x3_matches_naive_loop(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-127, 128, shape).astype(np.int8)
    w = rng.integers(-128, 128, (3, shape[1], 3, 3)).astype(np.int8)
    bound = int(np.abs(w.astype(np.int64)).reshape(3, -1).sum(1).max()) * 128
    want = naive_conv3x3(x, w)
    for chunk in (1, 1 << 20):  # one image per block (partial last block) and all at once
        got = golden.conv3x3(x, w, bound, chunk_bytes=chunk)
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(shift_conv3x3(x, w), want)


def test_conv3x3_padding_edges_with_ones():
    x = np.ones((1, 1, 4, 5), np.int8)
    w = np.ones((1, 1, 3, 3), np.int8)
    out = golden.conv3x3(x, w, 9)[0, 0]
    # neighbours inside the image: 4 at corners, 6 on edges, 9 inside
    np.testing.assert_array_equal(out, [[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6],
                                        [4, 6, 6, 6, 4]])


def test_linear_matches_integer_product():
    rng = np.random.default_rng(2)
    x = (rng.random((4, 2, 3, 3)) < 0.5).astype(np.uint8)
    w = rng.integers(-128, 128, (5, 18)).astype(np.int8)
    want = x.reshape(4, -1).astype(np.int64) @ w.T.astype(np.int64)
    np.testing.assert_array_equal(golden.linear(x, w, 18 * 128), want)


def test_exact_dtype_switch():
    assert golden._exact_dtype(2 ** 24 - 1) is np.float32
    assert golden._exact_dtype(2 ** 24) is np.float64
    assert golden._exact_dtype(2 ** 53 - 1) is np.float64
    with pytest.raises(ValueError, match="too large"):
        golden._exact_dtype(2 ** 53)


def test_float64_path_is_exact_where_float32_is_not():
    # 16-bit weights and inputs: the bound is far above 2^24
    rng = np.random.default_rng(3)
    x = rng.integers(-32767, 32768, (6, 40, 3, 3)).astype(np.int64)
    w = rng.integers(-32768, 32768, (4, 40, 3, 3)).astype(np.int16)
    bound = int(np.abs(w.astype(np.int64)).reshape(4, -1).sum(1).max()) * 32768
    assert bound >= 2 ** 24
    want = shift_conv3x3(x, w)
    np.testing.assert_array_equal(golden.conv3x3(x, w, bound), want)
    # the same sums forced through float32 are wrong: the switch matters
    wrong = golden.conv3x3(x, w, 2 ** 24 - 1)
    assert not np.array_equal(wrong, want)
    xf, wf = x.reshape(6, -1), w.reshape(4, -1)
    np.testing.assert_array_equal(golden.linear(xf, wf, bound), xf @ wf.T.astype(np.int64))


# --------------------------------------------------------------------------------------------
# The network: an independent plain implementation, and layer-major == time-major
# --------------------------------------------------------------------------------------------
def reference_run(model: Model, q: np.ndarray, t_steps: int) -> tuple[np.ndarray, dict]:
    """The spec in plain int64 (shifted einsums, Python-level time loop per layer)."""
    x = None
    spikes = {}
    for layer in model.layers:
        w = model.weights[layer.name] if layer.has_weights else None
        if layer.type == "pool":
            x = np.stack([golden.pool_or(x[t]) for t in range(t_steps)])
        else:
            b = model.biases.get(layer.name, np.zeros(w.shape[0], np.int64)).astype(np.int64)

            def current(inp, layer=layer, w=w, b=b):
                if layer.type == "conv":
                    return shift_conv3x3(inp, w) + b[:, None, None]
                return inp.reshape(inp.shape[0], -1).astype(np.int64) @ w.T.astype(np.int64) + b
            cur = ([current(q)] * t_steps if x is None
                   else [current(x[t]) for t in range(t_steps)])
            if layer.output:
                return sum(cur), spikes
            u = np.zeros(cur[0].shape, np.int64)
            out = []
            for t in range(t_steps):
                if layer.leak_shift:
                    u = u - (u >> layer.leak_shift)
                u = np.clip(u + cur[t], -(2 ** (layer.membrane_bits - 1)),
                            2 ** (layer.membrane_bits - 1) - 1)
                s = u > layer.threshold
                u = u - layer.threshold * s
                out.append(s.astype(np.uint8))
            x = np.stack(out)
        spikes[layer.name] = x.swapaxes(0, 1)
    raise AssertionError("no output layer")


def _images(model: Model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return model.input.quantize(rng.integers(0, 256, (n, *model.input.shape), dtype=np.uint8))


MODELS = {
    "conv-pool": dict(arch="8C-P-16C-P-10"),
    "hidden-linear": dict(arch="6C-P-24L-10"),
    "two-linear": dict(arch="4C-4C-P-12L-8L-6"),
    "linear-first": dict(arch="20L-10"),
    "output-only": dict(arch="10"),
    # 9-bit membranes saturate all the time; thresholds set by hand to keep activity
    "narrow-membrane": dict(arch="8C-P-16C-P-10", membrane_bits=9, thresholds=[200, 20],
                            leak_shifts=[1, 2]),
    "wide-membrane": dict(arch="8C-P-12L-10", membrane_bits=32),
    # a bias on every layer (the first's constant current, hidden and output currents)
    "bias": dict(arch="8C-P-16C-P-12L-10", bias=True),
    "bias-linear-first": dict(arch="20L-10", bias=True),
    "bias-output-only": dict(arch="10", bias=True),
    "bias-wide-membrane": dict(arch="8C-P-12L-10", membrane_bits=32, bias=True),
}


@pytest.fixture(params=sorted(MODELS), scope="module")
def small_model(request) -> Model:
    kw = dict(MODELS[request.param])
    arch, thresholds, shifts = kw.pop("arch"), kw.pop("thresholds", None), kw.pop("leak_shifts", [])
    m = random_model(arch, seed=len(request.param), input_spec=SMALL, **kw)
    if thresholds is None:
        return m
    layers = build_layers(arch, SMALL.shape, membrane_bits=kw["membrane_bits"],
                          leak_shifts=shifts, thresholds=thresholds)
    return Model(name=request.param, timesteps=m.timesteps, input=SMALL, layers=layers,
                 weights=m.weights, classes=m.classes, kind="random-test")


def test_run_equals_plain_reference(small_model):
    q = _images(small_model, 5)
    res = golden.run(small_model, q, record=["spikes"], batch=2)
    logits, spikes = reference_run(small_model, q, small_model.timesteps)
    np.testing.assert_array_equal(res.logits, logits)
    assert spikes.keys() == res.spikes.keys()
    for name, s in spikes.items():
        np.testing.assert_array_equal(res.spikes[name], s, err_msg=name)
    if small_model.lif_layers:  # the test has activity
        assert sum(int(c.sum()) for c in res.spike_counts.values()) > 0


@pytest.mark.parametrize("timesteps", [None, 1, 3])
def test_layer_major_equals_time_major(small_model, timesteps):
    q = _images(small_model, 6, seed=1)
    a = golden.run(small_model, q, timesteps=timesteps, record=["spikes", "membranes"], batch=4)
    b = golden.run_time_major(small_model, q, timesteps=timesteps)
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.prediction, b.prediction)
    for field in ("spikes", "membranes", "spike_counts"):
        da, db = getattr(a, field), getattr(b, field)
        assert da.keys() == db.keys()
        for k in da:
            assert da[k].dtype == db[k].dtype, (field, k)
            np.testing.assert_array_equal(da[k], db[k], err_msg=f"{field}/{k}")


def test_record_shapes_and_dtypes():
    m = random_model("6C-P-24L-10", seed=4, input_spec=SMALL)
    q = _images(m, 3)
    res = golden.run(m, q, record=["spikes", "membranes", "currents"])
    t = m.timesteps
    assert res.logits.shape == (3, 10) and res.logits.dtype == np.int64
    assert res.prediction.dtype == np.int64
    for layer in m.layers:
        if layer.is_lif:
            assert res.membranes[layer.name].shape == (3, *layer.out_shape)
            assert res.membranes[layer.name].dtype == np.int64
        if layer.has_weights:
            assert res.currents[layer.name].shape == (3, t, *layer.out_shape)
            assert res.currents[layer.name].dtype == np.int64
        if not layer.output:
            assert res.spikes[layer.name].shape == (3, t, *layer.out_shape)
            assert res.spikes[layer.name].dtype == np.uint8
            np.testing.assert_array_equal(
                res.spike_counts[layer.name],
                res.spikes[layer.name].reshape(3, -1).sum(1))
    # the first layer's current repeats over T; the output sums its currents
    cur0 = res.currents["conv1"]
    assert (cur0 == cur0[:, :1]).all()
    np.testing.assert_array_equal(res.logits, res.currents["out"].sum(axis=1))
    assert set(golden.run(m, q).spikes) == set()  # nothing recorded by default


def test_batches_do_not_change_results():
    m = random_model("8C-P-16C-P-10", seed=5, input_spec=SMALL)
    q = _images(m, 7)
    a, b = golden.run(m, q, batch=64), golden.run(m, q, batch=3, record=["membranes"])
    np.testing.assert_array_equal(a.logits, b.logits)
    for k in a.spike_counts:
        np.testing.assert_array_equal(a.spike_counts[k], b.spike_counts[k])
    empty = golden.run(m, q[:0])
    assert empty.logits.shape == (0, 10) and empty.prediction.shape == (0,)


def test_argmax_ties_go_to_lowest_index():
    v = np.array([[1, 5, 5, 2], [0, 0, 0, 0], [-3, -1, -2, -1]])
    np.testing.assert_array_equal(golden.argmax_lowest(v), [1, 0, 1])
    m = random_model("8C-P-16C-P-10", seed=6, input_spec=SMALL)
    weights = dict(m.weights)
    weights["out"] = np.zeros_like(weights["out"])
    weights["out"][[3, 7]] = 1  # classes 3 and 7 tie on every image; 3 wins
    tied = Model(name="tied", timesteps=m.timesteps, input=m.input, layers=m.layers,
                 weights=weights, classes=m.classes, kind="random-test")
    res = golden.run(tied, _images(tied, 4))
    assert (res.logits[:, 3] > 0).all()
    np.testing.assert_array_equal(res.logits[:, 3], res.logits[:, 7])
    assert (res.prediction == 3).all()


def test_input_checks():
    m = random_model("8C-P-16C-P-10", seed=7, input_spec=SMALL)
    q = _images(m, 2)
    with pytest.raises(ValueError, match=r"images must be \[N, 3, 8, 8\]"):
        golden.run(m, q[:, :2])
    with pytest.raises(ValueError, match="must be integers"):
        golden.run(m, q.astype(np.float32))
    with pytest.raises(ValueError, match=r"must lie in -127\.\.127"):
        golden.run(m, np.full_like(q, -128))
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        golden.run(m, q, timesteps=0)
    with pytest.raises(ValueError, match="record must be a subset"):
        golden.run(m, q, record=["voltages"])


def test_accuracy_helper():
    m = random_model("8C-P-16C-P-10", seed=8, input_spec=SMALL)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
    pred = golden.run(m, m.input.quantize(images)).prediction
    assert golden.accuracy(m, images, pred) == 1.0
    assert golden.accuracy(m, images, (pred + 1) % 10) == 0.0


def test_bias_is_added_at_every_step():
    """The output layer sums ``W S_t + b`` over the T steps: its logits move by exactly
    ``T * b`` when only the output bias changes; the currents recorded include the bias."""
    import dataclasses

    m = random_model("8C-P-12L-10", seed=2, input_spec=SMALL, bias=True)
    q = _images(m, 4)
    a = golden.run(m, q, record=["currents"])
    b2 = dict(m.biases, out=(m.biases["out"] + 7).astype(m.biases["out"].dtype))
    b = golden.run(dataclasses.replace(m, biases=b2), q, record=["currents"])
    np.testing.assert_array_equal(b.logits - a.logits, np.full_like(a.logits, 7 * m.timesteps))
    np.testing.assert_array_equal(b.currents["out"] - a.currents["out"], 7)
    # the first layer's constant current is W q + b
    want = shift_conv3x3(q.astype(np.int64), m.weights["conv1"]) + m.biases["conv1"][:, None,
                                                                                     None]
    np.testing.assert_array_equal(a.currents["conv1"][:, 0], want)


def test_bias_enters_the_exactness_bound():
    """``current_bound`` includes ``|b|``, so the int32 / float32 choices still hold when the
    bias makes the current large."""
    import dataclasses

    from dietsnn.model import Layer

    m = random_model("8C-P-12L-10", seed=2, input_spec=SMALL, membrane_bits=32, bias=True)
    layers = tuple(dataclasses.replace(x, bias_bits=32) if x.has_weights else x
                   for x in m.layers)
    big = {k: np.full_like(v, 2 ** 30, dtype=np.int32) for k, v in m.biases.items()}
    m2 = dataclasses.replace(m, layers=layers, biases=big)
    fc1: Layer = m2.layer("fc1")
    w = np.abs(m2.weights["fc1"].astype(np.int64)).sum(1).max()
    assert m2.current_bound(fc1) == w + 2 ** 30
    assert golden._acc(fc1, m2.current_bound(fc1)) == np.int64
    q = _images(m2, 3)
    logits, spikes = reference_run(m2, q, m2.timesteps)
    res = golden.run(m2, q, record=["spikes"])
    np.testing.assert_array_equal(res.logits, logits)
    for k, v in spikes.items():
        np.testing.assert_array_equal(res.spikes[k], v, err_msg=k)
