"""Unpaired two-domain image data for image-to-image GANs (FQ-U-GAT-IT).

Sources of the two domains A and B (each a `datasets.Dataset` with an Image column, or a list of PIL images):

* one Hub dataset with two image columns, as the CycleGAN/U-GAT-IT sets are published by the HugGAN community
  (e.g. `huggan/horse2zebra`: columns `imageA`, `imageB`; empty cells are dropped per column):
  `load_two_domains("huggan/horse2zebra", column_a="imageA", column_b="imageB")`;
* two Hub datasets or configurations (e.g. `gigant/horse2zebra` configs `horse` and `zebra`), or two local image
  folders (`trainA/`, `trainB/`, the layout of the original repos):
  `load_two_domains(source_a="data/selfie2anime/trainA", source_b="data/selfie2anime/trainB")`;
* `digits_two_domains()`: an offline set built from scikit-learn's 8×8 digits — domain A white digits on black
  (the data as stored), domain B the same kind of digits inverted and tinted (dark blue ink on a warm paper colour),
  drawn from disjoint digit images, so the pairs are not aligned. Its test split renders the same held-out digits in
  both styles, so a translation can be compared with the B-style image of the very same digit.

[`UnpairedImageDataset`] pairs row `i` of A (`i mod |A|`) with a uniformly drawn row of B (torch's global RNG, which
the Trainer seeds), one epoch = `max(|A|, |B|)` rows, as the original's two independently shuffled loaders.
[`UnpairedImageCollator`] applies the original's augmentation (random horizontal flip, resize to
`(S + crop_margin)²`, random `S²` crop; evaluation: resize to `S²`) and returns
`{"pixel_values_a": (B, C, S, S), "pixel_values_b": (B, C, S, S)}` in [-1, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image


# Domain B colours of the digits set: ink and paper (RGB, 0-255).
DIGITS_INK = (20, 40, 120)
DIGITS_PAPER = (250, 220, 160)


def _image_column(dataset, column: str | None) -> str:
    if column is not None:
        if column not in dataset.column_names:
            raise ValueError(f"dataset has no column {column!r}; columns are {dataset.column_names}")
        return column
    from .image_data import find_image_column

    return find_image_column(dataset)


def _load_source(source: str | os.PathLike, split: str, config_name: str | None):
    from .image_data import load_image_dataset

    path = os.fspath(source)
    if os.path.isdir(path):
        import datasets

        files = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".webp"))
        )
        if files:  # a flat folder of images (trainA/) rather than one sub-folder per class
            return datasets.Dataset.from_dict({"image": files}, features=datasets.Features({"image": datasets.Image()}))
    return load_image_dataset(path, split=split, name=config_name)


def load_two_domains(
    source: str | None = None,
    column_a: str | None = None,
    column_b: str | None = None,
    source_a: str | None = None,
    source_b: str | None = None,
    config_a: str | None = None,
    config_b: str | None = None,
    split: str = "train",
) -> tuple[Any, Any]:
    """The two domains as `(dataset_a, dataset_b)`, each with one Image column named `"image"`.

    Either `source` (one dataset with the image columns `column_a` and `column_b`) or `source_a` and `source_b`
    (two datasets / configurations / folders; `config_a`, `config_b` name Hub configurations).
    """
    if source is not None:
        if source_a is not None or source_b is not None:
            raise ValueError("pass either `source` (one dataset, two columns) or `source_a` and `source_b`")
        if column_a is None or column_b is None:
            raise ValueError("a two-column dataset needs `column_a` and `column_b` (e.g. imageA and imageB)")
        dataset = _load_source(source, split, None)
        domains = []
        for column in (column_a, column_b):
            _image_column(dataset, column)
            part = dataset.select_columns([column]).filter(lambda row: row[column] is not None)
            domains.append(part.rename_column(column, "image") if column != "image" else part)
        return domains[0], domains[1]
    if source_a is None or source_b is None:
        raise ValueError("pass `source` with two columns, or both `source_a` and `source_b`")
    domains = []
    for src, config, column in ((source_a, config_a, column_a), (source_b, config_b, column_b)):
        dataset = _load_source(src, split, config)
        name = _image_column(dataset, column)
        dataset = dataset.select_columns([name])
        domains.append(dataset.rename_column(name, "image") if name != "image" else dataset)
    return domains[0], domains[1]


def _digit_images(indices: np.ndarray, style: str) -> list[Image.Image]:
    from sklearn.datasets import load_digits

    ink = np.clip(load_digits().images[indices] / 16.0, 0.0, 1.0)[..., None]  # (N, 8, 8, 1), 1 = ink
    if style == "A":
        rgb = np.repeat(ink, 3, axis=-1) * 255.0  # white ink on black
    elif style == "B":
        rgb = ink * np.array(DIGITS_INK) + (1.0 - ink) * np.array(DIGITS_PAPER)  # dark ink on paper
    else:
        raise ValueError(f"unknown digits style {style!r}")
    return [Image.fromarray(image) for image in np.round(rgb).astype(np.uint8)]


def _digits_split(num_test: int, seed: int) -> dict[str, np.ndarray]:
    """Indices into scikit-learn's 1,797 digits: `train_a`, `train_b` (disjoint halves of what the first `num_test` of
    a seeded permutation leave) and `test` (those `num_test`)."""
    order = np.random.RandomState(seed).permutation(1797)
    test, train = order[:num_test], order[num_test:]
    half = len(train) // 2
    return {"train_a": train[:half], "train_b": train[half:], "test": test}


def digits_two_domains(num_test: int = 197, seed: int = 0) -> dict[str, list[Image.Image]]:
    """scikit-learn's 1,797 digits split (seeded permutation) into: `train_a` and `train_b` (disjoint halves of the
    remaining images, styles A and B) and `test_a`, `test_b` (the same `num_test` held-out digits in style A and in
    style B, aligned by index). Images are 8×8 RGB PIL images; the collator upsamples them."""
    split = _digits_split(num_test, seed)
    return {
        "train_a": _digit_images(split["train_a"], "A"),
        "train_b": _digit_images(split["train_b"], "B"),
        "test_a": _digit_images(split["test"], "A"),
        "test_b": _digit_images(split["test"], "B"),
    }


def digits_two_domains_labels(num_test: int = 197, seed: int = 0) -> dict[str, np.ndarray]:
    """The digit classes (0-9) of [`digits_two_domains`]`(num_test, seed)`: `labels_train_a`, `labels_train_b` and
    `labels_test` (shared by `test_a` and `test_b`), aligned with its image lists. For evaluation only: U-GAT-IT never
    sees them."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    return {f"labels_{name}": target[indices] for name, indices in _digits_split(num_test, seed).items()}


