"""The accelerator's plan: how a model maps onto the datapath (pure Python, no Amaranth).

:func:`make_plan` turns a :class:`~dietsnn.model.Model` and ``lanes`` (``L``) into an
:class:`AccelPlan`. The RTL (:mod:`.core` and its units), the cycle model (:mod:`.cycles`),
the testbenches (through ``params.json``) and the docs all read this one plan.

Units and the stages they run
    * **front** (:class:`FrontStage`): the first layer, a 3x3 conv on the image, ``L``
      multiply-accumulates per clock, its LIF (a :class:`~dietsnn.hw.neuron.NeuronArray`)
      run over ``T`` steps of the same current; an optional 2x2 OR pool.
    * **engine** (:class:`EventStage`, ``kind`` ``"conv"`` or ``"linear"``): every hidden
      layer after the first, event-driven: two input spikes (of one map word) per clock
      update ``9 x L`` window accumulators (all kernel positions of ``L`` output channels),
      a three-row line buffer collects the partial currents, the final row goes through the
      LIF pipeline. A linear layer is a 1x1 map whose "channels" are the input map's
      words x ``L`` bits.
    * **output** (:class:`OutStage`): the linear output layer (no LIF, sum over all ``T``
      steps) and the argmax.

Spike maps (``L``-bit words, bit ``b`` of word ``((t*H + y)*W + x)*G + g`` is channel
``g*L + b`` at step ``t``, pixel ``(y, x)``) live in ``M0``/``M1`` (the front's output,
double-buffered so the front can run one image ahead) and ``P0``/``P1`` (ping-pong between
engine stages). Beside ``P0``/``P1``, the mask memory ``nz`` holds, for each position
``(t*H + y)*W + x`` of a map a skipping stage reads (:attr:`EventStage.skip`), a ``G``-bit
mask of its nonzero words (bit ``g``: word ``g`` has a spike), written by the stage that
writes the map; address ``Cat(position, map)`` (``map`` 0 for ``P0``, 1 for ``P1``).

Weights
    * front ROM ``wfront``: row ``g*C_in*9 + c*9 + ky*3 + kx`` holds ``W[g*L + l, c, ky, kx]``
      in lane ``l`` (``L x weight_bits`` bits).
    * engine ROM ``wmem``: one row = 9 taps x ``L`` lanes. conv stage: row
      ``wbase + g*C_in + c``, tap ``ky*3 + kx``, lane ``l`` = ``W[g*L + l, c, ky, kx]``.
      linear stage: input word ``j`` (``J = H*W*G_in`` words per step), bit ``b`` is the
      virtual channel ``v = j*L + b``; it sits in row ``wbase + g*J*R + j*R + b // 9``, tap
      slot ``b % 9`` (``R = ceil(L / 9)`` rows per word).
    * output ROM ``wout``: row ``j*L + b`` holds ``W[k, i(j, b)]`` for every class ``k``
      (``K x weight_bits`` bits).

Biases (only for layers that have one; a model without bias gets none of this hardware)
    * front ROM ``bfront``: row ``g`` holds ``b[g*L + l]`` in lane ``l`` (``L x
      current_bits``); the front starts each pixel's accumulator from it.
    * engine ROM ``bmem`` (when any engine stage has a bias): row ``bbase + g`` of a stage
      holds ``b[g*L + l]`` in lane ``l`` (``L x cur_bits``; zeros for a stage without bias);
      it is added to each neuron's final current before the LIF pipeline.
    * output: no ROM; each logit accumulator starts from the constant ``T * b[k]`` (the
      output layer neither saturates nor leaks, so adding ``b`` at each of the ``T`` steps
      gives the same sum).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...errors import InputError
from ...model import Layer, Model

#: Supported lane counts (output channels per event and clock).
LANES = (4, 8, 16, 32, 64)
#: Lanes of the default design point of a cifar10-sized model (see :func:`default_lanes`).
DEFAULT_LANES = 32
#: Supported AXI4-Stream ``tdata`` widths of the image input.
DATA_BITS = (32, 64)
#: Width of a result beat (class, then one logit per beat).
OUT_DATA_BITS = 32


class PlanError(InputError):
    """The model cannot be mapped onto the accelerator (the message says why)."""


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ubits(n: int) -> int:
    """Unsigned width holding ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class FrontStage:
    """The first layer (3x3 conv on the image), run by the front unit.

    Members
    -------
    name, pool : layer name and the name of the pool folded into it (``""``: none).
    c_in, h, w : the image. c_out, g : output channels and groups ``ceil(c_out / L)``.
    ho, wo : the written map (pooled or not). taps : ``c_in * 9`` (one per clock).
    threshold, leak_shift, membrane_bits, current_bits : the LIF layer.
    count, pool_count : debug counter indices (-1: none). dst : the map written (``"M"``).
    bias : the layer has a bias (the ``bfront`` ROM).
    """

    name: str
    pool: str
    c_in: int
    h: int
    w: int
    c_out: int
    g: int
    ho: int
    wo: int
    taps: int
    threshold: int
    leak_shift: int
    membrane_bits: int
    current_bits: int
    count: int
    pool_count: int
    bias: bool = False

    @property
    def map_words(self) -> int:
        return self.ho * self.wo * self.g


