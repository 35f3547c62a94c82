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


@dataclass
class PlaceRoute:
    """The result of :func:`place_and_route`.

    Members
    -------
    device : the part placed on; fmax_mhz : achieved Fmax of ``clk`` (None when it failed).
    utilisation : nextpnr's device utilisation (resource -> used/available), used only.
    error : why there is no Fmax (the design does not fit the device, or nextpnr failed).
    """

    device: str
    fmax_mhz: float | None
    utilisation: dict[str, dict[str, int]]
    seconds: float
    cached: bool
    error: str | None = None

    def to_json(self) -> dict:
        return {"device": self.device,
                "fmax_mhz": None if self.fmax_mhz is None else round(self.fmax_mhz, 2),
                "utilisation": self.utilisation, "seconds": round(self.seconds, 2),
                "cached": self.cached, "error": self.error}


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
    fmax, util = parse_report(run.read("report.json"))
    if not fmax:
        fmax = parse_fmax_log(run.read("log.txt"))
    clk = fmax.get("clk") or fmax.get("$glbnet$clk") or (min(fmax.values()) if fmax else None)
    used = {k: v for k, v in util.items() if v["used"]}
    return PlaceRoute(p.name, clk, used, run.seconds, run.cached,
                      error=None if clk else "nextpnr reported no clock frequency")
