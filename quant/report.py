"""Accuracy of an integer model as a function of the number of time steps ``T``.

The network is causal, so one golden-model run with ``T_max`` steps contains the runs for
every ``T <= T_max``: the output membrane after ``T`` steps is the sum of the first ``T``
output currents. :func:`accuracy_vs_t` uses that to measure ``T = 1..T_max`` in one pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from dietsnn import golden
from dietsnn.fileio import atomic_path
from dietsnn.model import Model


def accuracy_vs_t(model: Model, images_u8: np.ndarray, labels: np.ndarray, *, t_max: int = 8,
                  batch: int = 32, progress: bool = True) -> dict[int, float]:
    """Golden-model accuracy for every ``T`` in ``1..t_max`` (ties to the lowest index)."""
    q = model.input.quantize(images_u8)
    out_name = model.output_layer.name
    correct = np.zeros(t_max, dtype=np.int64)
    starts = range(0, len(q), batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"accuracy vs T ({model.name})", unit="batch")
    for i in starts:
        res = golden.run(model, q[i:i + batch], timesteps=t_max, record={"currents"},
                         batch=batch)
        v = np.cumsum(res.currents[out_name], axis=1)  # [N, T, classes]
        pred = golden.argmax_lowest(v)  # [N, T]
        correct += (pred == labels[i:i + batch, None]).sum(axis=0)
    n = max(1, len(q))
    return {t + 1: float(correct[t]) / n for t in range(t_max)}


def plot_accuracy_vs_t(curves: dict[str, dict[int, float]], path: str | Path) -> Path:
    """PNG line plot of accuracy against T, one line per model (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
    for name, acc in curves.items():
        ts = sorted(int(t) for t in acc)
        ax.plot(ts, [100 * acc[t] if t in acc else 100 * acc[str(t)] for t in ts], marker="o",
                label=name)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def table(curves: dict[str, dict[int, float]]) -> str:
    """Markdown table: one row per model, one column per T."""
    ts = sorted({int(t) for acc in curves.values() for t in acc})
    lines = ["| model | " + " | ".join(f"T={t}" for t in ts) + " |",
             "|---|" + "---:|" * len(ts)]
    for name, acc in curves.items():
        acc = {int(k): v for k, v in acc.items()}
        lines.append(f"| {name} | " + " | ".join(f"{100 * acc[t]:.2f}" for t in ts) + " |")
    return "\n".join(lines)


def to_json(curves: dict[str, dict[int, float]]) -> str:
    return json.dumps({k: {str(t): v for t, v in acc.items()} for k, acc in curves.items()})


def record_in_model(model: Model, acc: dict[int, float], dataset: str) -> dict[str, Any]:
    """Store the curve in ``model.metrics['accuracy_vs_T']`` (call ``model.save`` after)."""
    model.metrics["accuracy_vs_T"] = {str(t): v for t, v in sorted(acc.items())}
    model.metrics["accuracy_vs_T_dataset"] = dataset
    return model.metrics
