"""`image-translation` pipeline of FQ-U-GAT-IT: unpaired translation between the model's two domains.

```python
import torch
from transformers import pipeline
import hf_dgm  # registers the task (or load a Hub repo with trust_remote_code=True)

to_anime = pipeline("image-translation", model="fq-ugatit-dir")
out = to_anime(["selfie.jpg", img2], direction="A2B")              # ImageTranslationPipelineOutput
out.images                                                         # list of PIL images in the model's resolution
to_anime([img1, img2], direction="B2A", output_type="pt").images   # (2, C, S, S) tensor in [0, 1]
to_anime(img1, keep_size=True, return_attention=True)              # .images, .attention (jet heat maps)
```

Calls follow diffusers' conventions: a batch of images in (one image is a batch of one), `output_type` `"pil"`
(default: a list of PIL images), `"pt"` (`(B, C, H, W)` tensor in [0, 1]) or `"np"` (`(B, H, W, C)` float32 array in
[0, 1]), and a typed output, [`ImageTranslationPipelineOutput`] (`.images`, `.attention`); `return_dict=False`
gives a tuple. The translation is deterministic: it takes no `generator` or `seed`.

Inputs: a `PIL.Image.Image`, a numpy array (`(H, W)`, `(H, W, 1|3|4)`; uint8, or floats in [0, 1]), a path, or
base64-encoded image data (optionally as a `data:image/...;base64,` URI: what a JSON request to the Inference
Endpoints `handler.py` carries), or a list of those (`images=`, or diffusers' `image=`). Every image is resized
(bilinear, as the port's test transform) to the model's `image_size × image_size`, translated, and, with
`keep_size=True`, resized (bicubic) back to its input size (for `"pt"`/`"np"`, all inputs must then share one
size). Images in modes that convert to RGB without loss of meaning (`L`, `LA`, `P`, `PA`, `RGBA`, `CMYK`, `YCbCr`,
`1`, …) are converted with a logged note (alpha is dropped); 16-bit and float modes (`I`, `I;16`, `F`) raise
`ValueError` (their value range is unknown). Zero-size images, objects that are not images, unreadable files and
unknown directions raise `ValueError`. Images above `max_pixels` pixels (default `DEFAULT_MAX_PIXELS`, 8192² =
67,108,864) raise `ValueError` naming the image, its size and the limit, before a file is decoded; pass a larger
`max_pixels` (or None) to allow more. PIL's own decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, a
process-wide setting this module never changes) still applies to files above it.

`return_attention=True` adds the generator's CAM heat map (the channel sum of the attention-weighted bottleneck,
min–max normalised per image, upsampled to the output size, jet colour map: blue low, red high).

Task name: transformers 5 reserves `image-to-image` (`transformers.pipelines.REMOVED_TASKS`: `pipeline()` raises
`KeyError` for it before it looks at the registry), so `import hf_dgm` registers this pipeline as
`image-translation` and changes nothing else in transformers. A published Hub repo (remote code) lists both
`image-translation` and `image-to-image` in its `config.json` `custom_pipelines`, which `pipeline(...,
trust_remote_code=True)` resolves before the removed-task check: there `pipeline("image-to-image", ...)` works too.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
import torch.nn.functional as F
from transformers import Pipeline
from transformers.utils import ModelOutput

from .modeling_fq_ugatit import DIRECTIONS, jet_heatmap


logger = logging.getLogger(__name__)

TASK = "image-translation"
HUB_TASK_ALIASES = ("image-to-image",)
"""Task names a published repo's `custom_pipelines` also lists (reserved by transformers, so never registered
locally; `pipeline(name, model=repo, trust_remote_code=True)` resolves them from the repo's config)."""
DEFAULT_MAX_PIXELS = 8192 * 8192
OUTPUT_TYPES = ("pil", "pt", "np")
_UNSET = object()
# Modes PIL converts to RGB/L with their meaning intact (palette lookup, alpha dropped, colour-space change).
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
_SAFE_MODES = {"RGB", "L", "LA", "P", "PA", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr", "LAB", "HSV", "1"}


@dataclass
class ImageTranslationPipelineOutput(ModelOutput):
    r"""
    Output of [`FQUGATITImageToImagePipeline`].

    Args:
        images (`list[PIL.Image.Image]`, `torch.FloatTensor` of shape `(B, C, H, W)` or `np.ndarray` of shape
            `(B, H, W, C)`): The translated images, as `output_type` asked (tensors and arrays in [0, 1]).
        attention (same type as `images`, *optional*): With `return_attention=True`: the CAM heat maps as RGB jet
            colour images of the output size.
    """

    images: Any = None
    attention: Any = None


def _check_max_pixels(max_pixels: Any) -> int | None:
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"`max_pixels` must be a positive int or None (no cap), got {max_pixels!r}")
    return int(max_pixels)


