"""Move the flip-flops that register an ECP5 block RAM's output into the RAM (``OUTREG``).

yosys maps every ECP5 block RAM (``DP16KD``, ``PDPW16KD``) without its output register
(``REGMODE = "NOREG"``), so a read costs the RAM's slow clock-to-out (about 5.8 ns at speed
grade 6 in nextpnr's model) plus routing to the next flip-flop. A design that registers every
RAM output straight away (no logic between the RAM and the flip-flop, as the accelerator does)
has exactly the register the RAM carries inside: :func:`absorb` moves it there, a
cycle-for-cycle identical netlist with a fast clock-to-out.

A read port is converted only when **every** used data-out bit drives exactly one sink, the
``DI`` input of a ``TRELLIS_FF`` with the port's clock (not inverted), no set/reset in use and
one common clock enable (which becomes the port's ``OCE``); otherwise the port is left as it
is. Works on a yosys ``write_json`` netlist in memory, module by module.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: (cell type, port letter) -> (data-out pin names, clock pin, output clock enable, parameter)
_PORTS: dict[str, list[tuple[list[str], str, str, str]]] = {
    "DP16KD": [([f"DO{p}{i}" for i in range(18)], f"CLK{p}", f"OCE{p}", f"REGMODE_{p}")
               for p in "AB"],
    "PDPW16KD": [([f"DO{i}" for i in range(36)], "CLKR", "OCER", "REGMODE")],
}


def _sinks(module: dict[str, Any]) -> dict[Any, list[tuple[str, str]]]:
    """net -> [(cell, pin)] of every input pin it drives; module outputs as ('', port)."""
    sinks: dict[Any, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for pin, bits in cell["connections"].items():
            if dirs.get(pin) == "input":
                for b in bits:
                    if isinstance(b, int):
                        sinks[b].append((name, pin))
    for port, p in module.get("ports", {}).items():
        if p["direction"] != "input":
            for b in p["bits"]:
                if isinstance(b, int):
                    sinks[b].append(("", port))
    return sinks


def _plain_ff(cell: dict[str, Any], clk: Any) -> Any | None:
    """The clock enable of a ``TRELLIS_FF`` that could be a RAM output register (``"1"`` for
    none), or None when it cannot (another clock, an inverted clock, a set/reset in use)."""
    if cell["type"] != "TRELLIS_FF":
        return None
    par, con = cell["parameters"], cell["connections"]
    if con.get("CLK") != clk or par.get("CLKMUX", "CLK").strip() != "CLK":
        return None
    lsr = con.get("LSR", ["0"])
    if par.get("LSRMUX", "LSR").strip() != "0" and lsr != ["0"]:
        return None
    if par.get("CEMUX", "1").strip() == "1":
        return "1"
    if par.get("CEMUX", "").strip() == "CE":
        return tuple(con.get("CE", ["1"]))
    return None


def absorb(netlist: dict[str, Any]) -> int:
    """Convert the block RAM read ports of ``netlist`` (module docstring); returns how many
    flip-flops moved into RAMs."""
    moved = 0
    for module in netlist["modules"].values():
        cells = module.get("cells", {})
        if not any(c["type"] in _PORTS for c in cells.values()):
            continue
        sinks = _sinks(module)
        for cell in list(cells.values()):
            for dout, clk_pin, oce_pin, param in _PORTS.get(cell["type"], []):
                if cell["parameters"].get(param, "NOREG").strip() != "NOREG":
                    continue
                clk = cell["connections"].get(clk_pin)
                plan: list[tuple[str, str]] = []
                ces = set()
                ok = True
                for pin in dout:
                    bits = cell["connections"].get(pin)
                    if not bits or not isinstance(bits[0], int):
                        continue
                    users = sinks.get(bits[0], [])
                    if not users:
                        continue
                    if len(users) != 1 or users[0][1] != "DI" or not users[0][0]:
                        ok = False
                        break
                    ce = _plain_ff(cells[users[0][0]], clk)
                    if ce is None:
                        ok = False
                        break
                    ces.add(ce)
                    plan.append((pin, users[0][0]))
                if not ok or not plan or len(ces) != 1:
                    continue
                ce = ces.pop()
                for pin, ff in plan:
                    cell["connections"][pin] = cells[ff]["connections"]["Q"]
                    del cells[ff]
                cell["parameters"][param] = "OUTREG"
                cell["connections"][oce_pin] = ["1"] if ce == "1" else list(ce)
                moved += len(plan)
    return moved
