"""Place and route with nextpnr (ECP5, iCE40) and the maximum clock frequency it reports.

The netlist is the harness-wrapped one from :func:`dietsnn.estimate.synth.synthesize`, so the
design's paths start and end at flip-flops and four pins suffice. nextpnr runs timing-driven
with a target of ``--freq`` MHz and ``--timing-allow-fail``; the Fmax it reports is the
achieved frequency of the clock ``clk`` after routing (from its ``--report`` JSON, or from the
log line ``Max frequency for clock 'clk': 123.45 MHz`` when the report is missing). For xc7
there is no open place and route in this flow: timing needs the vendor tools. On ECP5 the
flip-flops that register a block RAM's output move into the RAM first (:mod:`.outreg`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .outreg import absorb
from .parts import DEFAULT_PART, get_part
from .synth import Synthesis
from .tools import ToolFailedError, run_tool

TOOL = {"ecp5": "nextpnr-ecp5", "ice40": "nextpnr-ice40"}
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+)\s*MHz")


def parse_fmax_log(text: str) -> dict[str, float]:
    """Clock -> Fmax (MHz) from a nextpnr log; the last report per clock wins (post-route)."""
    return {m.group(1): float(m.group(2)) for m in _FMAX.finditer(text)}


def parse_report(text: str) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """(clock -> achieved MHz, resource -> {used, available}) from a nextpnr ``--report``."""
    d = json.loads(text)
    fmax = {str(k): float(v["achieved"]) for k, v in d.get("fmax", {}).items()}
    util = {str(k): {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in d.get("utilization", {}).items()}
    return fmax, util


@dataclass(frozen=True)
class CriticalPath:
    """The slowest register-to-register path of a clock, from nextpnr's ``--report``.

    Members
    -------
    start, end : the cells it starts and ends at (nextpnr's names: the driving flip-flop or
        RAM, and the flip-flop whose input it reaches). logic_ns, routing_ns : its delay in
        cells (clock-to-out, logic, setup) and in wires. levels : logic cells on the path.
    span : the largest distance (columns + rows) between two cells on it, a measure of how
        far the placer spread it.
    """

    start: str
    end: str
    logic_ns: float
    routing_ns: float
    levels: int
    span: int

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "logic_ns": round(self.logic_ns, 2),
                "routing_ns": round(self.routing_ns, 2), "levels": self.levels,
                "span": self.span}


def parse_critical_path(text: str) -> CriticalPath | None:
    """The first clock-to-same-clock path of a nextpnr ``--report`` (None if it has none)."""
    for cp in json.loads(text).get("critical_paths", []):
        if cp.get("from") != cp.get("to") or not cp.get("path"):
            continue
        segs = cp["path"]
        locs = [tuple(s[e]["loc"]) for s in segs for e in ("from", "to") if "loc" in s.get(e, {})]
        span = max((abs(a[0] - b[0]) + abs(a[1] - b[1]) for a in locs for b in locs), default=0)
        wire = sum(float(s["delay"]) for s in segs if s.get("type") == "routing")
        cell = sum(float(s["delay"]) for s in segs if s.get("type") != "routing")
        return CriticalPath(start=str(segs[0]["from"]["cell"]), end=str(segs[-1]["to"]["cell"]),
                            logic_ns=cell, routing_ns=wire,
                            levels=sum(1 for s in segs if s.get("type") == "logic"), span=span)
    return None


@dataclass
class PlaceRoute:
    """The result of :func:`place_and_route`.

    Members
    -------
    device : the part placed on; fmax_mhz : achieved Fmax of ``clk`` (None when it failed).
    utilisation : nextpnr's device utilisation (resource -> used/available), used only.
    error : why there is no Fmax (the design does not fit the device, or nextpnr failed).
    critical : the slowest path of the clock (:class:`CriticalPath`; None when it failed).
    """

    device: str
    fmax_mhz: float | None
    utilisation: dict[str, dict[str, int]]
    seconds: float
    cached: bool
    error: str | None = None
    critical: CriticalPath | None = None

    def to_json(self) -> dict:
        return {"device": self.device,
                "fmax_mhz": None if self.fmax_mhz is None else round(self.fmax_mhz, 2),
                "utilisation": self.utilisation, "seconds": round(self.seconds, 2),
                "cached": self.cached, "error": self.error,
                "critical": None if self.critical is None else self.critical.to_json()}


def _phase(line: str) -> str | None:
    m = re.match(r"^Info: (Running|Placing|Routing|Packing|Checksum|Max frequency|Program"
                 r"|Critical|Logic utilisation|Device utilisation|HeAP|Starting|Setting)"
                 r"(.{0,40})", line)
    return (m.group(1) + m.group(2)).strip() if m else None


def place_and_route(synth: Synthesis, *, part: str | None = None, freq_mhz: float = 100.0,
                    seed: int = 1, threads: int = 2, cache: bool = True,
                    speed: int | None = None) -> PlaceRoute:
    """Place and route ``synth`` (ecp5 / ice40) on ``part`` and report its Fmax.

    ``speed`` is the ECP5 speed grade (6, the slowest and nextpnr's default, 7 or 8; None:
    nextpnr's default). A design that does not fit, or any nextpnr failure, gives a result
    with ``error`` set rather than an exception (a missing nextpnr still raises
    ToolMissingError).
    """
    if synth.target not in TOOL:
        raise ValueError(f"no open place and route for target {synth.target}: timing needs "
                         f"the vendor tools")
    p = get_part(part or DEFAULT_PART[synth.target], synth.target)
    assert p.nextpnr is not None
    unconstrained = ("--lpf-allow-unconstrained" if synth.target == "ecp5"
                     else "--pcf-allow-unconstrained")
    args = [*p.nextpnr, "--json", "netlist.json", "--report", "report.json", "--freq",
            f"{freq_mhz:g}", "--timing-allow-fail", "--seed", str(seed), unconstrained]
    if synth.target == "ecp5":
        args += ["--threads", str(threads)]
    if speed is not None:
        if synth.target != "ecp5" or speed not in (6, 7, 8):
            raise ValueError(f"speed grade {speed!r}: only ECP5 has speed grades (6, 7, 8)")
        args += ["--speed", str(speed)]
    netlist = synth.netlist.read_bytes()
    if synth.target == "ecp5":  # block RAM outputs registered in the RAM (see outreg)
        nl = json.loads(netlist)
        if absorb(nl):
            netlist = json.dumps(nl).encode()
    try:
        run = run_tool(TOOL[synth.target], args, {"netlist.json": netlist},
                       outputs=["report.json"], desc=f"nextpnr {p.name}", phase=_phase,
                       cache=cache)
    except ToolFailedError as e:
        return PlaceRoute(p.name, None, {}, 0.0, False, error=str(e))
    report = run.read("report.json")
    fmax, util = parse_report(report)
    if not fmax:
        fmax = parse_fmax_log(run.read("log.txt"))
    clk = fmax.get("clk") or fmax.get("$glbnet$clk") or (min(fmax.values()) if fmax else None)
    used = {k: v for k, v in util.items() if v["used"]}
    return PlaceRoute(p.name, clk, used, run.seconds, run.cached,
                      error=None if clk else "nextpnr reported no clock frequency",
                      critical=parse_critical_path(report))
