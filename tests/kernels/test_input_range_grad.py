"""The learned input range's compiled backward (kernels/input_range_grad.py) against the torch form in
aimc_lab/tile.py (InputRangeFunction with the compiled lane switched off): the input gradient bit for
bit, the range's gradient equal up to the order of the column sums, for every switch (straight-through,
relative gradient, decay), dtypes, a strided incoming gradient, several slices and clipped entries on
both sides."""

import pytest
import torch

from aimc_lab.config import InputRangeParameters
from aimc_lab.kernels import input_range_grad
from aimc_lab.tile import InputRangeFunction

pytestmark = pytest.mark.skipif(not input_range_grad.serves(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1)),
                                reason="numba is not installed")


def _grads(x, r, slice_index, ir, grad, lane, monkeypatch):
    monkeypatch.setattr(input_range_grad, "serves", lane)
    xr, rr = x.clone().requires_grad_(), r.clone().requires_grad_()
    InputRangeFunction.apply(xr, rr, slice_index, ir).backward(grad)
    return xr.grad, rr.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("straight_through", [True, False])
@pytest.mark.parametrize("relative, decay", [(True, 0.0), (False, 0.01), (True, 0.01)])
@pytest.mark.parametrize("strided", [False, True])
def test_compiled_backward_equals_the_torch_form(dtype, straight_through, relative, decay, strided, monkeypatch):
    g = torch.Generator().manual_seed(0)
    M, K = 300, 23
    x = torch.randn(M, K, generator=g, dtype=dtype) * 2
    slice_index = torch.arange(K) // 8  # three slices (8, 8, 7 columns)
    r = torch.tensor([0.9, 1.7, 1.2], dtype=dtype)
    x[0, :3] = torch.tensor([0.9, -0.9, 1.7], dtype=dtype)  # exactly at ±r: clipped
    ir = InputRangeParameters(enable=True, straight_through=straight_through, gradient_relative=relative,
                              decay=decay, input_min_percentage=0.6)
    grad = torch.randn(K, M, generator=g, dtype=dtype).t() if strided else torch.randn(M, K, generator=g, dtype=dtype)
    compiled = input_range_grad.serves
    got = _grads(x, r, slice_index, ir, grad, compiled, monkeypatch)
    want = _grads(x, r, slice_index, ir, grad, lambda *a: False, monkeypatch)
    assert torch.equal(got[0], want[0])  # element-wise: the same operations
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], **tol)
    assert (want[1] != 0).all()  # clipped entries on every slice


def test_compiled_backward_computes_only_what_is_needed(monkeypatch):
    u = torch.tensor([[1.0, -0.5], [-1.0, 0.25]])
    grad = torch.tensor([[-2.0, 3.0], [5.0, 1.0]])
    gx, per_col, n = input_range_grad.backward(u, grad, torch.tensor([2.0, 4.0]), False, True, True)
    assert torch.equal(gx, torch.tensor([[0.0, 0.75], [0.0, 0.25]]))  # masked where clipped, / r
    assert torch.equal(per_col, torch.tensor([-7.0, 0.0]))  # min(-2·1, 0) + min(5·(-1), 0)
    assert torch.equal(n, torch.tensor([2.0, 0.0]))
    gx, per_col, _ = input_range_grad.backward(u, grad, torch.tensor([2.0, 4.0]), True, True, False)
    assert torch.equal(gx, grad / torch.tensor([2.0, 4.0]))  # straight through
    assert input_range_grad.backward(u, grad, torch.tensor([2.0, 4.0]), True, False, True)[0] is None


def test_serves_only_matching_cpu_float_tensors(monkeypatch):
    u = torch.zeros(3, 4)
    assert input_range_grad.serves(u, u, torch.zeros(4))
    assert not input_range_grad.serves(u, u.double(), torch.zeros(4))
    assert not input_range_grad.serves(u, u, torch.zeros(4, dtype=torch.float64))
    assert not input_range_grad.serves(u.t(), u.t(), torch.zeros(3))
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    assert not input_range_grad.serves(u, u, torch.zeros(4))
