"""Dataset helpers."""

from .images import (
    ImageGANCollator,
    dataset_from_arrays,
    find_image_column,
    find_label_column,
    id2label_from_dataset,
    image_to_tensor,
    load_digits_dataset,
    load_image_dataset,
)

__all__ = [
    "ImageGANCollator",
    "dataset_from_arrays",
    "find_image_column",
    "find_label_column",
    "id2label_from_dataset",
    "image_to_tensor",
    "load_digits_dataset",
    "load_image_dataset",
]
