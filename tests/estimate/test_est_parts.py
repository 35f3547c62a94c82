"""The part table and the fits / does-not-fit logic."""

from __future__ import annotations

import math

import pytest
from dietsnn.estimate.parts import PARTS, PartError, check_target, fits, get_part, parts_of


def test_fits_at_capacity_and_one_over():
    p = get_part("LFE5U-25F")
    full = {"luts": p.luts, "ffs": p.ffs, "bram": p.bram, "dsp": p.dsp}
    f = fits(full, p)
    assert f.fits and f.over == ()
    assert f.utilisation == {"luts": 1.0, "ffs": 1.0, "bram": 1.0, "dsp": 1.0}
    f = fits({**full, "bram": p.bram + 1}, p)
    assert not f.fits and f.over == ("bram",)
    f = fits({**full, "luts": p.luts + 1, "dsp": p.dsp + 0.5}, p)
    assert not f.fits and f.over == ("luts", "dsp")


def test_half_bram_and_missing_resource_kind():
    p = get_part("xc7z020")
    assert fits({"bram": 139.5}, p).fits
    assert not fits({"bram": 140.5}, p).fits
    # the HX8K has no DSP: any DSP use does not fit, and utilisation says so
    hx = get_part("hx8k")
    f = fits({"luts": 10, "dsp": 1}, hx)
    assert not f.fits and f.over == ("dsp",) and math.isinf(f.utilisation["dsp"])
    assert "dsp" not in fits({"luts": 10}, hx).utilisation
    assert f.to_json()["utilisation"]["dsp"] == "inf"


def test_up5k_spram_checked():
    p = get_part("iCE40UP5K")
    assert fits({"spram": 4}, p).fits
    assert fits({"spram": 5}, p).over == ("spram",)


def test_aliases_and_families():
    assert get_part("ecp5-85k").name == "LFE5U-85F"
    assert get_part("lfe5u-85f").name == "LFE5U-85F"
    assert get_part("UP5K").name == "iCE40UP5K"
    assert {p.family for p in PARTS} == {"xc7", "ecp5", "ice40"}
    assert [p.name for p in parts_of("xc7")] == ["xc7a35t", "xc7z020", "xc7a100t"]
    assert all(p.nextpnr for p in PARTS if p.family != "xc7")


def test_bad_part_and_target_errors():
    with pytest.raises(PartError, match="unknown part 'xc9z999'; known parts: xc7a35t"):
        get_part("xc9z999")
    with pytest.raises(PartError, match="LFE5U-85F is an ecp5 part, not xc7; xc7 parts: "):
        get_part("ecp5-85k", "xc7")
    with pytest.raises(PartError, match="target must be one of xc7, ecp5, ice40, not 'gw1n'"):
        check_target("gw1n")
