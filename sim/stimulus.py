"""Stimulus and expected results for the neuron array: real layers and random corner cases.

A :class:`Job` is one LIF layer (or a random block) evaluated by the golden model: per-step
currents ``[T, N]``, the layer's ``k``, ``theta``, ``b``, and the expected spikes and membranes
after every step (from :func:`dietsnn.golden.lif_step`). :func:`schedule` lays jobs out as
the beats the RTL receives: neurons in groups of ``lanes`` (lane ``p`` of group ``g`` is
neuron ``g * lanes + p``), in passes of ``depth`` groups, time-major within a pass
(``for t: for a in 0..depth-1: (addr=a, step=t)``). With ``depth`` equal to the array's
loop stages this is the register schedule (``depth == 1``: each group's ``T`` steps back to
back); with the largest layer's groups per lane it is the time-major memory schedule. A
last pass with fewer groups than loop stages runs at less than one beat per clock (hazard
stalls), which is correct but slower. :func:`pack_bits` / :func:`unpack_bits` move whole
arrays of beats to and from the packed integers of the Verilog ports in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dietsnn import golden


@dataclass
class Job:
    """One layer pass: currents ``[T, N]`` and the golden results for them.

    Members
    -------
    label : for messages, e.g. ``"image 3 layer conv1"`` or ``"random block 7"``.
    image : image index (-1 for random stimulus); layer : layer name (or ``"random"``).
    leak_shift, threshold, membrane_bits : the layer's ``k``, ``theta``, ``b``.
    currents : int64 ``[T, N]``.
    spikes : uint8 ``[T, N]``; membranes : int64 ``[T, N]`` after each step (golden).
    """

    image: int
    layer: str
    leak_shift: int
    threshold: int
    membrane_bits: int
    currents: np.ndarray
    spikes: np.ndarray = field(init=False)
    membranes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        cur = np.asarray(self.currents, dtype=np.int64)
        if cur.ndim != 2:
            raise ValueError(f"currents must be [T, N], not {list(cur.shape)}")
        self.currents = cur
        u = np.zeros(cur.shape[1], np.int64)
        self.spikes = np.empty(cur.shape, np.uint8)
        self.membranes = np.empty(cur.shape, np.int64)
        for t in range(cur.shape[0]):
            u, self.spikes[t] = golden.lif_step(
                u, cur[t], leak_shift=self.leak_shift, threshold=self.threshold,
                membrane_bits=self.membrane_bits)
            self.membranes[t] = u

    @property
    def label(self) -> str:
        if self.image < 0:
            return f"{self.layer} block"
        return f"image {self.image} layer {self.layer}"


def layer_jobs(model: Any, images_q: np.ndarray, first_index: int = 0) -> list[Job]:
    """Jobs for every LIF layer of ``model`` on quantised images, checked against the golden run.

    The final membranes the golden model records must equal the jobs' last step (it is the
    same function; this guards the plumbing).
    """
    res = golden.run(model, images_q, record={"currents", "spikes", "membranes"})
    jobs = []
    for i in range(images_q.shape[0]):
        for layer in model.lif_layers:
            cur = res.currents[layer.name][i]
            t_steps = cur.shape[0]
            job = Job(first_index + i, layer.name, layer.leak_shift, layer.threshold,
                      layer.membrane_bits, cur.reshape(t_steps, -1))
            if not (np.array_equal(job.spikes, res.spikes[layer.name][i].reshape(t_steps, -1))
                    and np.array_equal(job.membranes[-1],
                                       res.membranes[layer.name][i].reshape(-1))):
                raise AssertionError(f"{job.label}: golden.run and lif_step disagree")
            jobs.append(job)
    return jobs


def random_jobs(rng: np.random.Generator, *, updates: int, lanes: int, timesteps: int,
                current_bits: int, membrane_bits: int) -> list[Job]:
    """Random blocks totalling at least ``updates`` neuron updates, covering the corners.

    Every ``b`` in ``2..membrane_bits`` (small ``b`` saturates often), every ``k`` in
    ``0..b-1``, thresholds at 1, at the maximum ``2^(b-1) - 1`` and in between, currents at
    both ends of the current range (saturating both ways) and small currents that land the
    membrane exactly on the threshold.
    """
    cmax = 2 ** (current_bits - 1) - 1
    cmin = -(2 ** (current_bits - 1))
    jobs: list[Job] = []
    done = 0
    n = lanes * 6 * max(1, 12 // lanes)  # whole groups, a multiple of 1, 2 and 3 groups
    i = 0
    while done < updates:
        b = int(2 + i % (membrane_bits - 1)) if i < 4 * membrane_bits else \
            int(rng.integers(2, membrane_bits + 1))
        k = int(rng.integers(0, b))
        umax = 2 ** (b - 1) - 1
        theta = int(rng.choice([1, umax, rng.integers(1, umax + 1), max(1, umax // 3)]))
        mode = i % 4
        if mode == 0:      # wide currents: saturate both ways
            cur = rng.integers(cmin, cmax + 1, (timesteps, n))
            ends = rng.random((timesteps, n))
            cur[ends < 0.1] = cmin
            cur[ends > 0.9] = cmax
        elif mode == 1:    # currents on the scale of the membrane range
            lim = min(cmax, 2 * umax + 1)
            cur = rng.integers(-lim, lim + 1, (timesteps, n))
        else:              # around the threshold: exact-threshold cases
            lim = min(cmax, max(2, theta // 2))
            cur = rng.integers(-lim, lim + 1, (timesteps, n))
            cur[0, : n // 2] = np.minimum(theta, cmax)   # U = theta after step 0 (no spike)
            cur[0, n // 2: 3 * n // 4] = np.minimum(theta + 1, cmax)
        jobs.append(Job(-1, f"random {i} b={b} k={k} theta={theta}", k, theta, b, cur))
        done += cur.size
        i += 1
    return jobs


@dataclass
class Beats:
    """Beats for the RTL, in order. All arrays have one row per beat.

    Members
    -------
    addr, step : int64 ``[n]``; current : int64 ``[n, lanes]``; params : int64 ``[n, 3]``
    (k, theta, b); spikes : uint8 ``[n, lanes]`` and membranes : int64 ``[n, lanes]`` expected;
    job : int64 ``[n]`` index into the job list; neuron : int64 ``[n, lanes]`` neuron index
    within the job (-1 for padding lanes, whose results are not checked).
    """

    addr: np.ndarray
    step: np.ndarray
    current: np.ndarray
    params: np.ndarray
    spikes: np.ndarray
    membranes: np.ndarray
    job: np.ndarray
    neuron: np.ndarray

    def __len__(self) -> int:
        return len(self.addr)


def schedule(jobs: list[Job], *, lanes: int, depth: int) -> Beats:
    """Lay jobs out as beats (see the module docstring for the order)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Beats.__dataclass_fields__}
    for j, job in enumerate(jobs):
        t_steps, n = job.currents.shape
        groups = -(-n // lanes)
        pad = groups * lanes - n

        shape = (t_steps, groups, lanes)
        neuron = _grid(np.broadcast_to(np.arange(n), (t_steps, n)), pad, shape, -1)
        cur, spk, mem = (_grid(a, pad, shape) for a in (job.currents, job.spikes, job.membranes))
        for g0 in range(0, groups, depth):
            sl = slice(g0, min(groups, g0 + depth))
            d = sl.stop - sl.start
            # depth 1: neuron-major [G, T]; memory schedule: time-major [T, d] per pass
            order = (1, 0, 2) if depth == 1 else (0, 1, 2)
            for key, a in (("current", cur), ("spikes", spk), ("membranes", mem),
                           ("neuron", neuron)):
                parts[key].append(a[:, sl].transpose(order).reshape(-1, lanes))
            tt, gg = np.meshgrid(np.arange(t_steps), np.arange(d), indexing="ij")
            if depth == 1:
                tt, gg = tt.T, gg.T
            parts["step"].append(tt.reshape(-1))
            parts["addr"].append(gg.reshape(-1))
            m = t_steps * d
            parts["job"].append(np.full(m, j))
            parts["params"].append(np.tile([job.leak_shift, job.threshold, job.membrane_bits],
                                           (m, 1)))
    return Beats(**{k: np.concatenate(v).astype(np.uint8 if k == "spikes" else np.int64)
                    for k, v in parts.items()})


def _grid(a: np.ndarray, pad: int, shape: tuple[int, int, int], fill: int = 0) -> np.ndarray:
    """``[T, N]`` -> ``[T, G, P]``, padding the last group with ``fill``."""
    return np.pad(a, ((0, 0), (0, pad)), constant_values=fill).reshape(shape)


def pack_bits(width: int, fields: list[tuple[np.ndarray, int, int]]) -> list[int]:
    """Pack per-beat fields into one integer per beat.

    ``fields`` holds ``(values, offset, bits)``; ``values`` is ``[n]`` or ``[n, k]`` (element
    ``i`` at ``offset + i * bits``); negative values are two's complement.
    """
    n = len(fields[0][0])
    bits = np.zeros((n, width), np.uint8)
    for values, offset, nb in fields:
        v = np.asarray(values, np.int64).reshape(n, -1)
        k = v.shape[1]
        u = (v & ((1 << nb) - 1)).astype(np.uint64)
        b = ((u[:, :, None] >> np.arange(nb, dtype=np.uint64)) & 1).astype(np.uint8)
        bits[:, offset: offset + k * nb] = b.reshape(n, k * nb)
    nbytes = (width + 7) // 8
    packed = np.packbits(bits, axis=1, bitorder="little")
    packed = np.pad(packed, ((0, 0), (0, nbytes - packed.shape[1])))
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack_bits(words: list[int], width: int, offset: int, bits: int, count: int = 1,
                signed: bool = False) -> np.ndarray:
    """Inverse of :func:`pack_bits` for one field: int64 ``[n, count]``."""
    n = len(words)
    nbytes = (width + 7) // 8
    raw = np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words), np.uint8)
    allbits = np.unpackbits(raw.reshape(n, nbytes), axis=1, bitorder="little")
    f = allbits[:, offset: offset + count * bits].reshape(n, count, bits).astype(np.int64)
    v = (f << np.arange(bits, dtype=np.int64)).sum(axis=2)
    if signed:
        v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v
