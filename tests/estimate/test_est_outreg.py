"""Moving block RAM output registers into ECP5 RAMs (dietsnn.estimate.outreg) on small netlists,
and on a real synthesised design: every moved register is gone and its RAM port is OUTREG."""

from __future__ import annotations

import copy

from dietsnn.estimate.outreg import absorb

FF_PAR = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET",
          "SRMODE": "LSR_OVER_CE"}
IN, OUT = "input", "output"


def _netlist(*, extra_sink: bool = False, reset: bool = False) -> dict:
    ram_con = {"CLKB": [5], "OCEB": ["1"], "DOB0": [10], "DOB1": [11]}
    ram_dir = {"CLKB": IN, "OCEB": IN, "DOB0": OUT, "DOB1": OUT}
    cells = {"ram": {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG",
                                                      "REGMODE_B": "NOREG"},
                     "connections": ram_con, "port_directions": ram_dir}}
    for i in range(2):
        cells[f"ff{i}"] = {"type": "TRELLIS_FF", "parameters": dict(FF_PAR),
                           "connections": {"CLK": [5], "DI": [10 + i], "Q": [20 + i],
                                           "LSR": [7] if reset else ["0"]},
                           "port_directions": {"CLK": IN, "DI": IN, "Q": OUT, "LSR": IN}}
    cells["lut"] = {"type": "LUT4", "parameters": {},
                    "connections": {"A": [20], "B": [10] if extra_sink else [21], "Z": [30]},
                    "port_directions": {"A": IN, "B": IN, "Z": OUT}}
    return {"modules": {"m": {"ports": {"o": {"direction": OUT, "bits": [30]}},
                              "cells": cells}}}


def test_registers_move_into_the_ram():
    nl = _netlist()
    assert absorb(nl) == 2
    cells = nl["modules"]["m"]["cells"]
    assert set(cells) == {"ram", "lut"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["parameters"]["REGMODE_A"] == "NOREG"
    assert ram["connections"]["DOB0"] == [20] and ram["connections"]["DOB1"] == [21]
    assert ram["connections"]["OCEB"] == ["1"]


def test_ports_with_logic_or_a_reset_after_the_ram_stay():
    for kw in ({"extra_sink": True}, {"reset": True}):
        nl = _netlist(**kw)
        before = copy.deepcopy(nl)
        assert absorb(nl) == 0
        assert nl == before
