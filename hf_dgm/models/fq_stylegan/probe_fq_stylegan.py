"""Publish probe of the fq_stylegan family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def fq_stylegan_probe(model, pipe) -> dict[str, Any]:
    """Images of the EMA generator for fixed z (seed 0) with constant noise, untruncated and at ψ = 0.7, directly
    and through the unconditional-image-generation pipeline (PIL images, compared as uint8 arrays)."""
    model.eval()
    images = model.generate(batch_size=2, truncation_psi=1.0, noise_mode="const",
                            generator=torch.Generator().manual_seed(0))
    truncated = model.generate(batch_size=2, truncation_psi=0.7, noise_mode="const",
                               generator=torch.Generator().manual_seed(0))
    pil = pipe(num_images=2, truncation_psi=0.7, noise_mode="const", seed=0).images
    return {
        "tensors": {"images": images, "truncated_images": truncated, "pipeline_images": _pil_to_tensor(pil)},
        "values": {"pipeline_image_sizes": [list(image.size) for image in pil]},
    }


def _pil_to_tensor(images) -> torch.Tensor:
    import numpy as np

    return torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)) for image in images])
