"""Truncated sampling for GAN generators.

- z-space (BigGAN): [`sample_truncated_normal`] draws `N(0, 1)` values restricted to `[−t, t]` (resampling, not
  clipping); smaller t gives higher fidelity and less variety.
- w-space (StyleGAN): [`truncate_w`] moves w towards the average `w_avg`, `w' = w_avg + ψ·(w − w_avg)`, for all
  layers or only the first `cutoff` ones. ψ = 1 is the identity, ψ = 0 gives `w_avg` itself.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


def _check_truncation(truncation) -> None:
    if truncation is not None and (
        isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0 < truncation < math.inf
    ):
        raise ValueError(f"`truncation` must be a positive finite number or None, got {truncation!r}")


def sample_truncated_normal(
    shape: Sequence[int],
    truncation: float | None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`N(0, 1)` samples restricted to `[-truncation, truncation]` (BigGAN's truncation trick); `truncation=None` gives
    plain normal samples. With a `torch.Generator` the samples are drawn on the generator's device (reproducible
    across model devices) and then moved to `device`."""
    _check_truncation(truncation)
    sample_device = generator.device if generator is not None else device
    values = torch.empty(*shape, device=sample_device)
    if truncation is None:
        values.normal_(generator=generator)
    else:
        nn.init.trunc_normal_(values, mean=0.0, std=1.0, a=-truncation, b=truncation, generator=generator)
    return values.to(device) if device is not None else values


def truncate_w(w: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """StyleGAN's truncation trick in w space.

    Args:
        w (`torch.Tensor` of shape `(B, L, w_dim)` (one w per synthesis layer) or `(B, w_dim)`).
        w_avg (`torch.Tensor` of shape `(w_dim,)`): The running average of the mapping network's output.
        psi (`float`, defaults to 1.0): Truncation ψ (1: none, 0: every w becomes `w_avg`; values outside [0, 1]
            extrapolate, which is allowed).
        cutoff (`int`, *optional*): Truncate only layers `[0, cutoff)` (needs `w` of shape `(B, L, w_dim)`); None:
            all layers.

    Returns:
        A new tensor shaped like `w`: `w_avg + psi·(w − w_avg)` on the truncated layers, `w` elsewhere.
    """
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
        raise ValueError(f"`psi` must be a finite number, got {psi!r}")
    if w.shape[-1] != w_avg.shape[-1]:
        raise ValueError(f"`w` (last dim {w.shape[-1]}) and `w_avg` (dim {w_avg.shape[-1]}) disagree")
    if psi == 1:
        return w
    w_avg = w_avg.to(dtype=w.dtype)
    if cutoff is None:
        return torch.lerp(w_avg.expand_as(w), w, psi)
    if w.dim() != 3:
        raise ValueError(f"`cutoff` needs per-layer w of shape (B, L, w_dim), got {tuple(w.shape)}")
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0:
        raise ValueError(f"`cutoff` must be a non-negative int or None, got {cutoff!r}")
    out = w.clone()
    out[:, :cutoff] = torch.lerp(w_avg.expand_as(w[:, :cutoff]), w[:, :cutoff], psi)
    return out


__all__ = ["sample_truncated_normal", "truncate_w"]