@dataclass(frozen=True)
class EventStage:
    """A hidden layer after the first, run by the event-driven engine.

    Members
    -------
    kind : ``"conv"`` (3x3) or ``"linear"`` (a 1x1 map; ``g_in`` is then the input map's words
        per step ``J`` and the channels are virtual, ``v = j*L + b``).
    name, pool : layer name and folded pool name.
    c_in, g_in : input channels (conv) or ``J * L`` virtual channels (linear), and input words
        per position (``ceil(C_in / L)``; ``J`` for linear).
    h, w : the map the engine walks (input = output size; 1, 1 for linear).
    c_out, g : output neurons per position and their groups of ``L``.
    ho, wo : the written map (pooled or not).
    wbase, wrows : first row and rows of ``wmem``.
    threshold, leak_shift, membrane_bits : the LIF layer. src, dst : maps read and written.
    count, pool_count : debug counter indices.
    bias, bbase : the layer has a bias; its first row of the engine bias ROM ``bmem``.
    skip : the scanner skips the zero words of a position (a conv stage reading a ``P`` map
        with ``g_in >= 2``: the previous stage records each position's nonzero words).
    """

    kind: str
    name: str
    pool: str
    c_in: int
    g_in: int
    h: int
    w: int
    c_out: int
    g: int
    ho: int
    wo: int
    wbase: int
    wrows: int
    threshold: int
    leak_shift: int
    membrane_bits: int
    src: str
    dst: str
    count: int
    pool_count: int
    bias: bool = False
    bbase: int = 0
    skip: bool = False

    @property
    def map_words(self) -> int:
        return self.ho * self.wo * self.g

    @property
    def in_words(self) -> int:
        """Input map words per time step."""
        return self.h * self.w * self.g_in

    @property
    def neurons_per_lane(self) -> int:
        return self.h * self.w * self.g


@dataclass(frozen=True)
class OutStage:
    """The linear output layer: ``classes`` accumulators, every input word of all steps.

    Members
    -------
    name, classes, in_words (``J``, input words per step), src, wrows (``J * L``).
    bias : the layer has a bias (the accumulators start from ``T * b``).
    """

    name: str
    classes: int
    in_words: int
    src: str
    wrows: int
    bias: bool = False


