"""Publish probe of the fq_ugatit family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def fq_ugatit_probe(model, pipe) -> dict[str, Any]:
    """Both translation directions of two fixed (seeded) images: translated images, CAM logits and heat maps
    directly, and the `image-translation` pipeline's PIL outputs (as uint8 arrays) with their CAM maps."""
    from PIL import Image

    model.eval()
    size, channels = model.config.image_size, model.config.num_channels
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = x.to(model.device)
    tensors: dict[str, Any] = {}
    for direction in ("A2B", "B2A"):
        out = model.translate(x, direction)
        tensors[f"{direction}_images"] = out.images
        tensors[f"{direction}_cam_logits"] = out.cam_logits
        tensors[f"{direction}_heatmap"] = out.heatmap
    pixels = ((x.cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(p[..., 0] if channels == 1 else p) for p in pixels]
    results = pipe(images, direction="B2A", return_attention=True)
    tensors["pipeline_images"] = _pil_to_tensor(results.images)
    tensors["pipeline_attention"] = _pil_to_tensor(results.attention)
    return {"tensors": tensors, "values": {"pipeline_image_sizes": [list(image.size) for image in results.images]}}


def _pil_to_tensor(images) -> torch.Tensor:
    import numpy as np

    return torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)) for image in images])
