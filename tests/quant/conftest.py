import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar_test():
    """Real CIFAR-10 test images (the shared archive or DIETSNN_DATA); skip when absent."""
    from dietsnn.data import DataError, load_cifar10

    if not (SHARED.exists() or os.environ.get("DIETSNN_DATA")):
        pytest.skip("no local CIFAR-10 (../shared/datasets or DIETSNN_DATA)")
    try:
        return load_cifar10("test")
    except DataError as e:  # pragma: no cover
        pytest.skip(str(e))
