"""Image-generation metrics: the one place for the math (Fréchet distance, KID, Inception Score, precision and
recall) and for feature
extraction (the FID Inception network and user-provided extractors).

The `evaluate` modules in `hf_dgm/metrics/{fid,kid,inception_score}/` are thin wrappers over the functions here;
training scripts call these functions directly.

Conventions (stated once, used everywhere in hf-dgm)
-----------------------------------------------------
* **Images** are float tensors/arrays shaped (N, 3, H, W) in [-1, 1] (what the generators output), or uint8
  arrays shaped (N, 3, H, W) or (N, H, W, 3) in [0, 255]. By default float images are first quantized to 8-bit
  levels (`quantize=True`), exactly as if they had been written to PNG files and read back, because that is what
  the reference implementations measure.
* **Feature extractors** are callables `(B, 3, H, W) float tensor in [-1, 1] -> (B, D) tensor`. The FID Inception
  network below is one; any `torch.nn.Module` or function with that contract can be used instead (features from
  other extractors are *not* comparable to published FID/KID/IS numbers).
* **FID Inception weights**: the PyTorch port of the TF Inception graph of 2015-12-05 used by every published FID,
  file `pt_inception-2015-12-05-6726825d.pth` (distributed by pytorch-fid and torch-fidelity; not shipped in any
  wheel). :func:`load_fid_inception` accepts a local path to that file, a folder holding it (or a safetensors
  conversion), or a Hub repo id holding either, and checks the file's SHA-256 against the `6726825d` in its name
  (torch.hub's `check_hash` convention); other weights load only with `allow_nonstandard_weights=True`, which the
  `evaluate` modules record in their output (`feature_extractor`).

Reference implementations matched
---------------------------------
* FID: pytorch-fid's `calculate_frechet_distance` — float64 statistics (`np.cov(rowvar=False)`, unbiased),
  Tr((sigma1 @ sigma2)^{1/2}) (pytorch-fid takes it from `scipy.linalg.sqrtm`; here it is the sum of the square
  roots of the product's eigenvalues, equal to round-off); if that fails (non-finite result) an `eps * I` offset
  (eps = 1e-6) is added to both covariances; an imaginary part above 1e-3 raises.
* KID: torch-fidelity's `kid` — cubic polynomial kernel `k(x, y) = (x·y / d + 1)^3`, unbiased MMD² estimator,
  100 subsets of 1000 samples drawn without replacement with `np.random.RandomState(2020)`; result is the mean
  and standard deviation over subsets. Sets smaller than 1000 need a smaller `subset_size` (state it with the
  number).
* IS: torch-fidelity's `isc` — softmax of the Inception "logits_unbiased" (pool3 @ fc.weight, no bias, as in the
  original OpenAI TF code), samples shuffled with `np.random.RandomState(2020)`, 10 splits cut at `i * N // 10`
  (so any N works, with torch-fidelity's split sizes), mean and std of
  exp(E[KL(p(y|x) || p(y))]) over the splits.
* Preprocessing (`preprocessing=`): `"pytorch-fid"` (default) resizes with `F.interpolate(bilinear,
  align_corners=False)` to 299×299 and maps [0, 255] to [-1, 1] by x/127.5 - 1; `"torch-fidelity"` resizes with
  TF1's legacy bilinear (`align_corners=False`, no half-pixel centers — what the original TF FID/IS code did) and
  maps by (x - 128)/128. Published numbers use 50,000 generated samples for FID and IS (`fid50k`), and the full
  training set (CIFAR: 50,000 images) as reference statistics. Report the preprocessing mode and sample counts
  with every number; clean-fid's "clean" resizing gives different (higher) values and is not implemented here.
* Precision / recall: Kynkäänniemi et al. 2019 ("Improved Precision and Recall Metric for Assessing Generative
  Models") — each set's manifold is the union of balls around its samples with radius the distance to the k-th
  nearest neighbour in that set (k = 3); precision is the share of generated samples inside the real manifold,
  recall the share of real samples inside the generated one. The paper measures in VGG-16 features of 50,000
  images; on any other features (e.g. raw pixels of small images) the values are not comparable to published ones.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub's naming convention (`load_state_dict_from_url(..., check_hash=True)`): the part of the file name after
# the last "-" is the first hex digits of the file's SHA-256. pytorch-fid and torch-fidelity name the file so but
# never pass check_hash=True; hf-dgm checks it on every load.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_WEIGHTS_SAFETENSORS = "pt_inception-2015-12-05.safetensors"
PREPROCESSING_MODES = ("pytorch-fid", "torch-fidelity")

KID_NUM_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
IS_SPLITS = 10
RNG_SEED = 2020

FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------------------------
# Math
# ----------------------------------------------------------------------------------------------------------------


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64 (pytorch-fid convention)."""
    features = _as_2d_float64(features, "features")
    if features.shape[0] < 2:
        raise ValueError(f"Need at least 2 feature vectors to estimate a covariance, got {features.shape[0]}.")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((sigma1 sigma2)^{1/2}) as the sum of the square roots of the eigenvalues of sigma1 sigma2.

    For covariances (symmetric PSD) the product's eigenvalues are real and non-negative, so this is the trace of
    the principal square root `scipy.linalg.sqrtm` computes; round-off leaves tiny negative or complex eigenvalues,
    whose roots are (almost) imaginary and count with their real part, as pytorch-fid keeps `covmean.real`. An
    imaginary part of the trace above 1e-3 raises, like pytorch-fid's check on the diagonal.
    """
    eigenvalues = np.linalg.eigvals(sigma1.dot(sigma2))
    if not np.isfinite(eigenvalues).all():
        return float("nan")
    trace = np.sqrt(eigenvalues.astype(np.complex128)).sum()
    if abs(trace.imag) > 1e-3:
        raise ValueError(f"FID: matrix square root has a significant imaginary component ({abs(trace.imag):.3g}).")
    return float(trace.real)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d² = ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}); the trace of the matrix square root is
    the sum of the square roots of the eigenvalues of sigma1 sigma2 (the value pytorch-fid gets from
    `scipy.linalg.sqrtm`, to round-off). If the eigen-decomposition fails (non-finite) an `eps * I` offset is added
    to both covariances, as pytorch-fid does; an imaginary component above 1e-3 raises.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"Mean vectors have different shapes: {mu1.shape} vs {mu2.shape}.")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"Covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}.")

    diff = mu1 - mu2
    trace_covmean = _trace_sqrt_product(sigma1, sigma2)
    if not np.isfinite(trace_covmean):
        warnings.warn(f"FID: product of covariances is singular; adding {eps} to the diagonal of both.")
        offset = np.eye(d) * eps
        trace_covmean = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def frechet_distance_from_features(
    features1: np.ndarray | torch.Tensor, features2: np.ndarray | torch.Tensor, eps: float = 1e-6
) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = KID_DEGREE, gamma: float | None = None, coef0: float = KID_COEF0
) -> np.ndarray:
    """k(x, y) = (gamma x·y + coef0)^degree for all pairs of rows; gamma defaults to 1/D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD² from kernel matrices of two equally sized samples (m, m):

    sum_{i != j} k_xx / (m (m-1)) + sum_{i != j} k_yy / (m (m-1)) - 2 sum_{i, j} k_xy / m².
    """
    m = k_xx.shape[0]
    if k_xx.shape != (m, m) or k_xy.shape != (m, m) or k_yy.shape != (m, m):
        raise ValueError("Kernel matrices must all be (m, m) for the same m.")
    if m < 2:
        raise ValueError("The unbiased MMD estimator needs at least 2 samples per set.")
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features1: np.ndarray | torch.Tensor,
    features2: np.ndarray | torch.Tensor,
    num_subsets: int = KID_NUM_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = KID_DEGREE,
    gamma: float | None = None,
    coef0: float = KID_COEF0,
    seed: int = RNG_SEED,
    progress: bool = False,
) -> tuple[float, float]:
    """KID: mean and std over `num_subsets` random subsets of the unbiased polynomial-kernel MMD².

    Subsets of `subset_size` rows are drawn without replacement from each set, independently, with
    `np.random.RandomState(seed)` (first set then second set for every subset), as torch-fidelity does.
    """
    f1 = _as_2d_float64(features1, "features1")
    f2 = _as_2d_float64(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"Feature dimensions differ: {f1.shape[1]} vs {f2.shape[1]}.")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
    n = min(f1.shape[0], f2.shape[0])
    if subset_size < 2 or subset_size > n:
        raise ValueError(
            f"subset_size={subset_size} is not allowed: it must be between 2 and the size of the smaller set "
            f"({n}). The standard setting is 1000; for small sets pass a smaller subset_size and report it."
        )
    rng = np.random.RandomState(seed)
    values = np.empty(num_subsets)
    subsets: Iterable[int] = range(num_subsets)
    if progress:
        from tqdm.auto import tqdm

        subsets = tqdm(subsets, desc="KID subsets")
    for i in subsets:
        x = f1[rng.choice(f1.shape[0], subset_size, replace=False)]
        y = f2[rng.choice(f2.shape[0], subset_size, replace=False)]
        values[i] = mmd2_unbiased(
            polynomial_kernel(x, x, degree, gamma, coef0),
            polynomial_kernel(x, y, degree, gamma, coef0),
            polynomial_kernel(y, y, degree, gamma, coef0),
        )
    return float(values.mean()), float(values.std())


def inception_score(
    probabilities: np.ndarray | torch.Tensor | None = None,
    logits: np.ndarray | torch.Tensor | None = None,
    splits: int = IS_SPLITS,
    shuffle: bool = True,
    seed: int = RNG_SEED,
) -> tuple[float, float]:
    """Inception Score: mean and std over `splits` of exp(E_x KL(p(y|x) || p(y))).

    Pass either class `probabilities` (N, C) (rows summing to 1) or `logits` (N, C) (softmax is applied in
    float64). With `shuffle` the rows are permuted with `np.random.RandomState(seed)` first (torch-fidelity);
    split `i` holds rows `i * N // splits` to `(i + 1) * N // splits` (torch-fidelity's cut), so N need not be
    divisible by `splits`.
    """
    if (probabilities is None) == (logits is None):
        raise ValueError("Pass exactly one of `probabilities` or `logits`.")
    if logits is not None:
        logits = torch.as_tensor(_as_2d_float64(logits, "logits"))
        log_p = torch.log_softmax(logits, dim=1).numpy()
        p = np.exp(log_p)
    else:
        p = _as_2d_float64(probabilities, "probabilities")
        if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError("`probabilities` must be non-negative with rows summing to 1.")
        with np.errstate(divide="ignore"):
            log_p = np.log(p)
    if splits < 1 or splits > p.shape[0]:
        raise ValueError(f"splits must be between 1 and the number of samples ({p.shape[0]}), got {splits}.")
    if shuffle:
        perm = np.random.RandomState(seed).permutation(p.shape[0])
        p, log_p = p[perm], log_p[perm]
    scores = []
    n = p.shape[0]
    for i in range(splits):
        start, stop = i * n // splits, (i + 1) * n // splits
        p_chunk, log_p_chunk = p[start:stop], log_p[start:stop]
        q = p_chunk.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_q = np.log(q)
            # 0 * log 0 := 0
            kl_terms = np.where(p_chunk > 0, p_chunk * (log_p_chunk - log_q), 0.0)
        scores.append(np.exp(kl_terms.sum(axis=1).mean()))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())


def precision_recall(
    real_features: np.ndarray | torch.Tensor, fake_features: np.ndarray | torch.Tensor, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake_features` (M, D) against `real_features` (N, D).

    A sample lies in a set's manifold when its Euclidean distance to some member x of that set is at most the distance
    from x to x's k-th nearest neighbour in the set (itself excluded). Precision: share of fake samples in the real
    manifold (do the samples look real?); recall: share of real samples in the fake manifold (is the real variety
    covered?). Both in [0, 1]; exact pairwise distances in float64, so sets of a few thousand rows.
    """
    real = torch.from_numpy(_as_2d_float64(real_features, "real_features"))
    fake = torch.from_numpy(_as_2d_float64(fake_features, "fake_features"))
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}.")
    if not isinstance(k, int) or k < 1 or k >= min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k must be an int between 1 and the size of the smaller set minus 1, got {k!r}.")

    def radii(x: torch.Tensor) -> torch.Tensor:  # distance to the k-th nearest neighbour, the point itself excluded
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    distances = torch.cdist(fake, real)  # (M, N)
    precision = (distances <= radii(real)[None, :]).any(dim=1).double().mean()
    recall = (distances.t() <= radii(fake)[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def _as_2d_float64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (num_samples, dim), got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return x


# ----------------------------------------------------------------------------------------------------------------
# The FID Inception network (architecture of pytorch-fid's `fid_inception_v3`, key layout of torchvision's
# Inception3, so that `pt_inception-2015-12-05-6726825d.pth` loads with strict key checking)
# ----------------------------------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    # TF's average pooling excludes the padding from the count.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class FIDInceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], dim=1)


class FIDInceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, b7d, bp], dim=1)


class FIDInceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class FIDInceptionE(nn.Module):
    """Mixed_7b uses average pooling (padding excluded) in its pool branch, Mixed_7c max pooling — a quirk of
    the 2015 TF graph that pytorch-fid reproduces (`FIDInceptionE_1` / `FIDInceptionE_2`)."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        if self.pool == "avg":
            bp = _avg_pool_no_pad(x)
        else:
            bp = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(bp)
        return torch.cat([b1, b3, b3d, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """The Inception-v3 graph of 2015-12-05 used for FID, KID and IS (1008 classes), in PyTorch.

    Input: images (B, 3, H, W). `forward` takes float images in [-1, 1] (hf-dgm's convention) and applies the
    chosen `preprocessing` (see the module docstring: quantization to 8 bits, resizing to 299×299 and the
    reference implementation's value mapping). Output: a dict with `pool3` (B, 2048) — the FID/KID features —
    and `logits_unbiased` (B, 1008) = pool3 @ fc.weight.T — the IS logits. Call :meth:`extract` for raw,
    already-preprocessed input in [-1, 1] at 299×299.

    Parameter names follow torchvision's `Inception3`, the layout of `pt_inception-2015-12-05-6726825d.pth`.
    """

    def __init__(self, preprocessing: str = "pytorch-fid", quantize: bool = True):
        super().__init__()
        if preprocessing not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing must be one of {PREPROCESSING_MODES}, got {preprocessing!r}")
        self.preprocessing = preprocessing
        self.quantize = quantize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = FIDInceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = FIDInceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)
        self.eval()

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, 299, 299) in [-1, 1] -> {"pool3": (B, 2048), "logits_unbiased": (B, 1008)}."""
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
            self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,
        ):  # fmt: skip
            x = block(x)
        pool3 = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return {"pool3": pool3, "logits_unbiased": pool3 @ self.fc.weight.T}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Float images (B, 3, H, W) in [-1, 1] -> network input (B, 3, 299, 299)."""
        x = (images.float().clamp(-1, 1) + 1) * 127.5  # [0, 255]
        if self.quantize:
            x = x.round()
        if self.preprocessing == "pytorch-fid":
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return x / 127.5 - 1.0
        x = resize_bilinear_tf1(x, (299, 299))
        return (x - 128.0) / 128.0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extract(self.preprocess(images))

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a torchvision-layout state dict, checking every key (BatchNorm `num_batches_tracked` and the
        unused auxiliary classifier excepted)."""
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("AuxLogits.")}
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(
                f"Not FID Inception weights: missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}."
            )


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 `tf.image.resize_bilinear(align_corners=False)` without half-pixel centers: output pixel i samples
    input coordinate i * in/out (the resize the original TF FID/IS code and torch-fidelity use).

    The arithmetic is TF1's kernel (`resize_bilinear_op.cc`), operation for operation, as torch-fidelity's
    `interpolate_bilinear_2d_like_tensorflow1x(method="slow")` reproduces it, so the result is bit-identical to
    torch-fidelity's: the scale `in / out` rounded to float32, source coordinate `i * scale` in the input's dtype,
    `lerp = src - floor(src)`, then `top = tl + (tr - tl) * x_lerp`, `bottom = bl + (br - bl) * x_lerp`,
    `out = top + (bottom - top) * y_lerp`. (A weighted sum `(1 - w) * a + w * b` with float64 weights gives the
    same values to ~1 ulp only, and the FID Inception amplifies 1-ulp input differences ~1000-fold: issue 32.)
    """

    def grid(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=x.dtype, device=x.device) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = src.long()  # src >= 0: truncation is floor
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, src - lo.to(src.dtype)

    y_lo, y_hi, dy = grid(x.shape[-2], size[0])
    x_lo, x_hi, dx = grid(x.shape[-1], size[1])
    top, bottom = x.index_select(-2, y_lo), x.index_select(-2, y_hi)
    top_left, top_right = top.index_select(-1, x_lo), top.index_select(-1, x_hi)
    bottom_left, bottom_right = bottom.index_select(-1, x_lo), bottom.index_select(-1, x_hi)
    top = top_left + (top_right - top_left) * dx.view(1, 1, 1, -1)
    bottom = bottom_left + (bottom_right - bottom_left) * dx.view(1, 1, 1, -1)
    return top + (bottom - top) * dy.view(1, 1, -1, 1)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tensors_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex SHA-256 over the tensors of a state dict (sorted names, dtype, shape and raw bytes): the identity of the
    weights themselves, whatever file format holds them (used for safetensors conversions)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _weights_error(path: str, found: str, how: str) -> ValueError:
    return ValueError(
        f"{path} is not the standard FID Inception weights: expected the file {FID_WEIGHTS_FILENAME} (SHA-256 "
        f"starting with {FID_WEIGHTS_SHA256_PREFIX}, torch.hub's check_hash convention), or its safetensors "
        f"conversion by hf_dgm.metrics.image_features.convert_fid_inception_to_safetensors; {how} {found}. "
        "FID/KID/IS computed with other weights are not comparable to published numbers. To use other weights "
        "deliberately, pass allow_nonstandard_weights=True (the metrics record it)."
    )


def load_fid_inception(
    path_or_repo_id: str | os.PathLike,
    preprocessing: str = "pytorch-fid",
    quantize: bool = True,
    filename: str | None = None,
    revision: str | None = None,
    allow_nonstandard_weights: bool = False,
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load the standard FID weights, checking their hash.

    `path_or_repo_id` is the `.pth` file itself (loaded with `torch.load(weights_only=True)`), a `.safetensors`
    conversion, a folder holding either, or a Hub repo id holding either (`filename` picks the file; by default
    the safetensors conversion, else `pt_inception-2015-12-05-6726825d.pth`).

    The `.pth` file's SHA-256 must start with `6726825d` (the hash part of its standard name, as
    `torch.hub.load_state_dict_from_url(check_hash=True)` checks it); a safetensors file must be a conversion made
    by :func:`convert_fid_inception_to_safetensors` (its metadata holds the source file's SHA-256 and the tensors'
    hash, both checked). Anything else raises a ValueError naming the expected file and hash, unless
    `allow_nonstandard_weights=True`: then the weights load with a warning, and the returned model records
    `standard_weights=False` and its `weights_sha256`, which the metrics report.
    """
    path = os.fspath(path_or_repo_id)
    if os.path.isdir(path):
        candidates = [filename] if filename else [FID_WEIGHTS_SAFETENSORS, FID_WEIGHTS_FILENAME]
        found = [os.path.join(path, c) for c in candidates if os.path.isfile(os.path.join(path, c))]
        if not found:
            raise FileNotFoundError(f"No FID Inception weights ({', '.join(candidates)}) in folder {path}.")
        path = found[0]
    elif not os.path.isfile(path):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        candidates = [filename] if filename else [FID_WEIGHTS_SAFETENSORS, FID_WEIGHTS_FILENAME]
        last_error: Exception | None = None
        for candidate in candidates:
            try:
                path = hf_hub_download(path, candidate, revision=revision)
                break
            except EntryNotFoundError as err:
                last_error = err
        else:
            raise FileNotFoundError(f"No FID Inception weights in Hub repo {path_or_repo_id}: {last_error}")
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        from safetensors.torch import load_file

        state_dict = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        weights_sha256 = tensors_sha256(state_dict)
        source = metadata.get("source_sha256", "")
        if metadata.get("tensors_sha256") != weights_sha256:
            problem, found = "its tensors hash to", weights_sha256
        elif not source.startswith(FID_WEIGHTS_SHA256_PREFIX):
            problem, found = "it was converted from a file with SHA-256", source or "(not recorded)"
        else:
            problem, found = None, ""
    else:
        weights_sha256 = file_sha256(path)
        problem = None if weights_sha256.startswith(FID_WEIGHTS_SHA256_PREFIX) else "its SHA-256 is"
        found = weights_sha256
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if problem is not None:
        if not allow_nonstandard_weights:
            raise _weights_error(path, found, problem)
        warnings.warn(
            f"Loading non-standard FID Inception weights {path} (SHA-256 {weights_sha256[:16]}...): "
            "FID/KID/IS are not comparable to published numbers."
        )
    model = FIDInceptionV3(preprocessing=preprocessing, quantize=quantize)
    model.load_weights(state_dict)
    model.weights_sha256 = weights_sha256
    model.standard_weights = problem is None
    return model.eval()


