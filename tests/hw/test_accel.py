"""The accelerator in Amaranth's simulator on small networks, against the golden model.

Every result (class and logits), every debug spike counter and every spike-map word written
by the front and by each engine stage must equal the golden model's; the RTL's front and
back cycle counters must equal the cycle model (:func:`dietsnn.hw.accel.image_cycles`).
The networks are small (4x4 to 8x8 images) so that each corner runs in seconds: pooled and
unpooled stages, several output and input channel groups, channel counts that are not a
multiple of the lanes, hidden linear layers (after a conv, after a linear), no hidden layer
at all, and T long enough that the front's LIF sets its pace; and each of these with a bias on
every layer (the front's, the engine's and the output's bias ROMs). Also: random back-pressure and
idle cycles on both streams, a reset in the middle of an image, short and long frames, and
the argument checks. The full-size check with cocotb (Icarus and Verilator) is in
tests/sim/test_accel_sim.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from accel_sim import check, simulate
from dietsnn import golden
from dietsnn.hw.accel import Accelerator, PlanError, image_cycles, make_plan
from dietsnn.hw.accel.cycles import cycles_per_image
from dietsnn.model import InputSpec
from dietsnn.topology import random_model


def _model(arch: str, hw: int, t: int, seed: int = 3, bias: bool = False):
    return random_model(arch, seed=seed, input_spec=InputSpec(shape=(3, hw, hw)), timesteps=t,
                        bias=bias)


def _images(model, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c, h, w = model.input.shape
    return model.input.quantize(rng.integers(0, 256, (n, c, h, w), dtype=np.uint8))


def _run(arch, hw, t, lanes, n=2, bias=False, **kw):
    model = _model(arch, hw, t, bias=bias)
    q = _images(model, n)
    dut = Accelerator(model, lanes=lanes)
    out = simulate(dut, q, **kw)
    errs = check(model, dut, q, out)
    ref = golden.run(model, q, record={"spikes"})
    for i, r in enumerate(out["results"]):
        c = image_cycles(model, ref, i, lanes=lanes)
        if (r["front_cycles"], r["back_cycles"]) != (c.front, c.back):
            errs.append(f"image {i}: cycles rtl {r['front_cycles']}/{r['back_cycles']} "
                        f"model {c.front}/{c.back}")
    return out, errs


CASES = [
    ("4C-8C-P-10", 6, 3, 4),            # unpooled front, pooled engine stage
    ("4C-P-8C-10", 8, 3, 4),            # pooled front
    ("6C-9C-P-5C-10", 6, 2, 4),         # 2 input and 3 output groups, odd channel counts
    ("4C-8C-P-12L-10", 4, 3, 4),        # hidden linear after a conv
    ("5C-20L-7L-10", 4, 4, 4),          # linear after linear, 2-word input positions
    ("4C-10", 4, 2, 4),                 # no engine stage: the output reads the front's map
    ("4C-8C-12C-P-10", 6, 6, 16),       # lanes > channels; T = 6: the LIF paces the front
]


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("arch,hw,t,lanes", CASES)
def test_bit_exact_and_cycle_model(arch, hw, t, lanes, bias):
    out, errs = _run(arch, hw, t, lanes, bias=bias)
    assert not errs, "\n".join(errs[:8])
    assert out["status"]["frames_ok"] == 2


def test_skipping_stages():
    """Conv stages reading a ``P`` map with several words per position skip zero words (their
    input map's masks are recorded by the stage before); the cycle model counts a position's
    ticks, not its words'."""
    import dataclasses

    from dietsnn.hw.accel.cycles import stage_ticks

    p = make_plan(_model("6C-9C-P-5C-10", 6, 2), 4)
    assert [s.skip for s in p.stages] == [False, True]   # conv2 reads M; conv3 3 words
    assert p.nz_width == 3 and [p.records_nz(k) for k in range(2)] == [True, False]
    p16 = make_plan(_model("4C-16C-16C-16C-P-10", 6, 3), 4)
    assert [s.skip for s in p16.stages] == [False, True, True] and p16.nz_width == 4
    st = p.stages[1]
    pops = np.zeros((2, st.h, st.w, st.g_in), np.int64)
    pops[0, 0, 0] = [3, 0, 1]       # one position: ceil(3/2) + ceil(1/2) = 3 ticks, not 4
    base = stage_ticks(st, np.zeros_like(pops), 2)
    assert stage_ticks(st, pops, 2) - base == st.g * 2
    walk_all = dataclasses.replace(st, skip=False)       # every word: 2 + 1 + 1 here
    assert stage_ticks(walk_all, pops, 2) - stage_ticks(walk_all, 0 * pops, 2) == st.g
    assert stage_ticks(walk_all, pops, 2) > stage_ticks(st, pops, 2)


def test_bias_changes_the_result():
    """The biased models of the cases above are really biased: the accelerator built without
    one engine stage's bias (all other biases kept) disagrees with the golden model."""
    import dataclasses

    model = _model("6C-9C-P-5C-10", 6, 2, bias=True)
    q = _images(model, 2)
    wrong = dataclasses.replace(model, biases={k: v * (k != "conv2")
                                               for k, v in model.biases.items()})
    dut = Accelerator(wrong, lanes=4)
    assert check(model, dut, q, simulate(dut, q))
    p = make_plan(model, 4)
    assert p.front.bias and p.out.bias and [s.bias for s in p.stages] == [True, True]
    assert [s.bbase for s in p.stages] == [0, 3]             # 3 groups of 4 lanes for 9
    assert (p.engine_bias[3:5].ravel()[:5] == model.biases["conv3"]).all()
    assert (p.out_bias == model.biases["out"]).all()


def test_reset_mid_image_and_bad_frames():
    """A reset while an image computes, then a short and a long frame before an image: the
    bad frames are dropped and counted, every later image is exact."""
    out, errs = _run("4C-8C-P-10", 6, 3, 4, n=3, reset_after=400, bad_frames=(1,))
    assert not errs, "\n".join(errs[:8])
    assert out["status"] == {"frames_ok": 3, "frames_short": 1, "frames_long": 1}


@pytest.mark.parametrize("arch,bound", [("4C-8C-P-10", "front"),
                                         ("4C-16C-16C-16C-P-10", "back")])
def test_stream_interval(arch, bound):
    """Back to back with no stalls, the slower half sets the pace, exactly: a back-bound
    stream delivers a result every ``back + 1`` clocks; a front-bound one every
    ``front + 1`` clocks, shifted by the difference of the two images' back times."""
    model = _model(arch, 6, 3)
    q = _images(model, 4)
    dut = Accelerator(model, lanes=4)
    out = simulate(dut, q, stalls=False)
    ref = golden.run(model, q, record={"spikes"})
    cs = [image_cycles(model, ref, i, lanes=4) for i in range(len(q))]
    gaps = np.diff([r["cycle"] for r in out["results"]]).tolist()
    if bound == "back":
        want = [c.back + 1 for c in cs[1:]]
    else:
        want = [cs[0].front + 1 + b.back - a.back for a, b in zip(cs, cs[1:], strict=False)]
    assert gaps == want
    assert cycles_per_image(model, ref, lanes=4).tolist() == [c.interval for c in cs]
    assert all((c.front > c.back) == (bound == "front") for c in cs)


def test_plan_checks():
    with pytest.raises(ValueError, match="lanes"):
        Accelerator(_model("4C-10", 4, 2), lanes=3)
    with pytest.raises(PlanError, match="first layer"):
        make_plan(random_model("8L-10", seed=1, input_spec=InputSpec(shape=(3, 4, 4)),
                               timesteps=2), 4)
    p = make_plan(_model("4C-8C-P-12L-10", 4, 3), 4)
    assert [s.kind for s in p.stages] == ["conv", "linear"]
    assert p.stages[1].g_in == 2 * 2 * 2            # J words per step of the 2x2x8 map
    assert p.map_depth == {"M": 3 * 16, "P0": 3 * 8, "P1": 3 * 3}


def test_generated_verilog_is_lint_clean(tmp_path):
    """``verilator --lint-only -Wall`` with only the recorded waivers, and yosys ``check``:
    no latches, no combinational loops, no multiple drivers; ``params.json`` has the plan."""
    import json

    from dietsnn.hw.accel import generate
    from dietsnn.model import load_model

    paths = generate(load_model("tiny"), lanes=16, out_dir=tmp_path)
    params = json.loads(paths["params"].read_text())
    assert params["top"] == "dietsnn_accel" and params["lanes"] == 16
    assert set(params["ports"]) == {"debug", "mon", "status"}
    _lint_clean(paths["verilog"])


def test_generated_verilog_with_biases_is_lint_clean(tmp_path):
    """A model with a bias on every layer (the bias ROMs ``bfront`` and ``bmem``): the same
    lint and checks."""
    from dietsnn.hw.accel import generate

    paths = generate(_model("4C-8C-P-12L-10", 4, 3, bias=True), lanes=4, out_dir=tmp_path)
    text = paths["verilog"].read_text()
    assert "bfront" in text and "bmem" in text
    _lint_clean(paths["verilog"])


def _lint_clean(verilog) -> None:
    from dietsnn.hw import lint, tools

    if tools.verilator() is None or tools.yosys() is None:
        pytest.skip("verilator or yosys missing")
    v = lint.verilator_lint(verilog, "dietsnn_accel", waivers=lint.ACCEL_WAIVERS)
    assert v.ok, v.issues[:10]
    y = lint.yosys_check(verilog, "dietsnn_accel")
    assert y.ok, y.issues[:10]


def test_random_model_spec_with_bias():
    """``random:ARCH:SEED:bias`` (the command line's model resolver) gives every layer a bias;
    any other fourth part is a one-line error."""
    from dietsnn.errors import CLIError
    from dietsnn.hw.commands import resolve_model

    m = resolve_model("random:4C-P-8C-10:1:bias")
    assert m.biases.keys() == {"conv1", "conv2", "out"} and m.file_version == 2
    assert not resolve_model("random:4C-P-8C-10:1").biases
    with pytest.raises(CLIError, match=r"expected random:ARCH\[:SEED\]\[:bias\]"):
        resolve_model("random:4C-P-8C-10:1:bais")