@dataclass
class AccelPlan:
    """The whole mapping; see the module docstring.

    Members
    -------
    lanes : ``L``. timesteps : ``T``. in_shape, in_bits : the image and its pixel width.
    data_bits, pix_bits, pix_per_beat : AXI4-Stream input width, bits per pixel lane (8 or
        16) and pixels per beat (``data_bits // pix_bits``). beats : beats per image.
    front, stages, out : the units' work.
    weight_bits : width of every stored weight (the largest layer's).
    cur_bits : width of the engine's window, line buffer and LIF current (largest current
        of an event stage). mem_bits : ``B`` of the LIF membrane store (largest of them).
    linebuf_depth : entries per line-buffer row (``max W*G``). umem_depth : membrane
        store rows (``max H*W*G``). map_depth : words of each map (``M``, ``P0``, ``P1``).
    wrows : rows of ``wmem``. classes, out_bits : output classes and logit width.
    counters, count_bits : debug spike counters (golden ``Result.spike_counts`` names).
    rows_per_word : ``R = ceil(L / 9)`` (linear stages).
    front_bias, engine_bias, out_bias : the bias ROMs' rows (module docstring): ``[G, L]``,
    ``[rows, L]`` (no rows when no engine stage has a bias) and ``[K]``.
    """

    lanes: int
    timesteps: int
    in_shape: tuple[int, int, int]
    in_bits: int
    data_bits: int
    pix_bits: int
    front: FrontStage
    stages: list[EventStage]
    out: OutStage
    weight_bits: int
    cur_bits: int
    mem_bits: int
    linebuf_depth: int
    umem_depth: int
    map_depth: dict[str, int]
    wrows: int
    classes: int
    out_bits: int
    counters: list[str]
    count_bits: int
    model_name: str = ""
    front_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64),
                                   repr=False)
    engine_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 9, 0), np.int64),
                                    repr=False)
    out_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64),
                                 repr=False)
    front_bias: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64),
                                   repr=False)
    engine_bias: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64),
                                    repr=False)
    out_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def rows_per_word(self) -> int:
        return ceil_div(self.lanes, 9)

    @property
    def nz_width(self) -> int:
        """Bits of a position's nonzero-word mask (``max g_in`` of the skipping stages; 0 when
        no stage skips: no mask memory)."""
        return max([s.g_in for s in self.stages if s.skip], default=0)

    @property
    def nz_pos_bits(self) -> int:
        """Address bits of one map's masks (one per position of all ``T`` steps)."""
        n = max([self.timesteps * s.h * s.w for s in self.stages if s.skip], default=1)
        return max(1, (n - 1).bit_length())

    def records_nz(self, k: int) -> bool:
        """Whether stage ``k``'s writer records the masks (the next stage skips)."""
        return k + 1 < len(self.stages) and self.stages[k + 1].skip

    @property
    def pixels(self) -> int:
        c, h, w = self.in_shape
        return c * h * w

    @property
    def pix_per_beat(self) -> int:
        return self.data_bits // self.pix_bits

    @property
    def beats(self) -> int:
        return ceil_div(self.pixels, self.pix_per_beat)

    def to_json(self) -> dict[str, Any]:
        """Everything but the weights, as plain JSON (the body of ``params.json``)."""
        return {
            "model": self.model_name, "lanes": self.lanes, "timesteps": self.timesteps,
            "in_shape": list(self.in_shape), "in_bits": self.in_bits,
            "data_bits": self.data_bits, "pix_bits": self.pix_bits,
            "pix_per_beat": self.pix_per_beat, "beats": self.beats, "pixels": self.pixels,
            "weight_bits": self.weight_bits, "cur_bits": self.cur_bits,
            "mem_bits": self.mem_bits, "linebuf_depth": self.linebuf_depth,
            "umem_depth": self.umem_depth, "map_depth": self.map_depth, "wrows": self.wrows,
            "classes": self.classes, "out_bits": self.out_bits, "counters": self.counters,
            "count_bits": self.count_bits, "rows_per_word": self.rows_per_word,
            "nz_width": self.nz_width,
            "front": asdict(self.front), "stages": [asdict(s) for s in self.stages],
            "out": asdict(self.out),
        }


def default_lanes(model: Model) -> int:
    """The lanes of the default design point (``dietsnn sim``, ``estimate``, ``rtl``):
    :data:`DEFAULT_LANES` for a model with a conv layer of 32 or more channels, else 16."""
    widest = max((int(x.out_shape[0]) for x in model.layers if x.type == "conv"), default=0)
    return DEFAULT_LANES if widest >= DEFAULT_LANES else 16


def check_lanes(lanes: Any) -> int:
    if isinstance(lanes, bool) or lanes not in LANES:
        raise ValueError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    return lanes


def check_data_bits(data_bits: Any) -> int:
    if isinstance(data_bits, bool) or data_bits not in DATA_BITS:
        raise ValueError(f"data_bits must be one of {', '.join(map(str, DATA_BITS))}, "
                         f"not {data_bits!r}")
    return data_bits


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
        raise PlanError(f"{model.name}: the first layer must be a 3x3 conv layer (the front "
                        f"unit's input stage), not {out[0][0].type}")
    if len(out) < 2:
        raise PlanError(f"{model.name}: needs a linear output layer after the first layer")
    return out


