"""Running independent points in parallel: serially, in local processes, or on a Dask cluster.

:func:`run_points` calls ``fn(point)`` for every point and returns the results in the order of
the points, whichever way they ran, so a parallel run gives the same list as a serial one:

* ``jobs=1`` and no scheduler: in this process, one after another;
* ``jobs=N`` (N > 1): a pool of N local worker processes (``spawn``: a worker imports what it
  needs afresh, so threads of this process do not leak into it);
* ``scheduler="tcp://HOST:PORT"`` (or a ``distributed.Client``): the points are submitted to a
  Dask distributed cluster (``pip install "dask[distributed]"``); each worker needs dietsnn
  (the same commit) and the tools the points run. ``jobs`` is then ignored: the cluster's
  workers decide the parallelism.

``fn`` and the points must be picklable (module-level functions, plain data, models); an
exception raised by a point is raised again here (the first one in point order).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import CLIError

P = TypeVar("P")
R = TypeVar("R")


class ClusterError(CLIError):
    """The Dask cluster cannot be reached, or Dask is not installed."""


def check_jobs(jobs: Any) -> int:
    """``jobs`` as a positive int, or :class:`~dietsnn.errors.CLIError`."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise CLIError(f"--jobs must be a positive integer, not {jobs!r}")
    return jobs


def connect(scheduler: Any, *, timeout: float = 30.0) -> Any:
    """A ``distributed.Client`` for ``scheduler`` (an address like ``tcp://HOST:PORT``, or a
    client or cluster object, returned as a client)."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("--scheduler needs Dask distributed: pip install "
                           "'dask[distributed]'") from None
    if isinstance(scheduler, Client):
        return scheduler
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler {scheduler!r}: {e}") from None


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="point", disable=not enabled, file=sys.stderr)


def run_points(fn: Callable[[P], R], points: Sequence[P], *, jobs: int = 1,
               scheduler: Any = None, desc: str = "points", progress: bool = True) -> list[R]:
    """``[fn(p) for p in points]``, run as the module docstring says."""
    points = list(points)
    check_jobs(jobs)
    if scheduler is not None:
        return _dask(fn, points, scheduler, desc, progress)
    if jobs == 1 or len(points) <= 1:
        out = []
        with _progress(len(points), desc, progress) as bar:
            for p in points:
                out.append(fn(p))
                bar.update(1)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    results: dict[int, R] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(points)), mp_context=ctx) as pool, \
            _progress(len(points), desc, progress) as bar:
        futures = {pool.submit(fn, p): i for i, p in enumerate(points)}
        errors: dict[int, BaseException] = {}
        for f in as_completed(futures):
            i = futures[f]
            try:
                results[i] = f.result()
            except Exception as e:  # noqa: BLE001 - raised again below, in point order
                errors[i] = e
            bar.update(1)
    if errors:
        raise errors[min(errors)]
    return [results[i] for i in range(len(points))]


def _dask(fn: Callable[[P], R], points: list[P], scheduler: Any, desc: str,
          progress: bool) -> list[R]:
    client = connect(scheduler)
    own = client is not scheduler
    try:
        # pure=False: every point runs (no deduplication of equal arguments by Dask)
        tag = uuid.uuid4().hex[:12]
        futures = client.map(fn, points, pure=False,
                             key=[f"dietsnn-{desc}-{tag}-{i}" for i in range(len(points))])
        with _progress(len(points), f"{desc} (dask)", progress) as bar:
            from distributed import as_completed

            for _ in as_completed(futures):
                bar.update(1)
        # gather in point order; the first failed point raises its own exception
        return list(client.gather(futures, errors="raise"))
    finally:
        if own:
            client.close()
