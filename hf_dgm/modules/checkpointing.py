"""Block-level gradient checkpointing for blocks whose forward changes state.

`PreTrainedModel.gradient_checkpointing_enable()` sets `gradient_checkpointing = True` and `_gradient_checkpointing_func`
on every module that has a `gradient_checkpointing` attribute. A :class:`CheckpointableBlock` then runs its forward
under that function (`torch.utils.checkpoint`) in training mode with gradients on, so its activations are recomputed
in the backward pass instead of being kept.

The GAN blocks change state in their forward: spectral norm's power iteration writes `weight_u` / `weight_sigma`,
batch norms update their running statistics, and StyleGAN's noise is drawn from a `torch.Generator` passed in.
A plain recompute would apply those updates twice and, worse, recompute with the *updated* `u` and the advanced
generator, so the gradients would differ from the uncheckpointed ones. Here every call records the block's buffers
and the state of the generators among its arguments as they were when the call started; the recompute runs from
that record and then puts back whatever the state was when the backward pass reached it. Gradients, buffers and
generators therefore end exactly as without checkpointing (the global RNG is restored by `torch.utils.checkpoint`'s
`preserve_rng_state`). The cost is one copy of the block's buffers per call (vectors and per-channel statistics).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CheckpointableBlock"]


class CheckpointableBlock(nn.Module):
    """Mixin for a block that `gradient_checkpointing_enable()` may checkpoint (see the module docstring). Tensors
    that need gradients must be passed positionally; keyword arguments are passed through unchanged."""

    gradient_checkpointing = False

    def __call__(self, *args, **kwargs):
        if not (self.gradient_checkpointing and self.training and torch.is_grad_enabled()):
            return super().__call__(*args, **kwargs)
        buffers = [b for b in self.buffers() if b is not None]
        start = [b.detach().clone() for b in buffers]
        generators = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Generator)]
        generator_start = [g.get_state() for g in generators]
        calls = [0]
        call = super().__call__

        def run(*inputs):
            calls[0] += 1
            if calls[0] == 1:  # the forward pass itself
                return call(*inputs, **kwargs)
            # the recompute: from the state the forward pass started with, then back to the present state
            current = [b.detach().clone() for b in buffers]
            generator_current = [g.get_state() for g in generators]
            with torch.no_grad():
                for buffer, value in zip(buffers, start):
                    buffer.copy_(value)
            for generator, state in zip(generators, generator_start):
                generator.set_state(state)
            try:
                return call(*inputs, **kwargs)
            finally:
                with torch.no_grad():
                    for buffer, value in zip(buffers, current):
                        buffer.copy_(value)
                for generator, state in zip(generators, generator_current):
                    generator.set_state(state)

        return self._gradient_checkpointing_func(run, *args)
