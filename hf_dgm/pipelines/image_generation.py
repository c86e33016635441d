"""Image generation pipelines for the GANs of hf-dgm.

- `class-conditional-image-generation` ([`ClassConditionalImageGenerationPipeline`]): class names or ids → images.
- `unconditional-image-generation` ([`UnconditionalImageGenerationPipeline`]): a number of images.

Two kinds of models work:

- BigGAN-style: `config.num_classes`, `config.id2label` and `generate(labels=None, truncation=...,
  generator=torch.Generator | None, batch_size=None) -> (B, 3, H, W) in [-1, 1]` (FQ-BigGAN's
  [`FQBigGANForImageGeneration`] and [`FQBigGANGeneratorModel`]); `truncation` truncates z ~ N(0, 1).
- StyleGAN-style (unconditional only): `generate(batch_size=..., truncation_psi=..., noise_mode=...,
  generator=...)` (FQ-StyleGAN's [`FQStyleGANForImageGeneration`] and [`FQStyleGANGeneratorModel`]);
  `truncation_psi` truncates in w space, `noise_mode` is `"const"`, `"random"` or `"none"`.

Images come back as a list of `PIL.Image.Image` (RGB). Examples:

```python
from transformers import pipeline
import hf_dgm  # registers the tasks

generate = pipeline("class-conditional-image-generation", model="path/to/fq-biggan-cifar10")
images = generate(["cat", "ship"], num_images=4, truncation=1.0, seed=0)  # 8 images, class by class

generate = pipeline("unconditional-image-generation", model="path/to/fq-stylegan-ffhq256")
images = generate(num_images=4, truncation_psi=0.7, noise_mode="const", seed=0)  # 4 images
```

Bounded work: one call makes at most `max_images` images (default `DEFAULT_MAX_IMAGES` = 1024; pass a larger
`max_images` to allow more), generated `batch_size` at a time (default `DEFAULT_GENERATION_BATCH_SIZE` = 64) and
converted to 8-bit images chunk by chunk.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline


def _to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) or (B, 1, H, W) in [-1, 1] → list of RGB or greyscale ("L") PIL images (values rounded to uint8)."""
    array = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    if array.shape[-1] == 1:
        return [Image.fromarray(np.ascontiguousarray(image[..., 0]), mode="L") for image in array]
    return [Image.fromarray(np.ascontiguousarray(image), mode="RGB") for image in array]


def _check_truncation(truncation: Any) -> float | None:
    if truncation is None:
        return None
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0 < truncation < math.inf:
        raise ValueError(
            f"`truncation` must be a positive finite number (z ~ N(0, 1) truncated to [-t, t]) or None (no "
            f"truncation), got {truncation!r}"
        )
    return float(truncation)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


DEFAULT_MAX_IMAGES = 1024
DEFAULT_GENERATION_BATCH_SIZE = 64
_MAX_SEED = 2**63 - 1


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"`seed` must be an int in [0, 2**63 - 1] or None, got {seed!r}")
    return int(seed)


def _check_total(total: int, max_images: Any) -> None:
    cap = DEFAULT_MAX_IMAGES if max_images is None else _check_positive_int("max_images", max_images)
    if total > cap:
        raise ValueError(
            f"this call asks for {total} images (`num_images` × classes), above `max_images`={cap} (the default cap "
            "bounds one call's work); pass a larger `max_images` to allow it"
        )


_NOISE_MODES = ("random", "const", "none")
_UNSET = object()


def _check_truncation_psi(truncation_psi: Any) -> float:
    if (
        isinstance(truncation_psi, bool)
        or not isinstance(truncation_psi, (int, float, np.integer, np.floating))
        or not math.isfinite(truncation_psi)
    ):
        raise ValueError(
            f"`truncation_psi` must be a finite number (w ← w_avg + ψ·(w − w_avg); 1 = no truncation), got "
            f"{truncation_psi!r}"
        )
    return float(truncation_psi)


def _check_noise_mode(noise_mode: Any) -> str:
    if noise_mode not in _NOISE_MODES:
        raise ValueError(f"`noise_mode` must be one of {_NOISE_MODES}, got {noise_mode!r}")
    return noise_mode


