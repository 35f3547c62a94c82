"""The reference side of the accelerator's simulations: stimulus, golden expectations, checks.

Everything here is plain numpy on ``params.json`` (:func:`dietsnn.hw.accel.generate`), so the
cocotb testbench (:mod:`dietsnn.sim.accel_tb`), the runner (:mod:`dietsnn.sim.accel_runner`)
and the C++ Verilator driver (:mod:`dietsnn.sim.accel_verilator`) share one model:

* :func:`beats_of`: images as ``s_axis`` beats (``pix_per_beat`` signed pixels per beat,
  channel-major ``c, y, x``, the last beat zero-padded);
* :func:`expected`: the golden model's results on the images, with the spike counts, the
  cycle model's front and back cycles (:func:`dietsnn.hw.accel.image_cycles`) and,
  optionally, every spike-map word the accelerator must write (:func:`map_words`);
* :func:`check_result` and :func:`check_maps`: one image's result and spike-map writes
  against those expectations; a map mismatch names the layer, the time step and the neuron
  (channel, y, x) of the first differing word.

Map words (see :mod:`dietsnn.hw.accel.plan`): bit ``b`` of word ``((t*H + y)*W + x)*G + g``
is channel ``g*L + b`` at step ``t``, pixel ``(y, x)`` of the written (pooled) map.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import golden
from ..fileio import atomic_path
from ..model import Model

#: Images run through the golden model at once while the expectations are built.
CHUNK = 32


def field(value: int, spec: dict[str, Any], index: int = 0) -> int:
    """Field ``index`` of a packed port value described by a ``params.json`` entry."""
    off = spec["offset"] + index * spec["bits"]
    v = (value >> off) & ((1 << spec["bits"]) - 1)
    if spec["signed"] and v >> (spec["bits"] - 1):
        v -= 1 << spec["bits"]
    return v


def decode_debug(value: int, params: dict[str, Any]) -> dict[str, Any]:
    """``front_cycles``, ``back_cycles`` and ``counts`` of a ``debug`` port value."""
    f = params["ports"]["debug"]["fields"]
    return {"front_cycles": field(value, f["front_cycles"]),
            "back_cycles": field(value, f["back_cycles"]),
            "counts": [field(value, f["counts"], k) for k in range(f["counts"]["count"])]}


def decode_status(value: int, params: dict[str, Any]) -> dict[str, int]:
    """The frame counters of a ``status`` port value."""
    return {k: field(value, s) for k, s in params["ports"]["status"]["fields"].items()}


def beats_of(params: dict[str, Any], q: np.ndarray) -> np.ndarray:
    """Quantised images ``[N, C, H, W]`` as ``s_axis`` beats, uint64 ``[N, beats]``."""
    n = len(q)
    ppb, bits, nb = params["pix_per_beat"], params["pix_bits"], params["beats"]
    flat = np.zeros((n, nb * ppb), np.uint64)
    px = np.asarray(q).reshape(n, -1).astype(np.int64) & ((1 << bits) - 1)
    flat[:, :px.shape[1]] = px.astype(np.uint64)
    shifts = (np.arange(ppb, dtype=np.uint64) * np.uint64(bits))
    return np.bitwise_or.reduce(flat.reshape(n, nb, ppb) << shifts, axis=2)


def map_words(spikes: np.ndarray, lanes: int) -> np.ndarray:
    """Spikes ``[N, T, C, H, W]`` (or ``[N, T, F]``) as map words, uint64 ``[N, T*H*W*G]``."""
    s = spikes if spikes.ndim == 5 else spikes[:, :, :, None, None]
    n, t, c, h, w = s.shape
    g = -(-c // lanes)
    pad = np.zeros((n, t, g * lanes, h, w), np.uint64)
    pad[:, :, :c] = s
    bits = pad.reshape(n, t, g, lanes, h, w).transpose(0, 1, 4, 5, 2, 3)  # n t y x g lane
    weights = np.left_shift(np.uint64(1), np.arange(lanes, dtype=np.uint64))
    return np.bitwise_or.reduce(bits * weights, axis=-1).reshape(n, -1)


def map_layers(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The written spike maps in order (the front's, then each back stage's): ``name``,
    ``c`` (channels), ``h``, ``w``, ``g`` (groups of lanes)."""
    out = []
    for s in [params["front"], *params["stages"]]:
        out.append({"name": s["pool"] or s["name"], "c": s["c_out"], "h": s["ho"],
                    "w": s["wo"], "g": s["g"]})
    return out