def convert_fid_inception_to_safetensors(
    pth_path: str | os.PathLike, output_path: str | os.PathLike, allow_nonstandard_weights: bool = False
) -> None:
    """Convert `pt_inception-2015-12-05-6726825d.pth` to safetensors (after checking its hash and that it loads).

    The metadata records the source file's SHA-256 and the tensors' hash, which :func:`load_fid_inception` checks.
    """
    from safetensors.torch import save_file

    pth_path = os.fspath(pth_path)
    source = file_sha256(pth_path)
    if not source.startswith(FID_WEIGHTS_SHA256_PREFIX) and not allow_nonstandard_weights:
        raise _weights_error(pth_path, source, "its SHA-256 is")
    state_dict = torch.load(pth_path, map_location="cpu", weights_only=True)
    FIDInceptionV3().load_weights(state_dict)
    state_dict = {k: v.contiguous() for k, v in state_dict.items()}
    metadata = {"source_sha256": source, "tensors_sha256": tensors_sha256(state_dict), "format": "pt"}
    save_file(state_dict, os.fspath(output_path), metadata=metadata)


def feature_extractor_description(extractor: Any) -> str:
    """What the metrics record about the features they measured in: the FID Inception weights' standing and hash,
    or that a custom extractor was used."""
    if isinstance(extractor, FIDInceptionV3):
        sha = getattr(extractor, "weights_sha256", None)
        if sha is None:
            return "fid-inception (weights not loaded through load_fid_inception)"
        if getattr(extractor, "standard_weights", False):
            return f"fid-inception-2015-12-05 (standard weights, sha256 {sha[:16]})"
        return f"fid-inception NON-STANDARD weights (allow_nonstandard_weights=True, sha256 {sha[:16]})"
    return f"custom feature extractor ({type(extractor).__name__})"


# ----------------------------------------------------------------------------------------------------------------
# Feature extraction
# ----------------------------------------------------------------------------------------------------------------


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
        return "features", _as_2d_float64(arr, "features")
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


# ----------------------------------------------------------------------------------------------------------------
# `evaluate` glue (used by the modules in hf_dgm/metrics/{fid,kid,inception_score})
# ----------------------------------------------------------------------------------------------------------------

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