def _uses_w_truncation(model) -> bool:
    """Whether `model.generate` is StyleGAN-style (takes `truncation_psi` and `noise_mode`)."""
    parameters = inspect.signature(model.generate).parameters
    return "truncation_psi" in parameters and "noise_mode" in parameters


class _GANImagePipeline(Pipeline):
    """Shared machinery: one request → chunks of `batch_size` images through `model.generate`."""

    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, **kwargs):
        allowed = ("truncation", "seed", "generation_batch_size", "truncation_psi", "noise_mode")
        unexpected = sorted(set(kwargs) - set(allowed))
        if unexpected:
            raise ValueError(f"unexpected arguments {unexpected}")
        return {}, {key: kwargs[key] for key in allowed if key in kwargs}, {}

    def _forward(self, model_inputs, truncation=1.0, seed=None, generation_batch_size=None, truncation_psi=None,
                 noise_mode=None):  # fmt: skip
        labels: torch.Tensor | None = model_inputs["labels"]
        total = model_inputs["num_images"]
        chunk = generation_batch_size or DEFAULT_GENERATION_BATCH_SIZE
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        images = []
        for start in range(0, total, chunk):
            size = min(chunk, total - start)
            if truncation_psi is not None:  # StyleGAN-style model
                batch = self.model.generate(batch_size=size, truncation_psi=truncation_psi, noise_mode=noise_mode,
                                            generator=generator)  # fmt: skip
            elif labels is not None:
                batch_labels = labels[start : start + size]
                batch = self.model.generate(labels=batch_labels, truncation=truncation, generator=generator)
            else:
                batch = self.model.generate(batch_size=size, truncation=truncation, generator=generator)
            images.extend(_to_pil(batch))  # 8-bit images per chunk: no float tensor of the whole request
        return {"images": images}

    def postprocess(self, model_outputs):
        return model_outputs["images"]

    def _call(self, request: dict, truncation, seed, batch_size, max_images=None, truncation_psi=None,
              noise_mode=None) -> list[Image.Image]:  # fmt: skip
        _check_total(request["num_images"], max_images)
        seed = _check_seed(seed)
        if _uses_w_truncation(self.model):
            if truncation is not _UNSET:
                raise ValueError(
                    "this model truncates in w space: pass `truncation_psi` (1 = no truncation), not `truncation`"
                )
            params = {
                "truncation_psi": _check_truncation_psi(1.0 if truncation_psi is None else truncation_psi),
                "noise_mode": _check_noise_mode("const" if noise_mode is None else noise_mode),
                "seed": seed,
            }
        else:
            if truncation_psi is not None or noise_mode is not None:
                raise ValueError(
                    "`truncation_psi` and `noise_mode` apply to StyleGAN-style models; this model takes `truncation`"
                )
            params = {"truncation": _check_truncation(1.0 if truncation is _UNSET else truncation), "seed": seed}
        if batch_size is not None:
            params["generation_batch_size"] = _check_positive_int("batch_size", batch_size)
        return super().__call__(request, **params)


