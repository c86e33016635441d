"""`image-to-image` pipeline of FQ-U-GAT-IT: unpaired translation between the model's two domains.

```python
from transformers import pipeline
import hf_dgm  # registers the task (or load a Hub repo with trust_remote_code=True)

to_anime = pipeline("image-to-image", model="fq-ugatit-dir")
image = to_anime("selfie.jpg", direction="A2B")                         # PIL.Image in the model's resolution
images = to_anime([img1, img2], direction="B2A", keep_size=True)       # list, each back at its input size
out = to_anime(img1, return_attention=True)   # {"image": PIL, "attention": PIL heat map (jet colours)}
```

Inputs: a `PIL.Image.Image`, a numpy array (`(H, W)`, `(H, W, 1|3|4)`; uint8, or floats in [0, 1]), a path, or
base64-encoded image data (optionally as a `data:image/...;base64,` URI: what a JSON request to the Inference
Endpoints `handler.py` carries), or a list of those. Every image is resized (bilinear, as the port's test transform) to the model's
`image_size × image_size`, translated, and, with `keep_size=True`, resized (bicubic) back to its input size. The
translation is deterministic: no seed is involved. Images in modes that convert to RGB without loss of meaning
(`L`, `LA`, `P`, `PA`, `RGBA`, `CMYK`, `YCbCr`, `1`, …) are converted with a logged note (alpha is dropped);
16-bit and float modes (`I`, `I;16`, `F`) raise `ValueError` (their value range is unknown). Zero-size images,
objects that are not images, unreadable files and unknown directions raise `ValueError`.

`return_attention=True` adds the generator's CAM heat map (the channel sum of the attention-weighted bottleneck,
min–max normalised per image, upsampled to the output size, jet colour map: blue low, red high).

transformers 5 lists `image-to-image` among its removed tasks (`transformers.pipelines.REMOVED_TASKS`: `pipeline()`
raises `KeyError` for such names before it looks at the registry). Importing this module (which `import hf_dgm`
does) registers the pipeline under that name with `PIPELINE_REGISTRY` and removes exactly that one entry from
`REMOVED_TASKS`, so `pipeline("image-to-image", model=...)` resolves to this class. A Hub repo with remote code does
not need this: its `config.json` lists the task in `custom_pipelines`, which `pipeline()` resolves before the
removed-task check.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from transformers import Pipeline

from .modeling_fq_ugatit import DIRECTIONS, jet_heatmap


logger = logging.getLogger(__name__)

TASK = "image-to-image"
# Modes PIL converts to RGB/L with their meaning intact (palette lookup, alpha dropped, colour-space change).
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
_SAFE_MODES = {"RGB", "L", "LA", "P", "PA", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr", "LAB", "HSV", "1"}


def allow_task_name(task: str = TASK) -> None:
    """Let `transformers.pipeline(task)` reach the registry for a task name transformers 5 lists as removed."""
    try:
        from transformers.pipelines import REMOVED_TASKS
    except ImportError:  # transformers without the removed-task table
        return
    REMOVED_TASKS.pop(task, None)


def _load_image(item: Any, index: int, channels: int) -> Image.Image:
    """One input → a PIL image in mode RGB (or L for one-channel models), or ValueError."""
    where = f"image {index}"
    if isinstance(item, str) and not _is_file(item) and _looks_like_base64(item):
        image = _open_image(io.BytesIO(_decode_base64(item, where)), where, "the base64 data")
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not _is_file(path):
            shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "…"
            raise ValueError(f"{where}: {shown!r} is not a file (nor base64-encoded image data)")
        image = _open_image(path, where, repr(str(path)))
    elif isinstance(item, np.ndarray):
        image = _array_to_image(item, where)
    elif isinstance(item, Image.Image):
        image = item
    else:
        raise ValueError(
            f"{where}: expected a PIL.Image.Image, a numpy array or a path, got {type(item).__name__}"
        )
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{where}: zero-size image ({image.width}×{image.height})")
    target = "RGB" if channels == 3 else "L"
    if image.mode != target:
        if image.mode not in _SAFE_MODES:
            raise ValueError(
                f"{where}: mode {image.mode!r} (16-bit or float pixels) has no defined 8-bit range; scale it to 8 bit "
                f"and pass an {target} image"
            )
        logger.warning("%s: converting mode %s to %s%s", where, image.mode, target,
                       " (alpha dropped)" if "A" in image.mode or image.mode == "RGBa" else "")  # fmt: skip
        image = image.convert(target)
    return image


def _is_file(path) -> bool:
    try:
        return Path(path).is_file()
    except OSError:  # e.g. a name too long for the file system (base64 data)
        return False


def _looks_like_base64(text: str) -> bool:
    return text.startswith("data:image/") or (len(text) > 64 and _BASE64.fullmatch(text.strip()) is not None)


def _decode_base64(text: str, where: str) -> bytes:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        return base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the string is neither a file nor valid base64 image data") from None


def _open_image(source, where: str, what: str) -> Image.Image:
    try:
        with Image.open(source) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{where}: {what} is not a readable image ({err})") from None


def _array_to_image(array: np.ndarray, where: str) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{where}: numpy images must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{where}: zero-size image {array.shape}")
    if array.dtype == np.uint8:
        data = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(f"{where}: float images must hold finite values in [0, 1]")
        data = (array * 255.0).round().astype(np.uint8)
    elif array.dtype == np.bool_:
        data = array.astype(np.uint8) * 255
    else:
        raise ValueError(f"{where}: numpy images must be uint8, bool or float in [0, 1], got {array.dtype}")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[1 if data.ndim == 2 else data.shape[-1]] if data.ndim == 3 else "L"
    return Image.fromarray(np.ascontiguousarray(data), mode=mode)


class _Batch:
    """Images travelling through `Pipeline.__call__` as ONE input (translated as one batch); not a list, so the
    base class does not split it."""

    def __init__(self, items: list, offset: int):
        self.items = items
        self.offset = offset


class FQUGATITImageToImagePipeline(Pipeline):
    r"""
    Translate images between the two domains of an FQ-U-GAT-IT model ([`FQUGATITModel`] or
    [`FQUGATITGeneratorModel`]; any model with `translate(pixel_values, direction)` returning `images` and `heatmap`,
    and `config.image_size`, `config.num_channels`).

    Call arguments: `direction` (`"A2B"` default, or `"B2A"`), `keep_size` (`False`), `return_attention`
    (`False`), `batch_size` (images per forward; default all at once).
    """

    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, direction=None, keep_size=None, return_attention=None, **kwargs):
        if kwargs:
            raise ValueError(f"unexpected arguments {sorted(kwargs)}")
        forward, post = {}, {}
        if direction is not None:
            if direction not in DIRECTIONS:
                raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {direction!r}")
            forward["direction"] = direction
        if keep_size is not None:
            post["keep_size"] = bool(keep_size)
        if return_attention is not None:
            forward["return_attention"] = bool(return_attention)
            post["return_attention"] = bool(return_attention)
        return {}, forward, post

    def __call__(self, images, batch_size: int | None = None, **kwargs):
        """`images`: one image (PIL, numpy, path) or a list of them. Returns a PIL image (or a dict with `"image"`
        and `"attention"` when `return_attention=True`) per input, as a list for a list input."""
        if "direction" in kwargs and kwargs["direction"] not in DIRECTIONS:
            raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {kwargs['direction']!r}")
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        if not items:
            raise ValueError("no images given")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        step = batch_size or len(items)
        results = []
        for start in range(0, len(items), step):
            results.extend(super().__call__(_Batch(items[start : start + step], start), **kwargs))
        return results[0] if single else results

    def preprocess(self, batch: _Batch):
        size = int(self.model.config.image_size)
        channels = int(self.model.config.num_channels)
        tensors, sizes = [], []
        for i, item in enumerate(batch.items):
            image = _load_image(item, batch.offset + i, channels)
            sizes.append(image.size)
            resized = image.resize((size, size), Image.BILINEAR) if image.size != (size, size) else image
            array = np.asarray(resized, dtype=np.float32) / 127.5 - 1.0
            if array.ndim == 2:
                array = array[..., None]
            tensors.append(torch.from_numpy(array).permute(2, 0, 1))
        return {"pixel_values": torch.stack(tensors), "sizes": sizes}

    def _forward(self, model_inputs, direction: str = "A2B", return_attention: bool = False):
        pixel_values = model_inputs["pixel_values"].to(dtype=next(self.model.parameters()).dtype)
        output = self.model.translate(pixel_values, direction)
        result = {"images": output.images, "sizes": model_inputs["sizes"]}
        if return_attention:
            result["heatmap"] = output.heatmap
        return result

    def postprocess(self, model_outputs, keep_size: bool = False, return_attention: bool = False):
        images = model_outputs["images"].float().clamp(-1, 1)
        array = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        results = []
        for i, original_size in enumerate(model_outputs["sizes"]):
            pixels = array[i]
            image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels))
            if keep_size and image.size != tuple(original_size):
                image = image.resize(tuple(original_size), Image.BICUBIC)
            if not return_attention:
                results.append(image)
                continue
            heat = jet_heatmap(model_outputs["heatmap"][i : i + 1], (image.height, image.width))[0]
            heat = ((heat + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            results.append({"image": image, "attention": Image.fromarray(np.ascontiguousarray(heat))})
        return results


allow_task_name(TASK)

__all__ = ["FQUGATITImageToImagePipeline", "TASK", "allow_task_name"]
