"""Shared fixtures for the NIR interchange tests: the model under test and real CIFAR-10."""

from __future__ import annotations

import numpy as np
import pytest


def preferred_model():
    """The shipped tiny model, else the shipped cifar10 model, else a fixed random model."""
    from dietsnn.model import load, shipped_models
    from dietsnn.topology import random_model

    shipped = shipped_models()
    for name in ("tiny", "cifar10"):
        if name in shipped:
            return load(shipped[name])
    return random_model("8C-P-16C-P-10", seed=0)


@pytest.fixture(scope="session")
def model():
    return preferred_model()


@pytest.fixture(scope="session")
def cifar_test_images():
    """``(images uint8 [N, 3, 32, 32], labels)``: a few dozen real CIFAR-10 test images, spread
    evenly over the test split (so every class appears)."""
    from dietsnn.data import DataError, load_cifar10

    try:
        ds = load_cifar10("test", download=False, progress=False)
    except DataError as e:
        pytest.skip(f"CIFAR-10 test images are not available: {e}")
    idx = np.linspace(0, len(ds.labels) - 1, 48).astype(int)
    return ds.images[idx], ds.labels[idx]


@pytest.fixture(scope="session")
def model_images(model, cifar_test_images) -> np.ndarray:
    """uint8 images for running ``model``: all 48 for a small model, 16 for one as large as
    cifar10 (to keep the test time small on 2 cores)."""
    images = cifar_test_images[0]
    neurons = sum(x.neurons for x in model.lif_layers)
    return images if neurons < 100_000 else images[:16]
