"""Property-based robustness of the NIR importer (issue 15): mutated NIR graphs of a real
export (parameters replaced by other values, shapes, NaN, infinities, strings, metadata) import
or fail with a dietsnn error (``NIRImportError``), never with anything else.

Derandomized (a fixed sequence of examples) so that CI is reproducible.
``DIETSNN_FUZZ_EXAMPLES=N`` runs N examples (default 120).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
from dietsnn.errors import DietsnnError
from dietsnn.model import InputSpec
from dietsnn.nirio.export import to_nir
from dietsnn.nirio.importer import from_nir
from dietsnn.topology import random_model

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("DIETSNN_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

GRAPH = to_nir(random_model("4C-P-8C-10", seed=5, input_spec=InputSpec(shape=(3, 8, 8)),
                            timesteps=3))
NODES = sorted(GRAPH.nodes)

_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70))
_value = st.one_of(
    _number,
    st.text(max_size=5),
    st.none(),
    st.lists(_number, max_size=4).map(np.array),
    st.tuples(st.integers(0, 3), st.integers(0, 3)).map(lambda s: np.full(s, 0.5)),
)


@SETTINGS
@given(node=st.sampled_from(NODES), attr=st.integers(0, 20), value=_value,
       meta=st.dictionaries(st.sampled_from(["dt", "reset", "weight_bits", "timesteps"]),
                            _value, max_size=2))
def test_mutated_nir_graph(node, attr, value, meta):
    g = copy.deepcopy(GRAPH)
    n = g.nodes[node]
    fields = [k for k, v in vars(n).items() if isinstance(v, (np.ndarray, float, int))
              and k not in ("input_type", "output_type")]
    if fields:
        try:
            setattr(n, fields[attr % len(fields)], value)
        except Exception:  # noqa: BLE001 - a NIR node that refuses the value itself
            return
    g.metadata.update(meta)
    try:
        model, _report = from_nir(g)
    except DietsnnError:
        return
    model.validate("mutated graph")   # what imports must be a valid model
