"""Pure-torch math of the VAE evaluation metrics (the single place where it lives).

Everything here works on tensors of posterior parameters, latent samples and decoder log-likelihoods; nothing
knows about a particular model. The `evaluate` modules in this folder and `evaluate_optimus` both call into it.

Conventions (as in Optimus / He et al. 2019):
- The posterior is a diagonal Gaussian q(z|x) = N(mean, diag(exp(logvar))); the prior is N(0, I).
- Log-densities are summed over the latent dimension (the last axis).
- "log p(x|z)" is the decoder's summed token log-likelihood of a sentence (= minus its reconstruction loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch


LOG_2PI = math.log(2.0 * math.pi)

DEFAULT_NUM_IMPORTANCE_SAMPLES = 100
DEFAULT_CHUNK_SIZE = 5
DEFAULT_AU_THRESHOLD = 0.01


def _check_mean_logvar(mean: torch.Tensor, logvar: torch.Tensor) -> None:
    if mean.shape != logvar.shape:
        raise ValueError(f"`mean` and `logvar` must have the same shape; got {tuple(mean.shape)} and {tuple(logvar.shape)}")
    if mean.dim() < 1:
        raise ValueError("`mean` and `logvar` need at least one (latent) dimension")


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last (latent) axis.

    Args:
        z: (..., L) points; `mean` and `logvar` broadcast against it.
    Returns:
        (...) log-densities.
    """
    latent_size = z.shape[-1]
    return -0.5 * (((z - mean) ** 2) * torch.exp(-logvar)).sum(-1) - 0.5 * (latent_size * LOG_2PI + logvar.sum(-1))


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis: (..., L) -> (...)."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI


def gaussian_kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(mean, exp(logvar)) || N(0, 1)) per dimension: ½(μ² + e^logvar − logvar − 1). Same shape as input."""
    _check_mean_logvar(mean, logvar)
    return 0.5 * (mean**2 + torch.exp(logvar) - logvar - 1.0)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic, un-thresholded KL to the standard normal prior summed over dimensions: (..., L) -> (...)."""
    return gaussian_kl_per_dim(mean, logvar).sum(-1)


