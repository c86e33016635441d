"""`evaluate` glue: what the modules in hf_dgm/metrics/{fid,kid,inception_score} share — their feature
options, reading inputs back from `evaluate`'s Arrow cache, and resolving the feature extractor they report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .image_features import FeatureExtractor, resolve_feature_extractor
from .inception_weights import feature_extractor_description

INPUT_RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}


def image_metric_features(with_references: bool) -> list:
    """`evaluate` feature options: images (3, H, W) first, then 1-D feature vectors."""
    import datasets

    names = ("predictions", "references") if with_references else ("predictions",)
    image = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))
    vector = datasets.Sequence(datasets.Value("float32"))
    return [datasets.Features({n: image for n in names}), datasets.Features({n: vector for n in names})]


def inputs_from_evaluate(values: Any, input_range: str = "[-1,1]") -> np.ndarray | torch.Tensor:
    """Rows read back from `evaluate`'s Arrow cache -> (N, D) features or (N, 3, H, W) images in [-1, 1]."""
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input_range must be one of {list(INPUT_RANGES)}, got {input_range!r}")
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 4:
        lo, hi = INPUT_RANGES[input_range]
        return torch.from_numpy((arr - lo) / (hi - lo) * 2.0 - 1.0)
    return arr


def evaluate_feature_extractor(
    inputs: Sequence[Any],
    feature_extractor: str | os.PathLike | FeatureExtractor | None,
    preprocessing: str = "pytorch-fid",
    allow_nonstandard_weights: bool = False,
) -> tuple[FeatureExtractor | None, str]:
    """For the `evaluate` modules: the resolved extractor (None when every input is precomputed, 2-D) and the
    description the modules return as `feature_extractor` (see :func:`feature_extractor_description`)."""
    if all(np.ndim(x) == 2 for x in inputs):
        return None, "precomputed features"
    extractor = resolve_feature_extractor(feature_extractor, preprocessing, allow_nonstandard_weights)
    return extractor, feature_extractor_description(extractor)
