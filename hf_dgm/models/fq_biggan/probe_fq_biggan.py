"""Publish probe of the fq_biggan family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def fq_biggan_probe(model, pipe) -> dict[str, Any]:
    """Images of the EMA generator for a fixed seed (and classes 0, 1 when conditional), directly and through
    the image-generation pipeline (which returns PIL images, compared as uint8 arrays)."""
    model.eval()
    conditional = bool(getattr(model.config, "num_classes", 0))
    labels = [0, 1] if conditional else None
    images = model.generate(labels=labels, batch_size=None if conditional else 2, truncation=1.0,
                            generator=torch.Generator().manual_seed(0))
    if conditional:
        pil = pipe([0, 1], num_images_per_prompt=1, truncation=1.0, seed=0).images
    else:
        pil = pipe(num_images=2, truncation=1.0, seed=0).images
    return {
        "tensors": {"images": images, "pipeline_images": _pil_to_tensor(pil)},
        "values": {"pipeline_image_sizes": [list(image.size) for image in pil]},
    }


def _pil_to_tensor(images) -> torch.Tensor:
    import numpy as np

    return torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)) for image in images])
