"""Float comparisons that hold on any x86-64 CPU.

Two runs of the same fp32 computation on different CPUs (or under other `ATEN_CPU_CAPABILITY`, oneDNN ISA or
thread settings) pick different kernels, and different kernels sum in different orders. Reordering a sum of n
fp32 terms moves it by at most about log2(n) · eps · Σ|terms| for blocked/pairwise sums (eps = 2^-23 ≈ 1.2e-7),
and a network of L such layers compounds that to roughly L · log2(n) · eps of the output's scale. For the tiny
models of this suite (n ≤ 10^4, L ≤ 30) that is ≲ 5e-5 in the worst case and ~1e-6 in practice; training a few
steps amplifies it further through the optimizer.

So:
- `FP32_RTOL = 1e-5` for a single forward / loss (one kernel choice away from the reference);
- `FP32_STEPS_RTOL = 1e-4` for values after a few optimizer steps, where the perturbation compounds;
- the absolute floor is relative to the tensor's scale (its largest magnitude), not elementwise: an element
  that is a sum of cancelling terms can be near zero while its error is set by the size of the terms.

Bitwise equality (`torch.equal`) is right only where the *same* kernel runs on the *same* tensors in the same
process: state dicts after save -> load, a deterministic function called twice, integer outputs (indices, token ids).
Two model instances, even with equal weights, may get differently aligned memory and so different kernels.
"""

from __future__ import annotations

import math

import torch

FP32_EPS = torch.finfo(torch.float32).eps
FP32_RTOL = 1e-5
FP32_STEPS_RTOL = 1e-4


def _scale(expected: torch.Tensor) -> float:
    if expected.numel() == 0:
        return 0.0
    return float(expected.detach().abs().max())


def assert_fp32_close(actual, expected, rtol: float = FP32_RTOL, msg: str = "") -> None:
    """`actual` equals `expected` up to fp32 summation-order differences: |a - e| <= rtol * (|e| + max|e|).

    Works on tensors, floats and (nested) tuples/lists of them.
    """
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), msg or "structure differs"
        for a, e in zip(actual, expected):
            assert_fp32_close(a, e, rtol=rtol, msg=msg)
        return
    if not isinstance(expected, torch.Tensor):
        expected_f, actual_f = float(expected), float(actual)
        assert math.isclose(actual_f, expected_f, rel_tol=rtol, abs_tol=rtol * abs(expected_f) + 1e-12), (
            msg or f"{actual_f!r} != {expected_f!r} (rtol {rtol})"
        )
        return
    actual = torch.as_tensor(actual)
    assert actual.shape == expected.shape, msg or f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    expected_f = expected.detach().double()
    torch.testing.assert_close(
        actual.detach().double(), expected_f, rtol=rtol, atol=rtol * _scale(expected_f) + 1e-12, msg=msg or None
    )
