"""The accelerator's Verilog as an IP deliverable: one file per module, ROMs in ``$readmemh`` files.

Post-processes the Verilog Amaranth writes (:func:`amaranth.back.verilog.convert`, the same
text :func:`dietsnn.hw.accel.generate` ships), so the units of :mod:`dietsnn.hw.accel` need
no change:

* **Modules.** Amaranth keeps one Verilog module per component, with escaped hierarchical
  names (``\\dietsnn_accel.engine.lif``). :func:`split_modules` renames them to plain
  identifiers (``<top>_engine_lif``: the top's name, then the path of submodule names in
  :class:`~dietsnn.hw.accel.core.Accelerator`) and returns one text per module.
* **Memory contents.** Amaranth writes a memory's contents as an ``initial`` block of one
  statement per word (the 992 x 2304-bit weight ROM of ``cifar10`` alone is 0.6 MB).
  :func:`memory_files` moves every memory with non-zero contents (the weight ROMs ``wfront``,
  ``wmem``, ``wout``, a biased model's ``bfront``, ``bmem``) into ``<top>_<memory>.hex`` for
  ``$readmemh`` and writes the all-zero contents of the RAMs as one ``for`` loop; the words
  come from :func:`dietsnn.estimate.synth.externalise_memories` (the synthesis flow's own
  conversion).
* **Icarus.** yosys makes every combinational block sensitive to a dummy register declared
  ``= 0`` so that it runs at time 0; Icarus initialises such a register without an event, so
  a block whose inputs keep their initial values would output X. :func:`icarus_kick` adds, for
  Icarus only (```ifdef __ICARUS__``), one event on that register at time 0 (``#0``: after
  every process has started), and each file a ```timescale`` for Icarus (which warns about
  delays in a module without one); other tools see neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...estimate.synth import externalise_memories

#: A Verilog identifier that needs no escaping.
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"((?:^\(\*[^\n]*\*\)\n)*)^module\s+(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
                     r"(.*?)^endmodule\n", re.M | re.S)
_KICK = re.compile(r"^([ \t]*)reg (\\\$auto\$verilog_backend\S*dump_module\$\d+ ) = 0;\n", re.M)
_READMEM = re.compile(r'^([ \t]*)initial \$readmemh\("(mem\d+\.hex)", (\\\S+ |[A-Za-z_]\w*)\);\n',
                      re.M)
#: Loop variable of the zero-fill loops (checked not to clash with a design name).
LOOP_VAR = "dietsnn_meminit_i"


@dataclass(frozen=True)
class MemoryFile:
    """A memory whose contents moved into a ``$readmemh`` file.

    Members
    -------
    file : the file's name (beside the Verilog). module : the Verilog module holding it.
    memory : the memory's name in that module. width, depth : bits per word, words.
    """

    file: str
    module: str
    memory: str
    width: int
    depth: int


def module_name(top: str, path: str) -> str:
    """The plain module name of Amaranth's ``<top>.<path>`` (``""``: the top itself)."""
    return top if not path else f"{top}_{path.replace('.', '_')}"


def split_modules(text: str, top: str) -> dict[str, str]:
    """One Verilog text per module of Amaranth's ``text``, renamed (module docstring).

    Returns ``{module name: text}``, the top first. Raises ValueError when ``text`` holds a
    module outside ``top``'s hierarchy or two paths map onto one name.
    """
    if not IDENT.fullmatch(top):
        raise ValueError(f"top module name must be a plain Verilog identifier, not {top!r}")
    names: dict[str, str] = {}
    for m in _MODULE.finditer(text):
        raw = m.group(2).lstrip("\\")
        if raw == top:
            names[raw] = top
        elif raw.startswith(top + "."):
            names[raw] = module_name(top, raw[len(top) + 1:])
        else:
            raise ValueError(f"module {raw!r} is not in the hierarchy of {top!r}")
    if len(set(names.values())) != len(names):
        raise ValueError(f"two modules of {top!r} map onto one name: {sorted(names)}")

    def rename(s: str) -> str:
        for raw in sorted(names, key=len, reverse=True):
            if raw != top:
                s = s.replace(f"\\{raw} ", names[raw])
        return s

    out: dict[str, str] = {}
    for m in _MODULE.finditer(text):
        name = names[m.group(2).lstrip("\\")]
        out[name] = rename(m.group(0))
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != top, kv[0])))


