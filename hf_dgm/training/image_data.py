"""Image datasets for (class-conditional) GAN training.

Three sources, one output: a `datasets.Dataset` with an `Image` column and (optionally) a `ClassLabel` column,
turned into model inputs by :class:`ImageGANCollator`:

* a Hub dataset: `load_image_dataset("uoft-cs/cifar10")` (`datasets.load_dataset(name, split=...)`),
* an image folder: `load_image_dataset("path/to/folder")` (the `imagefolder` builder: one sub-folder per class),
* in-memory arrays: `dataset_from_arrays(images, labels, label_names)`; `load_digits_dataset()` wraps
  scikit-learn's 8×8 digits (1,797 real images, 10 classes) — a class-conditional set that needs no network.

The collator returns `{"pixel_values": (B, C, R, R) float32 in [-1, 1], "labels": (B,) int64}` (C = 3 for RGB, 1 for
greyscale models).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def load_image_dataset(
    source: str | os.PathLike,
    split: str = "train",
    name: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
):
    """Load a Hub image dataset by name or a local image folder, as a `datasets.Dataset`.

    A local folder goes through the `imagefolder` builder (class sub-folders become a `label` ClassLabel
    column). Anything else is a Hub dataset name; if it cannot be reached (offline, or no such dataset) this
    raises `ConnectionError` saying so and how to train without network.
    """
    import datasets

    source = os.fspath(source)
    if os.path.isdir(source):
        return datasets.load_dataset("imagefolder", data_dir=source, split=split, cache_dir=cache_dir)
    try:
        return datasets.load_dataset(source, name, split=split, revision=revision, cache_dir=cache_dir)
    except Exception as err:  # datasets raises a variety of errors when offline / not found
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        raise ConnectionError(
            f"Could not load the dataset {source!r} (split {split!r}) from the Hugging Face Hub"
            f"{' (offline mode is set)' if offline else ''}: {type(err).__name__}: {err}\n"
            "Training on a Hub dataset needs network access the first time (later runs use the local cache). "
            "Without network, pass a local image folder (one sub-folder per class) or use the offline digits "
            "recipe (training/recipes/fq_biggan_digits_cpu.yaml)."
        ) from err


def dataset_from_arrays(
    images: np.ndarray | torch.Tensor | Sequence[Any],
    labels: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    value_range: tuple[float, float] | None = None,
):
    """In-memory images -> `datasets.Dataset` with columns `image` (Image) and `label` (ClassLabel).

    Args:
        images: (N, H, W) grayscale or (N, H, W, C) / (N, C, H, W) arrays; uint8, or floats in `value_range`
            (default: the arrays' own min and max), or a list of PIL images.
        labels: (N,) integer class ids, or None for an unconditional set.
        label_names: class names (default "0", "1", ...).
    """
    import datasets

    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], Image.Image):
        pil_images = list(images)
    else:
        arr = np.asarray(images)
        if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(0, 2, 3, 1)
        if arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (3, 4):
            raise ValueError(f"images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {arr.shape}.")
        if arr.dtype != np.uint8:
            lo, hi = value_range if value_range is not None else (float(arr.min()), float(arr.max()))
            if hi <= lo:
                raise ValueError(f"Cannot scale images with value range ({lo}, {hi}).")
            arr = np.clip(np.round((arr.astype(np.float64) - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
        pil_images = [Image.fromarray(a) for a in arr]
    columns: dict[str, Any] = {"image": pil_images}
    features = {"image": datasets.Image()}
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64)
        if labels.shape != (len(pil_images),):
            raise ValueError(f"labels must be ({len(pil_images)},), got {labels.shape}.")
        num_classes = len(label_names) if label_names is not None else int(labels.max()) + 1
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}].")
        names = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
        columns["label"] = labels.tolist()
        features["label"] = datasets.ClassLabel(names=names)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def load_digits_dataset():
    """scikit-learn's `load_digits` (1,797 8×8 grayscale digits, classes "0".."9") as a `datasets.Dataset`.

    Pixel values 0..16 are mapped to 0..255; the collator upsamples to the training resolution."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return dataset_from_arrays(
        digits.images, digits.target, label_names=[str(i) for i in range(10)], value_range=(0.0, 16.0)
    )


