"""Importance-weighted NLL and perplexity of a Gaussian-latent VAE (Optimus / He et al. 2019 protocol).

Per example the module receives the posterior q(z|x) = N(mean, diag(exp(logvar))), the K latent samples
z_k ~ q(z|x) that were decoded, the decoder log-likelihoods log p(x|z_k), and the token / word counts of x.
It returns corpus-level IW-NLL, −ELBO, KL and perplexities per token and per word. The math lives in
`hf_dgm.metrics.vae_math`.
"""

import datasets
import evaluate
import torch

import hf_dgm.metrics.vae_math as vae_math


_DESCRIPTION = """
Importance-weighted estimate of the negative log-likelihood of a VAE with a standard-normal prior:
log p(x) ≈ logsumexp_k[log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, z_k ~ q(z|x).
Also reports −ELBO = KL − mean_k log p(x|z_k) (analytic, un-thresholded KL), the KL itself, and the perplexities
exp(Σ −log p(x) / Σ tokens) and exp(Σ −log p(x) / Σ words). Optimus counts tokens as decoder (GPT-2) tokens
including <BOS> and <EOS>.
"""

_KWARGS_DESCRIPTION = """
Args:
    mean (`list` of `list` of `float`): posterior means, one list of L floats per example.
    logvar (`list` of `list` of `float`): posterior log-variances, same shape as `mean`.
    latents (`list` of `list` of `list` of `float`): the K samples z_k (K × L) of each example.
    log_likelihoods (`list` of `list` of `float`): log p(x|z_k), K floats per example.
    num_tokens (`list` of `int`): tokens of each example (the perplexity unit of the original).
    num_words (`list` of `int`): words of each example.
Returns:
    iw_nll: mean over examples of −log p(x) (nats per sentence).
    neg_elbo: mean −ELBO; kl: mean KL; reconstruction_nll: mean of −mean_k log p(x|z_k).
    ppl_per_token, ppl_per_word: exp(Σ −log p(x) / Σ units).
    num_examples, num_tokens, num_words, num_importance_samples.
Examples:
    >>> metric = hf_dgm.metrics.load("iw_nll")  # evaluate.load of the packaged folder, from any cwd
    >>> metric.compute(mean=[[0.0]], logvar=[[0.0]], latents=[[[0.1], [-0.2]]],
    ...                log_likelihoods=[[-3.0, -3.5]], num_tokens=[4], num_words=[2])  # doctest: +SKIP
"""

_CITATION = """
@inproceedings{li2020optimus,
  title={Optimus: Organizing Sentences via Pre-trained Modeling of a Latent Space},
  author={Li, Chunyuan and Gao, Xiang and Li, Yuan and Peng, Baolin and Li, Xiujun and Zhang, Yizhe and Gao, Jianfeng},
  booktitle={EMNLP},
  year={2020}
}
@inproceedings{burda2016importance,
  title={Importance Weighted Autoencoders},
  author={Burda, Yuri and Grosse, Roger and Salakhutdinov, Ruslan},
  booktitle={ICLR},
  year={2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IwNll(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "mean": datasets.Sequence(datasets.Value("float64")),
                    "logvar": datasets.Sequence(datasets.Value("float64")),
                    "latents": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
                    "log_likelihoods": datasets.Sequence(datasets.Value("float64")),
                    "num_tokens": datasets.Value("int64"),
                    "num_words": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://github.com/ChunyuanLI/Optimus", "https://arxiv.org/abs/1509.00519"],
        )

    def _compute(self, mean, logvar, latents, log_likelihoods, num_tokens, num_words):
        if len(mean) == 0:
            raise ValueError("iw_nll needs at least one example")
        sizes = {len(ll) for ll in log_likelihoods}
        if len(sizes) != 1:
            raise ValueError(f"every example must carry the same number K of importance samples; got {sorted(sizes)}")
        mean_t = torch.tensor(mean, dtype=torch.float64)
        logvar_t = torch.tensor(logvar, dtype=torch.float64)
        latents_t = torch.tensor(latents, dtype=torch.float64)
        ll_t = torch.tensor(log_likelihoods, dtype=torch.float64)
        log_weights = vae_math.log_importance_weights(latents_t, mean_t, logvar_t, ll_t)
        log_marginal = vae_math.importance_weighted_log_marginal(log_weights)
        kl = vae_math.gaussian_kl(mean_t, logvar_t)
        neg_elbo = vae_math.negative_elbo(kl, ll_t.mean(dim=1))
        total_nll = float(-log_marginal.sum())
        total_tokens = int(sum(num_tokens))
        total_words = int(sum(num_words))
        return {
            "iw_nll": float(-log_marginal.mean()),
            "neg_elbo": float(neg_elbo.mean()),
            "kl": float(kl.mean()),
            "reconstruction_nll": float(-ll_t.mean()),
            "ppl_per_token": vae_math.perplexity(total_nll, total_tokens),
            "ppl_per_word": vae_math.perplexity(total_nll, total_words),
            "num_examples": len(mean),
            "num_tokens": total_tokens,
            "num_words": total_words,
            "num_importance_samples": int(ll_t.shape[1]),
        }