def expected(model: Model, q: np.ndarray, params: dict[str, Any], *,
             maps: bool = True) -> dict[str, np.ndarray]:
    """The golden model's expectations on quantised images ``q`` ``[N, C, H, W]``.

    Returns ``prediction [N]``, ``logits [N, K]``, ``counts [N, counters]`` (the ``debug``
    counters' order), ``front_cycles [N]``, ``back_cycles [N]``, ``bound [N]`` (the cycle
    model and its lower bound on the interval) and, with
    ``maps``, ``map<k> [N, words]`` for each map of :func:`map_layers`.
    """
    from ..hw.accel.cycles import image_cycles
    from ..hw.accel.plan import make_plan
    lanes = int(params["lanes"])
    plan = make_plan(model, lanes, data_bits=int(params["data_bits"]))
    layers = map_layers(params)
    parts: dict[str, list[np.ndarray]] = {}

    def add(key: str, v: np.ndarray) -> None:
        parts.setdefault(key, []).append(v)

    for lo in range(0, len(q), CHUNK):
        ref = golden.run(model, q[lo:lo + CHUNK], record={"spikes"})
        add("prediction", ref.prediction.astype(np.int64))
        add("logits", ref.logits.astype(np.int64))
        add("counts", np.stack([ref.spike_counts[c] for c in params["counters"]], axis=1)
            .astype(np.int64))
        cyc = [image_cycles(model, ref, i, lanes=lanes, plan=plan)
               for i in range(len(ref.logits))]
        add("front_cycles", np.array([c.front for c in cyc], np.int64))
        add("back_cycles", np.array([c.back for c in cyc], np.int64))
        add("bound", np.array([c.bound for c in cyc], np.int64))
        if maps:
            for k, lay in enumerate(layers):
                add(f"map{k}", map_words(ref.spikes[lay["name"]], lanes))
    return {k: np.concatenate(v) for k, v in parts.items()}


def save_stimulus(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write the stimulus ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_stimulus(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def signed32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


def check_result(i: int, got: dict[str, Any], exp: dict[str, np.ndarray],
                 params: dict[str, Any], name: str = "") -> tuple[list[str], list[str]]:
    """One image's result (``cls``, ``logits``, ``counts``, ``front_cycles``,
    ``back_cycles``) against expectation row ``i``; returns ``(errors, cycle_errors)``:
    result mismatches, and cycle counters that differ from the cycle model."""
    who = name or f"image {i}"
    errs = []
    want_cls = int(exp["prediction"][i])
    if got["cls"] != want_cls:
        errs.append(f"{who}: class {got['cls']}, golden {want_cls}")
    want_logits = [int(v) for v in exp["logits"][i]]
    if got["logits"] != want_logits:
        errs.append(f"{who}: logits {got['logits']}, golden {want_logits}")
    want_counts = [int(v) for v in exp["counts"][i]]
    if got["counts"] != want_counts:
        bad = [(c, g, w) for c, g, w in zip(params["counters"], got["counts"], want_counts,
                                             strict=True) if g != w]
        errs.append(f"{who}: spike counts differ: " + ", ".join(
            f"{c} {g} (golden {w})" for c, g, w in bad))
    cyc = [f"{who}: {key} {got[key]}, cycle model {int(exp[key][i])}"
           for key in ("front_cycles", "back_cycles") if got[key] != int(exp[key][i])]
    return errs, cyc


def describe_word(layer: dict[str, Any], lanes: int, timesteps: int, addr: int,
                  got: int | None, want: int) -> str:
    """Where a map word sits: layer, step and the neuron of its first differing bit."""
    h, w, g = layer["h"], layer["w"], layer["g"]
    per_step = h * w * g
    if not 0 <= addr < timesteps * per_step:
        return f"layer {layer['name']}: write to word {addr}, outside the map"
    t, r = divmod(addr, per_step)
    pos, grp = divmod(r, g)
    y, x = divmod(pos, w)
    if got is None:
        return (f"layer {layer['name']} step {t}: word {addr} (y {y}, x {x}, channels "
                f"{grp * lanes}..{grp * lanes + lanes - 1}) never written, golden {want:#x}")
    diff = got ^ want
    b = (diff & -diff).bit_length() - 1
    c = grp * lanes + b
    return (f"layer {layer['name']} step {t} neuron (c {c}, y {y}, x {x}): RTL spike "
            f"{(got >> b) & 1}, golden {(want >> b) & 1} (word {addr}: {got:#x} != {want:#x})")


def check_maps(i: int, front: dict[int, int], back: dict[int, dict[int, int]],
               exp: dict[str, np.ndarray], params: dict[str, Any],
               name: str = "") -> list[str]:
    """The spike-map writes seen for one image (``front``: address -> word; ``back``: stage
    -> address -> word) against expectation row ``i``: one error per wrong map, naming its
    first differing word (:func:`describe_word`)."""
    who = name or f"image {i}"
    lanes, T = int(params["lanes"]), int(params["timesteps"])
    errs = []
    for k, layer in enumerate(map_layers(params)):
        key = f"map{k}"
        if key not in exp:
            continue
        seen = front if k == 0 else back.get(k - 1, {})
        want = exp[key][i]
        bad = sorted(a for a in seen if not 0 <= a < len(want))
        for a in range(len(want)):
            v = seen.get(a)
            if v is None or v != int(want[a]):
                bad.append(a)
                break
        if bad:
            a = min(bad)
            inside = 0 <= a < len(want)
            errs.append(f"{who}: " + describe_word(layer, lanes, T, a, seen.get(a),
                                                   int(want[a]) if inside else 0))
    return errs