def _map_index(c_in: int, h: int, w: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """For the flattened input ``i = (c*H + y)*W + x``: its map word ``j`` within a step and
    its bit ``b`` (``j = (y*W + x)*G + c // L``, ``b = c % L``)."""
    g = ceil_div(c_in, lanes)
    cc, yy, xx = np.meshgrid(np.arange(c_in), np.arange(h), np.arange(w), indexing="ij")
    j = ((yy * w + xx) * g + cc // lanes).ravel()
    b = (cc % lanes).ravel()
    return j, b


def make_plan(model: Model, lanes: int, *, data_bits: int = 32) -> AccelPlan:
    """Map ``model`` onto an accelerator with ``lanes`` lanes (see the module docstring)."""
    L = check_lanes(lanes)
    data_bits = check_data_bits(data_bits)
    T = model.timesteps
    groups = _group_layers(model)
    if model.input.bits > 16:
        raise PlanError(f"{model.name}: input bits must be at most 16, not {model.input.bits}")
    pix_bits = 8 if model.input.bits <= 8 else 16
    counters: list[str] = []

    def counter(layer: Layer | None) -> int:
        if layer is None:
            return -1
        counters.append(layer.name)
        return len(counters) - 1

    # ---- front --------------------------------------------------------------------------
    first, fpool = groups[0]
    c_in, h, w = model.input.shape
    if h < 2 or w < 2:
        raise PlanError(f"{model.name}: the image must be at least 2x2")
    c_out = first.out_shape[0]
    g1 = ceil_div(c_out, L)
    wf = model.weights[first.name].astype(np.int64).reshape(c_out, c_in * 9)
    front_rows = np.zeros((g1 * c_in * 9, L), np.int64)
    for g in range(g1):
        n = min(L, c_out - g * L)
        front_rows[g * c_in * 9:(g + 1) * c_in * 9, :n] = wf[g * L:g * L + n].T
    ho, wo = (h // 2, w // 2) if fpool is not None else (h, w)
    front_bias = _bias_rows(model, first, L)
    front = FrontStage(
        name=first.name, pool=fpool.name if fpool is not None else "", c_in=c_in, h=h, w=w,
        c_out=c_out, g=g1, ho=ho, wo=wo, taps=c_in * 9, threshold=int(first.threshold),
        leak_shift=int(first.leak_shift), membrane_bits=int(first.membrane_bits),
        current_bits=model.current_bits(first), count=counter(first), pool_count=counter(fpool),
        bias=first.has_bias)
    wbits = first.weight_bits
    # the next layer's input map
    c_in, h, w, src = c_out, ho, wo, "M"

    # ---- engine stages ----------------------------------------------------------------------
    stages: list[EventStage] = []
    erows: list[np.ndarray] = []
    ebias: list[np.ndarray] = []
    wbase = 0
    R = ceil_div(L, 9)
    for k, (layer, pool) in enumerate(groups[1:-1]):
        wbits = max(wbits, layer.weight_bits)
        wl = model.weights[layer.name].astype(np.int64)
        c_out = layer.out_shape[0]
        g = ceil_div(c_out, L)
        g_in = ceil_div(c_in, L)
        dst = f"P{k % 2}"
        if layer.type == "conv":
            rows = np.zeros((g * c_in, 9, L), np.int64)
            wr = wl.reshape(c_out, c_in, 9)
            for gg in range(g):
                n = min(L, c_out - gg * L)
                rows[gg * c_in:(gg + 1) * c_in, :, :n] = wr[gg * L:gg * L + n].transpose(1, 2, 0)
            eh, ew, ho, wo = h, w, (h // 2 if pool else h), (w // 2 if pool else w)
            kind, ec_in, eg_in = "conv", c_in, g_in
        else:
            J = h * w * g_in
            j, b = _map_index(c_in, h, w, L)
            rows = np.zeros((g * J * R, 9, L), np.int64)
            for gg in range(g):
                n = min(L, c_out - gg * L)
                r = gg * J * R + j * R + b // 9
                rows[r, b % 9, :n] = wl[gg * L:gg * L + n, :].T
            eh = ew = ho = wo = 1
            kind, ec_in, eg_in = "linear", J * L, J
        stages.append(EventStage(
            kind=kind, name=layer.name, pool=pool.name if pool is not None else "",
            c_in=ec_in, g_in=eg_in, h=eh, w=ew, c_out=c_out, g=g, ho=ho, wo=wo, wbase=wbase,
            wrows=len(rows), threshold=int(layer.threshold), leak_shift=int(layer.leak_shift),
            membrane_bits=int(layer.membrane_bits), src=src, dst=dst, count=counter(layer),
            pool_count=counter(pool), bias=layer.has_bias, bbase=sum(map(len, ebias)),
            skip=kind == "conv" and eg_in >= 2 and src != "M"))
        ebias.append(_bias_rows(model, layer, L))
        erows.append(rows)
        wbase += len(rows)
        c_in, h, w, src = (c_out, ho, wo, dst) if layer.type == "conv" else (c_out, 1, 1, dst)

    # ---- output stage -----------------------------------------------------------------------
    olayer = groups[-1][0]
    if not olayer.output or olayer.type != "linear":
        raise PlanError(f"{model.name}: the last layer must be the linear output layer")
    wbits = max(wbits, olayer.weight_bits)
    K = olayer.out_shape[0]
    J = h * w * ceil_div(c_in, L)
    j, b = _map_index(c_in, h, w, L)
    out_rows = np.zeros((J * L, K), np.int64)
    out_rows[j * L + b, :] = model.weights[olayer.name].astype(np.int64).T
    out = OutStage(name=olayer.name, classes=K, in_words=J, src=src, wrows=J * L,
                   bias=olayer.has_bias)

    # ---- widths and depths -------------------------------------------------------------------
    ev_layers = [model.layer(s.name) for s in stages]
    cur_bits = max([model.current_bits(x) for x in ev_layers], default=2)
    mem_bits = max([s.membrane_bits for s in stages], default=2)
    T_words = {"M": front.map_words * T, "P0": 0, "P1": 0}
    for s in stages:
        T_words[s.dst] = max(T_words[s.dst], s.map_words * T)
    map_depth = {k: v for k, v in T_words.items() if v}
    max_neurons = max([first.neurons] + [x.neurons for x in ev_layers])
    engine_rows = (np.concatenate(erows, axis=0) if erows
                   else np.zeros((0, 9, L), np.int64))
    return AccelPlan(
        lanes=L, timesteps=T, in_shape=tuple(model.input.shape), in_bits=model.input.bits,
        data_bits=data_bits, pix_bits=pix_bits, front=front, stages=stages, out=out,
        weight_bits=wbits, cur_bits=cur_bits, mem_bits=mem_bits,
        linebuf_depth=max([s.w * s.g for s in stages], default=1),
        umem_depth=max([s.neurons_per_lane for s in stages], default=1),
        map_depth=map_depth, wrows=wbase, classes=K, out_bits=model.output_bits(),
        counters=counters, count_bits=ubits(T * max_neurons), model_name=model.name,
        front_rows=front_rows, engine_rows=engine_rows, out_rows=out_rows,
        front_bias=front_bias,
        engine_bias=(np.concatenate(ebias) if any(s.bias for s in stages)
                     else np.zeros((0, L), np.int64)),
        out_bias=model.bias(olayer))


def _bias_rows(model: Model, layer: Layer, lanes: int) -> np.ndarray:
    """``layer``'s bias as ``[G, L]`` rows: lane ``l`` of row ``g`` is ``b[g*L + l]`` (zeros
    past the last channel, and everywhere for a layer without bias)."""
    b = model.bias(layer)
    rows = np.zeros((ceil_div(len(b), lanes) * lanes,), np.int64)
    rows[:len(b)] = b
    return rows.reshape(-1, lanes)


def pack(values: np.ndarray, bits: int) -> list[int]:
    """Pack each row of ``values`` (``[N, ...]`` signed integers, flattened in C order) into
    one unsigned word, element ``e`` at bits ``[e*bits, (e+1)*bits)``."""
    mask = (1 << bits) - 1
    flat = values.reshape(values.shape[0], -1).tolist()
    out = []
    for r in flat:
        v = 0
        for e, x in enumerate(r):
            v |= (int(x) & mask) << (e * bits)
        out.append(v)
    return out
