"""Diffusers-style pieces shared by the GANs' `generate` methods and the image pipelines.

- `generator`: a `torch.Generator` (consumed image after image) or a list of them, ONE PER IMAGE (image `i` depends
  only on `generator[i]`, whatever the batch it is generated in), as in diffusers; `seed` is a convenience that
  makes `torch.Generator().manual_seed(seed)`.
- `output_type`: `"pil"` (list of `PIL.Image.Image`), `"pt"` (`torch.FloatTensor` `(B, C, H, W)` in [0, 1]) or
  `"np"` (`numpy.ndarray` `(B, H, W, C)` float32 in [0, 1]), as diffusers' image processors.
- [`ImagePipelineOutput`]: the typed output (`.images`), a `transformers.utils.ModelOutput` (attribute, key and
  tuple access, like diffusers' `BaseOutput`).

This module imports only torch, numpy, PIL and transformers: the publisher copies it into remote-code folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from transformers.utils import ModelOutput


OUTPUT_TYPES = ("pil", "pt", "np")
MAX_SEED = 2**63 - 1


@dataclass
class ImagePipelineOutput(ModelOutput):
    r"""
    Output of the image generation pipelines (and of the GANs' `generate(..., return_dict=True)`).

    Args:
        images (`list[PIL.Image.Image]`, `torch.FloatTensor` of shape `(B, C, H, W)` or `np.ndarray` of shape
            `(B, H, W, C)`): The images, as `output_type` asked (tensors and arrays in [0, 1]).
        class_labels (`torch.LongTensor` of shape `(B,)`, *optional*): The class of each image (class-conditional
            models), including classes drawn at random.
    """

    images: Any = None
    class_labels: torch.LongTensor | None = None


def check_output_type(output_type: Any, allow_none: bool = False) -> str | None:
    if output_type is None and allow_none:
        return None
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}")
    return output_type


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"`seed` must be an int in [0, 2**63 - 1] or None, got {seed!r}")
    return int(seed)


def prepare_generator(generator: Any = None, seed: Any = None, num_images: int | None = None):
    """Check `generator` (None, a `torch.Generator` or a list of `num_images` of them) and `seed` (an int that makes
    a generator; not both). Returns None, one generator or a list."""
    seed = check_seed(seed)
    if seed is not None:
        if generator is not None:
            raise ValueError("pass `generator` or `seed`, not both (`seed` only makes torch.Generator().manual_seed(seed))")
        return torch.Generator().manual_seed(seed)
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (list, tuple)):
        if not all(isinstance(g, torch.Generator) for g in generator):
            kinds = sorted({type(g).__name__ for g in generator})
            raise ValueError(f"`generator` must be a torch.Generator or a list of them, got a list of {kinds}")
        if num_images is not None and len(generator) != num_images:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators, but {num_images} images are asked for: pass "
                "one generator per image (or a single torch.Generator)"
            )
        return list(generator)
    raise ValueError(
        f"`generator` must be a torch.Generator or a list of them (one per image), got {type(generator).__name__} "
        f"{generator!r} (for a seed, pass seed=... or torch.Generator().manual_seed(seed))"
    )


def generator_slice(generator, start: int, stop: int):
    """The part of `generator` that serves images `[start, stop)` (a list is sliced; one generator is shared)."""
    return generator[start:stop] if isinstance(generator, list) else generator


def per_image(generator, num_images: int, draw) -> torch.Tensor:
    """`draw(n, g)` for a single/no generator, or `cat(draw(1, g_i))` for a list (one draw per image)."""
    if isinstance(generator, list):
        if len(generator) != num_images:
            raise ValueError(f"`generator` is a list of {len(generator)} generators for {num_images} images")
        return torch.cat([draw(1, g) for g in generator])
    return draw(num_images, generator)


def postprocess_images(images: torch.Tensor, output_type: str | None):
    """`(B, C, H, W)` in [-1, 1] → `output_type` (None: unchanged)."""
    if output_type is None:
        return images
    check_output_type(output_type)
    unit = (images.detach().float().clamp(-1, 1) + 1) / 2
    if output_type == "pt":
        return unit
    if output_type == "np":
        return unit.permute(0, 2, 3, 1).cpu().numpy()
    return to_pil(images)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) or (B, 1, H, W) in [-1, 1] → list of RGB or greyscale ("L") PIL images (rounded to uint8)."""
    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    if array.shape[-1] == 1:
        return [Image.fromarray(np.ascontiguousarray(image[..., 0]), mode="L") for image in array]
    return [Image.fromarray(np.ascontiguousarray(image), mode="RGB") for image in array]


def concat_images(chunks: Sequence[Any], output_type: str | None):
    """Join per-chunk outputs of `postprocess_images`."""
    if output_type == "pil":
        return [image for chunk in chunks for image in chunk]
    if output_type == "np":
        return np.concatenate(chunks, axis=0)
    return torch.cat(list(chunks), dim=0)


__all__ = [
    "ImagePipelineOutput",
    "OUTPUT_TYPES",
    "check_output_type",
    "check_seed",
    "concat_images",
    "generator_slice",
    "per_image",
    "postprocess_images",
    "prepare_generator",
    "to_pil",
]
