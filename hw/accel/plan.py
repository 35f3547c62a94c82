"""The accelerator's plan: how a model maps onto the datapath (pure Python, no Amaranth).

:func:`make_plan` turns a :class:`~dietsnn.model.Model` and ``lanes`` into an
:class:`AccelPlan`: one :class:`Stage` per weight layer (a following pool is folded into the
stage that produces the spikes), the widths of every memory, the packed weight rows and the
list of debug spike counters. The RTL (:mod:`.core`), the cycle model (:mod:`.cycles`), the
testbench (through ``params.json``) and the docs all read this one plan.

Memories (``L`` = lanes)
    ``wmem`` weight rows, ``L`` x ``weight_bits`` per row; lane ``l`` of a row belongs to
    output channel ``g*L + l`` of output group ``g``.

    * conv stage (dense or event-driven): row ``wbase + g*(C_in*9) + c*9 + ky*3 + kx``
      holds ``W[g*L + l, c, ky, kx]``.
    * linear stage: the input index ``i = (c*H + y)*W + x`` of the flattened ``[C, H, W]``
      map is permuted to the order the scanner finds spikes in: map word
      ``j = (c // L)*H*W + y*W + x`` and bit ``b = c % L``, row
      ``wbase + g*(J*L) + j*L + b`` with ``J`` the map words per time step.

    ``vmem`` the membrane/current buffer, ``L`` x ``vbits`` per row, row ``g*H*W + y*W + x``
    for output neuron ``(g*L + l, y, x)``. It holds ``V = U' + sum of the currents so far``
    where ``U'`` is the leaked membrane, so one buffer serves as membrane and current.

    ``smap`` the spike maps, one ``L``-bit word per (time step, channel group, pixel): map word
    ``t*J + (c // L)*H*W + y*W + x``, bit ``c % L``. Two halves (ping-pong): stage ``s``
    writes half ``s % 2`` and stage ``s + 1`` reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...model import Layer, Model, signed_bits


class PlanError(ValueError):
    """The model cannot be mapped onto the accelerator (the message says why)."""


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _bits(n: int) -> int:
    """Unsigned width holding ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class Stage:
    """One weight layer of the network as the accelerator runs it.

    Members
    -------
    kind : ``"dense"`` (first layer: multiply-accumulate on the image), ``"conv"`` or
        ``"linear"`` (event-driven, hidden LIF) or ``"out"`` (event-driven output layer).
    name, pool : the layer name and the name of the pool folded into it (or ``""``).
    c_in, h_in, w_in : the input map (the image for ``dense``).
    g_in, words_in : input channel groups ``ceil(C_in / L)`` and map words per time step.
    c_out, g_out, h, w : output neurons; ``h = w = 1`` for linear stages.
    ho, wo, words_out : the written spike map (pooled or not) and its words per time step.
    wbase, wstride : first weight row and rows per output group.
    threshold, leak_shift, membrane_bits : LIF parameters (0 for the output stage).
    count, pool_count : indices of the debug spike counters (-1: none).
    fold : 2 when a conv layer has ``C_out <= L/2``, so that it still uses every lane: in
        the dense stage (only when a pool follows) the two lane halves take the two pixels of
        a block row; in an event-driven stage they take two kernel positions of an event,
        each half accumulating into its own bank of ``vmem`` (the LIF pass adds the two).
        Else 1.
    """

    kind: str
    name: str
    pool: str
    c_in: int
    h_in: int
    w_in: int
    g_in: int
    words_in: int
    c_out: int
    g_out: int
    h: int
    w: int
    ho: int
    wo: int
    words_out: int
    wbase: int
    wstride: int
    threshold: int
    leak_shift: int
    membrane_bits: int
    count: int
    pool_count: int
    fold: int = 1

    @property
    def pooled(self) -> bool:
        return bool(self.pool)

    @property
    def conv(self) -> bool:
        return self.kind in ("dense", "conv")

    @property
    def vrows(self) -> int:
        """Rows of ``vmem`` the stage uses."""
        return self.g_out * self.h * self.w


