"""Timing diagrams: WaveDrom JSON built from per-clock values, and a PNG of it via matplotlib.

WaveDrom (https://wavedrom.com) describes a signal by a ``wave`` string, one character per
clock: ``p`` a clock, ``0``/``1`` levels, ``x`` undefined, ``=`` a new data value (its label
taken in turn from ``data``), ``.`` the previous value continues, ``|`` a gap (the previous
value continues, with a break mark). :func:`wave` turns a list of per-clock values into that
string; :func:`render_png` draws the subset of WaveDrom used here (signals, groups as nested
lists with a name first, ``head``/``foot`` text), so the PNG needs no JavaScript renderer and
the same JSON can be pasted into the WaveDrom editor.
"""

from __future__ import annotations

import os
from typing import Any

#: A clock's value in :func:`wave`: a gap (previous value continues, drawn broken).
GAP = "|"


def wave(values: list[Any]) -> dict[str, Any]:
    """``{"wave": ..., "data": [...]}`` of per-clock ``values``: 0/1 (or bools) for a bit,
    None for undefined, a string for a data value (equal neighbours merge), :data:`GAP`."""
    chars: list[str] = []
    data: list[str] = []
    prev: Any = object()
    for v in values:
        if v is GAP or v == GAP:
            chars.append("|")
            continue
        if v is None:
            c = "x"
        elif isinstance(v, bool) or v in (0, 1):
            c = str(int(v))
        else:
            c = "="
        same = (c != "=" and c == _last(chars)) or (c == "=" and v == prev)
        if same:
            chars.append(".")
        else:
            chars.append(c)
            if c == "=":
                data.append(str(v))
        prev = v
    out: dict[str, Any] = {"wave": "".join(chars)}
    if data:
        out["data"] = data
    return out


def _last(chars: list[str]) -> str | None:
    for c in reversed(chars):
        if c not in ".|":
            return c
    return None


def _rows(signal: list[Any], group: str = "") -> list[tuple[str, dict[str, Any] | None]]:
    out: list[tuple[str, dict[str, Any] | None]] = []
    for s in signal:
        if isinstance(s, list):
            name = s[0] if s and isinstance(s[0], str) else ""
            out.append((name, None))
            out += _rows(s[1:] if name else s, name)
        elif isinstance(s, dict) and "name" in s:
            out.append(((f"  {s['name']}" if group else s["name"]), s))
        else:
            out.append(("", {}))
    return out


def render_png(diagram: dict[str, Any], path: str | os.PathLike) -> None:
    """Draw a WaveDrom ``diagram`` (the subset in the module docstring) into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(diagram["signal"])
    width = max((len(s.get("wave", "")) for _, s in rows if s), default=1)
    fig_w = 2.2 + 0.32 * width
    fig, ax = plt.subplots(figsize=(fig_w, 0.42 * len(rows) + 0.9))
    ax.set_xlim(-2.6, width + 0.2)
    ax.set_ylim(len(rows) + 0.3, -0.9)
    ax.axis("off")
    h = 0.32
    for r, (name, sig) in enumerate(rows):
        y = r + 0.5
        weight = "bold" if sig is None else "normal"
        ax.text(-0.2, y, name, ha="right", va="center", fontsize=9, family="monospace",
                weight=weight)
        if not sig or not sig.get("wave"):
            continue
        _draw(ax, sig["wave"], list(sig.get("data", [])), y, h)
    for t in range(width + 1):
        ax.axvline(t, color="#dddddd", lw=0.5, zorder=0)
    head = diagram.get("head", {}).get("text")
    foot = diagram.get("foot", {}).get("text")
    if head:
        ax.text(width / 2, -0.55, head, ha="center", va="center", fontsize=10, weight="bold")
    if foot:
        ax.text(width / 2, len(rows) + 0.1, foot, ha="center", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110, format="png")
    plt.close(fig)


def _draw(ax: Any, w: str, data: list[str], y: float, h: float) -> None:
    """One signal's wave at row centre ``y``."""
    lo, hi = y + h, y - h
    state, start, label = None, 0, ""
    segs: list[tuple[str, int, int, str]] = []   # (kind, start, end, label)
    for t, c in enumerate(w + "#"):
        if c in ".|" and t < len(w):
            if c == "|":
                ax.plot([t + 0.35, t + 0.55], [lo + 0.08, hi - 0.08], color="k", lw=0.8)
                ax.plot([t + 0.45, t + 0.65], [lo + 0.08, hi - 0.08], color="k", lw=0.8)
            continue
        if state is not None:
            segs.append((state, start, t, label))
        if t == len(w):
            break
        state, start = c, t
        label = data.pop(0) if c in "=23456789" and data else ""
    prev_level = None
    for kind, a, b, lab in segs:
        if kind in "pPnN":
            for t in range(a, b):
                up = kind in "pP"
                first, second = (hi, lo) if up else (lo, hi)
                ax.plot([t, t, t + 0.5, t + 0.5, t + 1], [second, first, first, second, second],
                        color="k", lw=1)
            prev_level = None
        elif kind in "01lLhH":
            lv = hi if kind in "1hH" else lo
            if prev_level is not None and prev_level != lv:
                ax.plot([a, a], [lo, hi], color="k", lw=1)
            ax.plot([a, b], [lv, lv], color="k", lw=1)
            prev_level = lv
        elif kind in "xz":
            if kind == "x":
                ax.fill([a, b, b, a], [lo, lo, hi, hi], color="#cccccc", lw=0)
            else:
                ax.plot([a, b], [y, y], color="#4060c0", lw=1)
            prev_level = None
        else:   # data
            e = 0.12
            ax.fill([a, a + e, b - e, b, b - e, a + e], [y, hi, hi, y, lo, lo],
                    facecolor="#e8f0ff", edgecolor="k", lw=1)
            ax.text((a + b) / 2, y, lab, ha="center", va="center", fontsize=7.5)
            prev_level = None
