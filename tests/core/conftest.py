"""Shared fixtures for the core tests: an isolated data cache, a random model, a tiny tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from cifar_synth import tree_files, write_tree


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DIETSNN_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("DIETSNN_DATA", raising=False)


@pytest.fixture(scope="session")
def synth_model_path(tmp_path_factory) -> Path:
    """A small random model (``8C-P-16C-P-10``) saved to a temporary file."""
    from dietsnn.topology import random_model
    return random_model("8C-P-16C-P-10", seed=3).save(
        tmp_path_factory.mktemp("models") / "tiny-random.npz")


@pytest.fixture(scope="session")
def synth_tree(tmp_path_factory) -> Path:
    """An image-folder tree with 2 train and 3 test images per class."""
    return write_tree(tmp_path_factory.mktemp("tree"), tree_files({"train": 2, "test": 3}))
