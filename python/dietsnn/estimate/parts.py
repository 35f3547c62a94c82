"""FPGA targets and a small table of part capacities, and the fits / does-not-fit check.

Capacities are in the units yosys maps to for that family (see :mod:`dietsnn.estimate.synth`):

============ ====== ======= ======= ===== ===== ===== =========================================
part         family LUTs    FFs     BRAM  DSP   SPRAM BRAM unit
============ ====== ======= ======= ===== ===== ===== =========================================
xc7a35t      xc7    20,800  41,600  50    90    --    RAMB36E1 (36 kbit; a RAMB18E1 is 0.5)
xc7z020      xc7    53,200  106,400 140   220   --    RAMB36E1
xc7a100t     xc7    63,400  126,800 135   240   --    RAMB36E1
LFE5U-25F    ecp5   24,288  24,288  56    28    --    DP16KD (18 kbit); DSP = MULT18X18D
LFE5U-45F    ecp5   43,848  43,848  108   72    --    DP16KD
LFE5U-85F    ecp5   83,640  83,640  208   156   --    DP16KD
iCE40UP5K    ice40  5,280   5,280   30    8     4     SB_RAM40_4K (4 kbit); SPRAM 256 kbit
iCE40HX8K    ice40  7,680   7,680   32    0     --    SB_RAM40_4K
============ ====== ======= ======= ===== ===== ===== =========================================

Sources: AMD/Xilinx DS190 (Zynq-7000) and DS180 (7 series), Lattice FPGA-DS-02012 (ECP5),
FPGA-DS-02008 (iCE40 UltraPlus) and DS1040 (iCE40 LP/HX). "LUTs" are 6-input LUTs on xc7 and
4-input LUTs (logic cells) on ECP5 and iCE40, so LUT counts compare only within a family.
"""

from __future__ import annotations

from dataclasses import dataclass

from dietsnn.errors import CLIError

TARGETS = ("xc7", "ecp5", "ice40")
#: The resource kinds checked against a part's capacity.
CHECKED = ("luts", "ffs", "bram", "dsp", "spram")


class PartError(CLIError):
    """Unknown target or part, or a part of another family than the target."""


@dataclass(frozen=True)
class Part:
    """One FPGA part and its capacities.

    Members
    -------
    name : the name used on the command line (case-insensitive).
    family : the target family, one of :data:`TARGETS`.
    luts, ffs, bram, dsp, spram : capacities in the family's units (module docstring).
    nextpnr : nextpnr device arguments (``["--85k", "--package", "CABGA381"]``), or None when
        the open flow cannot place and route the family (xc7).
    aliases : other accepted names.
    """

    name: str
    family: str
    luts: int
    ffs: int
    bram: int
    dsp: int
    spram: int = 0
    nextpnr: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()


PARTS: tuple[Part, ...] = (
    Part("xc7a35t", "xc7", 20800, 41600, 50, 90),
    Part("xc7z020", "xc7", 53200, 106400, 140, 220, aliases=("xc7z020clg400",)),
    Part("xc7a100t", "xc7", 63400, 126800, 135, 240),
    Part("LFE5U-25F", "ecp5", 24288, 24288, 56, 28,
         nextpnr=("--25k", "--package", "CABGA381"), aliases=("ecp5-25k", "25k")),
    Part("LFE5U-45F", "ecp5", 43848, 43848, 108, 72,
         nextpnr=("--45k", "--package", "CABGA381"), aliases=("ecp5-45k", "45k")),
    Part("LFE5U-85F", "ecp5", 83640, 83640, 208, 156,
         nextpnr=("--85k", "--package", "CABGA381"), aliases=("ecp5-85k", "85k")),
    Part("iCE40UP5K", "ice40", 5280, 5280, 30, 8, spram=4,
         nextpnr=("--up5k", "--package", "sg48"), aliases=("up5k", "ice40-up5k")),
    Part("iCE40HX8K", "ice40", 7680, 7680, 32, 0,
         nextpnr=("--hx8k", "--package", "ct256"), aliases=("hx8k", "ice40-hx8k")),
)

#: The part whose device nextpnr uses when none is named (the largest of the family).
DEFAULT_PART = {"xc7": "xc7z020", "ecp5": "LFE5U-85F", "ice40": "iCE40UP5K"}


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise PartError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    return target


def get_part(name: str, target: str | None = None) -> Part:
    """The part called ``name`` (or an alias); with ``target``, it must be of that family."""
    key = name.strip().lower()
    for p in PARTS:
        if key == p.name.lower() or key in (a.lower() for a in p.aliases):
            if target is not None and p.family != check_target(target):
                raise PartError(f"part {p.name} is an {p.family} part, not {target}; "
                                f"{target} parts: {', '.join(family_parts(target))}")
            return p
    known = ", ".join(p.name for p in PARTS)
    raise PartError(f"unknown part {name!r}; known parts: {known}")


def family_parts(target: str) -> list[str]:
    return [p.name for p in PARTS if p.family == check_target(target)]


def parts_of(target: str) -> list[Part]:
    return [p for p in PARTS if p.family == check_target(target)]


@dataclass(frozen=True)
class Fit:
    """Whether a design fits a part.

    Members
    -------
    part : the part name.
    fits : True when every checked resource is within capacity.
    utilisation : resource kind -> used / available (``inf`` when used > 0 and available 0).
    over : the resource kinds over capacity.
    """

    part: str
    fits: bool
    utilisation: dict[str, float]
    over: tuple[str, ...]

    def to_json(self) -> dict:
        return {"part": self.part, "fits": self.fits,
                "utilisation": {k: (round(v, 4) if v != float("inf") else "inf")
                                for k, v in self.utilisation.items()},
                "over": list(self.over)}


def fits(used: dict[str, float], part: Part) -> Fit:
    """Check resources ``used`` (kinds of :data:`CHECKED`, family units) against ``part``."""
    util: dict[str, float] = {}
    over = []
    for kind in CHECKED:
        n = float(used.get(kind, 0) or 0)
        cap = getattr(part, kind)
        if cap == 0 and n == 0:
            continue
        util[kind] = n / cap if cap else float("inf")
        if n > cap:
            over.append(kind)
    return Fit(part.name, not over, util, tuple(over))
