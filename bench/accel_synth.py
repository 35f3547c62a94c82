"""Benchmark: the accelerator's hardware figures, through the library's one synthesis flow.

For each design point (model, lanes, ECP5 part): generate the accelerator, synthesise it with
yosys for xc7 and ECP5 (:func:`dietsnn.estimate.synth.synthesize`), place and route it on the
ECP5 part with nextpnr (:func:`dietsnn.estimate.pnr.place_and_route`, out of context behind
the pin-limited harness), and turn the Fmax into images/s with the mean stream interval of the
spread test images measured in simulation (``docs/figures/accel_sim_<model>.json``, written by
``bench/accel_sim.py``; the cycle model on ``--images`` spread images when that file is
missing or from another lane count). Writes one JSON object (``--out``), a Markdown table
(``--table``) and the block diagram (``--diagram``).

    .venv/bin/python bench/accel_synth.py --out docs/figures/accel_synth.json \\
        --table docs/figures/accel_synth.md --diagram docs/figures/accelerator_blocks.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from dietsnn import golden
from dietsnn.data import load_cifar10
from dietsnn.estimate.parts import get_part
from dietsnn.estimate.pnr import place_and_route
from dietsnn.estimate.synth import Design, synthesize
from dietsnn.fileio import atomic_path, write_atomic
from dietsnn.hw.accel import generate
from dietsnn.hw.accel.cycles import cycles_per_image
from dietsnn.model import load_model
from dietsnn.selection import select_images

#: (model, lanes, ECP5 part) design points: the default and a small one.
POINTS = (("cifar10", 32, "LFE5U-85F"), ("tiny", 8, "LFE5U-25F"))
#: Published anchors (images/s on CIFAR-10), for the table.
ANCHORS = (("FINN CNV-W1A1, ZC706 (Umuroglu et al. 2017)", 21906),
           ("SyncNN, ZCU102 (Panchapakesan et al. 2021)", 13086))
FIG = Path(__file__).resolve().parent.parent / "docs" / "figures"


def interval(model_name: str, lanes: int, images: int, rtl_sha256: str) -> tuple[float, str]:
    """Mean clocks per image of a back-to-back stream, and where the figure comes from: the
    simulation figure if it ran this RTL (``rtl_sha256`` of the Verilog), else the cycle
    model."""
    sim = FIG / f"accel_sim_{model_name}.json"
    if sim.is_file():
        d = json.loads(sim.read_text())
        if (d.get("lanes") == lanes and d.get("mismatches") == 0
                and d.get("rtl_sha256") == rtl_sha256):
            return float(d["interval_mean"]), f"{sim.name}: {d['images']} images, Verilator"
    model = load_model(model_name)
    ds = load_cifar10(split="test")
    idx = select_images(ds.labels, images)
    ref = golden.run(model, model.input.quantize(ds.images[idx]), record={"spikes"})
    return (float(cycles_per_image(model, ref, lanes=lanes).mean()),
            f"cycle model: {images} spread images")


def point(model_name: str, lanes: int, part: str, images: int, freq: float,
          pnr: bool = True) -> dict[str, Any]:
    model = load_model(model_name)
    with tempfile.TemporaryDirectory(prefix="dietsnn-accel-synth-") as tmp:
        paths = generate(model, lanes=lanes, out_dir=tmp)
        verilog = paths["verilog"].read_text()
        design = Design(verilog, "dietsnn_accel", f"{model_name}-L{lanes}")
    rtl_sha256 = hashlib.sha256(verilog.encode()).hexdigest()
    row: dict[str, Any] = {"model": model_name, "lanes": lanes, "ecp5_part": part}
    for target, p in (("xc7", "xc7z020"), ("ecp5", part)):
        s = synthesize(design, target, part=p)
        cap = get_part(p, target)
        res = s.resources.to_json()
        row[target] = {"part": p, "resources": res,
                       "components": [c.to_json() for c in s.components],
                       "fits": all(res.get(k, 0) <= getattr(cap, k)
                                   for k in ("luts", "ffs", "bram", "dsp")),
                       "capacity": {k: getattr(cap, k) for k in ("luts", "ffs", "bram", "dsp")},
                       "logic_depth": s.logic_depth}
        if target == "ecp5" and pnr:
            pr = place_and_route(s, part=p, freq_mhz=freq)
            row["ecp5"]["fmax_mhz"] = pr.fmax_mhz
            row["ecp5"]["pnr_error"] = pr.error
            row["ecp5"]["utilisation"] = pr.utilisation
            row["ecp5"]["critical"] = None if pr.critical is None else pr.critical.to_json()
    cyc, src = interval(model_name, lanes, images, rtl_sha256)
    row["interval_cycles"] = cyc
    row["interval_source"] = src
    row["rtl_sha256"] = rtl_sha256
    f = row["ecp5"].get("fmax_mhz")
    row["images_per_s"] = f * 1e6 / cyc if f else None
    luts = row["ecp5"]["resources"]["luts"]
    row["images_per_s_per_kluts"] = row["images_per_s"] / (luts / 1000) if f else None
    print(json.dumps({k: row[k] for k in ("model", "lanes", "images_per_s")}), file=sys.stderr)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| design | xc7z020 (yosys): LUT / FF / RAMB36 / DSP | ECP5 (after PnR): LUT4 / FF / "
           "DP16KD / MULT18 | fits | Fmax (ECP5, grade 6) | clocks / image | images/s | "
           "images/s per 1k LUT4 |", "|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        x, e = r["xc7"]["resources"], r["ecp5"]["resources"]
        fits = f"xc7z020 {'yes' if r['xc7']['fits'] else 'no'}, " \
               f"{r['ecp5_part']} {'yes' if r['ecp5']['fits'] else 'no'}"
        f = r["ecp5"].get("fmax_mhz")
        out.append(
            f"| {r['model']}, L={r['lanes']} | {x['luts']:,} / {x['ffs']:,} / {x['bram']:g} / "
            f"{x['dsp']} | {e['luts']:,} / {e['ffs']:,} / {e['bram']} / {e['dsp']} | {fits} | "
            f"{f:.1f} MHz | {r['interval_cycles']:,.0f} | "
            f"{r['images_per_s']:,.0f} | {r['images_per_s_per_kluts']:,.1f} |"
            if f else
            f"| {r['model']}, L={r['lanes']} | {x['luts']:,} / {x['ffs']:,} / {x['bram']:g} / "
            f"{x['dsp']} | {e['luts']:,} / {e['ffs']:,} / {e['bram']} / {e['dsp']} (yosys) | "
            f"{fits} | {'not placed' if 'pnr_error' not in r['ecp5'] else 'n/a'} | "
            f"{r['interval_cycles']:,.0f} | | |")
    for name, ips in ANCHORS:
        out.append(f"| {name} | | | | | | {ips:,} | |")
    return "\n".join(out) + "\n"


def diagram(path: Path) -> None:
    """The block diagram (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    boxes = {  # name: (x, y, w, h, label)
        "s_axis": (0.0, 2.2, 1.1, 0.6, "s_axis\n(AXI4-Stream)"),
        "framer": (1.5, 2.1, 1.3, 0.8, "PixelFramer\nframes, drops bad"),
        "img": (1.5, 0.8, 1.3, 0.8, "img0 / img1\n(block RAM)"),
        "front": (3.3, 0.6, 1.9, 1.3, "Front: L MACs (DSP)\n+ NeuronArray LIF\n(first layer)"),
        "M": (5.7, 0.7, 1.3, 1.0, "map M0 / M1\n(spikes)"),
        "scanner": (7.5, 2.2, 1.7, 0.9, "Scanner\n2 events / clock"),
        "engine": (7.5, 0.5, 1.7, 1.3, "Engine\n3x3xL window\n+ line buffer"),
        "wmem": (9.7, 0.5, 1.3, 0.8, "wmem\n9 taps x L"),
        "lif": (9.7, 1.6, 1.3, 0.8, "LIF pipe\n+ umem"),
        "writer": (9.7, 2.7, 1.3, 0.7, "Map writer\n(2x2 OR)"),
        "P": (7.5, 3.6, 1.7, 0.7, "maps P0 / P1"),
        "out": (11.5, 2.2, 1.4, 0.9, "Output unit\nlogits, argmax"),
        "m_axis": (11.5, 0.6, 1.4, 0.8, "Streamer\nm_axis"),
    }
    fig, ax = plt.subplots(figsize=(13, 4.8))
    patches = {}
    for name, (x, y, w, h, label) in boxes.items():
        color = "#dbe9f6" if name in ("front", "engine", "lif", "scanner", "out") else "#f2f2f2"
        patches[name] = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.03", fc=color,
                                       ec="#333333")
        ax.add_patch(patches[name])
        ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=8)
    arrows = [("s_axis", "framer"), ("framer", "img"), ("img", "front"), ("front", "M"),
              ("M", "scanner"), ("scanner", "engine"), ("engine", "wmem"), ("engine", "lif"),
              ("lif", "writer"), ("writer", "P"), ("P", "scanner"), ("scanner", "out"),
              ("out", "m_axis")]

    def centre(n: str) -> tuple[float, float]:
        x, y, w, h, _ = boxes[n]
        return x + w / 2, y + h / 2

    for a, b in arrows:
        ax.annotate("", xy=centre(b), xytext=centre(a),
                    arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1.0,
                                "patchA": patches[a], "patchB": patches[b],
                                "shrinkA": 2, "shrinkB": 2})
    ax.text(3.3, 4.4, "front: image n+1", fontsize=9, color="#1f4e79")
    ax.text(7.5, 4.45, "back: image n (layers 2..N, output)", fontsize=9, color="#1f4e79")
    ax.set_xlim(-0.2, 13.2)
    ax.set_ylim(0.2, 4.7)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", default=",".join(f"{m}:{n}:{p}" for m, n, p in POINTS),
                    help="model:lanes:ecp5-part, comma separated")
    ap.add_argument("--images", type=int, default=100,
                    help="spread test images for the cycle model when no sim figures exist")
    ap.add_argument("--freq", type=float, default=200.0, help="nextpnr target (MHz)")
    ap.add_argument("--no-pnr", action="store_true",
                    help="synthesis only: resources and fit, no Fmax (nextpnr takes ~1 h on "
                         "the 85k part on 2 cores)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table", type=Path, default=None)
    ap.add_argument("--diagram", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.diagram:
        diagram(a.diagram)
    rows = []
    for spec in a.points.split(","):
        m, n, p = spec.split(":")
        rows.append(point(m, int(n), p, a.images, a.freq, pnr=not a.no_pnr))
    out = {"points": rows, "anchors": [{"name": n, "images_per_s": v} for n, v in ANCHORS],
           "command": "python bench/accel_synth.py " + " ".join(argv or sys.argv[1:])}
    if a.out:
        write_atomic(a.out, json.dumps(out, indent=1) + "\n")
    if a.table:
        write_atomic(a.table, table(rows))
    print(table(rows))
    if a.no_pnr:
        return 0
    return 0 if all(np.isfinite(r["images_per_s"] or np.nan) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
