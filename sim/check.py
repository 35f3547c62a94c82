"""Compare the neuron array's outputs with the golden model, beat by beat and lane by lane."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codec import Outputs
from .stimulus import Beats, Job


@dataclass
class Report:
    """Outcome of a check.

    Members
    -------
    beats : output beats compared; updates : neuron updates compared (padding lanes excluded);
    mismatches : number of neuron updates whose spike or membrane differ (plus missing or
    extra beats and wrong addr/step echoes); details : the first mismatches as dicts
    (image, layer, neuron, step, expected, actual).
    """

    beats: int = 0
    updates: int = 0
    mismatches: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One human-readable line per listed mismatch."""
        out = []
        for d in self.details:
            if "neuron" in d:
                out.append(
                    f"MISMATCH image {d['image']} layer {d['layer']} neuron {d['neuron']} "
                    f"step {d['step']} (beat {d['beat']} lane {d['lane']}): expected "
                    f"spike {d['expected']['spike']} membrane {d['expected']['membrane']}, "
                    f"got spike {d['actual']['spike']} membrane {d['actual']['membrane']}")
            else:
                out.append(f"MISMATCH {d['what']}")
        return out


def compare(beats: Beats, jobs: list[Job], out: Outputs, *, max_details: int = 20) -> Report:
    """Check every output beat against the expected beats (same order, nothing lost)."""
    rep = Report()
    n = min(len(beats), len(out.addr))
    if len(out.addr) != len(beats):
        rep.mismatches += abs(len(out.addr) - len(beats))
        rep.details.append({"what": f"expected {len(beats)} output beats, got {len(out.addr)}"})
    rep.beats = n
    echo_bad = np.nonzero((out.addr[:n] != beats.addr[:n]) | (out.step[:n] != beats.step[:n]))[0]
    for i in echo_bad[:max_details]:
        rep.details.append({"what": f"beat {i}: addr/step echo {out.addr[i]}/{out.step[i]}, "
                                    f"expected {beats.addr[i]}/{beats.step[i]}"})
    rep.mismatches += len(echo_bad)
    live = beats.neuron[:n] >= 0
    rep.updates = int(live.sum())
    bad = live & ((out.spikes[:n] != beats.spikes[:n])
                  | (out.membranes[:n] != beats.membranes[:n]))
    rows, lanes = np.nonzero(bad)
    rep.mismatches += len(rows)
    for i, p in list(zip(rows, lanes, strict=True))[:max_details]:
        job = jobs[beats.job[i]]
        rep.details.append({
            "image": job.image, "layer": job.layer, "neuron": int(beats.neuron[i, p]),
            "step": int(beats.step[i]), "beat": int(i), "lane": int(p),
            "params": {"leak_shift": job.leak_shift, "threshold": job.threshold,
                       "membrane_bits": job.membrane_bits},
            "current": int(beats.current[i, p]),
            "expected": {"spike": int(beats.spikes[i, p]),
                         "membrane": int(beats.membranes[i, p])},
            "actual": {"spike": int(out.spikes[i, p]), "membrane": int(out.membranes[i, p])},
        })
    return rep
