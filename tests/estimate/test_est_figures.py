"""bench/figures.py: every figure is a valid command writing under docs/figures (issue 14)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("figures", ROOT / "bench" / "figures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["figures"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("figures", None)


def test_every_figure_is_a_valid_command(figures):
    from dietsnn.cli import build_parser

    parser = build_parser()
    names = [f.name for f in figures.FIGURES]
    assert len(names) == len(set(names)) and "summary" in names
    assert {f.group for f in figures.FIGURES} <= set(figures.GROUPS)
    for f in figures.FIGURES:
        assert f.outputs and all(o.startswith("docs/figures/") for o in f.outputs), f.name
        if f.argv[0] == "dietsnn":
            args = parser.parse_args(list(f.argv[1:]))  # exits on a bad option
            assert args.command == f.argv[1]
        else:
            assert f.argv[0] == "python" and (ROOT / f.argv[1]).is_file(), f.name
    # estimate, energy and baseline figures run spread images (the default), never --select
    for f in figures.FIGURES:
        if f.argv[:2] in (("dietsnn", "estimate"), ("dietsnn", "baseline")):
            assert "--select" not in f.argv and "--images" in f.argv


def test_default_is_cheap_and_summary_last(figures, capsys):
    assert figures.main(["--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cheap = [f for f in figures.FIGURES if f.group == "cheap" and f.name != "summary"]
    assert lines == [figures.command_line(f) for f in cheap] + [
        "python bench/figures.py --only summary"]
    assert figures.main(["--dry-run", "--only", "neuron-synth"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("python bench/neuron_synth.py")


def test_summary_reads_the_committed_figures(figures):
    text = figures.summary()
    assert text.startswith("# Figures")
    if (ROOT / "docs/figures/estimate_cifar10/report.json").is_file():
        assert "| `estimate-cifar10` | 32 |" in text and "Per layer, `cifar10`" in text
