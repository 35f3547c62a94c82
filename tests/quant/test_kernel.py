"""The fused C LIF kernel (``ref``: the eager loop in lif.py) and the fused LIF + max pooling
(``ref``: lif followed by F.max_pool2d)."""

import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from dietsnn.quant import kernel
from dietsnn.quant.lif import lif, lif_pool

pytestmark = pytest.mark.skipif(kernel.load() is None, reason="no C compiler for the kernel")


def _current(shape, quant, seed=0):
    g = torch.Generator().manual_seed(seed)
    if quant:
        return torch.round(torch.randn(*shape, generator=g) * 300)
    return torch.randn(*shape, generator=g) * 0.7


def _run(fn, use_kernel, monkeypatch, cur, quant, *, static, pool=False):
    """Output and gradients (input, theta, leak) of ``fn`` on a weighted sum of its output."""
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", "1" if use_kernel else "0")
    cur = cur.detach().clone().requires_grad_()
    if quant:
        th, lam = torch.tensor(400.0), torch.tensor(1 - 2.0 ** -3)
        kw = {"shift": 3, "bounds": (-2048.0, 2047.0)}
    else:
        th, lam = torch.tensor(1.0), torch.tensor(0.9)
        kw = {"shift": None, "bounds": None}
    th.requires_grad_()
    lam.requires_grad_()
    y = fn(cur, th, lam, steps=5 if static else None, **kw)
    w = torch.linspace(-1, 1, y.numel()).view_as(y)
    (y * w).sum().backward()
    return y.detach(), cur.grad, th.grad, lam.grad


def _assert_same(got, ref):
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=0)  # spikes: exact
    for a, b in zip(got[1:], ref[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("quant", [False, True])
@pytest.mark.parametrize("static", [False, True])
def test_ref_vs_kernel_lif(quant, static, monkeypatch):
    # 3000 neurons: three blocks, the last one short, split over the threads
    shape = (3000,) if static else (5, 3000)
    cur = _current(shape, quant)
    _assert_same(_run(lif, True, monkeypatch, cur, quant, static=static),
                 _run(lif, False, monkeypatch, cur, quant, static=static))


@pytest.mark.parametrize("quant", [False, True])
@pytest.mark.parametrize("static", [False, True])
def test_ref_vs_kernel_lif_pool(quant, static, monkeypatch):
    shape = (5, 3, 7, 6, 10)  # [T, N, C, H, W]
    cur = _current(shape[1:] if static else shape, quant, seed=1)
    cl = torch.channels_last
    if static:
        cur = cur.contiguous(memory_format=cl)
    else:
        cur = cur.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)

    def unfused(c, th, lam, **kw):
        s = lif(c, th, lam, **kw)
        y = F.max_pool2d(s.flatten(0, 1), 2)
        return y.view(5, 3, *y.shape[1:])

    got = _run(lif_pool, True, monkeypatch, cur, quant, static=static)
    assert got[0].shape == (5, 3, 7, 3, 5)
    _assert_same(got, _run(unfused, True, monkeypatch, cur, quant, static=static))
    _assert_same(got, _run(lif_pool, False, monkeypatch, cur, quant, static=static))


@pytest.mark.parametrize("use_kernel", [True, False])
def test_pool_gradient_goes_to_the_first_spike_of_each_window(use_kernel, monkeypatch):
    """Windows with no spike, one, and four: the gradient goes to the first maximum in the
    order (0,0), (0,1), (1,0), (1,1), as in PyTorch's max pooling."""
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", "1" if use_kernel else "0")
    sp, no = 1.5, 0.5  # theta = 1: both have surrogate 0.3 * (1 - 0.5) = 0.15
    rows = torch.tensor([[no, no, no, sp, sp, sp, no, no],
                         [no, no, sp, no, sp, sp, no, sp]])
    cur = rows.view(1, 1, 1, 2, 8).clone().requires_grad_()  # [T, N, C, H, W], C = 1
    y = lif_pool(cur, torch.tensor(1.0), torch.tensor(1.0), shift=None, bounds=None)
    assert y.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]
    y.backward(torch.ones_like(y))
    first = torch.tensor([[1, 0, 0, 1, 1, 0, 0, 0],
                          [0, 0, 0, 0, 0, 0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(cur.grad.view(2, 8), 0.15 * first)


def test_thread_counts_agree_and_repeat_bit_for_bit(monkeypatch):
    cur = _current((5, 40000), False, seed=2)
    before = torch.get_num_threads()
    try:
        results = {}
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            a = _run(lif, True, monkeypatch, cur, False, static=False)
            b = _run(lif, True, monkeypatch, cur, False, static=False)
            for x, y in zip(a, b, strict=True):  # same thread count: same bits
                assert torch.equal(x, y)
            results[threads] = a
    finally:
        torch.set_num_threads(before)
    _assert_same(results[2], results[1])
    _assert_same(results[3], results[1])


def test_kernel_can_be_turned_off(monkeypatch):
    x = torch.zeros(4, 8)
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", "0")
    assert not kernel.usable(x)
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", "1")
    assert kernel.usable(x)
    assert not kernel.usable(x.double())
    assert not kernel.usable(x.t())  # not contiguous


def test_a_failing_build_warns_and_falls_back(tmp_path, monkeypatch):
    broken = tmp_path / "lif_kernel.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(kernel, "SOURCE", broken)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setattr(kernel, "_tried", False)
    monkeypatch.setenv("DIETSNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIETSNN_LIF_KERNEL", "1")
    with pytest.warns(RuntimeWarning, match="fused LIF kernel is unavailable"):
        assert kernel.load() is None
    assert not kernel.usable(torch.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert kernel.load() is None
    # the eager loop still runs
    s = lif(torch.ones(2, 3) * 2, torch.tensor(1.0), torch.tensor(1.0), shift=None, bounds=None)
    assert s.sum() == 6
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-written left behind


def test_keep_freed_memory_in_a_fresh_process():
    code = ("from dietsnn.quant.kernel import keep_freed_memory; import sys; "
            "sys.exit(0 if keep_freed_memory() else 3)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode == 3 and not sys.platform.startswith("linux"):
        pytest.skip("not glibc")
    assert r.returncode == 0, r.stderr
