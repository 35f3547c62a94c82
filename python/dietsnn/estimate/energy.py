"""Synaptic operations from real spikes, compute energy, and activation sparsity.

Operation counts per image
    A synapse is a (input, weight, output) triple that exists in the network: a 3x3 conv with
    zero padding 1 on an ``H x W`` map has, per input pixel at row ``y`` and column ``x``,
    ``C_out * n(y, H) * n(x, W)`` synapses, ``n(y, H) = min(y + 1, H - 1) - max(y - 1, 0) + 1``
    (3 inside, 2 on an edge, 1 when ``H = 1``); a linear layer has ``F_in * F_out``. Zero
    padding taps are not synapses (the usual ``9 * C_in * C_out * H * W`` count includes them;
    both the SNN and the ANN figures here exclude them, so the ratio is unaffected).

    * ANN: every synapse is one multiply-accumulate (MAC) per image.
    * SNN, first layer (direct input): the current ``I = W * q`` is the same at every step and
      is computed once, so its MACs equal the ANN's.
    * SNN, later layers: a spike of input ``i`` at step ``t`` adds the weight to each of its
      ``fanout(i)`` synapses: ``ACs = sum_t sum_i s_i[t] * fanout(i)`` (accumulates, ADDs).
    * Pooling is an OR of spikes (no arithmetic); the ANN's ReLU and max-pool comparisons are
      not counted either.
    * A layer with a bias adds it once per neuron and current: ``neurons`` ADDs for the
      first layer (its current is computed once) and in the ANN, ``neurons * T`` for a later
      SNN layer (per-layer ``bias_adds``; layers without a bias have none).

Energy (per image)::

    E_SNN = MACs_first * E_MAC + (ACs + bias ADDs) * E_ADD
    E_ANN = MACs_ANN * E_MAC + bias ADDs_ANN * E_ADD

with per-operation energies from an :class:`EnergyTable`. The default is the 45 nm CMOS
table of Horowitz (ISSCC 2014) that DIET-SNN used (32-bit float: MAC 4.6 pJ = MULT 3.7 +
ADD 0.9, ADD 0.9 pJ), with integer and half-precision rows; ``--energy-table FILE`` swaps it
(JSON, the form of :meth:`EnergyTable.to_json`).

Activation sparsity: the spike rate of a layer is spikes / (neurons * T) per image;
sparsity is ``1 - rate``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dietsnn.errors import CLIError
from dietsnn.golden import Result
from dietsnn.model import Layer, Model


class EnergyTableError(CLIError):
    """A malformed energy table file; the message names the file and the field."""


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in picojoules, per arithmetic precision.

    Members
    -------
    name, source : what the table is and where its numbers come from.
    ops : precision -> {"mac": pJ, "add": pJ}; a MAC is one multiply plus one add.
    default : the precision of the headline figures (DIET-SNN compared at ``fp32``).
    """

    name: str
    source: str
    ops: dict[str, dict[str, float]]
    default: str = "fp32"

    def __post_init__(self) -> None:
        if self.default not in self.ops:
            raise EnergyTableError(f"energy table {self.name!r}: field 'default' must be one of "
                                   f"{sorted(self.ops)}, not {self.default!r}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "unit": "pJ",
                "default": self.default, "ops": self.ops}


#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm,
#: 0.9 V: ADD int8 0.03, int32 0.1, fp16 0.4, fp32 0.9 pJ; MULT int8 0.2, int32 3.1, fp16 1.1,
#: fp32 3.7 pJ. MAC = MULT + ADD of the same precision.
HOROWITZ_45NM = EnergyTable(
    name="horowitz-45nm",
    source="M. Horowitz, Computing's energy problem, ISSCC 2014 (45 nm); as used by "
           "DIET-SNN (Rathi & Roy, TNNLS 2023): MAC 4.6 pJ, ADD 0.9 pJ (32-bit float)",
    ops={"fp32": {"mac": 4.6, "add": 0.9}, "fp16": {"mac": 1.5, "add": 0.4},
         "int32": {"mac": 3.2, "add": 0.1}, "int8": {"mac": 0.23, "add": 0.03}},
    default="fp32",
)


