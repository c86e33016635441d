"""The image-metric math: Fréchet distance, Kernel Inception Distance, Inception Score, precision and recall.

Everything here works on feature vectors (N, D) or class logits/probabilities (N, C), float64; nothing knows about
a network. Feature extraction (images -> features) is in :mod:`hf_dgm.metrics.image_features`, the FID Inception
network in :mod:`hf_dgm.metrics.inception`.

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
* Precision / recall: Kynkäänniemi et al. 2019 ("Improved Precision and Recall Metric for Assessing Generative
  Models") — each set's manifold is the union of balls around its samples with radius the distance to the k-th
  nearest neighbour in that set (k = 3); precision is the share of generated samples inside the real manifold,
  recall the share of real samples inside the generated one. The paper measures in VGG-16 features of 50,000
  images; on any other features (e.g. raw pixels of small images) the values are not comparable to published ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

KID_NUM_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_DEGREE = 3
KID_COEF0 = 1.0
IS_SPLITS = 10
RNG_SEED = 2020


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64 (pytorch-fid convention)."""
    features = as_2d_float64(features, "features")
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
    f1 = as_2d_float64(features1, "features1")
    f2 = as_2d_float64(features2, "features2")
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
        logits = torch.as_tensor(as_2d_float64(logits, "logits"))
        log_p = torch.log_softmax(logits, dim=1).numpy()
        p = np.exp(log_p)
    else:
        p = as_2d_float64(probabilities, "probabilities")
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
    real = torch.from_numpy(as_2d_float64(real_features, "real_features"))
    fake = torch.from_numpy(as_2d_float64(fake_features, "fake_features"))
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


def as_2d_float64(x: Any, name: str) -> np.ndarray:
    """`x` (array or tensor) as a finite float64 array (N, D); a ValueError naming `name` otherwise."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (num_samples, dim), got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return x
