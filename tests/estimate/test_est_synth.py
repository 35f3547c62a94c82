"""yosys statistics: parsing, hierarchy totals, and small real syntheses (ecp5, xc7, ice40)."""

from __future__ import annotations

import json

import pytest
from dietsnn.estimate.synth import (
    Port,
    classify,
    externalise_memories,
    groups_by_name,
    harness,
    module_totals,
    name_group,
    parse_ltp,
    parse_stat,
    synthesize,
)
from estimate_support import needs_yosys

STAT = {
    "creator": "Yosys", "modules": {
        "\\top": {"num_cells": 4, "num_cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2, "lane": 2}},
        "\\lane": {"num_cells": 3, "num_cells_by_type": {"CCU2C": 4, "MULT18X18D": 1,
                                                         "DP16KD": 1, "mux": 1}},
        "\\mux": {"num_cells": 2, "num_cells_by_type": {"PFUMX": 1, "LUT4": 2,
                                                        "$scopeinfo": 1}},
    },
    "design": {"num_cells": 0},
}


def test_parse_stat_and_hierarchy_totals():
    mods = parse_stat(json.dumps(STAT))
    assert set(mods) == {"top", "lane", "mux"}
    total = module_totals(mods, "top")
    assert total == {"LUT4": 3 + 2 * 2, "TRELLIS_FF": 2, "CCU2C": 8, "MULT18X18D": 2,
                     "DP16KD": 2, "PFUMX": 2, "$scopeinfo": 2}
    r = classify(total, "ecp5")
    # CCU2C takes two LUT sites
    assert (r.luts, r.ffs, r.carry, r.dsp, r.bram, r.mux) == (7 + 16, 2, 8, 2, 2, 2)
    assert r.other == {}
    with pytest.raises(ValueError, match="not yosys 'stat -json' output"):
        parse_stat("Number of cells: 5")
    with pytest.raises(ValueError, match="module 'nope' not in the statistics"):
        module_totals(mods, "nope")


def test_classify_per_family():
    x = classify({"LUT6": 10, "LUT2": 3, "FDRE": 7, "FDCE": 1, "RAMB18E1": 3, "RAMB36E1": 1,
                  "DSP48E1": 2, "CARRY4": 5, "RAM64M": 2, "SRLC32E": 1, "MUXF7": 4,
                  "IBUF": 9, "WEIRD": 1}, "xc7")
    assert (x.luts, x.ffs, x.bram, x.dsp, x.carry, x.lutram, x.mux) == \
        (13 + 8 + 1, 8, 2.5, 2, 5, 9, 4)
    assert x.other == {"WEIRD": 1}
    i = classify({"SB_LUT4": 5, "SB_CARRY": 4, "SB_DFFER": 3, "SB_RAM40_4K": 2,
                  "SB_MAC16": 1, "SB_SPRAM256KA": 1, "SB_IO": 4}, "ice40")
    assert (i.luts, i.carry, i.ffs, i.bram, i.dsp, i.spram) == (5, 4, 3, 2, 1, 1)
    assert i.to_json()["bram"] == 2 and isinstance(x.to_json()["bram"], float)


def test_parse_ltp():
    text = ("4. Executing LTP pass (find longest path).\n\n"
            "Longest topological path in dietsnn_pnr_wrap (length=12):\n    0: \\a\n")
    assert parse_ltp(text) == 12
    assert parse_ltp("Longest topological path in top (length=-1):") is None
    assert parse_ltp("") is None


def test_harness_routes_every_port():
    v = harness("top.core", [Port("clk", "input", 1), Port("rst", "input", 1),
                             Port("a", "input", 8), Port("en", "input", 1),
                             Port("y", "output", 4), Port("z", "output", 1)])
    assert "reg [8:0] ish" in v and "reg [4:0] osh" in v
    assert ".clk(clk)" in v and ".rst(rst)" in v and ".a(ish[7:0])" in v
    assert ".en(ish[8:8])" in v and ".y(o[3:0])" in v and ".z(o[4:4])" in v
    assert "\\top.core  u_dut" in v  # escaped identifier for Amaranth-style names
    with pytest.raises(ValueError, match="no outputs"):
        harness("t", [Port("a", "input", 2)])
    with pytest.raises(ValueError, match="inout"):
        harness("t", [Port("a", "inout", 2), Port("y", "output", 1)])


@needs_yosys
def test_real_synthesis_ecp5(tool_cache, tiny_design):
    s = synthesize(tiny_design, "ecp5")
    r = s.resources
    # 16 counter FFs + 16 multiplier output FFs (the harness's own FFs are excluded)
    assert (r.ffs, r.dsp, r.bram) == (32, 1, 0)
    assert r.carry >= 8 and r.luts >= 2 * r.carry
    comps = {c.name: c for c in s.components}
    assert set(comps) == {"(top)", "mul8"}
    assert comps["mul8"].resources.dsp == 1 and comps["mul8"].resources.ffs == 16
    assert comps["(top)"].resources.ffs == 16
    assert s.logic_depth and 1 < s.logic_depth < 40
    assert s.netlist is not None and s.netlist.is_file()
    assert s.top == "tiny_top" and not s.cached


@needs_yosys
def test_real_synthesis_xc7(tool_cache, tiny_design):
    s = synthesize(tiny_design, "xc7")
    r = s.resources
    # the multiplier's output register is absorbed into the DSP48E1 (PREG)
    assert (r.ffs, r.dsp, r.bram) == (16, 1, 0)
    assert r.carry == 4  # a 16-bit incrementer is four CARRY4
    assert s.logic_depth and s.logic_depth > 1 and s.by_name == []


@needs_yosys
def test_real_synthesis_of_amaranth_design(tool_cache):
    from amaranth import Module, Signal
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from dietsnn.estimate.synth import Design

    class Acc(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"x": In(8), "y": Out(12)})

        def elaborate(self, platform):
            m = Module()
            s = Signal(12)
            m.d.sync += s.eq(s + self.x)
            m.d.comb += self.y.eq(s)
            return m

    class Top(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"x": In(8), "y": Out(12)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.acc = acc = Acc()
            m.d.comb += [acc.x.eq(self.x), self.y.eq(acc.y)]
            return m

    text = verilog.convert(Top(), name="top", emit_src=False)
    s = synthesize(Design(text, None, "amaranth"), "ice40")
    assert s.top == "top"
    assert s.resources.ffs == 12
    assert [c.name for c in s.components] == ["acc"]
    assert s.components[0].module == "top.acc" and s.components[0].resources.ffs == 12


def test_externalise_memories_text():
    v = ("module m(input clk, output [7:0] q);\n  reg [7:0] rom [3:0];\n  initial begin\n"
         "    rom[0] = 8'h0a;\n    rom[1] = 8'd255;\n    rom[3] = 8'b101;\n  end\n"
         "  initial begin\n    x = 1;\n  end\nendmodule\n")
    text, files = externalise_memories(v)
    assert files == {"mem0.hex": b"@0\n0a\nff\n@3\n05\n"}
    assert '  initial $readmemh("mem0.hex", rom);\n' in text
    assert "initial begin\n    x = 1;\n  end" in text  # other blocks untouched


@needs_yosys
def test_externalised_rom_has_the_same_contents(tool_cache):
    from amaranth import Module
    from amaranth.back import verilog
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out
    from dietsnn.estimate.tools import run_tool

    words = [(i * 2654435761) % 2 ** 24 for i in range(300)]

    class Rom(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"addr": In(9), "data": Out(24)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = memory.Memory(shape=24, depth=300, init=words)
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
            return m

    original = verilog.convert(Rom(), name="rom", emit_src=False)
    text, files = externalise_memories(original)
    assert files and "$readmemh" in text
    script = "read_verilog -sv design.v; proc; memory_collect; write_json out.json"
    inits = []
    for src, extra in ((original, {}), (text, files)):
        run = run_tool("yosys", ["-q", "-p", script], {"design.v": src.encode(), **extra},
                       outputs=["out.json"])
        cells = json.loads(run.read("out.json"))["modules"]["rom"]["cells"].values()
        inits.append([c["parameters"]["INIT"] for c in cells if c["type"] == "$mem_v2"])
    assert inits[0] == inits[1] and len(inits[0]) == 1
    bits = inits[0][0]
    assert int(bits[-24:], 2) == words[0] and int(bits[:24], 2) == words[299]


def test_name_groups_of_a_flat_design():
    assert name_group("vmem.0.1_DOB2_LUT4_C_Z") == "vmem"
    assert name_group("\\dacc4_TRELLIS_FF_Q_16") == "dacc4"
    assert name_group("e_kx_TRELLIS_FF_Q") == "e_kx"
    assert name_group("busy$219_LUT4_Z") == "busy"
    assert name_group("$291_MULT18X18D_P9_B6_CCU2C_A0") == "(MULT18X18D datapath)"
    bb = {"attributes": {"blackbox": "1"}}
    netlist = {"modules": {
        "LUT4": bb, "DP16KD": bb, "TRELLIS_FF": bb,
        "flat": {"attributes": {}, "cells": {
            "wmem.0.0_DOB1_LUT4_Z": {"type": "LUT4"}, "wmem.0.1": {"type": "DP16KD"},
            "acc_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
            "acc_TRELLIS_FF_Q_1": {"type": "TRELLIS_FF"},
        }}}}
    groups = dict(groups_by_name(json.dumps(netlist), "flat", "ecp5"))
    assert set(groups) == {"wmem", "acc"}
    assert (groups["wmem"].luts, groups["wmem"].bram, groups["acc"].ffs) == (1, 1, 2)