def sample_gaussian(
    mean: torch.Tensor, logvar: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw `num_samples` reparameterised samples per row: (B, L) -> (B, num_samples, L)."""
    _check_mean_logvar(mean, logvar)
    eps = torch.randn(
        (*mean.shape[:-1], num_samples, mean.shape[-1]), generator=generator, device=mean.device, dtype=mean.dtype
    )
    return mean.unsqueeze(-2) + torch.exp(0.5 * logvar).unsqueeze(-2) * eps


def log_importance_weights(
    latents: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, log_likelihoods: torch.Tensor
) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x).

    Args:
        latents: (B, K, L) samples z_k ~ q(z|x).
        mean, logvar: (B, L) posterior parameters.
        log_likelihoods: (B, K) log p(x|z_k).
    Returns:
        (B, K) log importance weights.
    """
    if latents.dim() != 3:
        raise ValueError(f"`latents` must be (batch, num_samples, latent_size); got shape {tuple(latents.shape)}")
    if log_likelihoods.shape != latents.shape[:2]:
        raise ValueError(
            f"`log_likelihoods` must be (batch, num_samples) = {tuple(latents.shape[:2])}; got {tuple(log_likelihoods.shape)}"
        )
    log_prior = standard_normal_log_density(latents)
    log_posterior = gaussian_log_density(latents, mean.unsqueeze(1), logvar.unsqueeze(1))
    return log_likelihoods + log_prior - log_posterior


def importance_weighted_log_marginal(log_weights: torch.Tensor) -> torch.Tensor:
    """IW estimate of log p(x): logsumexp_k(log w_k) − log K. (B, K) -> (B,)."""
    if log_weights.dim() != 2 or log_weights.shape[1] < 1:
        raise ValueError(f"`log_weights` must be (batch, num_samples>=1); got shape {tuple(log_weights.shape)}")
    return torch.logsumexp(log_weights, dim=1) - math.log(log_weights.shape[1])


@dataclass
class ImportanceWeightedEstimate:
    """Result of [`importance_weighted_log_likelihood`].

    Attributes:
        log_marginal: (B,) IW estimate of log p(x).
        mean_log_likelihood: (B,) mean over the K samples of log p(x|z_k) (the ELBO's reconstruction term).
        log_weights: (B, K) the log importance weights.
    """

    log_marginal: torch.Tensor
    mean_log_likelihood: torch.Tensor
    log_weights: torch.Tensor


def importance_weighted_log_likelihood(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    log_likelihood_fn: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int = DEFAULT_NUM_IMPORTANCE_SAMPLES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    generator: torch.Generator | None = None,
) -> ImportanceWeightedEstimate:
    """Importance-weighted log p(x) with q(z|x) as proposal, sampled in chunks (as Optimus' `loss_iw`).

    log p(x) ≈ logsumexp_k[log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, z_k ~ q(z|x).

    Args:
        mean, logvar: (B, L) posterior parameters.
        log_likelihood_fn: maps latents (B, c, L) to log p(x|z) (B, c) for a chunk of c samples.
        num_samples: K (the paper: 100).
        chunk_size: samples drawn and scored per call of `log_likelihood_fn` (the paper: 5); the last chunk may be
            smaller when K is not a multiple.
        generator: optional torch generator for reproducible samples.
    """
    _check_mean_logvar(mean, logvar)
    if mean.dim() != 2:
        raise ValueError(f"`mean`/`logvar` must be (batch, latent_size); got shape {tuple(mean.shape)}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int; got {num_samples!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int; got {chunk_size!r}")
    log_weights, log_likelihoods = [], []
    done = 0
    while done < num_samples:
        size = min(chunk_size, num_samples - done)
        latents = sample_gaussian(mean, logvar, size, generator=generator)
        chunk_ll = log_likelihood_fn(latents)
        if chunk_ll.shape != latents.shape[:2]:
            raise ValueError(
                f"`log_likelihood_fn` must return (batch, chunk) = {tuple(latents.shape[:2])}; got {tuple(chunk_ll.shape)}"
            )
        log_likelihoods.append(chunk_ll)
        log_weights.append(log_importance_weights(latents, mean, logvar, chunk_ll))
        done += size
    log_weights = torch.cat(log_weights, dim=1)
    return ImportanceWeightedEstimate(
        log_marginal=importance_weighted_log_marginal(log_weights),
        mean_log_likelihood=torch.cat(log_likelihoods, dim=1).mean(dim=1),
        log_weights=log_weights,
    )


def negative_elbo(kl: torch.Tensor, mean_log_likelihood: torch.Tensor) -> torch.Tensor:
    """−ELBO = KL(q(z|x)||p(z)) − E_q[log p(x|z)] (un-thresholded analytic KL, Monte Carlo reconstruction term)."""
    return kl - mean_log_likelihood


def perplexity(total_nll: float | torch.Tensor, num_units: float | torch.Tensor) -> float:
    """exp(Σ NLL / Σ units): per token when units are tokens, per word when they are words (inf on overflow)."""
    total_nll = float(total_nll)
    num_units = float(num_units)
    if num_units <= 0:
        raise ValueError(f"perplexity needs a positive number of tokens/words; got {num_units}")
    try:
        return math.exp(total_nll / num_units)
    except OverflowError:
        return math.inf


def posterior_neg_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """E_{q(z|x)}[log q(z|x)] in closed form: −½ L log 2π − ½ Σ_d (1 + logvar_d). (N, L) -> (N,)."""
    return -0.5 * logvar.shape[-1] * LOG_2PI - 0.5 * (1.0 + logvar).sum(-1)


def aggregate_posterior_log_density(
    latents: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, chunk_size: int = 1024
) -> torch.Tensor:
    """log q(z) with q(z) = 1/N Σ_j q(z|x_j), the aggregate posterior over N test posteriors.

    Args:
        latents: (M, L) points.
        mean, logvar: (N, L) test posteriors.
        chunk_size: rows of `latents` scored at a time (memory is chunk_size × N × L).
    Returns:
        (M,) logsumexp_j log q(z_i|x_j) − log N.
    """
    _check_mean_logvar(mean, logvar)
    out = []
    for start in range(0, latents.shape[0], chunk_size):
        z = latents[start : start + chunk_size].unsqueeze(1)  # (c, 1, L)
        log_density = gaussian_log_density(z, mean.unsqueeze(0), logvar.unsqueeze(0))  # (c, N)
        out.append(torch.logsumexp(log_density, dim=1) - math.log(mean.shape[0]))
    return torch.cat(out)


def mutual_information(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    latents: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """I(x; z) as He et al. (2019) `calc_mi` (used by Optimus): E_x E_q[log q(z|x)] − E_x E_q[log q(z)].

    The first term is analytic; the second draws ONE z_i ~ q(z|x_i) per test sentence and scores it against the
    aggregate posterior of all N test posteriors (logsumexp − log N).

    Args:
        mean, logvar: (N, L) posteriors of the whole test set.
        latents: optional (N, L) samples z_i (one per posterior) to use instead of drawing them.
        generator: optional torch generator for the samples.
    """
    _check_mean_logvar(mean, logvar)
    if mean.dim() != 2 or mean.shape[0] < 1:
        raise ValueError(f"`mean`/`logvar` must be (num_examples>=1, latent_size); got shape {tuple(mean.shape)}")
    mean = mean.double()
    logvar = logvar.double()
    if latents is None:
        latents = sample_gaussian(mean, logvar, 1, generator=generator).squeeze(1)
    elif latents.shape != mean.shape:
        raise ValueError(f"`latents` must be one sample per posterior, shape {tuple(mean.shape)}; got {tuple(latents.shape)}")
    neg_entropy = posterior_neg_entropy(logvar).mean()
    log_qz = aggregate_posterior_log_density(latents.double(), mean, logvar).mean()
    return float(neg_entropy - log_qz)


def active_units(means: torch.Tensor, threshold: float = DEFAULT_AU_THRESHOLD) -> tuple[int, torch.Tensor]:
    """Active units (Burda et al. 2016; Optimus `calc_au`): dimension d is active when Var_x[E_q(z|x) z_d] ≥ threshold.

    The variance is the unbiased one (divided by N − 1), as the original.

    Args:
        means: (N, L) posterior means of the test set, N ≥ 2.
        threshold: δ (the paper: 0.01).
    Returns:
        (number of active units, (L,) per-dimension variances).
    """
    if means.dim() != 2 or means.shape[0] < 2:
        raise ValueError(f"`means` must be (num_examples>=2, latent_size); got shape {tuple(means.shape)}")
    if threshold < 0:
        raise ValueError(f"`threshold` must be >= 0; got {threshold}")
    variances = means.double().var(dim=0, unbiased=True)
    return int((variances >= threshold).sum().item()), variances


__all__ = [
    "DEFAULT_AU_THRESHOLD",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_NUM_IMPORTANCE_SAMPLES",
    "ImportanceWeightedEstimate",
    "active_units",
    "aggregate_posterior_log_density",
    "gaussian_kl",
    "gaussian_kl_per_dim",
    "gaussian_log_density",
    "importance_weighted_log_likelihood",
    "importance_weighted_log_marginal",
    "log_importance_weights",
    "mutual_information",
    "negative_elbo",
    "perplexity",
    "posterior_neg_entropy",
    "sample_gaussian",
    "standard_normal_log_density",
]
