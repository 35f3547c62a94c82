"""Fixtures of the estimate tests: a private tool cache and a small design."""

from __future__ import annotations

import pytest
from dietsnn.estimate.synth import Design
from estimate_support import TINY_VERILOG


@pytest.fixture
def tool_cache(tmp_path, monkeypatch):
    """A private, empty tool cache (``DIETSNN_CACHE``)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("DIETSNN_CACHE", str(d))
    return d


@pytest.fixture
def tiny_design() -> Design:
    return Design(TINY_VERILOG, "tiny_top", "tiny")
