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

Calls follow diffusers' conventions: `generator` (a `torch.Generator`, or a list of them, one per image), `seed` (a
convenience: `torch.Generator().manual_seed(seed)`), `output_type` (`"pil"` default, `"pt"`: `(B, C, H, W)` tensor
in [0, 1], `"np"`: `(B, H, W, C)` float32 array in [0, 1]) and a typed output, [`ImagePipelineOutput`] (`.images`,
`.class_labels`); `return_dict=False` gives the tuple `(images,)`. Examples:

```python
import torch
from transformers import pipeline
import hf_dgm  # registers the tasks

generate = pipeline("class-conditional-image-generation", model="path/to/fq-biggan-cifar10")
images = generate(class_labels=["cat", "ship"], num_images_per_prompt=4, truncation=1.0,
                  generator=torch.Generator().manual_seed(0)).images  # 8 PIL images, class by class
tensor = generate(class_labels=[1, 2], generator=torch.Generator().manual_seed(0), output_type="pt").images

generate = pipeline("unconditional-image-generation", model="path/to/fq-stylegan-ffhq256")
images = generate(num_images=4, truncation_psi=0.7, noise_mode="const", seed=0).images  # 4 images
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
from transformers import Pipeline

from .image_output import (
    ImagePipelineOutput,
    check_output_type,
    concat_images,
    generator_slice,
    postprocess_images,
    prepare_generator,
)


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
def _check_total(total: int, max_images: Any) -> None:
    cap = DEFAULT_MAX_IMAGES if max_images is None else _check_positive_int("max_images", max_images)
    if total > cap:
        raise ValueError(
            f"this call asks for {total} images (`num_images_per_prompt` × classes, or `num_images`), above `max_images`={cap} (the default cap "
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
        forward_names = ("truncation", "generator", "generation_batch_size", "truncation_psi", "noise_mode",
                         "output_type")  # fmt: skip
        allowed = forward_names + ("return_dict",)
        unexpected = sorted(set(kwargs) - set(allowed))
        if unexpected:
            raise ValueError(f"unexpected arguments {unexpected}")
        forward = {key: kwargs[key] for key in forward_names if key in kwargs}
        post = {"return_dict": kwargs["return_dict"]} if "return_dict" in kwargs else {}
        return {}, forward, post

    def _forward(self, model_inputs, truncation=1.0, generator=None, generation_batch_size=None, truncation_psi=None,
                 noise_mode=None, output_type="pil"):  # fmt: skip
        labels: torch.Tensor | None = model_inputs["labels"]
        total = model_inputs["num_images"]
        chunk = generation_batch_size or DEFAULT_GENERATION_BATCH_SIZE
        wants_labels = labels is None and "return_dict" in inspect.signature(self.model.generate).parameters
        images, drawn = [], []
        for start in range(0, total, chunk):
            size = min(chunk, total - start)
            chunk_generator = generator_slice(generator, start, start + size)
            if truncation_psi is not None:  # StyleGAN-style model
                batch = self.model.generate(batch_size=size, truncation_psi=truncation_psi, noise_mode=noise_mode,
                                            generator=chunk_generator)  # fmt: skip
            elif labels is not None:
                batch = self.model.generate(labels=labels[start : start + size], truncation=truncation,
                                            generator=chunk_generator)  # fmt: skip
            elif wants_labels:  # random classes of a conditional model: keep them
                out = self.model.generate(batch_size=size, truncation=truncation, generator=chunk_generator,
                                          return_dict=True)  # fmt: skip
                batch = out.images
                if getattr(out, "class_labels", None) is not None:
                    drawn.append(out.class_labels.cpu())
            else:
                batch = self.model.generate(batch_size=size, truncation=truncation, generator=chunk_generator)
            images.append(postprocess_images(batch, output_type))  # per chunk: no float tensor of a PIL request
        if labels is not None:
            class_labels = labels.cpu()
        else:
            class_labels = torch.cat(drawn) if drawn and len(drawn) == len(images) else None
        return {"images": concat_images(images, output_type), "class_labels": class_labels}

    def postprocess(self, model_outputs, return_dict=True):
        if not return_dict:
            return (model_outputs["images"],)
        return ImagePipelineOutput(images=model_outputs["images"], class_labels=model_outputs["class_labels"])

    def _call(self, request: dict, truncation, generator, seed, batch_size, max_images=None, truncation_psi=None,
              noise_mode=None, output_type="pil", return_dict=True):  # fmt: skip
        total = request["num_images"]
        _check_total(total, max_images)
        params: dict[str, Any] = {
            "generator": prepare_generator(generator, seed, total),
            "output_type": check_output_type(output_type),
            "return_dict": bool(return_dict),
        }
        if _uses_w_truncation(self.model):
            if truncation is not _UNSET:
                raise ValueError(
                    "this model truncates in w space: pass `truncation_psi` (1 = no truncation), not `truncation`"
                )
            params["truncation_psi"] = _check_truncation_psi(1.0 if truncation_psi is None else truncation_psi)
            params["noise_mode"] = _check_noise_mode("const" if noise_mode is None else noise_mode)
        else:
            if truncation_psi is not None or noise_mode is not None:
                raise ValueError(
                    "`truncation_psi` and `noise_mode` apply to StyleGAN-style models; this model takes `truncation`"
                )
            params["truncation"] = _check_truncation(1.0 if truncation is _UNSET else truncation)
        if batch_size is not None:
            params["generation_batch_size"] = _check_positive_int("batch_size", batch_size)
        return super().__call__(request, **params)


class ClassConditionalImageGenerationPipeline(_GANImagePipeline):
    r"""
    Generate images of given classes with a class-conditional GAN.

    Call with:
        class_labels (`str`, `int`, or a list of them): Class names (as in `model.config.id2label`,
            case-insensitive) or class ids; the first positional argument (`classes=` is accepted as an alias).
        num_images_per_prompt (`int`, defaults to 1): Images per class (`num_images=` is accepted as an alias, with
            the same meaning). The output lists them class by class.
        generator (`torch.Generator` or a list of them, *optional*): Randomness of the latents. A list holds one
            generator per output image (`len(class_labels) · num_images_per_prompt`), as diffusers.
        seed (`int`, *optional*): Convenience: `generator=torch.Generator().manual_seed(seed)` (not with
            `generator`).
        truncation (`float` or `None`, defaults to 1.0): z ~ N(0, 1) truncated to [-truncation, truncation]; must be
            > 0; `None` disables truncation.
        output_type (`str`, defaults to `"pil"`): `"pil"` (list of PIL images), `"pt"` (`(B, C, H, W)` tensor in
            [0, 1]) or `"np"` (`(B, H, W, C)` float32 array in [0, 1]).
        return_dict (`bool`, defaults to `True`): Return [`ImagePipelineOutput`]; `False` returns `(images,)`.
        batch_size (`int`, *optional*): Images generated per model call (memory bound); defaults to
            `DEFAULT_GENERATION_BATCH_SIZE` (64).
        max_images (`int`, *optional*): Cap on the images of one call (default `DEFAULT_MAX_IMAGES`, 1024); a larger
            request raises `ValueError` unless this is raised explicitly.

    Returns:
        [`ImagePipelineOutput`]: `.images` (`len(class_labels) · num_images_per_prompt` images of the model's
        resolution, as `output_type` asked) and `.class_labels` (the class id of each image).
    """

    def __call__(self, class_labels=None, num_images_per_prompt: int | None = None, *, classes=None,
                 num_images: int | None = None, generator=None, seed: int | None = None,
                 truncation: float | None = 1.0, output_type: str = "pil", return_dict: bool = True,
                 batch_size: int | None = None, max_images: int | None = None, **kwargs):  # fmt: skip
        if kwargs:
            raise ValueError(
                f"unexpected arguments {sorted(kwargs)}; allowed: class_labels, num_images_per_prompt, generator, seed, "
                "truncation, output_type, return_dict, batch_size, max_images"
            )
        if classes is not None:
            if class_labels is not None:
                raise ValueError("pass `class_labels` or its alias `classes`, not both")
            class_labels = classes
        if class_labels is None:
            raise ValueError("pass `class_labels`: at least one class name or id")
        if num_images is not None:
            if num_images_per_prompt is not None and num_images_per_prompt != num_images:
                raise ValueError("pass `num_images_per_prompt` or its alias `num_images` (images per class), not both")
            num_images_per_prompt = _check_positive_int("num_images", num_images)
        per_class = _check_positive_int("num_images_per_prompt", 1 if num_images_per_prompt is None else num_images_per_prompt)
        labels = self.resolve_classes(class_labels)
        _check_total(labels.shape[0] * per_class, max_images)
        labels = labels.repeat_interleave(per_class)
        return self._call({"labels": labels, "num_images": labels.shape[0]}, truncation, generator, seed, batch_size,
                          max_images, output_type=output_type, return_dict=return_dict)  # fmt: skip

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
        num_images (`int`, defaults to 1), generator (`torch.Generator` or a list of `num_images` of them), seed
            (`int`, a convenience for `generator`), output_type (`"pil"`, `"pt"`, `"np"`), return_dict, batch_size
            (`int`, optional: images per model call), max_images (`int`, optional): as in
            [`ClassConditionalImageGenerationPipeline`]. The generator also draws any random noise (StyleGAN) and
            the classes of a class-conditional model (returned in `.class_labels`).
        BigGAN-style models: truncation (`float` or `None`, defaults to 1.0), as in
            [`ClassConditionalImageGenerationPipeline`].
        StyleGAN-style models: truncation_psi (`float`, defaults to 1.0: w ← w_avg + ψ·(w − w_avg), 1 = none, 0 =
            the average image) and noise_mode (`"const"` (default), `"random"` or `"none"`).
        Arguments of the other kind raise `ValueError`.

    Returns:
        [`ImagePipelineOutput`] with `num_images` images in `.images`.
    """

    def __call__(self, num_images: int = 1, *, generator=None, seed: int | None = None,
                 truncation: float | None = _UNSET, truncation_psi: float | None = None, noise_mode: str | None = None,
                 output_type: str = "pil", return_dict: bool = True, batch_size: int | None = None,
                 max_images: int | None = None, **kwargs):  # fmt: skip
        if kwargs:
            raise ValueError(
                f"unexpected arguments {sorted(kwargs)}; allowed: num_images, generator, seed, truncation "
                "(BigGAN-style), truncation_psi and noise_mode (StyleGAN-style), output_type, return_dict, batch_size, "
                "max_images"
            )
        num_images = _check_positive_int("num_images", num_images)
        return self._call({"labels": None, "num_images": num_images}, truncation, generator, seed, batch_size,
                          max_images, truncation_psi, noise_mode, output_type, return_dict)  # fmt: skip

    def preprocess(self, inputs):
        return inputs


__all__ = ["ClassConditionalImageGenerationPipeline", "ImagePipelineOutput", "UnconditionalImageGenerationPipeline"]