def find_image_column(dataset) -> str:
    """Name of the first `Image` column of a `datasets.Dataset`."""
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise ValueError(f"No Image column in dataset columns {list(dataset.features)}; pass `image_column=`.")


def find_label_column(dataset) -> str | None:
    """Name of the first `ClassLabel` column, or None (unconditional data)."""
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            return name
    return None


def id2label_from_dataset(dataset, label_column: str | None = None) -> dict[int, str] | None:
    """{class id: name} from the dataset's ClassLabel column (None when there is none)."""
    label_column = label_column or find_label_column(dataset)
    if label_column is None:
        return None
    return dict(enumerate(dataset.features[label_column].names))


def image_to_tensor(
    image: Image.Image | np.ndarray,
    resolution: int,
    interpolation: str = "bilinear",
    center_crop: bool = True,
    num_channels: int = 3,
) -> torch.Tensor:
    """One image -> (num_channels, resolution, resolution) float32 in [-1, 1] (3: RGB, 1: greyscale "L").

    With `center_crop` the image is cropped to a centred square along its long edge first (BigGAN's
    `CenterCropLongEdge`), then resized with PIL (`interpolation`; PIL antialiases when downscaling)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels must be 1 (greyscale) or 3 (RGB), got {num_channels!r}.")
    image = image.convert("RGB" if num_channels == 3 else "L")
    if center_crop and image.width != image.height:
        side = min(image.width, image.height)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), INTERPOLATIONS[interpolation])
    arr = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    arr = arr.permute(2, 0, 1) if arr.ndim == 3 else arr.unsqueeze(0)
    return arr.float() / 127.5 - 1.0


@dataclass
class ImageGANCollator:
    """Rows of an image dataset -> `{"pixel_values": (B, C, R, R) in [-1, 1], "labels": (B,) int64}`.

    Args:
        resolution: output side R.
        image_column: column holding PIL images (or arrays); default "image".
        label_column: ClassLabel column, or None for unconditional data (no "labels" key).
        interpolation: "nearest" | "bilinear" (default) | "bicubic" | "lanczos".
        center_crop: crop non-square images to a centred square first.
        random_flip: random horizontal flips (augmentation; off by default as in BigGAN's CIFAR runs).
        num_channels: C = 3 (RGB, default) or 1 (greyscale: images are converted to PIL mode "L").
    """

    resolution: int
    image_column: str = "image"
    label_column: str | None = "label"
    interpolation: str = "bilinear"
    center_crop: bool = True
    random_flip: bool = False
    num_channels: int = 3

    def __post_init__(self):
        if self.resolution < 1:
            raise ValueError(f"resolution must be positive, got {self.resolution}.")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {self.interpolation!r}.")
        if self.num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (greyscale) or 3 (RGB), got {self.num_channels!r}.")

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("Empty batch.")
        if self.image_column not in rows[0]:
            raise ValueError(f"Rows have no column {self.image_column!r}; columns are {list(rows[0])}.")
        pixels = torch.stack(
            [
                image_to_tensor(
                    r[self.image_column], self.resolution, self.interpolation, self.center_crop, self.num_channels
                )
                for r in rows
            ]
        )
        if self.random_flip:
            flip = torch.rand(pixels.shape[0]) < 0.5
            pixels[flip] = pixels[flip].flip(-1)
        batch = {"pixel_values": pixels}
        if self.label_column is not None:
            if self.label_column not in rows[0]:
                raise ValueError(f"Rows have no label column {self.label_column!r}; columns are {list(rows[0])}.")
            batch["labels"] = torch.tensor([int(r[self.label_column]) for r in rows], dtype=torch.long)
        return batch

    @classmethod
    def for_dataset(cls, dataset, resolution: int, **kwargs) -> "ImageGANCollator":
        """A collator with the dataset's Image and ClassLabel columns filled in."""
        kwargs.setdefault("image_column", find_image_column(dataset))
        kwargs.setdefault("label_column", find_label_column(dataset))
        return cls(resolution=resolution, **kwargs)
