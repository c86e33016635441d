"""Exponential moving average (EMA) of a generator's weights, as BigGAN and StyleGAN2 sample from.

    target ← d·target + (1 − d)·source          over parameters and floating-point buffers (batch-norm and
                                                 spectral-norm statistics included); integer buffers are copied.

Two ways to choose the decay d:

- a fixed decay with a start step (BigGAN: `d = 0`, a plain copy, before `start_step`, then e.g. 0.9999):
  [`ema_decay_at_step`];
- a half-life in images (StyleGAN2/ADA: the EMA forgets half its weight after `half_life_images` training images,
  `d = 0.5 ** (batch_size / half_life_images)`, with an optional ramp-up that caps the half-life at
  `rampup · images_seen` early in training): [`ema_decay_from_half_life`].
"""

from __future__ import annotations

import torch
import torch.nn as nn


def ema_decay_at_step(step: int | None, decay: float, start_step: int = 0) -> float:
    """`decay`, or 0.0 (a plain copy) while `step < start_step`; `step=None` always gives `decay`."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA `decay` must be in [0, 1], got {decay!r}")
    if step is not None and step < start_step:
        return 0.0
    return float(decay)


def ema_decay_from_half_life(
    batch_size: int, half_life_images: float, images_seen: int | None = None, rampup: float | None = None
) -> float:
    """Decay per update so that the weight of the past halves every `half_life_images` images:
    `0.5 ** (batch_size / h)`, with `h = min(half_life_images, images_seen · rampup)` when `rampup` is given
    (StyleGAN2-ADA's `ema_rampup`, e.g. 0.05), else `h = half_life_images`.

    Args:
        batch_size (`int`): Images per generator update (the global batch).
        half_life_images (`float`): Half-life in images (StyleGAN2: `ema_kimg · 1000`, e.g. 10 000), > 0.
        images_seen (`int`, *optional*): Images shown so far (needed with `rampup`).
        rampup (`float`, *optional*): Ramp-up factor; None disables the ramp-up.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size!r}")
    if not half_life_images > 0:
        raise ValueError(f"`half_life_images` must be > 0, got {half_life_images!r}")
    half_life = float(half_life_images)
    if rampup is not None:
        if images_seen is None:
            raise ValueError("an EMA ramp-up needs `images_seen`")
        half_life = min(half_life, images_seen * rampup)
    if half_life <= 0:
        return 0.0
    return float(0.5 ** (batch_size / half_life))


@torch.no_grad()
def update_ema(target: nn.Module, source: nn.Module, decay: float) -> float:
    """`target ← decay·target + (1 − decay)·source` over all parameters and floating buffers (matched by name);
    integer buffers are copied. Both modules must have the same parameter and buffer names. Returns `decay`."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA `decay` must be in [0, 1], got {decay!r}")
    values = dict(source.named_parameters())
    values.update(source.named_buffers())
    targets = dict(target.named_parameters())
    targets.update(target.named_buffers())
    missing = sorted(set(targets) - set(values))
    if missing:
        raise ValueError(f"EMA target has tensors the source lacks: {missing[:5]}")
    for name, tensor in targets.items():
        value = values[name]
        if tensor.is_floating_point():
            tensor.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
        else:
            tensor.copy_(value)
    return float(decay)


@torch.no_grad()
def copy_weights(target: nn.Module, source: nn.Module) -> None:
    """Copy every parameter and buffer of `source` into `target` (an EMA's initial state); skipped while the source
    is on the meta device (a model being built by `from_pretrained`, whose weights are loaded afterwards)."""
    values = source.state_dict()
    if any(t.is_meta for t in values.values()):
        return
    for name, tensor in target.state_dict().items():
        tensor.copy_(values[name])


__all__ = ["copy_weights", "ema_decay_at_step", "ema_decay_from_half_life", "update_ema"]
