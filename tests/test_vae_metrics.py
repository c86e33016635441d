"""VAE evaluation math (hf_dgm.metrics.vae_math) and its offline `evaluate` modules, on cases computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import hf_dgm
from hf_dgm.metrics import vae_math


METRICS_DIR = Path(hf_dgm.__file__).resolve().parent / "metrics"


def _load(name):
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(METRICS_DIR / name))


def _normal_logpdf(x, mean, var):
    return -0.5 * math.log(2 * math.pi * var) - 0.5 * (x - mean) ** 2 / var


# ----------------------------------------------------------------------------------------------------- densities, KL
def test_gaussian_log_density_matches_hand_and_torch():
    z = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    mean = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(4.0)]], dtype=torch.float64)
    expected = _normal_logpdf(0.5, 0.0, 1.0) + _normal_logpdf(-1.0, 1.0, 4.0)
    assert vae_math.gaussian_log_density(z, mean, logvar).item() == pytest.approx(expected, abs=1e-12)
    dist = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    assert torch.allclose(vae_math.gaussian_log_density(z, mean, logvar), dist.log_prob(z).sum(-1))
    assert vae_math.standard_normal_log_density(z).item() == pytest.approx(
        _normal_logpdf(0.5, 0, 1) + _normal_logpdf(-1.0, 0, 1), abs=1e-12
    )


def test_kl_closed_form():
    mean = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[math.log(2.0), 0.0]], dtype=torch.float64)
    per_dim = vae_math.gaussian_kl_per_dim(mean, logvar)
    # ½(μ² + σ² − log σ² − 1) = ½(1 + 2 − ln 2 − 1) = 1 − ln2/2; the prior itself has KL 0
    assert per_dim[0, 0].item() == pytest.approx(1 - math.log(2) / 2, abs=1e-12)
    assert per_dim[0, 1].item() == 0.0
    assert vae_math.gaussian_kl(mean, logvar).item() == pytest.approx(1 - math.log(2) / 2, abs=1e-12)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    )
    assert torch.allclose(per_dim, ref)
    with pytest.raises(ValueError):
        vae_math.gaussian_kl(mean, logvar[:, :1])


# ------------------------------------------------------------------------------------------- importance weighting
A, S = 2.0, 0.5  # linear-Gaussian model: z ~ N(0,1), x|z ~ N(A z, S²)  =>  p(x) = N(0, A² + S²)


def _linear_gaussian(xs):
    x = torch.tensor(xs, dtype=torch.float64)
    post_mean = (A * x / (A**2 + S**2)).unsqueeze(1)
    post_logvar = torch.full_like(post_mean, math.log(S**2 / (A**2 + S**2)))
    exact = torch.tensor([_normal_logpdf(v, 0.0, A**2 + S**2) for v in xs], dtype=torch.float64)

    def log_likelihood_fn(latents):  # (B, c, 1) -> (B, c)
        return -0.5 * math.log(2 * math.pi * S**2) - 0.5 * (x[:, None] - A * latents[..., 0]) ** 2 / S**2

    return post_mean, post_logvar, exact, log_likelihood_fn


@pytest.mark.parametrize("num_samples,chunk_size", [(1, 5), (7, 3), (100, 5)])
def test_iw_with_true_posterior_is_exact_for_any_k(num_samples, chunk_size):
    mean, logvar, exact, fn = _linear_gaussian([-1.3, 0.0, 0.7, 2.5])
    calls = []

    def counting_fn(latents):
        calls.append(latents.shape[1])
        return fn(latents)

    est = vae_math.importance_weighted_log_likelihood(
        mean, logvar, counting_fn, num_samples=num_samples, chunk_size=chunk_size,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(est.log_marginal, exact, atol=1e-10)
    assert est.log_weights.shape == (4, num_samples)
    assert sum(calls) == num_samples and max(calls) <= chunk_size  # chunked as asked, last chunk smaller


def test_elbo_with_true_posterior_converges_to_log_px_and_iw_is_tighter_with_wrong_q():
    mean, logvar, exact, fn = _linear_gaussian([-1.3, 0.7])
    gen = torch.Generator().manual_seed(1)
    est = vae_math.importance_weighted_log_likelihood(mean, logvar, fn, num_samples=20000, chunk_size=5000, generator=gen)
    neg_elbo = vae_math.negative_elbo(vae_math.gaussian_kl(mean, logvar), est.mean_log_likelihood)
    assert torch.allclose(-neg_elbo, exact, atol=0.03)  # ELBO is tight when q is the true posterior
    # a wrong (too narrow, shifted) q: ELBO < IW bound <= log p(x), and the IW bound is close to exact
    wrong_mean, wrong_logvar = mean + 0.3, logvar - 1.0
    est = vae_math.importance_weighted_log_likelihood(wrong_mean, wrong_logvar, fn, num_samples=2000, chunk_size=500, generator=gen)
    elbo = -vae_math.negative_elbo(vae_math.gaussian_kl(wrong_mean, wrong_logvar), est.mean_log_likelihood)
    assert torch.all(elbo < est.log_marginal)
    assert torch.all(est.log_marginal <= exact + 0.02)
    assert torch.all((exact - est.log_marginal) < 0.5 * (exact - elbo))
    # the IW estimate is never below the mean log-weight of the same samples (Jensen), sample by sample
    assert torch.all(est.log_marginal >= est.log_weights.mean(dim=1) - 1e-12)


def test_iw_validates_inputs():
    mean, logvar, _, fn = _linear_gaussian([0.0])
    with pytest.raises(ValueError):
        vae_math.importance_weighted_log_likelihood(mean, logvar, fn, num_samples=0)
    with pytest.raises(ValueError):
        vae_math.importance_weighted_log_likelihood(mean, logvar, lambda z: fn(z)[:, :1], num_samples=4, chunk_size=2)


def test_perplexity():
    assert vae_math.perplexity(10.0, 5) == pytest.approx(math.exp(2.0))
    with pytest.raises(ValueError):
        vae_math.perplexity(1.0, 0)


# ----------------------------------------------------------------------------------------------- MI and AU
def test_mutual_information_hand_computed():
    # two posteriors N(−1,1), N(1,1) with samples at their means:
    # E log q(z|x) = −½log2π − ½;  log q(z_i) = −½log2π + log(1 + e^−2) − log 2
    mean = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    logvar = torch.zeros_like(mean)
    mi = vae_math.mutual_information(mean, logvar, latents=mean.clone())
    assert mi == pytest.approx(math.log(2) - 0.5 - math.log(1 + math.exp(-2)), abs=1e-12)


def test_mutual_information_gaussian_channel():
    # μ(x) ~ N(0, s²), q(z|x) = N(μ, σ²): the aggregate posterior is N(0, s² + σ²), I = ½ log(1 + s²/σ²) per dim
    gen = torch.Generator().manual_seed(0)
    n = 3000
    mean = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0], dtype=torch.float64)
    logvar = torch.zeros_like(mean)
    mi = vae_math.mutual_information(mean, logvar, generator=gen)
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(5.0)
    assert mi == pytest.approx(expected, abs=0.05)
    # collapsed posteriors (all equal to the prior) carry no information (zero up to Monte Carlo noise)
    assert vae_math.mutual_information(torch.zeros(n, 2), torch.zeros(n, 2), generator=gen) == pytest.approx(0.0, abs=0.05)


def test_active_units_hand_made():
    means = torch.tensor([[-0.5, 0.0, 1.0], [0.0, 0.05, 1.0], [0.5, 0.1, 1.0]])
    count, variances = vae_math.active_units(means)  # variances (unbiased): 0.25, 0.0025, 0
    assert count == 1
    assert variances.tolist() == pytest.approx([0.25, 0.0025, 0.0])
    assert vae_math.active_units(means, threshold=0.002)[0] == 2
    assert vae_math.active_units(means, threshold=0.25)[0] == 1  # ">=" as the original
    with pytest.raises(ValueError):
        vae_math.active_units(means[:1])


# ------------------------------------------------------------------------------------------ evaluate modules
def test_iw_nll_module_hand_case():
    metric = _load("iw_nll")
    # q = prior (mean 0, logvar 0), so log w_k = log p(x|z_k); K = 2 with log p(x|z) = −3, −5
    res = metric.compute(
        mean=[[0.0]], logvar=[[0.0]], latents=[[[0.3], [-1.2]]], log_likelihoods=[[-3.0, -5.0]],
        num_tokens=[4], num_words=[2],
    )
    log_px = -3.0 + math.log(1 + math.exp(-2)) - math.log(2)
    assert res["iw_nll"] == pytest.approx(-log_px, abs=1e-9)
    assert res["neg_elbo"] == pytest.approx(4.0, abs=1e-9)
    assert res["kl"] == pytest.approx(0.0, abs=1e-12)
    assert res["ppl_per_token"] == pytest.approx(math.exp(-log_px / 4), rel=1e-9)
    assert res["ppl_per_word"] == pytest.approx(math.exp(-log_px / 2), rel=1e-9)
    assert res["num_importance_samples"] == 2


def test_iw_nll_module_matches_math_on_linear_gaussian():
    metric = _load("iw_nll")
    mean, logvar, exact, fn = _linear_gaussian([-1.0, 0.5, 2.0])
    latents = vae_math.sample_gaussian(mean, logvar, 6, generator=torch.Generator().manual_seed(3))
    res = metric.compute(
        mean=mean.tolist(), logvar=logvar.tolist(), latents=latents.tolist(), log_likelihoods=fn(latents).tolist(),
        num_tokens=[3, 5, 7], num_words=[1, 2, 3],
    )
    assert res["iw_nll"] == pytest.approx(float(-exact.mean()), abs=1e-9)
    assert res["ppl_per_token"] == pytest.approx(math.exp(float(-exact.sum()) / 15), rel=1e-9)


def test_mutual_information_module():
    metric = _load("mutual_information")
    res = metric.compute(mean=[[-1.0], [1.0]], logvar=[[0.0], [0.0]], latents=[[-1.0], [1.0]])
    assert res["mutual_information"] == pytest.approx(math.log(2) - 0.5 - math.log(1 + math.exp(-2)), abs=1e-12)
    a = metric.compute(mean=[[-1.0], [1.0], [0.2]], logvar=[[0.0], [0.1], [-0.3]], seed=5)
    b = metric.compute(mean=[[-1.0], [1.0], [0.2]], logvar=[[0.0], [0.1], [-0.3]], seed=5)
    assert a["mutual_information"] == b["mutual_information"] and math.isfinite(a["mutual_information"])


def test_active_units_module():
    metric = _load("active_units")
    res = metric.compute(mean=[[-0.5, 0.0, 1.0], [0.0, 0.05, 1.0], [0.5, 0.1, 1.0]])
    assert res["active_units"] == 1 and res["latent_size"] == 3
    assert metric.compute(mean=[[-0.5, 0.0], [0.0, 0.05], [0.5, 0.1]], threshold=0.001)["active_units"] == 2


def test_reconstruction_bleu_module():
    metric = _load("reconstruction_bleu")
    same = ["the cat sat on the mat .", "a dog barked loudly at night"]
    res = metric.compute(predictions=same, references=same)
    assert res["bleu"] == pytest.approx(100.0) and res["exact_match"] == 1.0
    # hand-checked: n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (BP = 1): BLEU = (1/12)^(1/4)
    res = metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on a mat"])
    assert res["precisions"] == pytest.approx([500 / 6, 60.0, 50.0, 100 / 3])
    assert res["brevity_penalty"] == pytest.approx(1.0)
    assert res["bleu"] == pytest.approx(100 * (1 / 12) ** 0.25, abs=1e-6)
    assert res["exact_match"] == 0.0
