"""Points in parallel: local processes and a Dask cluster give the serial results (issue 14,
item 5)."""

from __future__ import annotations

import pytest
from dietsnn.errors import CLIError
from dietsnn.parallel import ClusterError, check_jobs, connect, run_points
from estimate_support import adder_tree, needs_yosys

distributed = pytest.importorskip("distributed")


def square_or_fail(x: int) -> int:
    if x == 5:
        raise ValueError(f"point {x} failed")
    return x * x


def lanes_source(model, lanes):
    return adder_tree(lanes)


def lanes_cycles(model, result, lanes):
    return 1000 // lanes + result.spike_counts["conv1"]


@pytest.fixture(scope="module")
def cluster():
    """A small in-process Dask cluster (two workers of one thread each)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        yield client


def test_run_points_same_order_every_way(cluster):
    points = [3, 1, 4, 1, 6]
    want = [9, 1, 16, 1, 36]
    assert run_points(square_or_fail, points, progress=False) == want
    assert run_points(square_or_fail, points, jobs=2, progress=False) == want
    assert run_points(square_or_fail, points, scheduler=cluster, progress=False) == want
    assert run_points(square_or_fail, [], jobs=2, progress=False) == []


def test_run_points_raises_the_points_error(cluster):
    for kw in ({}, {"jobs": 2}, {"scheduler": cluster}):
        with pytest.raises(ValueError, match="point 5 failed"):
            run_points(square_or_fail, [1, 5, 2], progress=False, **kw)


def test_bad_jobs_and_unreachable_scheduler():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(CLIError, match="--jobs must be a positive integer"):
            check_jobs(bad)
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout=1)


@needs_yosys
def test_sweep_on_a_local_dask_cluster_equals_serial(tool_cache, cluster):
    import numpy as np
    from dietsnn.estimate.sweep import sweep
    from dietsnn.model import InputSpec
    from dietsnn.topology import random_model

    model = random_model("4C-P-10", seed=1, input_spec=InputSpec(shape=(3, 8, 8)))
    rng = np.random.default_rng(2)
    im, lab = rng.integers(0, 256, (3, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, 3)
    kw = dict(lanes=[2, 4, 8], target="ecp5", source=lanes_source, cycle_model=lanes_cycles,
              pnr=False, progress=False)
    serial = sweep(model, im, lab, **kw)
    on_cluster = sweep(model, im, lab, scheduler=cluster, **kw)
    assert on_cluster == serial
    rows = {r["lanes"]: r for r in serial["rows"]}
    assert rows[2]["luts"] < rows[4]["luts"] < rows[8]["luts"]
    assert all(r["pareto"] for r in serial["rows"])