class ClassConditionalImageGenerationPipeline(_GANImagePipeline):
    r"""
    Generate images of given classes with a class-conditional GAN.

    Call with:
        classes (`str`, `int`, or a list of them): Class names (as in `model.config.id2label`, case-insensitive) or
            class ids.
        num_images (`int`, defaults to 1): Images per class. The output lists them class by class.
        truncation (`float` or `None`, defaults to 1.0): z ~ N(0, 1) truncated to [-truncation, truncation]; must be
            > 0; `None` disables truncation.
        seed (`int`, *optional*): Makes the images reproducible (a `torch.Generator` seeded with it).
        batch_size (`int`, *optional*): Images generated per model call (memory bound); defaults to
            `DEFAULT_GENERATION_BATCH_SIZE` (64).
        max_images (`int`, *optional*): Cap on the images of one call (default `DEFAULT_MAX_IMAGES`, 1024); a larger
            request raises `ValueError` unless this is raised explicitly.

    Returns:
        `list[PIL.Image.Image]` of `len(classes) · num_images` RGB images of the model's resolution.
    """

    def __call__(self, classes, num_images: int = 1, truncation: float | None = 1.0, seed: int | None = None,
                 batch_size: int | None = None, max_images: int | None = None, **kwargs):  # fmt: skip
        if kwargs:
            raise ValueError(
                f"unexpected arguments {sorted(kwargs)}; allowed: num_images, truncation, seed, batch_size, max_images"
            )
        num_images = _check_positive_int("num_images", num_images)
        labels = self.resolve_classes(classes)
        _check_total(labels.shape[0] * num_images, max_images)
        labels = labels.repeat_interleave(num_images)
        return self._call({"labels": labels, "num_images": labels.shape[0]}, truncation, seed, batch_size, max_images)

    def resolve_classes(self, classes) -> torch.LongTensor:
        """Class names / ids → `(N,)` class ids; raises `ValueError` for unknown names or ids out of range."""
        config = self.model.config
        num_classes = int(getattr(config, "num_classes", 0) or 0)
        if num_classes == 0:
            raise ValueError("this model is unconditional: use the 'unconditional-image-generation' task")
        if isinstance(classes, (str, int, np.integer, float, np.floating)) or (
            isinstance(classes, torch.Tensor) and classes.dim() == 0
        ):
            classes = [classes]
        if isinstance(classes, torch.Tensor):
            classes = classes.tolist()
        if not isinstance(classes, Sequence) or len(classes) == 0:
            raise ValueError("pass at least one class name or id")
        names = {str(name).lower(): int(i) for i, name in config.id2label.items()}
        ids = []
        for item in classes:
            if isinstance(item, bool):
                raise ValueError(f"invalid class {item!r}")
            if isinstance(item, (int, np.integer)):
                if not 0 <= int(item) < num_classes:
                    raise ValueError(f"class id {item} out of range [0, {num_classes})")
                ids.append(int(item))
            elif isinstance(item, str):
                key = item.strip().lower()
                if key not in names:
                    known = list(config.id2label.values())
                    preview = ", ".join(map(str, known[:20])) + (", ..." if len(known) > 20 else "")
                    raise ValueError(f"unknown class name {item!r}; known classes: {preview}")
                ids.append(names[key])
            else:
                raise ValueError(
                    f"`classes` must be class names (str) or integer class ids (int); got {type(item).__name__} {item!r}"
                )
        return torch.tensor(ids, dtype=torch.long)

    def preprocess(self, inputs):
        return inputs


class UnconditionalImageGenerationPipeline(_GANImagePipeline):
    r"""
    Generate images without choosing classes (a class-conditional model draws its classes uniformly with `seed`).

    Call with:
        num_images (`int`, defaults to 1), seed (`int`, optional: a local `torch.Generator` seeded with it draws the
            latents and any random noise), batch_size (`int`, optional: images per model call), max_images (`int`,
            optional): as in [`ClassConditionalImageGenerationPipeline`].
        BigGAN-style models: truncation (`float` or `None`, defaults to 1.0), as in
            [`ClassConditionalImageGenerationPipeline`].
        StyleGAN-style models: truncation_psi (`float`, defaults to 1.0: w ← w_avg + ψ·(w − w_avg), 1 = none, 0 =
            the average image) and noise_mode (`"const"` (default), `"random"` or `"none"`).
        Arguments of the other kind raise `ValueError`.

    Returns:
        `list[PIL.Image.Image]` of `num_images` RGB images.
    """

    def __call__(self, num_images: int = 1, truncation: float | None = _UNSET, seed: int | None = None,
                 batch_size: int | None = None, max_images: int | None = None, truncation_psi: float | None = None,
                 noise_mode: str | None = None, **kwargs):  # fmt: skip
        if kwargs:
            raise ValueError(
                f"unexpected arguments {sorted(kwargs)}; allowed: num_images, truncation (BigGAN-style), "
                "truncation_psi and noise_mode (StyleGAN-style), seed, batch_size, max_images"
            )
        num_images = _check_positive_int("num_images", num_images)
        return self._call({"labels": None, "num_images": num_images}, truncation, seed, batch_size, max_images,
                          truncation_psi, noise_mode)  # fmt: skip

    def preprocess(self, inputs):
        return inputs


__all__ = ["ClassConditionalImageGenerationPipeline", "UnconditionalImageGenerationPipeline"]