@dataclass
class AccelPlan:
    """The whole mapping; see the module docstring.

    Members
    -------
    lanes : ``L``, output channels updated per clock.
    timesteps : ``T``.
    stages : the weight layers in order.
    in_shape, in_bits : the image ``[C, H, W]`` and the signed width of a pixel.
    weight_bits, vbits, acc_bits : widths of a weight, a ``vmem`` lane and the dense
        accumulator.
    wrows, vrows, map_words : depths of ``wmem``, ``vmem`` and one half of ``smap``.
    classes, out_bits : output classes and the width of a logit.
    counters : names of the debug spike counters (golden ``Result.spike_counts`` keys).
    count_bits : width of a spike counter.
    """

    lanes: int
    timesteps: int
    stages: list[Stage]
    in_shape: tuple[int, int, int]
    in_bits: int
    weight_bits: int
    vbits: int
    acc_bits: int
    wrows: int
    vrows: int
    map_words: int
    classes: int
    out_bits: int
    counters: list[str]
    count_bits: int
    model_name: str = ""
    weight_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64),
                                    repr=False)

    @property
    def pixels(self) -> int:
        c, h, w = self.in_shape
        return c * h * w

    def to_json(self) -> dict[str, Any]:
        """Everything but the weights, as plain JSON (the body of ``params.json``)."""
        return {
            "model": self.model_name, "lanes": self.lanes, "timesteps": self.timesteps,
            "in_shape": list(self.in_shape), "in_bits": self.in_bits,
            "weight_bits": self.weight_bits, "vbits": self.vbits, "acc_bits": self.acc_bits,
            "wrows": self.wrows, "vrows": self.vrows, "map_words": self.map_words,
            "classes": self.classes, "out_bits": self.out_bits, "counters": self.counters,
            "count_bits": self.count_bits, "pixels": self.pixels,
            "stages": [asdict(s) for s in self.stages],
        }


def check_lanes(lanes: Any) -> int:
    if not (isinstance(lanes, int) and not isinstance(lanes, bool) and lanes > 0
            and lanes & (lanes - 1) == 0):
        raise ValueError(f"lanes must be a positive power of two, not {lanes!r}")
    return lanes


def _group_layers(model: Model) -> list[tuple[Layer, Layer | None]]:
    """Pair each weight layer with the pool that follows it (if any)."""
    out: list[tuple[Layer, Layer | None]] = []
    for layer in model.layers:
        if layer.type == "pool":
            if not out or out[-1][1] is not None or out[-1][0].type != "conv":
                raise PlanError(f"{model.name}: pool layer {layer.name!r} must follow a conv "
                                f"layer directly (no pool after a pool or a linear layer)")
            out[-1] = (out[-1][0], layer)
        else:
            out.append((layer, None))
    if out[0][0].type != "conv":
        raise PlanError(f"{model.name}: the first layer must be a conv layer "
                        f"(the dense input stage is a 3x3 convolution), not {out[0][0].type}")
    return out