def _check_pixels(where: str, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"{where}: {width}×{height} = {width * height:,} pixels exceeds `max_pixels`={max_pixels:,} (the image "
            f"is resized to the model's resolution anyway); pass a larger `max_pixels` (or None) to allow it"
        )


def _load_image(item: Any, index: int, channels: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """One input → a PIL image in mode RGB (or L for one-channel models), or ValueError."""
    where = f"image {index}"
    if isinstance(item, str) and not _is_file(item) and _looks_like_base64(item):
        image = _open_image(io.BytesIO(_decode_base64(item, where)), where, "the base64 data", max_pixels)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "…"
        if not _is_file(path):
            raise ValueError(f"{where}: {shown!r} is not a file (nor base64-encoded image data)")
        image = _open_image(path, f"{where} ({shown!r})", repr(shown), max_pixels)
    elif isinstance(item, np.ndarray):
        if item.ndim >= 2:
            _check_pixels(where, int(item.shape[1]), int(item.shape[0]), max_pixels)
        image = _array_to_image(item, where)
    elif isinstance(item, Image.Image):
        _check_pixels(where, item.width, item.height, max_pixels)
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


def _open_image(source, where: str, what: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and decode, after checking the header's size against `max_pixels` (nothing is decoded above it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap applies below
            opened = Image.open(source)
    except Image.DecompressionBombError:
        size = _header_size(source)
        if size is not None:
            _check_pixels(where, size[0], size[1], max_pixels)  # names our limit when it is the smaller one
        limit = Image.MAX_IMAGE_PIXELS
        raise ValueError(
            f"{where}: {what} is {_describe(size)}, above PIL's decompression-bomb limit of 2 × "
            f"PIL.Image.MAX_IMAGE_PIXELS = {2 * limit:,} pixels; raise PIL.Image.MAX_IMAGE_PIXELS (a process-wide "
            "PIL setting) as well as `max_pixels` if you trust this image"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{where}: {what} is not a readable image ({err})") from None
    try:
        with opened:
            _check_pixels(where, opened.width, opened.height, max_pixels)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{where}: {what} is not a readable image ({err})") from None


def _header_size(source) -> tuple[int, int] | None:
    """(width, height) of a PNG from its IHDR header (what PIL refuses to open above its limit), else None."""
    try:
        if isinstance(source, io.BytesIO):
            head = source.getvalue()[:24]
        else:
            with open(source, "rb") as f:
                head = f.read(24)
    except OSError:
        return None
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _describe(size) -> str:
    return f"{size[0]}×{size[1]} = {size[0] * size[1]:,} pixels" if size is not None else "too large"


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
    and `config.image_size`, `config.num_channels`). Task `image-translation`.

    Call arguments: `images` (one image or a list; `image=` is an alias), `direction` (`"A2B"` default, or
    `"B2A"`), `keep_size` (`False`), `return_attention` (`False`), `output_type` (`"pil"` default, `"pt"`, `"np"`),
    `return_dict` (`True`), `batch_size` (images per forward; default all at once), `max_pixels` (cap on each
    input's pixels, default `DEFAULT_MAX_PIXELS`; None: no cap).

    Returns [`ImageTranslationPipelineOutput`] (`.images`, and `.attention` with `return_attention=True`), or with
    `return_dict=False` the tuple `(images,)` / `(images, attention)`.
    """

    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, direction=None, keep_size=None, return_attention=None, output_type=None,
                             max_pixels=_UNSET, **kwargs):  # fmt: skip
        if kwargs:
            raise ValueError(f"unexpected arguments {sorted(kwargs)}")
        pre, forward, post = {}, {}, {}
        if direction is not None:
            if direction not in DIRECTIONS:
                raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {direction!r}")
            forward["direction"] = direction
        if keep_size is not None:
            post["keep_size"] = bool(keep_size)
        if return_attention is not None:
            forward["return_attention"] = bool(return_attention)
            post["return_attention"] = bool(return_attention)
        if output_type is not None:
            post["output_type"] = _check_output_type(output_type)
        if max_pixels is not _UNSET:
            pre["max_pixels"] = _check_max_pixels(max_pixels)
        return pre, forward, post

    def __call__(self, images=None, batch_size: int | None = None, *, image=None, output_type: str = "pil",
                 return_dict: bool = True, **kwargs):  # fmt: skip
        """`images`: one image (PIL, numpy, path, base64) or a list of them (a batch). Returns
        [`ImageTranslationPipelineOutput`] (`.images`: one per input, in order)."""
        for name in ("generator", "seed"):
            if name in kwargs:
                raise ValueError(f"unexpected argument `{name}`: the translation is deterministic (no randomness)")
        if image is not None:
            if images is not None:
                raise ValueError("pass `images` or its alias `image`, not both")
            images = image
        if images is None:
            raise ValueError("no images given: pass `images` (one image or a list)")
        if "direction" in kwargs and kwargs["direction"] not in DIRECTIONS:
            raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {kwargs['direction']!r}")
        output_type = _check_output_type(output_type)
        if "max_pixels" in kwargs:
            _check_max_pixels(kwargs["max_pixels"])
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise ValueError("no images given")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        step = batch_size or len(items)
        chunks = [
            super(FQUGATITImageToImagePipeline, self).__call__(
                _Batch(items[start : start + step], start), output_type=output_type, **kwargs
            )
            for start in range(0, len(items), step)
        ]
        result = {key: _join([chunk[key] for chunk in chunks], output_type) for key in ("images", "attention")
                  if chunks[0].get(key) is not None}  # fmt: skip
        if not return_dict:
            return tuple(result[key] for key in ("images", "attention") if key in result)
        return ImageTranslationPipelineOutput(**result)

    def preprocess(self, batch: _Batch, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        size = int(self.model.config.image_size)
        channels = int(self.model.config.num_channels)
        tensors, sizes = [], []
        for i, item in enumerate(batch.items):
            image = _load_image(item, batch.offset + i, channels, max_pixels)
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

    def postprocess(self, model_outputs, keep_size: bool = False, return_attention: bool = False,
                    output_type: str = "pil"):  # fmt: skip
        images = model_outputs["images"].float().clamp(-1, 1)
        sizes = [tuple(size) for size in model_outputs["sizes"]]
        if output_type != "pil":
            height, width = images.shape[-2:]
            if keep_size:
                if len(set(sizes)) > 1:
                    raise ValueError(
                        f"`keep_size=True` with output_type={output_type!r} needs inputs of one size (got {sizes}); "
                        "use output_type='pil' for mixed sizes"
                    )
                width, height = sizes[0]
                if (height, width) != tuple(images.shape[-2:]):
                    images = F.interpolate(images, size=(height, width), mode="bicubic", align_corners=False,
                                           antialias=True).clamp(-1, 1)  # fmt: skip
            result = {"images": _unit(images, output_type)}
            if return_attention:
                result["attention"] = _unit(jet_heatmap(model_outputs["heatmap"], (height, width)), output_type)
            return result
        array = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        pil_images, attention = [], []
        for i, original_size in enumerate(sizes):
            pixels = array[i]
            image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels))
            if keep_size and image.size != original_size:
                image = image.resize(original_size, Image.BICUBIC)
            pil_images.append(image)
            if return_attention:
                heat = jet_heatmap(model_outputs["heatmap"][i : i + 1], (image.height, image.width))[0]
                heat = ((heat + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
                attention.append(Image.fromarray(np.ascontiguousarray(heat)))
        return {"images": pil_images, "attention": attention if return_attention else None}


def _check_output_type(output_type: Any) -> str:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}")
    return output_type


def _unit(images: torch.Tensor, output_type: str):
    """(B, C, H, W) in [-1, 1] → a tensor in [0, 1] ("pt") or a (B, H, W, C) float32 array in [0, 1] ("np")."""
    unit = (images.float().clamp(-1, 1) + 1) / 2
    return unit if output_type == "pt" else unit.permute(0, 2, 3, 1).cpu().numpy()


def _join(chunks: list, output_type: str):
    if output_type == "pil":
        return [item for chunk in chunks for item in chunk]
    if len(chunks) == 1:
        return chunks[0]
    if len({tuple(chunk.shape[1:]) for chunk in chunks}) > 1:
        raise ValueError(f"`keep_size=True` with output_type={output_type!r} needs inputs of one size")
    return np.concatenate(chunks) if output_type == "np" else torch.cat(chunks)


# a clearer name for the same class (the task is `image-translation`)
FQUGATITImageTranslationPipeline = FQUGATITImageToImagePipeline

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FQUGATITImageToImagePipeline",
    "FQUGATITImageTranslationPipeline",
    "HUB_TASK_ALIASES",
    "ImageTranslationPipelineOutput",
    "TASK",
]