def _declared(text: str, ref: str) -> tuple[int, int]:
    """Width and depth of memory ``ref`` from its ``reg [W-1:0] ref [D-1:0];``."""
    name = re.escape(ref.strip())
    m = re.search(rf"reg (?:\[(\d+):0\] )?{name} ?\[(\d+):0\];", text)
    if m is None:
        raise ValueError(f"no declaration of memory {ref.strip()!r}")
    return int(m.group(1) or 0) + 1, int(m.group(2)) + 1


def memory_files(text: str, module: str, prefix: str, taken: frozenset[str] = frozenset()
                 ) -> tuple[str, list[MemoryFile], dict[str, bytes]]:
    """Move the contents of ``module``'s memories out of ``text`` (module docstring).

    Returns the new text, a :class:`MemoryFile` per file and the files' contents, named
    ``<prefix>_<memory>.hex``, or ``<module>_<memory>.hex`` when that name is in ``taken``.
    """
    if re.search(rf"\b{LOOP_VAR}\b", text):
        raise ValueError(f"module {module}: the name {LOOP_VAR} is taken")
    body, raw = externalise_memories(text)
    records: list[MemoryFile] = []
    files: dict[str, bytes] = {}
    zero_fill = False

    def rewrite(m: re.Match) -> str:
        nonlocal zero_fill
        indent, tmp, ref = m.group(1), m.group(2), m.group(3)
        width, depth = _declared(body, ref)
        words = [x for x in raw[tmp].decode().split() if not x.startswith("@")]
        if not any(int(w, 16) for w in words):
            zero_fill = True
            return (f"{indent}initial for ({LOOP_VAR} = 0; {LOOP_VAR} < {depth}; "
                    f"{LOOP_VAR} = {LOOP_VAR} + 1) {ref}[{LOOP_VAR}] = {width}'h0;\n")
        name = ref.strip().lstrip("\\")
        if not IDENT.fullmatch(name):
            name = re.sub(r"\W+", "_", name).strip("_")
        fname = f"{prefix}_{name}.hex"
        if fname in taken or fname in files:
            fname = f"{module}_{name}.hex"
        if fname in taken or fname in files:
            raise ValueError(f"module {module}: two memories named {name!r}")
        files[fname] = raw[tmp]
        records.append(MemoryFile(fname, module, ref.strip(), width, depth))
        return f'{indent}initial $readmemh("{fname}", {ref}, 0, {depth - 1});\n'

    body = _READMEM.sub(rewrite, body)
    if re.search(r'\$readmemh\("mem\d+\.hex"', body):
        raise ValueError(f"module {module}: a memory initialisation of an unexpected form")
    if zero_fill:
        head = re.search(r"^module [^\n]*;\n", body, re.M)
        assert head is not None
        body = body[:head.end()] + f"  integer {LOOP_VAR};\n" + body[head.end():]
    return body, records, files


def icarus_kick(text: str) -> str:
    """Add the Icarus-only time-0 event of yosys' combinational blocks (module docstring)."""
    return _KICK.sub(lambda m: (f"{m.group(0)}`ifdef __ICARUS__\n"
                                f"{m.group(1)}initial #0 {m.group(2)}= 1'h1;\n`endif\n"), text)


def ip_modules(text: str, top: str, *, mem_prefix: str | None = None
               ) -> tuple[dict[str, str], list[MemoryFile], dict[str, bytes]]:
    """Amaranth's Verilog ``text`` of ``top`` as IP files: ``({module: text}, memory records,
    {memory file: contents})``; memory files are named ``<mem_prefix or top>_<memory>.hex``."""
    header = ("// Generated by dietsnn (Amaranth); one module of the accelerator IP.\n"
              "`ifdef __ICARUS__\n`timescale 1ns / 1ps\n`endif\n")
    mods: dict[str, str] = {}
    records: list[MemoryFile] = []
    files: dict[str, bytes] = {}
    for name, body in split_modules(text, top).items():
        body, recs, fs = memory_files(body, name, mem_prefix or top, frozenset(files))
        records += recs
        files.update(fs)
        mods[name] = header + icarus_kick(body)
    return mods, records, files