class UnpairedImageDataset(torch.utils.data.Dataset):
    """Rows `{"image_a": PIL, "image_b": PIL}`: row `i` of A with a random row of B (see the module docstring)."""

    def __init__(self, domain_a: Sequence[Any], domain_b: Sequence[Any]):
        if len(domain_a) == 0 or len(domain_b) == 0:
            raise ValueError(f"both domains need images (got {len(domain_a)} and {len(domain_b)})")
        self.domain_a, self.domain_b = domain_a, domain_b

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    @staticmethod
    def _get(domain, index: int):
        item = domain[int(index)]
        return item["image"] if isinstance(item, dict) else item

    def __getitem__(self, index: int) -> dict[str, Any]:
        j = int(torch.randint(len(self.domain_b), ()))
        return {"image_a": self._get(self.domain_a, index % len(self.domain_a)), "image_b": self._get(self.domain_b, j)}


@dataclass
class UnpairedImageCollator:
    """Rows with `image_a`, `image_b` -> `{"pixel_values_a", "pixel_values_b"}` `(B, C, S, S)` in [-1, 1].

    Args:
        resolution: S.
        augment: the original's training augmentation (flip, resize to S + `crop_margin`, random crop); False: a
            plain resize to S (evaluation).
        crop_margin: 30 in the original (256 → 286 → random 256 crop).
        num_channels: 3 (RGB) or 1.
        random_flip: mirror half the images when augmenting (the original always does; off for content that is not
            mirror-symmetric, such as digits).
    """

    resolution: int
    augment: bool = True
    crop_margin: int = 30
    num_channels: int = 3
    random_flip: bool = True

    def __post_init__(self):
        if self.resolution < 1 or self.crop_margin < 0:
            raise ValueError(f"bad resolution {self.resolution} / crop_margin {self.crop_margin}")

    def transform(self, image: Image.Image | np.ndarray | str) -> torch.Tensor:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        elif isinstance(image, (str, os.PathLike)):
            image = Image.open(image)
        image = image.convert("RGB" if self.num_channels == 3 else "L")
        size = self.resolution
        if self.augment:
            if self.random_flip and torch.rand(()) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            load = size + self.crop_margin
            image = image.resize((load, load), Image.Resampling.BILINEAR)
            top, left = (int(torch.randint(self.crop_margin + 1, ())) for _ in range(2))
            image = image.crop((left, top, left + size, top + size))
        elif image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        array = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).float() / 127.5 - 1.0
        return array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("empty batch")
        missing = {"image_a", "image_b"} - set(rows[0])
        if missing:
            raise ValueError(f"rows need `image_a` and `image_b`, missing {sorted(missing)}")
        return {
            "pixel_values_a": torch.stack([self.transform(r["image_a"]) for r in rows]),
            "pixel_values_b": torch.stack([self.transform(r["image_b"]) for r in rows]),
        }


__all__ = [
    "DIGITS_INK",
    "DIGITS_PAPER",
    "UnpairedImageCollator",
    "UnpairedImageDataset",
    "digits_two_domains",
    "digits_two_domains_labels",
    "load_two_domains",
]
