"""Logic synthesis with yosys: resources per target, per component, and logic depth.

The design is wrapped in a small pin-limited harness (:func:`harness`) so that any top level,
however many ports it has, can be placed on a real package by nextpnr: its inputs come from a
shift register fed by one pin and its outputs are captured into a shift register read out on
one pin. Every port stays observable and every path starts and ends at a flip-flop. Resources
are reported for the design itself (the harness is excluded).

Synthesis keeps the hierarchy at the top: each direct submodule of the top (a *component*)
is synthesised in a yosys process of its own and flattened inside (as a vendor flow would:
constants that a component drives into its own submodules propagate into them), the top's own
logic in another; ``stat -json`` gives cells per component and :func:`module_totals` adds
them up into one row per component. Flip-flops whose wire has the ``keep`` attribute (register
copies made on purpose to cut a fan-out) are kept apart, as vendor tools keep them.

Logic depth: after ``stat`` the netlist is flattened, its sequential cells (flip-flops, block
RAMs, DSPs) are deleted and ``ltp -noff`` reports the longest combinational path in cells
(LUTs, carry cells, muxes). On xc7 this is the only timing figure the open flow gives: real
timing needs the vendor tools (Vivado).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .parts import DEFAULT_PART, Part, check_target, get_part
from .tools import ToolFailedError, run_tool

WRAP_TOP = "dietsnn_pnr_wrap"
CLOCK_NAMES = ("clk", "clock", "clk_i", "i_clk", "sync_clk")
RESET_NAMES = ("rst", "reset", "rst_i", "i_rst", "sync_rst", "rst_n", "resetn", "reset_n")

# cell type (regex, full match) -> [(resource kind, count per cell)], per family
_XC7 = [
    (r"LUT[1-6]|INV", [("luts", 1)]),
    (r"(FD[RSCP]E|LD[CP]E)(_1)?", [("ffs", 1)]),
    (r"CARRY4", [("carry", 1)]),
    (r"MUXF[78]", [("mux", 1)]),
    (r"RAMB36E1", [("bram", 1)]),
    (r"RAMB18E1", [("bram", 0.5)]),
    (r"DSP48E1", [("dsp", 1)]),
    (r"RAM(32M|64M|128X1D|256X1S)", [("luts", 4), ("lutram", 4)]),
    (r"RAM(32X1D|64X1D|128X1S)", [("luts", 2), ("lutram", 2)]),
    (r"RAM(32X1S|64X1S)|SRL16E|SRLC32E", [("luts", 1), ("lutram", 1)]),
    (r"IBUF|OBUF|IOBUF|OBUFT|BUFG|BUFGCTRL|IBUFG", [("io", 1)]),
]
_ECP5 = [
    (r"LUT4", [("luts", 1)]),
    (r"CCU2C", [("luts", 2), ("carry", 1)]),  # a CCU2C occupies the two LUT4s of a slice
    (r"TRELLIS_FF", [("ffs", 1)]),
    (r"PFUMX|L6MUX21", [("mux", 1)]),
    (r"TRELLIS_DPR16X4", [("luts", 6), ("lutram", 6)]),  # three slices
    (r"DP16KD|PDPW16KD", [("bram", 1)]),
    (r"MULT18X18D", [("dsp", 1)]),
    (r"ALU54B", [("alu54", 1)]),
    (r"TRELLIS_IO|IB|OB|BB|DCCA", [("io", 1)]),
]
_ICE40 = [
    (r"SB_LUT4", [("luts", 1)]),
    (r"SB_CARRY", [("carry", 1)]),  # shares the logic cell of a LUT
    (r"SB_DFF\w*", [("ffs", 1)]),
    (r"SB_RAM40_4K\w*", [("bram", 1)]),
    (r"SB_MAC16", [("dsp", 1)]),
    (r"SB_SPRAM256KA", [("spram", 1)]),
    (r"SB_IO|SB_GB|SB_GB_IO", [("io", 1)]),
]
CELL_MAP = {"xc7": _XC7, "ecp5": _ECP5, "ice40": _ICE40}
#: sequential cells removed before ``ltp`` (path end points)
SEQUENTIAL = {
    "xc7": ("FD*", "LD*", "RAMB*", "DSP48*", "SRL*"),
    "ecp5": ("TRELLIS_FF", "DP16KD", "PDPW16KD", "MULT18X18D", "ALU54B"),
    "ice40": ("SB_DFF*", "SB_RAM40_4K*", "SB_MAC16", "SB_SPRAM256KA"),
}
KINDS = ("luts", "ffs", "bram", "dsp", "carry", "lutram", "mux", "spram")


@dataclass
class Resources:
    """Resources of a design or component, in the target family's units (see
    :mod:`dietsnn.estimate.parts`).

    Members
    -------
    luts : LUT sites used, including LUT RAM and (ECP5) carry cells, which occupy LUT sites.
    ffs, bram, dsp, spram : flip-flops, block RAMs (xc7: RAMB36 equivalents), DSPs, SPRAMs.
    carry : carry cells (CARRY4, CCU2C, SB_CARRY); lutram : LUT sites used as memory;
    mux : wide-function muxes (MUXF7/8, PFUMX, L6MUX21).
    other : cell types with no resource kind (I/O buffers and anything unrecognised).
    """

    luts: float = 0
    ffs: float = 0
    bram: float = 0
    dsp: float = 0
    carry: float = 0
    lutram: float = 0
    mux: float = 0
    spram: float = 0
    other: dict[str, int] = field(default_factory=dict)

    def __add__(self, o: Resources) -> Resources:
        r = Resources(**{k: getattr(self, k) + getattr(o, k) for k in KINDS})
        for src in (self.other, o.other):
            for k, v in src.items():
                r.other[k] = r.other.get(k, 0) + v
        return r

    def scaled(self, n: int) -> Resources:
        return Resources(**{k: getattr(self, k) * n for k in KINDS},
                         other={k: v * n for k, v in self.other.items()})

    def to_json(self) -> dict:
        d = {k: _num(getattr(self, k)) for k in KINDS}
        if self.other:
            d["other"] = dict(sorted(self.other.items()))
        return d


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def classify(cells: dict[str, int], target: str) -> Resources:
    """Resources of leaf cell counts ``cells`` (type -> count) for ``target``."""
    rules = [(re.compile(p), kinds) for p, kinds in CELL_MAP[check_target(target)]]
    r = Resources()
    for ctype, n in cells.items():
        for rx, kinds in rules:
            if rx.fullmatch(ctype):
                for kind, w in kinds:
                    if kind in KINDS:
                        setattr(r, kind, getattr(r, kind) + w * n)
                    elif kind != "io":
                        r.other[kind] = r.other.get(kind, 0) + n
                break
        else:
            if ctype not in ("$scopeinfo", "VCC", "GND", "VHI", "VLO"):
                r.other[ctype] = r.other.get(ctype, 0) + n
    return r


# --------------------------------------------------------------------------------------------
# Parsing yosys output
# --------------------------------------------------------------------------------------------
def _name(n: str) -> str:
    return n[1:] if n.startswith("\\") else n


def parse_stat(text: str) -> dict[str, dict[str, int]]:
    """Cells per module from ``stat -json``: module name -> {cell type -> count}.

    Names lose yosys' leading backslash. A cell type that is itself a module name is a
    submodule instance.
    """
    try:
        data = json.loads(text)
        mods = data["modules"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not yosys 'stat -json' output: {e}") from None
    return {_name(m): {_name(t): int(n) for t, n in d.get("num_cells_by_type", {}).items()}
            for m, d in mods.items()}


def module_totals(mods: dict[str, dict[str, int]], top: str) -> dict[str, int]:
    """Leaf cells of ``top`` including all its submodules (times their instance counts)."""
    if top not in mods:
        raise ValueError(f"module {top!r} not in the statistics; modules: {sorted(mods)}")
    memo: dict[str, dict[str, int]] = {}

    def total(m: str, depth: int) -> dict[str, int]:
        if m in memo:
            return memo[m]
        if depth > 64:
            raise ValueError(f"module hierarchy too deep or recursive at {m!r}")
        out: dict[str, int] = {}
        for t, n in mods[m].items():
            sub = total(t, depth + 1) if t in mods else {t: 1}
            for k, v in sub.items():
                out[k] = out.get(k, 0) + v * n
        memo[m] = out
        return out

    return dict(total(top, 0))


_LTP = re.compile(r"Longest topological path in (\S+) \(length=(-?\d+)\)")


def parse_ltp(text: str) -> int | None:
    """The longest path length (cells) printed by yosys ``ltp``; None when absent or empty."""
    found = [int(m.group(2)) for m in _LTP.finditer(text)]
    if not found or max(found) < 0:
        return None
    return max(found)


_CELL_SUFFIX = re.compile(r"_(?:TRELLIS_|LUT\d|CCU2C|PFUMX|L6MUX|DP16KD|PDPW16KD|MULT18X18D|SB_"
                          r"|FD[RSCP]E|CARRY4|MUXF|RAMB|DSP48|RAM\d|SRL|INV|DO[AB]?\d|DI[AB]?\d"
                          r"|AD[AB]?\d|Q\b|Z\b)")


def name_group(cell: str) -> str:
    """The RTL signal a synthesised cell is named after (yosys ``autoname`` names cells by
    the net they drive, e.g. ``vmem.0.1_DOB2_LUT4_Z`` -> ``vmem``); anonymous arithmetic
    named after a cell type (``$291_MULT18X18D_P9...``) groups as ``(MULT18X18D datapath)``."""
    n = _name(cell)
    if n.startswith("$"):
        m = re.match(r"\$\d+_([A-Z0-9_]+?)(?:_[A-Z]+\d*)?_", n + "_")
        return f"({m.group(1)} datapath)" if m else "(anonymous)"
    head = _CELL_SUFFIX.split(n, maxsplit=1)[0]
    head = re.split(r"[.\[]", head, maxsplit=1)[0]
    return re.sub(r"\$\d+$", "", head) or "(anonymous)"  # Amaranth's busy$219 -> busy


def groups_by_name(netlist_json: str, module: str, target: str, *, keep: int = 12
                   ) -> list[tuple[str, Resources]]:
    """Resources of the leaf cells of flat ``module`` grouped by :func:`name_group`; the
    ``keep`` largest groups (by LUTs, then BRAM, DSP, FFs) and ``(rest)``."""
    mods = json.loads(netlist_json)["modules"]
    cells = mods.get(module, mods.get("\\" + module, {})).get("cells", {})
    counts: dict[str, dict[str, int]] = {}
    def is_module(t: str) -> bool:
        attrs = mods.get(t, {}).get("attributes", {})
        return t in mods and not ({"blackbox", "whitebox", "lib_whitebox"} & set(attrs))

    for name, c in cells.items():
        if is_module(c["type"]):
            continue
        g = counts.setdefault(name_group(name), {})
        g[c["type"]] = g.get(c["type"], 0) + 1
    res = sorted(((g, classify(c, target)) for g, c in counts.items()),
                 key=lambda x: (x[1].luts, x[1].bram, x[1].dsp, x[1].ffs), reverse=True)
    if len(res) > keep + 1:
        rest = Resources()
        for _, r in res[keep:]:
            rest = rest + r
        res = res[:keep] + [("(rest)", rest)]
    return res


# --------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Port:
    name: str
    direction: str
    width: int


def parse_ports(netlist_json: str, top: str | None) -> tuple[str, list[Port]]:
    """``(top, ports)`` from a yosys ``write_json`` netlist; ``top=None`` takes the module
    marked as top (by ``hierarchy -auto-top``)."""
    mods = json.loads(netlist_json)["modules"]
    if top is None:
        marked = [m for m, d in mods.items() if int(str(d.get("attributes", {})
                                                        .get("top", "0")), 2)]
        if len(marked) != 1:
            raise ValueError(f"cannot tell the top module among {sorted(map(_name, mods))}")
        top = _name(marked[0])
    key = top if top in mods else "\\" + top
    if key not in mods:
        raise ValueError(f"top module {top!r} not found; modules: {sorted(map(_name, mods))}")
    return top, [Port(n, p["direction"], len(p["bits"])) for n, p in mods[key]["ports"].items()]


def harness(top: str, ports: list[Port]) -> str:
    """Verilog of the pin-limited wrapper around module ``top`` (module docstring).

    Clock inputs (named like ``clk``) and reset inputs (``rst``...) go to pins ``clk`` and
    ``rst``; other inputs come from a shift register on pin ``sin``; outputs are loaded into a
    shift register (pin ``load``) read out on ``sout``.
    """
    bad = [p.name for p in ports if p.direction not in ("input", "output")]
    if bad:
        raise ValueError(f"module {top}: inout ports are not supported: {bad}")
    ins = [p for p in ports if p.direction == "input"
           and not (p.width == 1 and p.name.lower() in CLOCK_NAMES + RESET_NAMES)]
    outs = [p for p in ports if p.direction == "output"]
    if not outs:
        raise ValueError(f"module {top} has no outputs: synthesis would remove all of it")
    ni = max(1, sum(p.width for p in ins))
    no = sum(p.width for p in outs)
    conns, i, o = [], 0, 0
    for p in ports:
        if p.direction == "input" and p.width == 1 and p.name.lower() in CLOCK_NAMES:
            sig = "clk"
        elif p.direction == "input" and p.width == 1 and p.name.lower() in RESET_NAMES:
            sig = "~rst" if p.name.lower().endswith("n") else "rst"
        elif p.direction == "input":
            sig = f"ish[{i + p.width - 1}:{i}]"
            i += p.width
        else:
            sig = f"o[{o + p.width - 1}:{o}]"
            o += p.width
        conns.append(f"    .{_vid(p.name)}({sig})")
    return (
        f"// generated by dietsnn.estimate.synth.harness: pin-limited wrapper of {top}\n"
        f"module {WRAP_TOP} (input wire clk, input wire rst, input wire sin, input wire load,\n"
        f"                   output wire sout);\n"
        f"  reg [{ni - 1}:0] ish = 0;\n"
        f"  reg [{no - 1}:0] osh = 0;\n"
        f"  wire [{no - 1}:0] o;\n"
        f"  always @(posedge clk) ish <= (ish << 1) | sin;\n"
        f"  always @(posedge clk) osh <= load ? o : (osh << 1);\n"
        f"  assign sout = osh[{no - 1}];\n"
        f"  {_vid(top)} u_dut (\n" + ",\n".join(conns) + "\n  );\nendmodule\n"
    )


def _vid(name: str) -> str:
    """A Verilog identifier, escaped when it is not a simple one (Amaranth's ``top.x``)."""
    name = _name(name)
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


# --------------------------------------------------------------------------------------------
# Memory contents
# --------------------------------------------------------------------------------------------
_INIT_BLOCK = re.compile(
    r"^([ \t]*)initial begin\n((?:[ \t]*[^\n;]+\[\d+\] = \d+'[hdb][0-9a-fA-F_]+;\n)+)"
    r"[ \t]*end\n", re.M)
_INIT_LINE = re.compile(r"[ \t]*(\\?[^\s\[]+) ?\[(\d+)\] = (\d+)'([hdb])([0-9a-fA-F_]+);")


def externalise_memories(verilog: str) -> tuple[str, dict[str, bytes]]:
    """Move memory contents written word by word into ``$readmemh`` files.

    Amaranth writes a memory's initial contents as ``initial begin mem[0] = 128'h..; ...
    end``, one statement per word, which yosys reads very slowly (minutes for the 20,000-row
    weight ROM of the CIFAR-10 accelerator); ``$readmemh`` of the same words takes under a
    second. Returns the rewritten text and the files (``mem<k>.hex``) it refers to; blocks of
    any other form are left as they are.
    """
    files: dict[str, bytes] = {}

    def rewrite(m: re.Match) -> str:
        entries = [_INIT_LINE.fullmatch(x) for x in m.group(2).splitlines()]
        if not all(entries) or len({e.group(1) for e in entries}) != 1:
            return m.group(0)
        digits = (int(entries[0].group(3)) + 3) // 4
        out, expect = [], None
        for e in entries:
            i = int(e.group(2))
            v = int(e.group(5).replace("_", ""), {"h": 16, "d": 10, "b": 2}[e.group(4)])
            if i != expect:
                out.append(f"@{i:x}")
            out.append(f"{v:0{digits}x}")
            expect = i + 1
        name = f"mem{len(files)}.hex"
        files[name] = ("\n".join(out) + "\n").encode()
        ref = entries[0].group(1)
        ref = ref + " " if ref.startswith("\\") else ref
        return f'{m.group(1)}initial $readmemh("{name}", {ref});\n'

    return _INIT_BLOCK.sub(rewrite, verilog), files


# --------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """Verilog text and its top module (None: the one no other module instantiates);
    ``label`` names it in messages and reports."""

    verilog: str
    top: str | None
    label: str = "design"


@dataclass
class Component:
    """One direct submodule of the design top (or ``(top)`` for the top's own cells)."""

    name: str
    module: str
    instances: int
    resources: Resources

    def to_json(self) -> dict:
        return {"name": self.name, "module": self.module, "instances": self.instances,
                **self.resources.to_json()}


@dataclass
class Synthesis:
    """The result of :func:`synthesize`.

    Members
    -------
    target, part : the family and the part whose options were used (iCE40: DSP use).
    resources : the whole design (harness excluded).
    components : per direct submodule of the top, plus ``(top)`` for the top's own cells.
    by_name : when the top has no submodules (a flat design), its cells grouped by the RTL
        signal they are named after (:func:`groups_by_name`); else empty.
    logic_depth : longest combinational path in cells (LUTs, carries, muxes), or None.
    netlist : the synthesised JSON netlist with the harness (what nextpnr reads).
    seconds, cached : run time of yosys and whether the result came from the cache.
    """

    target: str
    part: str
    top: str
    resources: Resources
    components: list[Component]
    by_name: list[Component]
    logic_depth: int | None
    netlist: Path | None
    seconds: float
    cached: bool
    log: Path

    def to_json(self) -> dict:
        return {"target": self.target, "part": self.part, "top": self.top,
                "resources": self.resources.to_json(),
                "components": [c.to_json() for c in self.components],
                "by_name": [c.to_json() for c in self.by_name],
                "logic_depth": self.logic_depth, "seconds": round(self.seconds, 2),
                "cached": self.cached}


def _yosys_phase(line: str) -> str | None:
    m = re.match(r"^\d+(?:\.\d+)*\. Executing (.+?)(?: pass)?[ .(]", line)
    return m.group(1)[:40] if m else None


def probe_ports(design: Design) -> tuple[str, list[Port]]:
    """The top module and its ports, from a quick yosys elaboration (cached)."""
    text, mems = externalise_memories(design.verilog)
    drop = "delete t:$meminit*; "  # memory contents would only bloat ports.json
    if design.top is None:
        script = ("read_verilog -sv design.v; hierarchy -auto-top; proc; "
                  f"{drop}write_json ports.json")
    else:
        top = _vid(design.top).strip()
        script = (f"read_verilog -sv design.v; hierarchy -top {top}; select -module {top}; "
                  f"proc; {drop}write_json -selected ports.json")
    try:
        run = run_tool("yosys", ["-q", "-p", script], {"design.v": text.encode(), **mems},
                       outputs=["ports.json"], desc=f"yosys ports {design.label}",
                       phase=_yosys_phase)
    except ToolFailedError as e:
        raise ToolFailedError(f"{design.label}: cannot elaborate top {design.top!r}: {e}") from e
    return parse_ports(run.read("ports.json"), design.top)


_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)", re.M)


def module_names(verilog: str) -> list[str]:
    """The modules a Verilog text defines, in order (escaped names without the backslash)."""
    return [_name(m.group(1).lstrip("\\")) for m in _MODULE.finditer(verilog)]


def children(verilog: str, module: str, names: list[str]) -> list[str]:
    """The modules among ``names`` that ``module`` instantiates directly."""
    m = re.search(r"^module\s+\\?" + re.escape(_vid(module).strip().lstrip("\\")) + r"[\s(]"
                  r"(.*?)^endmodule", verilog, re.M | re.S)
    if m is None:
        return []
    body = m.group(1)
    return [n for n in names if n != module and re.search(
        r"^\s*\\?" + re.escape(_vid(n).strip().lstrip("\\")) + r"\s+\S+\s*\(", body, re.M)]


#: yosys commands (after ``proc``) that mark every flip-flop driving a wire with ``keep``
#: (deliberate copies that cut a fan-out) as ``keep`` itself, so that ``opt`` does not merge
#: identical flip-flops back into one, as vendor tools keep them.
KEEP_COPIES = ("select -set kc a:keep %ci1:+$dff[Q] t:$dff %i", "setattr -set keep 1 @kc")


def _module_run(target: str, p: Part, module: str, others: list[str],
                inputs: dict[str, bytes], label: str, *, flatten: bool = False) -> Any:
    """Synthesise ``module`` with ``others`` as black boxes (one yosys process); with
    ``flatten`` its own submodules are flattened into it.

    yosys 0.70's ABC9 (YoWASP build) aborts without a message on some ECP5 modules (the
    front's LUT multipliers, :class:`dietsnn.hw.accel.front.Multipliers`, are one); such a
    module is synthesised again with ``synth_ecp5 -dff`` (ABC9 maps its flip-flops too),
    which completes."""
    try:
        return _module_run_once(target, p, module, others, inputs, label, flatten=flatten)
    except ToolFailedError:
        if target != "ecp5":
            raise
        return _module_run_once(target, p, module, others, inputs, label, flatten=flatten,
                                extra=" -dff")


def _module_run_once(target: str, p: Part, module: str, others: list[str],
                     inputs: dict[str, bytes], label: str, *, flatten: bool,
                     extra: str = "") -> Any:
    boxes = " ".join(_vid(o).strip() for o in others)
    keep = "" if flatten else " -noflatten"
    fam = {"xc7": (f"synth_xilinx -family xc7 -noiopad{' -flatten' if flatten else ''} "
                   f"-top {_vid(module).strip()}"),
           "ecp5": f"synth_ecp5{keep}{extra} -top {_vid(module).strip()}",
           "ice40": (f"synth_ice40{' -dsp' if p.dsp else ''}{keep} "
                     f"-top {_vid(module).strip()}")}[target]
    script = "\n".join([
        "read_verilog -sv design.v", "read_verilog harness.v",
        *([f"blackbox {boxes}"] if boxes else []),
        f"hierarchy -top {_vid(module).strip()}",
        "proc", *KEEP_COPIES,
        fam,
        "delete =A:blackbox", "write_json part.json", ""])
    return run_tool("yosys", ["-s", "synth.ys"], {**inputs, "synth.ys": script.encode()},
                    outputs=["part.json"], desc=f"yosys {target} {label}: {module}",
                    phase=_yosys_phase)


def synthesize(design: Design, target: str, *, part: str | None = None,
               cache: bool = True) -> Synthesis:
    """Synthesise ``design`` for ``target`` with yosys; see the module docstring.

    The top's own logic, each component (direct submodule of the top, flattened) and the
    harness are synthesised in a yosys process each, the others black boxes; a last process
    joins the mapped netlists, counts the cells (``stat``) and measures the logic depth.
    Besides keeping each run small, this sidesteps a yosys ABC re-integration fault that
    whole-design runs of large hierarchies can hit.
    """
    check_target(target)
    p = get_part(part or DEFAULT_PART[target], target)
    top, ports = probe_ports(design)
    wrap = harness(top, ports)
    text, mems = externalise_memories(design.verilog)
    inputs = {"design.v": text.encode(), "harness.v": wrap.encode(), **mems}
    names = module_names(text)
    comps_of_top = children(text, top, names)
    parts = {}
    for mod in [top, *comps_of_top, WRAP_TOP]:
        if mod in comps_of_top:      # a component: its own submodules flattened into it
            others = [o for o in (top, WRAP_TOP, *comps_of_top) if o != mod]
        else:
            others = [o for o in (*names, WRAP_TOP) if o != mod]
        run = _module_run(target, p, mod, others, inputs, design.label,
                          flatten=mod in comps_of_top)
        parts[f"part{len(parts)}.json"] = run.path("part.json").read_bytes()
    seq = " ".join(f"t:{c}" for c in SEQUENTIAL[target])
    lib = {"xc7": ["+/xilinx/cells_sim.v", "+/xilinx/cells_xtra.v"],
           "ecp5": ["+/ecp5/cells_sim.v", "+/ecp5/cells_bb.v"],
           "ice40": ["+/ice40/cells_sim.v"]}[target]
    script = "\n".join([
        *(f"read_verilog -lib {f}" for f in lib), *(f"read_json {n}" for n in parts),
        f"hierarchy -check -top {WRAP_TOP}",
        "tee -q -o stat.json stat -json", "blackbox =A:whitebox", "write_json netlist.json",
        "flatten",
        f"delete {seq}", "tee -q -o ltp.txt ltp -noff", ""])
    outs = ["stat.json", "ltp.txt", "netlist.json"]
    run = run_tool("yosys", ["-s", "join.ys"], {"join.ys": script.encode(), **parts},
                   outputs=outs, desc=f"yosys {target} {design.label}: join",
                   phase=_yosys_phase, cache=cache)
    mods = parse_stat(run.read("stat.json"))
    top = _name(top)
    res = classify(module_totals(mods, top), target)
    comps = []
    local = {t: n for t, n in mods[top].items() if t not in mods}
    if local:
        comps.append(Component("(top)", top, 1, classify(local, target)))
    for t, n in sorted(mods[top].items()):
        if t in mods:
            short = t[len(top) + 1:] if t.startswith(top + ".") else t
            comps.append(Component(short, t, n, classify(module_totals(mods, t), target)
                                   .scaled(n)))
    by_name = []
    if all(c.name == "(top)" for c in comps):
        by_name = [Component(g, top, 1, r) for g, r in
                   groups_by_name(run.read("netlist.json"), top, target)]
    return Synthesis(target=target, part=p.name, top=top, resources=res, components=comps,
                     by_name=by_name, logic_depth=parse_ltp(run.read("ltp.txt")),
                     netlist=run.path("netlist.json"),
                     seconds=run.seconds, cached=run.cached, log=run.path("log.txt"))
