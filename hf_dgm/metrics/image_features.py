"""Image-generation metrics from images: feature extraction (the FID Inception network or a user-provided
extractor) and the entry points `compute_fid`, `compute_kid`, `compute_inception_score` that extract and then measure.

The math lives in :mod:`hf_dgm.metrics.feature_statistics`, the FID Inception network in
:mod:`hf_dgm.metrics.inception` and its hash-checked loading in :mod:`hf_dgm.metrics.inception_weights`; the names
training scripts use from those modules are importable from here too (the established import path). The `evaluate`
modules in `hf_dgm/metrics/{fid,kid,inception_score}/` are thin wrappers (:mod:`hf_dgm.metrics.evaluate_glue`).

Conventions (stated once, used everywhere in hf-dgm)
-----------------------------------------------------
* **Images** are float tensors/arrays shaped (N, 3, H, W) in [-1, 1] (what the generators output), or uint8
  arrays shaped (N, 3, H, W) or (N, H, W, 3) in [0, 255]. By default float images are first quantized to 8-bit
  levels (`quantize=True`), exactly as if they had been written to PNG files and read back, because that is what
  the reference implementations measure.
* **Feature extractors** are callables `(B, 3, H, W) float tensor in [-1, 1] -> (B, D) tensor`. The FID Inception
  network is one; any `torch.nn.Module` or function with that contract can be used instead (features from
  other extractors are *not* comparable to published FID/KID/IS numbers).
* Reference implementations matched and preprocessing modes: see :mod:`hf_dgm.metrics.feature_statistics` and
  :mod:`hf_dgm.metrics.inception`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .feature_statistics import (  # noqa: F401  (re-exported: the established import path)
    IS_SPLITS,
    KID_COEF0,
    KID_DEGREE,
    KID_NUM_SUBSETS,
    KID_SUBSET_SIZE,
    RNG_SEED,
    as_2d_float64,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    inception_score,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
    precision_recall,
)
from .inception import PREPROCESSING_MODES, FIDInceptionV3, resize_bilinear_tf1  # noqa: F401
from .inception_weights import (  # noqa: F401
    FID_WEIGHTS_FILENAME,
    FID_WEIGHTS_SAFETENSORS,
    FID_WEIGHTS_SHA256_PREFIX,
    convert_fid_inception_to_safetensors,
    feature_extractor_description,
    file_sha256,
    load_fid_inception,
    tensors_sha256,
)

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


def resolve_feature_extractor(
    feature_extractor: str | os.PathLike | FeatureExtractor | None,
    preprocessing: str = "pytorch-fid",
    allow_nonstandard_weights: bool = False,
) -> FeatureExtractor:
    """A callable from a path/Hub id of FID Inception weights (hash-checked; see :func:`load_fid_inception`), or
    any callable returned as is."""
    if feature_extractor is None:
        raise ValueError(
            "Images were given but no `feature_extractor`: pass the path (or Hub id) of the FID Inception "
            f"weights `{FID_WEIGHTS_FILENAME}`, a callable (B, 3, H, W) in [-1, 1] -> (B, D), or precomputed "
            "features (N, D) instead of images."
        )
    if isinstance(feature_extractor, (str, os.PathLike)):
        return load_fid_inception(
            feature_extractor, preprocessing=preprocessing, allow_nonstandard_weights=allow_nonstandard_weights
        )
    if not callable(feature_extractor):
        raise ValueError(f"`feature_extractor` must be a path, a Hub id or a callable, got {type(feature_extractor)}.")
    return feature_extractor


def images_to_tensor(images: Any) -> torch.Tensor:
    """Images in any accepted form -> float tensor (N, 3, H, W) in [-1, 1].

    Accepted: float tensors/arrays (N, 3, H, W) in [-1, 1]; uint8 arrays/tensors (N, 3, H, W) or (N, H, W, 3);
    a list of PIL images or of (3, H, W) arrays. Grayscale (1 channel) is repeated to 3 channels.
    """
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("No images given.")
        if hasattr(images[0], "convert"):  # PIL
            images = np.stack([np.asarray(im.convert("RGB")) for im in images])
        else:
            images = np.stack([np.asarray(im) for im in images])
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"Unsupported image container {type(images)}.")
    if images.ndim != 4:
        raise ValueError(f"Images must be 4-D (N, C, H, W) or (N, H, W, C), got shape {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.permute(0, 3, 1, 2)
        images = images.float() / 127.5 - 1.0
    else:
        images = images.float()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    if images.shape[1] != 3:
        raise ValueError(f"Images must have 1 or 3 channels, got shape {tuple(images.shape)}.")
    return images


@torch.no_grad()
def extract_features(
    images: Any | Iterable[Any],
    feature_extractor: FeatureExtractor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    output: str | Sequence[str] = "pool3",
    progress: bool = False,
) -> np.ndarray | dict[str, np.ndarray]:
    """Run `feature_extractor` over images in batches and return the features as float64 (N, D).

    `images` is one container accepted by :func:`images_to_tensor` or an iterable of such batches (e.g. batches
    produced by a generator, so that 50k samples never sit in memory at once). Extractors returning a dict (the
    FID Inception network) are indexed with `output` (`"pool3"` for FID/KID, `"logits_unbiased"` for IS); a
    sequence of names returns a dict {name: (N, D) array} from one pass over the images.
    """
    names = [output] if isinstance(output, str) else list(output)
    if isinstance(feature_extractor, nn.Module):
        if device is None:
            device = next(feature_extractor.parameters(), torch.empty(0)).device
        feature_extractor = feature_extractor.to(device).eval()
    device = torch.device(device) if device is not None else torch.device("cpu")
    if isinstance(images, (torch.Tensor, np.ndarray)) or (
        isinstance(images, (list, tuple)) and len(images) > 0 and not _is_batch(images[0])
    ):
        full = images_to_tensor(images)
        batches: Iterable[Any] = (full[i : i + batch_size] for i in range(0, full.shape[0], batch_size))
    else:
        batches = images
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="features")
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    for batch in batches:
        batch = images_to_tensor(batch).to(device)
        feats = feature_extractor(batch)
        for name in names:
            if isinstance(feats, dict):
                if name not in feats:
                    raise ValueError(f"Feature extractor returned {list(feats)}; output {name!r} is not among them.")
                value = feats[name]
            elif len(names) > 1:
                raise ValueError(f"Several outputs {names} requested from an extractor that returns one tensor.")
            else:
                value = feats
            value = torch.as_tensor(value)
            if value.ndim != 2 or value.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"Feature extractor must return (B, D) for B={batch.shape[0]} images, got {tuple(value.shape)}."
                )
            chunks[name].append(value.detach().double().cpu())
    if not chunks[names[0]]:
        raise ValueError("No images given.")
    arrays = {name: torch.cat(parts).numpy() for name, parts in chunks.items()}
    return arrays[output] if isinstance(output, str) else arrays


def _is_batch(x: Any) -> bool:
    return (isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim == 4) or (
        isinstance(x, (list, tuple)) and len(x) > 0 and hasattr(x[0], "convert")
    )


def as_features_or_images(x: Any) -> tuple[str, Any]:
    """Classify a metric input: ("features", (N, D) array) or ("images", (N, 3, H, W) tensor)."""
    if isinstance(x, torch.Tensor):
        arr = x
    elif isinstance(x, (list, tuple)) and len(x) > 0 and hasattr(x[0], "convert"):
        return "images", images_to_tensor(x)
    else:
        arr = np.asarray(x)
    if arr.ndim == 2:
        return "features", as_2d_float64(arr, "features")
    if arr.ndim == 4:
        return "images", images_to_tensor(arr)
    raise ValueError(
        f"Expected precomputed features (N, D) or images (N, 3, H, W) / (N, H, W, 3), got shape {tuple(arr.shape)}."
    )


def compute_fid(
    real: Any,
    fake: Any,
    feature_extractor: str | os.PathLike | FeatureExtractor | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    preprocessing: str = "pytorch-fid",
    eps: float = 1e-6,
    progress: bool = False,
    allow_nonstandard_weights: bool = False,
) -> float:
    """FID between two sets of images or precomputed features (see the module docstring for conventions);
    `progress` shows a progress bar over the feature-extraction batches; `allow_nonstandard_weights` lets a weights
    path that is not the standard FID Inception file load (see :func:`load_fid_inception`)."""
    f_real, f_fake = _features_pair(
        real, fake, feature_extractor, batch_size, device, preprocessing, progress, allow_nonstandard_weights
    )
    return frechet_distance_from_features(f_real, f_fake, eps=eps)


def compute_kid(
    real: Any,
    fake: Any,
    feature_extractor: str | os.PathLike | FeatureExtractor | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    preprocessing: str = "pytorch-fid",
    num_subsets: int = KID_NUM_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = RNG_SEED,
    progress: bool = False,
    allow_nonstandard_weights: bool = False,
) -> tuple[float, float]:
    """KID (mean, std) between two sets of images or precomputed features; `progress` shows progress bars over
    the feature-extraction batches and the subsets; `allow_nonstandard_weights` as in :func:`compute_fid`."""
    f_real, f_fake = _features_pair(
        real, fake, feature_extractor, batch_size, device, preprocessing, progress, allow_nonstandard_weights
    )
    return kernel_inception_distance(
        f_real, f_fake, num_subsets=num_subsets, subset_size=subset_size, seed=seed, progress=progress
    )


def _features_pair(
    real, fake, feature_extractor, batch_size, device, preprocessing, progress=False, allow_nonstandard_weights=False
):
    kinds = [as_features_or_images(x) for x in (real, fake)]
    extractor = None
    out = []
    for kind, value in kinds:
        if kind == "images":
            if extractor is None:
                extractor = resolve_feature_extractor(feature_extractor, preprocessing, allow_nonstandard_weights)
            value = extract_features(
                value, extractor, batch_size=batch_size, device=device, output="pool3", progress=progress
            )
        out.append(value)
    return out[0], out[1]


def compute_inception_score(
    images_or_logits: Any,
    feature_extractor: str | os.PathLike | FeatureExtractor | None = None,
    inputs_are: str = "logits",
    batch_size: int = 64,
    device: str | torch.device | None = None,
    preprocessing: str = "pytorch-fid",
    splits: int = IS_SPLITS,
    shuffle: bool = True,
    seed: int = RNG_SEED,
    progress: bool = False,
    allow_nonstandard_weights: bool = False,
) -> tuple[float, float]:
    """IS (mean, std) of images (through the FID Inception "logits_unbiased" or a callable returning logits) or
    of precomputed 2-D `logits` / `probabilities` (`inputs_are`); `allow_nonstandard_weights` as in
    :func:`compute_fid`."""
    if inputs_are not in ("logits", "probabilities"):
        raise ValueError(f"inputs_are must be 'logits' or 'probabilities', got {inputs_are!r}")
    kind, value = as_features_or_images(images_or_logits)
    if kind == "images":
        extractor = resolve_feature_extractor(feature_extractor, preprocessing, allow_nonstandard_weights)
        value = extract_features(
            value, extractor, batch_size=batch_size, device=device, output="logits_unbiased", progress=progress
        )
        inputs_are = "logits"
    if inputs_are == "logits":
        return inception_score(logits=value, splits=splits, shuffle=shuffle, seed=seed)
    return inception_score(probabilities=value, splits=splits, shuffle=shuffle, seed=seed)
