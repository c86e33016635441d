"""The publish probe of the fq_stylegan family (`HubEntry.probe` in `family.py`): fixed inputs whose outputs prove that a
published repo computes what the source model computes.

The publisher runs `fq_stylegan_probe` on the source model (with hf_dgm) and again, in a fresh interpreter that cannot
import hf_dgm, on the repo loaded with `trust_remote_code=True`; the outputs must match. So this module is loaded by
file path, imports only torch and transformers, is deterministic (eval mode, no sampling, fixed seeds), and is never
part of the published remote code.
"""

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