def make_plan(model: Model, lanes: int) -> AccelPlan:
    """Map ``model`` onto an accelerator with ``lanes`` lanes (see the module docstring)."""
    lanes = check_lanes(lanes)
    L = lanes
    t_steps = model.timesteps
    groups = _group_layers(model)
    stages: list[Stage] = []
    counters: list[str] = []
    rows: list[np.ndarray] = []
    wbase = 0
    c_in, h_in, w_in = model.input.shape
    wbits = 0
    for i, (layer, pool) in enumerate(groups):
        w = model.weights[layer.name].astype(np.int64)
        wbits = max(wbits, layer.weight_bits)
        g_in = _ceil_div(c_in, L)
        words_in = g_in * h_in * w_in
        c_out = layer.out_shape[0]
        g_out = _ceil_div(c_out, L)
        narrow = L >= 2 and c_out <= L // 2 and layer.type == "conv"
        fold = 2 if narrow and (i > 0 or pool is not None) else 1
        if layer.type == "conv":
            h, wd = layer.out_shape[1:]
            wstride = c_in * 9
            blk = np.zeros((g_out * L, c_in * 9), np.int64)
            for f in range(fold):  # columns ordered (c, ky, kx); a folded stage repeats them
                off = f * (L // fold)
                blk[off:off + c_out] = w.reshape(c_out, c_in * 9)
        else:
            h = wd = 1
            wstride = words_in * L
            blk = np.zeros((g_out * L, wstride), np.int64)
            cc, yy, xx = np.meshgrid(np.arange(c_in), np.arange(h_in), np.arange(w_in),
                                     indexing="ij")
            src = ((cc * h_in + yy) * w_in + xx).ravel()
            dst = (((cc // L) * h_in * w_in + yy * w_in + xx) * L + cc % L).ravel()
            blk[:c_out, dst] = w[:, src]
        # rows: for each group g, wstride rows of L lanes
        rows.append(blk.reshape(g_out, L, wstride).transpose(0, 2, 1).reshape(-1, L))
        kind = "dense" if i == 0 else ("out" if layer.output else layer.type)
        if kind == "dense" and layer.type != "conv":
            raise PlanError(f"{model.name}: the first layer must be conv")
        count = pool_count = -1
        if layer.is_lif:
            count = len(counters)
            counters.append(layer.name)
        if pool is not None:
            pool_count = len(counters)
            counters.append(pool.name)
        ho, wo = (h // 2, wd // 2) if pool is not None else (h, wd)
        stages.append(Stage(
            kind=kind, name=layer.name, pool=pool.name if pool is not None else "",
            c_in=c_in, h_in=h_in, w_in=w_in, g_in=g_in, words_in=words_in,
            c_out=c_out, g_out=g_out, h=h, w=wd, ho=ho, wo=wo, words_out=g_out * ho * wo,
            wbase=wbase, wstride=wstride,
            threshold=int(layer.threshold or 0), leak_shift=int(layer.leak_shift or 0),
            membrane_bits=int(layer.membrane_bits or 0), count=count, pool_count=pool_count,
            fold=fold))
        wbase += g_out * wstride
        c_in, h_in, w_in = (c_out, ho, wo) if layer.type == "conv" else (c_out, 1, 1)
    first = model.layers[0]
    if first.out_shape[1] < 2 or first.out_shape[2] < 2:
        raise PlanError(f"{model.name}: the first conv layer needs an image of at least 2x2")
    # V holds U' (|U'| <= 2^(B-1)) plus a partial sum of currents (|.| <= current bound)
    vbits = signed_bits(model.timesteps * model.current_bound(model.output_layer))
    for layer, _ in groups:
        if layer.is_lif:
            bound = 2 ** (layer.membrane_bits - 1) + model.current_bound(layer) + layer.threshold
            vbits = max(vbits, signed_bits(bound))
    max_neurons = max(layer.neurons for layer, _ in groups if layer.is_lif)
    scatter = [s for s in stages if s.kind != "dense"]
    return AccelPlan(
        lanes=L, timesteps=t_steps, stages=stages, in_shape=tuple(model.input.shape),
        in_bits=model.input.bits, weight_bits=wbits, vbits=vbits,
        acc_bits=model.current_bits(first), wrows=wbase,
        vrows=max(s.vrows for s in scatter), map_words=max(
            t_steps * s.words_out for s in stages if s.kind != "out"),
        classes=model.output_layer.out_shape[0], out_bits=model.output_bits(),
        counters=counters, count_bits=_bits(t_steps * max_neurons), model_name=model.name,
        weight_rows=np.concatenate(rows, axis=0))


def pack_rows(rows: np.ndarray, bits: int) -> list[int]:
    """Pack ``[N, L]`` signed integers into ``N`` unsigned words, lane ``l`` at ``l*bits``."""
    mask = (1 << bits) - 1
    out = []
    for r in rows.tolist():
        v = 0
        for lane, x in enumerate(r):
            v |= (int(x) & mask) << (lane * bits)
        out.append(v)
    return out
