"""The accelerator as a self-contained IP folder (``dietsnn rtl --target accel``).

:func:`write_ip` writes, for one model and design point, everything a hardware designer needs
to take the accelerator into another project without dietsnn or Python:

* the Verilog, one module per Amaranth component (:mod:`.ipverilog`): ``<name>.v`` (the top)
  and ``<name>_<unit>.v``; ``sources.f`` lists them;
* the weight ROMs' contents as ``$readmemh`` files ``<name>_<memory>.hex``;
* ``tb_<name>.v``, a self-checking plain-Verilog testbench with its stimulus and the golden
  model's results on a few test images (:mod:`.iptb`);
* ``<name>.core`` (FuseSoC CAPI2), ``<name>.xdc`` (Vivado clock constraint), ``fmax.sh`` with
  ``fmax_wrap.v``, ``fmax.lpf`` and ``ecp5_outreg.py`` (the Fmax figure with yosys and
  nextpnr-ecp5), ``lint_waivers.vlt`` (:data:`dietsnn.hw.lint.ACCEL_WAIVERS`);
* ``timing.json`` / ``timing.png`` (the handshake as WaveDrom and its picture), ``README.md``
  and ``params.json`` (:func:`dietsnn.hw.accel.gen.params_json` plus an ``"ip"`` object
  describing the folder) (:mod:`.ipdocs`).

:func:`run_fmax` runs the folder's own ``fmax.sh`` and records its figure in the README.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from ... import __version__
from ...errors import DietsnnError, OutputError
from ...estimate.synth import WRAP_TOP
from ...fileio import atomic_path, write_atomic
from ...model import Model
from .. import tools
from ..lint import ACCEL_WAIVERS, waiver_config
from ..wavedrom import render_png
from . import ipdocs, iptb
from .core import Accelerator
from .gen import TOP, params_json
from .ipverilog import IDENT, ip_modules
from .plan import default_lanes

FORMAT = "dietsnn-accel-ip"
VERSION = 1
#: Test images of the testbench by default.
TB_IMAGES = 4
#: The project root, when dietsnn runs from a checkout (recorded figures, git commit).
ROOT = next((p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file()),
            None)


class FmaxError(DietsnnError):
    """The IP folder's ``fmax.sh`` failed or reported no Fmax."""


def top_ports(acc: Accelerator) -> list[dict[str, Any]]:
    """``[{name, dir, width}]`` of the top module: ``clk``, ``rst``, then the signature's
    members (Verilog names ``<interface>__<member>``)."""
    ports = [{"name": "clk", "dir": "input", "width": 1},
             {"name": "rst", "dir": "input", "width": 1}]
    for path, member, value in acc.signature.flatten(acc):
        width = len(Value.cast(value))
        ports.append({"name": "__".join(map(str, path)), "width": width,
                      "dir": "input" if member.flow == wiring.In else "output"})
    return ports


def _check_ports(top_text: str, ports: list[dict[str, Any]]) -> None:
    head = re.search(r"^module\s+\w+\(([^)]*)\);", top_text, re.M)
    names = {x.strip() for x in head.group(1).split(",")} if head else set()
    if names != {p["name"] for p in ports}:
        raise RuntimeError(f"top module ports {sorted(names)} differ from the signature's "
                           f"{sorted(p['name'] for p in ports)}")


