"""Encode beats for, and decode results from, the neuron array's packed ports.

Works from the port map in ``params.json`` (:func:`dietsnn.hw.ports.port_map`), so a
testbench needs nothing but that file. Whole arrays are converted at once (numpy), keeping
the per-clock work of a testbench to one read or write per port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .stimulus import Beats, pack_bits, unpack_bits


@dataclass
class Outputs:
    """Decoded ``o_stream`` beats: addr, step ``[n]``; spikes ``[n, lanes]``; membranes."""

    addr: np.ndarray
    step: np.ndarray
    spikes: np.ndarray
    membranes: np.ndarray


class Codec:
    """Pack / unpack per-beat values with a port map.

    Parameters
    ----------
    ports : the ``"ports"`` object of ``params.json``.
    """

    def __init__(self, ports: dict[str, Any]) -> None:
        self.ports = ports

    def _pack(self, port: str, values: dict[str, np.ndarray]) -> list[int]:
        p = self.ports[port]
        fields = [(values[name], f["offset"], f["bits"]) for name, f in p["fields"].items()]
        return pack_bits(p["width"], fields)

    def _unpack(self, port: str, words: list[int], name: str) -> np.ndarray:
        p = self.ports[port]
        f = p["fields"][name]
        v = unpack_bits(words, p["width"], f["offset"], f["bits"], f["count"], f["signed"])
        return v if f["count"] > 1 else v[:, 0]

    def updates(self, beats: Beats) -> list[int]:
        """``i_stream__payload`` words."""
        return self._pack("i_stream__payload", {"addr": beats.addr, "step": beats.step,
                                                "current": beats.current})

    def params(self, beats: Beats) -> list[int]:
        """``params`` words (one per beat)."""
        return self._pack("params", {"leak_shift": beats.params[:, 0],
                                     "threshold": beats.params[:, 1],
                                     "membrane_bits": beats.params[:, 2]})

    def outputs(self, out_words: list[int], membrane_words: list[int]) -> Outputs:
        """Decode ``o_stream__payload`` and ``membrane`` words captured on each handshake."""
        lanes = self.ports["membrane"]["fields"]["value"]["count"]
        spk = self._unpack("o_stream__payload", out_words, "spikes")
        bits = (spk[:, None] >> np.arange(lanes)) & 1
        return Outputs(addr=self._unpack("o_stream__payload", out_words, "addr"),
                       step=self._unpack("o_stream__payload", out_words, "step"),
                       spikes=bits.astype(np.uint8),
                       membranes=self._unpack("membrane", membrane_words, "value").reshape(
                           len(membrane_words), lanes))