def load_energy_table(path: str | os.PathLike) -> EnergyTable:
    """Read a JSON energy table (the form of :meth:`EnergyTable.to_json`)."""
    where = str(path)
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnergyTableError(f"{where}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EnergyTableError(f"{where}: not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise EnergyTableError(f"{where}: must be a JSON object")
    ops = d.get("ops")
    if not isinstance(ops, dict) or not ops:
        raise EnergyTableError(f"{where}: field 'ops' must map precision names to "
                               f"{{\"mac\": pJ, \"add\": pJ}}")
    for prec, e in ops.items():
        if not (isinstance(e, dict) and set(e) >= {"mac", "add"}
                and all(isinstance(e[k], (int, float)) and e[k] >= 0 for k in ("mac", "add"))):
            raise EnergyTableError(f"{where}: field 'ops.{prec}' must be "
                                   f"{{\"mac\": pJ, \"add\": pJ}} with non-negative numbers")
    if d.get("unit", "pJ") != "pJ":
        raise EnergyTableError(f"{where}: field 'unit' must be \"pJ\", not {d['unit']!r}")
    default = d.get("default", next(iter(ops)))
    if default not in ops:
        raise EnergyTableError(f"{where}: field 'default' must be one of {sorted(ops)}, "
                               f"not {default!r}")
    return EnergyTable(name=str(d.get("name", Path(path).stem)), source=str(d.get("source", "")),
                       ops={k: {"mac": float(v["mac"]), "add": float(v["add"])}
                            for k, v in ops.items()}, default=default)


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------
def _taps(n: int) -> np.ndarray:
    """``n(y)`` for y in 0..n-1: outputs of a 3-tap, pad-1 window that see position y."""
    y = np.arange(n)
    return np.minimum(y + 1, n - 1) - np.maximum(y - 1, 0) + 1


def fanout_map(layer: Layer) -> np.ndarray:
    """Synapses per input of ``layer``: ``[C_in, H, W]`` for conv, ``[F_in]`` for linear."""
    if layer.type == "conv":
        c, h, w = layer.in_shape
        m = layer.out_shape[0] * np.outer(_taps(h), _taps(w))
        return np.broadcast_to(m, (c, h, w)).astype(np.int64)
    if layer.type == "linear":
        return np.full(layer.in_shape, layer.out_shape[0], dtype=np.int64)
    raise ValueError(f"layer {layer.name} ({layer.type}) has no synapses")


def synapses(layer: Layer) -> int:
    """Number of synapses of a conv / linear layer (module docstring)."""
    return int(fanout_map(layer).sum())


@dataclass
class OpCounts:
    """Per-image operation counts and spike rates accumulated over chunks of images.

    Members
    -------
    images : images counted.
    macs : per weight layer, MACs per image (first layer only; int).
    acs : per weight layer, ``[N]`` accumulates per image (later layers).
    ann_macs : per weight layer, the ANN's MACs per image.
    bias_adds : per layer with a bias, ``(SNN, ANN)`` bias additions per image.
    spike_rate : per LIF / pool layer, ``[N]`` spikes / (neurons * T) per image.
    """

    images: int = 0
    macs: dict[str, int] = field(default_factory=dict)
    acs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ann_macs: dict[str, int] = field(default_factory=dict)
    bias_adds: dict[str, tuple[int, int]] = field(default_factory=dict)
    spike_rate: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, model: Model, result: Result) -> None:
        """Add a golden result run with ``record={"spikes"}`` (any number of images)."""
        n = int(result.logits.shape[0])
        t_steps = None
        prev: str | None = None
        for i, layer in enumerate(model.layers):
            if layer.has_bias:
                t = model.timesteps if i else 1
                self.bias_adds[layer.name] = (layer.neurons * t, layer.neurons)
            if layer.has_weights:
                self.ann_macs[layer.name] = synapses(layer)
                if i == 0:
                    self.macs[layer.name] = synapses(layer)
                else:
                    if prev is None or prev not in result.spikes:
                        raise ValueError("OpCounts.add needs golden.run(..., "
                                         "record={'spikes'})")
                    s = result.spikes[prev]  # [N, T, *in_shape]
                    per_pos = s.sum(axis=1, dtype=np.int64).reshape(n, -1)
                    fan = fanout_map(layer).reshape(-1)
                    self.acs.setdefault(layer.name, []).append(per_pos @ fan)
            if not layer.output:
                counts = result.spike_counts[layer.name]
                t_steps = t_steps or (result.spikes[layer.name].shape[1]
                                      if layer.name in result.spikes else model.timesteps)
                self.spike_rate.setdefault(layer.name, []).append(
                    counts / float(layer.neurons * t_steps))
            prev = layer.name
        self.images += n


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()),
            "max": float(x.max())}


def summarise(model: Model, counts: OpCounts, table: EnergyTable = HOROWITZ_45NM) -> dict:
    """Per-layer operations, spike rates, sparsity and energy per image, as plain JSON."""
    layers = []
    acs_total = np.zeros(counts.images)
    for layer in model.layers:
        row: dict[str, Any] = {"name": layer.name, "type": layer.type,
                               "neurons": layer.neurons}
        if layer.has_weights:
            row["ann_macs"] = counts.ann_macs[layer.name]
            if layer.name in counts.macs:
                row["snn_macs"] = counts.macs[layer.name]
                row["snn_acs"] = _stats(np.zeros(1))
            else:
                a = np.concatenate(counts.acs[layer.name])
                acs_total = acs_total + a
                row["snn_macs"] = 0
                row["snn_acs"] = _stats(a)
        if layer.name in counts.bias_adds:
            row["bias_adds"], row["ann_bias_adds"] = counts.bias_adds[layer.name]
        if layer.name in counts.spike_rate:
            r = np.concatenate(counts.spike_rate[layer.name])
            row["spike_rate"] = _stats(r)
            row["sparsity"] = 1.0 - row["spike_rate"]["mean"]
        layers.append(row)
    macs = sum(counts.macs.values())
    ann = sum(counts.ann_macs.values())
    acs = _stats(acs_total)
    badds = [sum(v[k] for v in counts.bias_adds.values()) for k in (0, 1)]
    energy = {}
    for prec, e in table.ops.items():
        snn = macs * e["mac"] + (acs["mean"] + badds[0]) * e["add"]
        annj = ann * e["mac"] + badds[1] * e["add"]
        energy[prec] = {"snn_pj": snn, "ann_pj": annj,
                        "snn_over_ann": snn / annj if annj else None,
                        "ann_over_snn": annj / snn if snn else None}
    return {"images": counts.images, "timesteps": model.timesteps,
            "table": table.to_json(), "precision": table.default,
            "snn_macs": macs, "snn_acs": acs, "ann_macs": ann,
            "energy": energy, "headline": energy[table.default], "layers": layers}
