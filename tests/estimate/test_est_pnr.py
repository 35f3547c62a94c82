"""nextpnr Fmax: parsing its log and report, and small real runs."""

from __future__ import annotations

import json

from dietsnn.estimate.pnr import parse_critical_path, parse_fmax_log, parse_report, place_and_route
from dietsnn.estimate.synth import synthesize
from estimate_support import needs_ecp5, needs_ice40

LOG = """\
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 96.40 MHz (FAIL at 100.00 MHz)
Info: Routing..
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 111.83 MHz (PASS at 100.00 MHz)
Warning: Max frequency for clock 'clk2':  7.5 MHz (FAIL at 12.00 MHz)
"""


def test_parse_fmax_log_last_report_wins():
    assert parse_fmax_log(LOG) == {"$glbnet$clk$TRELLIS_IO_IN": 111.83, "clk2": 7.5}
    assert parse_fmax_log("Info: nothing here") == {}


def test_parse_report():
    rep = {"fmax": {"clk": {"achieved": 94.6, "constraint": 100}},
           "utilization": {"DP16KD": {"available": 208, "used": 1},
                           "TRELLIS_FF": {"available": 83640, "used": 57}},
           "critical_paths": []}
    fmax, util = parse_report(json.dumps(rep))
    assert fmax == {"clk": 94.6}
    assert util["TRELLIS_FF"] == {"used": 57, "available": 83640}


def _seg(kind, delay, a, b, la, lb):
    return {"type": kind, "delay": delay, "from": {"cell": a, "loc": la, "port": "Q"},
            "to": {"cell": b, "loc": lb, "port": "D"}}


def test_parse_critical_path():
    clk = "posedge $glbnet$clk"
    path = [_seg("clk-to-q", 0.5, "r0", "r0", [3, 4], [3, 4]),
            _seg("routing", 1.25, "r0", "lut", [3, 4], [10, 2]),
            _seg("logic", 0.25, "lut", "lut", [10, 2], [10, 2]),
            _seg("routing", 0.75, "lut", "r1", [10, 2], [10, 9]),
            _seg("setup", 0.0, "r1", "r1", [10, 9], [10, 9])]
    rep = {"critical_paths": [{"from": "<async>", "to": clk, "path": path[1:3]},
                              {"from": clk, "to": clk, "path": path}]}
    cp = parse_critical_path(json.dumps(rep))
    assert (cp.start, cp.end, cp.levels) == ("r0", "r1", 1)
    assert (cp.logic_ns, cp.routing_ns) == (0.75, 2.0)
    assert cp.span == 7 + 5          # from (3, 4) to (10, 9)
    assert parse_critical_path(json.dumps({"critical_paths": []})) is None


@needs_ecp5
def test_real_place_and_route_ecp5(tool_cache, tiny_design):
    pr = place_and_route(synthesize(tiny_design, "ecp5"), part="LFE5U-25F")
    assert pr.error is None and pr.device == "LFE5U-25F"
    assert 20 < pr.fmax_mhz < 600
    assert pr.utilisation["MULT18X18D"]["used"] == 1
    assert pr.critical is not None and pr.critical.levels >= 1
    assert abs(1000 / pr.fmax_mhz - pr.critical.logic_ns - pr.critical.routing_ns) < 0.5


@needs_ice40
def test_real_place_and_route_ice40_and_misfit(tool_cache, tiny_design):
    pr = place_and_route(synthesize(tiny_design, "ice40"), part="iCE40UP5K")
    assert pr.error is None and 10 < pr.fmax_mhz < 600
    # the HX8K has no DSP; synthesised for the UP5K the netlist keeps an SB_MAC16, which
    # nextpnr cannot place there: a result with the reason, not an exception
    bad = place_and_route(synthesize(tiny_design, "ice40"), part="iCE40HX8K")
    assert bad.fmax_mhz is None and "nextpnr-ice40 failed" in bad.error