def _commit() -> str | None:
    if ROOT is None or not (ROOT / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def recorded_figures(model_name: str, lanes: int) -> dict[str, Any] | None:
    """Resources and Fmax of this design point from ``docs/figures/accel_synth.json``
    (``bench/accel_synth.py``), when dietsnn runs from a checkout that has them."""
    if ROOT is None:
        return None
    path = ROOT / "docs" / "figures" / "accel_synth.json"
    try:
        points = json.loads(path.read_text())["points"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for p in points:
        if p.get("model") == model_name and p.get("lanes") == lanes:
            return p
    return None


def _resources(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    figs = {}
    for target, label in (("xc7", "yosys synth_xilinx"), ("ecp5", "after nextpnr")):
        r = rec.get(target, {}).get("resources")
        if r:
            figs[f"{rec[target]['part']} ({label})"] = (
                f"{r['luts']:,} LUT / {r['ffs']:,} FF / {r['bram']:g} block RAM / "
                f"{r['dsp']:g} DSP")
    return {"source": f"Recorded by dietsnn's bench/accel_synth.py at commit "
                      f"{rec.get('commit', '?')} (the RTL may have changed since; "
                      f"`./fmax.sh` measures this folder)", "figures": figs}


def _old_files(out: Path) -> list[str]:
    try:
        old = json.loads((out / "params.json").read_text())
        return list(old["ip"]["files"]) if old.get("ip", {}).get("format") == FORMAT else []
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_ip(model: Model, out_dir: str | os.PathLike, *, lanes: int | None = None,
             data_bits: int = 32, name: str = TOP, tb_images: int = TB_IMAGES,
             data: str | os.PathLike | None = None, ecp5_part: str = "LFE5U-85F",
             clock_mhz: float = 100.0) -> dict[str, Any]:
    """Write the IP folder of ``model`` into ``out_dir``; returns its ``params.json``.

    ``lanes`` defaults to :func:`~.plan.default_lanes`; ``tb_images`` test images of the
    CIFAR-10 test set (``data``: see :func:`dietsnn.data.load_cifar10`) spread over the
    classes; ``ecp5_part`` is the default part of ``fmax.sh``, ``clock_mhz`` the XDC's clock.
    Raises ValueError on a bad argument, :class:`~.plan.PlanError` for a model the
    accelerator cannot run.
    """
    from ...data import load_cifar10
    from ...selection import select_images, selection_record
    from ...sim.accel_model import beats_of, expected

    if not isinstance(name, str) or not IDENT.fullmatch(name):
        raise ValueError(f"the IP name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*), "
                         f"not {name!r}")
    if isinstance(tb_images, bool) or not isinstance(tb_images, int) or tb_images < 1:
        raise ValueError(f"the testbench needs 1 or more images, not {tb_images!r}")
    if ecp5_part not in ipdocs.ECP5_DEVICES:
        raise ValueError(f"ECP5 part must be one of {', '.join(ipdocs.ECP5_DEVICES)}, "
                         f"not {ecp5_part!r}")
    if not 0 < float(clock_mhz) <= 1000:
        raise ValueError(f"clock frequency must be in (0, 1000] MHz, not {clock_mhz!r}")
    lanes = default_lanes(model) if lanes is None else lanes
    acc = Accelerator(model, lanes=lanes, data_bits=data_bits)
    params = params_json(acc)
    params["top"] = name
    text = verilog.convert(acc, name=name, emit_src=False)
    mods, mems, mem_data = ip_modules(text, name)
    ports = top_ports(acc)
    _check_ports(mods[name], ports)

    # ---- testbench images and the golden model's results -------------------------------
    ds = load_cifar10(split="test", data=data)
    total = len(ds.labels)
    if tb_images > total:
        raise ValueError(f"the testbench needs {tb_images} images; the test set has {total}")
    idx = select_images(ds.labels, tb_images)
    labels = ds.labels[idx]
    sel = selection_record(idx, split="test", total=total, labels=labels,
                           dataset=getattr(ds, "source", None))
    q = model.input.quantize(ds.images[idx])
    exp = expected(model, q, params, maps=False)
    beats = beats_of(params, q)
    front = int(exp["front_cycles"][0])
    backs = [int(b) for b in exp["back_cycles"]]
    k = int(params["classes"])
    interval = [max(front, b) + 1 for b in backs]
    cycles = {"front": front, "back_min": min(backs), "back_max": max(backs),
              "back_mean": float(np.mean(backs)), "interval_mean": float(np.mean(interval)),
              "latency_mean": float(np.mean([params["beats"] + front + b + k + 3
                                             for b in backs]))}

    tb_name = f"tb_{name}"
    verilog_files = [f"{m}.v" for m in mods]
    rec = recorded_figures(params["model"], lanes) if data_bits == 32 else None
    fmax_result = None
    if rec and rec.get("ecp5", {}).get("fmax_mhz"):
        fmax_result = {"fmax_mhz": float(rec["ecp5"]["fmax_mhz"]),
                       "part": rec["ecp5"]["part"],
                       "source": f"recorded by bench/accel_synth.py, dietsnn's flow with "
                                 f"the steps of fmax.sh, on the RTL of commit "
                                 f"{rec.get('commit', '?')}; the RTL may have changed since, "
                                 f"`./fmax.sh` measures this folder"}
    ip: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "name": name, "dietsnn": __version__,
        "commit": _commit(), "vlnv": f"dietsnn:accel:{name}:{__version__}",
        "modules": list(mods), "verilog": verilog_files, "sources": "sources.f",
        "ports": ports,
        "memories": [{"file": m.file, "module": m.module, "memory": m.memory,
                      "width": m.width, "depth": m.depth} for m in mems],
        "testbench": {
            "verilog": f"{tb_name}.v", "stimulus": f"{tb_name}_in.hex",
            "expect": f"{tb_name}_expect.hex", "record_words": iptb.record_words(params),
            "selection": sel,
            "images": [{"index": int(i), "label": int(lab), "class": int(c), "back": b}
                       for i, lab, c, b in zip(idx, labels, exp["prediction"], backs,
                                               strict=True)]},
        "core": f"{name}.core", "xdc": f"{name}.xdc", "waivers": "lint_waivers.vlt",
        "clock_mhz": float(clock_mhz), "ecp5_part": ecp5_part,
        "fmax": {"script": "fmax.sh", "wrapper": "fmax_wrap.v", "lpf": "fmax.lpf",
                 "outreg": "ecp5_outreg.py", "top": WRAP_TOP},
        "cycles": cycles,
        "timing": {"json": "timing.json", "png": "timing.png"},
        "resources": _resources(rec),
        "fmax_result": fmax_result,
    }
    files: dict[str, str | bytes] = {}
    for m, body in mods.items():
        files[f"{m}.v"] = body
    files.update(mem_data)
    files["sources.f"] = "".join(f"{f}\n" for f in verilog_files)
    files[ip["waivers"]] = waiver_config(ACCEL_WAIVERS)
    timeout = iptb.timeout_clocks(params, front, backs)
    files[ip["testbench"]["verilog"]] = iptb.testbench(name, params, images=tb_images,
                                                       timeout=timeout)
    files[ip["testbench"]["stimulus"]] = iptb.hex_lines(beats, int(params["data_bits"]))
    files[ip["testbench"]["expect"]] = iptb.hex_lines(iptb.records(exp, idx, labels), 32)
    files.update(_fmax_files(ip, ports))
    files[ip["xdc"]] = ipdocs.xdc_file(ip)
    files[ip["core"]] = ipdocs.core_file(ip, params)
    files["timing.json"] = ipdocs.diagram_json(params)
    files["README.md"] = ipdocs.readme(ip, params)
    ip["files"] = sorted([*files, "timing.png", "params.json"])
    params["ip"] = ip
    files["params.json"] = json.dumps(params, indent=1) + "\n"

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    stale = [f for f in _old_files(out) if f not in ip["files"]]
    for fname, body in files.items():
        write_atomic(out / fname, body)
    (out / "fmax.sh").chmod((out / "fmax.sh").stat().st_mode | 0o111)
    with atomic_path(out / "timing.png") as tmp:
        render_png(json.loads(files["timing.json"]), tmp)
    for f in stale:
        if "/" not in f and (out / f).is_file():
            (out / f).unlink()
    return params


def _fmax_files(ip: dict[str, Any], ports: list[dict[str, Any]]) -> dict[str, str]:
    """``fmax.sh``, the harness, the LPF and ``ecp5_outreg.py``."""
    from ...estimate import outreg
    from ...estimate.synth import Port, harness
    wrap = harness(ip["name"], [Port(p["name"], p["dir"], p["width"]) for p in ports])
    src = inspect.getsource(outreg)
    if re.search(r"^\s*(from|import)\s+(dietsnn|\.)", src, re.M):
        raise RuntimeError("dietsnn.estimate.outreg is no longer standalone")
    src += (
        "\n\nif __name__ == \"__main__\":  # added by dietsnn for the IP folder's fmax.sh\n"
        "    import json\n    import sys\n\n"
        "    with open(sys.argv[1]) as f:\n        netlist = json.load(f)\n"
        "    moved = absorb(netlist)\n"
        "    with open(sys.argv[1], \"w\") as f:\n        json.dump(netlist, f)\n"
        "    print(f\"ecp5_outreg: {moved} flip-flops moved into block RAM output registers\")\n")
    return {ip["fmax"]["wrapper"]: wrap, ip["fmax"]["lpf"]: ipdocs.lpf_file(ip),
            ip["fmax"]["outreg"]: "# Copied from dietsnn.estimate.outreg by dietsnn rtl "
                                  "--target accel (stdlib only).\n" + src,
            ip["fmax"]["script"]: ipdocs.fmax_script(ip)}


_FMAX_LINE = re.compile(r"^Fmax ([0-9.]+) MHz", re.M)


def run_fmax(out_dir: str | os.PathLike, *, device: str | None = None,
             timeout: float = 3600.0) -> dict[str, Any]:
    """Run the IP folder's ``fmax.sh`` (with dietsnn's yosys and nextpnr) and record the
    Fmax and the nextpnr utilisation in its ``params.json`` and README; returns the figure."""
    out = Path(out_dir)
    params = json.loads((out / "params.json").read_text())
    ip = params["ip"]
    env = dict(os.environ)
    if tools.yosys() and "YOSYS" not in env:
        env["YOSYS"] = tools.yosys() or ""
    if tools.nextpnr_ecp5() and "NEXTPNR" not in env:
        env["NEXTPNR"] = tools.nextpnr_ecp5() or ""
    part = ip["ecp5_part"]
    if device:
        rev = {v: k for k, v in ipdocs.ECP5_DEVICES.items()}
        if device not in rev:
            raise ValueError(f"device must be one of {', '.join(rev)}, not {device!r}")
        env["DEVICE"], part = device, rev[device]
    try:
        r = subprocess.run(["bash", "fmax.sh"], cwd=out, env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FmaxError(f"{out}/fmax.sh ran past {timeout:.0f} s") from None
    m = _FMAX_LINE.search(r.stdout)
    if r.returncode != 0 or m is None:
        tail = " ".join((r.stdout + r.stderr).strip().splitlines()[-3:])
        raise FmaxError(f"{out}/fmax.sh failed (exit {r.returncode}): {tail}")
    util: dict[str, dict[str, int]] = {}
    try:
        rep = json.loads((out / "fmax_build" / "report.json").read_text())
        util = {k: {"used": int(v["used"]), "available": int(v["available"])}
                for k, v in rep.get("utilization", {}).items() if int(v["used"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    figure = {"fmax_mhz": float(m.group(1)), "part": part,
              "source": "measured by this folder's fmax.sh"}
    ip["fmax_result"] = figure
    keep = ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW", "DP16KD", "MULT18X18D")
    if util:
        ip["resources"] = {"source": f"This folder's fmax.sh, after place and route on the "
                                     f"{part} (nextpnr cells)",
                           "figures": {k: f"{v['used']:,} of {v['available']:,}"
                                       for k, v in util.items() if k in keep}}
    write_atomic(out / "README.md", ipdocs.readme(ip, params))
    write_atomic(out / "params.json", json.dumps(params, indent=1) + "\n")
    return {**figure, "utilisation": util, "output": r.stdout}
