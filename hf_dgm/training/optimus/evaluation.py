"""Evaluation of an Optimus sentence VAE with the protocol of the paper (`evaluate()` of the original
`run_lm_vae_training.py`), plus reconstruction BLEU.

- IW-NLL: log p(x) ≈ logsumexp_k[log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K with K = 100 samples
  z_k ~ q(z|x) scored 5 at a time.
- PPL per token = exp(Σ −log p(x) / Σ tokens), tokens = decoder tokens of `BOS sentence EOS` (BOS and EOS
  included, as the original); PPL per word = exp(Σ −log p(x) / Σ (words + 1)), the word-level convention of the
  LSTM-VAE literature (He et al. 2019: every word plus the end of sentence).
- −ELBO = KL − mean_k log p(x|z_k) with the analytic, un-thresholded KL.
- MI (He et al. 2019 `calc_mi`) and AU (variance over the test set of μ_d(x) ≥ 0.01) from the posteriors of all
  evaluated sentences.
- Reconstruction BLEU: corpus BLEU (sacrebleu) of the decoded posterior means against the input sentences.

The math is in `hf_dgm.metrics.vae_math`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sacrebleu
import torch
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from tqdm.auto import tqdm

from ...metrics.vae_math import DEFAULT_AU_THRESHOLD
from ...metrics.vae_math import DEFAULT_CHUNK_SIZE
from ...metrics.vae_math import DEFAULT_NUM_IMPORTANCE_SAMPLES
from ...metrics.vae_math import active_units
from ...metrics.vae_math import gaussian_kl
from ...metrics.vae_math import importance_weighted_log_likelihood
from ...metrics.vae_math import mutual_information
from ...metrics.vae_math import negative_elbo
from ...metrics.vae_math import perplexity


def count_words(sentence: str) -> int:
    """Words of a sentence for per-word perplexity: whitespace-separated words plus one end-of-sentence."""
    return len(sentence.split()) + 1


@torch.no_grad()
def evaluate_optimus(
    model,
    processor,
    sentences: list[str],
    num_importance_samples: int = DEFAULT_NUM_IMPORTANCE_SAMPLES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = 8,
    au_threshold: float = DEFAULT_AU_THRESHOLD,
    compute_bleu: bool = True,
    generation_kwargs: dict | None = None,
    progress: bool = True,
    max_length: int = 128,
    seed: int = 0,
    num_reconstruction_examples: int = 5,
) -> dict[str, Any]:
    """
    Evaluate `model` (an `OptimusForConditionalGeneration`) on `sentences`.

    Args:
        model: the Optimus model (put in eval mode here).
        processor: its `OptimusProcessor` (both tokenizers).
        sentences (`list[str]`): the test sentences, one per example.
        num_importance_samples (`int`, defaults to 100): K of the IW estimate.
        chunk_size (`int`, defaults to 5): samples decoded together per sentence (a decoder batch holds
            `batch_size * chunk_size` sequences).
        batch_size (`int`, defaults to 8): sentences per batch.
        au_threshold (`float`, defaults to 0.01): δ of the active-unit count.
        compute_bleu (`bool`, defaults to `True`): decode the posterior means and score them against the inputs.
        generation_kwargs (`dict`, *optional*): passed to `model.generate` for the reconstructions (greedy by default).
        progress (`bool`, defaults to `True`): show tqdm bars.
        max_length (`int`, defaults to 128): tokens per side; longer sentences are truncated (counted in
            `num_truncated`; their NLL is that of the truncated sentence).
        seed (`int`, defaults to 0): seed of the latent samples (IW and MI).
        num_reconstruction_examples (`int`, defaults to 5): (input, reconstruction) pairs returned for inspection.

    Returns:
        `dict` with `iw_nll`, `neg_elbo`, `kl`, `reconstruction_nll` (nats per sentence, means over sentences),
        `ppl_per_token`, `ppl_per_word`, `elbo_ppl_per_token`, `mutual_information`, `active_units`,
        `latent_size`, `reconstruction_bleu`, `reconstruction_exact_match`, `reconstruction_examples`, and the
        counts `num_examples`, `num_tokens`, `num_words`, `num_truncated`, `num_importance_samples`, `au_threshold`.
    """
    sentences = _check_inputs(sentences, num_importance_samples, chunk_size, batch_size, au_threshold)
    model.eval()
    measured = likelihood_measurements(
        model, processor, sentences, num_importance_samples=num_importance_samples, chunk_size=chunk_size,
        batch_size=batch_size, max_length=max_length, seed=seed, progress=progress,
    )
    metrics = likelihood_metrics(measured, sentences)
    metrics.update(latent_metrics(measured.means, measured.logvars, au_threshold=au_threshold, seed=seed))
    metrics.update({
        "num_examples": len(sentences),
        "num_tokens": measured.num_tokens,
        "num_words": metrics.pop("num_words"),
        "num_truncated": measured.num_truncated,
        "num_importance_samples": num_importance_samples,
        "au_threshold": au_threshold,
    })
    if compute_bleu:
        scores = reconstruction_scores(
            model, processor, sentences, batch_size=batch_size, max_length=max_length,
            generation_kwargs=generation_kwargs, progress=progress,
        )
        metrics["reconstruction_bleu"] = scores["bleu"]
        metrics["reconstruction_exact_match"] = scores["exact_match"]
        metrics["reconstruction_examples"] = [
            {"input": s, "reconstruction": r}
            for s, r in list(zip(sentences, scores["reconstructions"]))[:num_reconstruction_examples]
        ]
    return metrics


def _check_inputs(sentences: Any, num_importance_samples: Any, chunk_size: Any, batch_size: Any,
                  au_threshold: float) -> list[str]:
    """The stripped sentences, after checking them and the sample/batch sizes (ValueError otherwise)."""
    if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)):
        raise ValueError("`sentences` must be a list of strings")
    sentences = [s.strip() for s in sentences]
    if not sentences or not all(isinstance(s, str) and s for s in sentences):
        raise ValueError("`sentences` must be a non-empty list of non-empty strings")
    for name, value in (("num_importance_samples", num_importance_samples), ("chunk_size", chunk_size), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; got {value!r}")
    if au_threshold < 0:
        raise ValueError(f"`au_threshold` must be >= 0; got {au_threshold}")
    return sentences


@dataclass
class LikelihoodMeasurements:
    """Per-sentence measurements of the IW pass (float64, CPU): `log_marginal` (N,) the IW estimate of log p(x),
    `mean_log_likelihood` (N,) mean_k log p(x|z_k), `kl` (N,) the analytic KL, the posteriors' `means` and
    `logvars` (N, latent_size); and the decoder token counts (BOS and EOS included) and truncated sentences."""

    log_marginal: torch.Tensor
    mean_log_likelihood: torch.Tensor
    kl: torch.Tensor
    means: torch.Tensor
    logvars: torch.Tensor
    num_tokens: int
    num_truncated: int


@torch.no_grad()
def likelihood_measurements(
    model, processor, sentences: list[str], *, num_importance_samples: int = DEFAULT_NUM_IMPORTANCE_SAMPLES,
    chunk_size: int = DEFAULT_CHUNK_SIZE, batch_size: int = 8, max_length: int = 128, seed: int = 0,
    progress: bool = True,
) -> LikelihoodMeasurements:
    """The importance-weighted pass over `sentences` in batches: K latent samples per sentence from one generator
    seeded with `seed`, decoded `chunk_size` at a time."""
    device = model.device
    generator = torch.Generator(device=device).manual_seed(seed)
    batches = [sentences[i : i + batch_size] for i in range(0, len(sentences), batch_size)]
    parts: dict[str, list[torch.Tensor]] = {"log_marginal": [], "mean_log_likelihood": [], "kl": [], "means": [],
                                            "logvars": []}
    num_tokens = num_truncated = 0
    for texts in tqdm(batches, desc="IW-NLL", disable=not progress):
        batch = processor(list(texts), max_length=max_length, return_tensors="pt").to(device)
        full_lengths = [len(ids) for ids in processor.decoder_token_ids(list(texts), max_length=10**9)]
        lengths = batch["decoder_attention_mask"].sum(-1)
        num_truncated += sum(int(full > int(kept)) for full, kept in zip(full_lengths, lengths))
        num_tokens += int(lengths.sum())  # BOS + tokens + EOS, as the original counts
        posterior = model.encode(batch["input_ids"], batch["attention_mask"])
        mean, logvar = posterior.mean.float(), posterior.logvar.float()
        estimate = importance_weighted_log_likelihood(
            mean, logvar, _decoder_log_likelihood(model, batch), num_samples=num_importance_samples,
            chunk_size=chunk_size, generator=generator,
        )
        parts["log_marginal"].append(estimate.log_marginal.double().cpu())
        parts["mean_log_likelihood"].append(estimate.mean_log_likelihood.double().cpu())
        parts["kl"].append(gaussian_kl(mean, logvar).double().cpu())
        parts["means"].append(mean.double().cpu())
        parts["logvars"].append(logvar.double().cpu())
    return LikelihoodMeasurements(**{k: torch.cat(v) for k, v in parts.items()}, num_tokens=num_tokens,
                                  num_truncated=num_truncated)


def _decoder_log_likelihood(model, batch):
    """latents (B, C, latent_size) -> log p(x|z) (B, C) of the batch's decoder sequences."""
    dec_ids, dec_mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]

    def log_likelihood(latents: torch.Tensor) -> torch.Tensor:
        b, c, _ = latents.shape
        out = model(
            decoder_input_ids=dec_ids.repeat_interleave(c, dim=0),
            decoder_attention_mask=dec_mask.repeat_interleave(c, dim=0),
            latents=latents.reshape(b * c, -1).to(model.dtype),
        )
        return -out.reconstruction_loss.float().view(b, c)

    return log_likelihood


def likelihood_metrics(measured: LikelihoodMeasurements, sentences: list[str]) -> dict[str, Any]:
    """IW-NLL, −ELBO, KL, reconstruction NLL (nats per sentence, means), the perplexities per token and per word
    (IW and ELBO), and `num_words`."""
    neg_elbo = negative_elbo(measured.kl, measured.mean_log_likelihood)
    num_words = sum(count_words(s) for s in sentences)
    total_nll = float(-measured.log_marginal.sum())
    return {
        "iw_nll": float(-measured.log_marginal.mean()),
        "neg_elbo": float(neg_elbo.mean()),
        "kl": float(measured.kl.mean()),
        "reconstruction_nll": float(-measured.mean_log_likelihood.mean()),
        "ppl_per_token": perplexity(total_nll, measured.num_tokens),
        "ppl_per_word": perplexity(total_nll, num_words),
        "elbo_ppl_per_token": perplexity(float(neg_elbo.sum()), measured.num_tokens),
        "num_words": num_words,
    }


def latent_metrics(means: torch.Tensor, logvars: torch.Tensor, *, au_threshold: float = DEFAULT_AU_THRESHOLD,
                   seed: int = 0) -> dict[str, Any]:
    """MI (latent samples from a CPU generator seeded with `seed`), AU (None for fewer than 2 sentences) and the
    latent size, from the posteriors (N, latent_size) of all evaluated sentences."""
    mi = mutual_information(means, logvars, generator=torch.Generator().manual_seed(seed))
    au = active_units(means, threshold=au_threshold)[0] if means.shape[0] >= 2 else None
    return {"mutual_information": mi, "active_units": au, "latent_size": int(means.shape[1])}


@torch.no_grad()
def reconstruction_scores(
    model,
    processor,
    sentences: list[str],
    batch_size: int = 8,
    max_length: int = 128,
    generation_kwargs: dict | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """
    Decode the posterior mean of each sentence (greedy unless `generation_kwargs` say otherwise) and score the
    decodes against their inputs: `bleu` (corpus BLEU, sacrebleu), `exact_match` (share of decodes equal to their
    input under BLEU's 13a tokenization, so "mat ." and "mat." match) and `reconstructions` (one string per sentence).
    Leaves the model in eval mode.
    """
    model.eval()
    reconstructions: list[str] = []
    batches = [sentences[i : i + batch_size] for i in range(0, len(sentences), batch_size)]
    for texts in tqdm(batches, desc="Reconstruction", disable=not progress):
        batch = processor(list(texts), max_length=max_length, return_tensors="pt").to(model.device)
        ids = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **(generation_kwargs or {}))
        reconstructions.extend(processor.batch_decode(ids))
    if len(reconstructions) != len(sentences):
        raise ValueError(
            f"got {len(reconstructions)} reconstructions for {len(sentences)} sentences; "
            "do not ask `generation_kwargs` for several sequences per input"
        )
    tokenize = Tokenizer13a()
    exact = sum(tokenize(r).split() == tokenize(s).split() for r, s in zip(reconstructions, sentences))
    return {
        "bleu": float(sacrebleu.corpus_bleu(reconstructions, [sentences]).score),
        "exact_match": exact / len(sentences),
        "reconstructions": reconstructions,
    }


@torch.no_grad()
def interpolation_figures(
    model,
    processor,
    sentences: list[str],
    num_pairs: int = 8,
    num_steps: int = 5,
    max_length: int = 128,
    generation_kwargs: dict | None = None,
) -> dict[str, Any]:
    """
    Interpolations between the posterior means of sentence pairs (0, 1), (2, 3), ... decoded greedily at
    `num_steps` evenly spaced α from 0 to 1. Returns `interpolation_endpoint_bleu` (mean sentence BLEU of the α = 0
    and α = 1 decodes against their source sentences: do the paths start and end where they should?),
    `interpolation_distinct` (mean number of distinct sentences per path: does it move?), `num_interpolation_pairs`,
    and `interpolations` (the decoded paths, for inspection).
    """
    if len(sentences) < 2:
        raise ValueError("interpolations need at least 2 sentences")
    pairs = [(sentences[i], sentences[i + 1]) for i in range(0, min(len(sentences) - 1, 2 * num_pairs), 2)]
    starts = processor([a for a, _ in pairs], max_length=max_length, return_tensors="pt").to(model.device)
    ends = processor([b for _, b in pairs], max_length=max_length, return_tensors="pt").to(model.device)
    z_start = model.encode(starts["input_ids"], starts["attention_mask"]).mean
    z_end = model.encode(ends["input_ids"], ends["attention_mask"]).mean
    out = model.interpolate(z_start, z_end, num_steps=num_steps, **(generation_kwargs or {}))
    texts = processor.batch_decode(out.sequences)
    paths, endpoint_bleu, distinct = [], [], []
    for b, (a, c) in enumerate(pairs):
        path = texts[b * num_steps : (b + 1) * num_steps]
        paths.append({"source": a, "target": c, "alphas": out.alphas.tolist(), "texts": path})
        endpoint_bleu += [sacrebleu.sentence_bleu(path[0], [a]).score, sacrebleu.sentence_bleu(path[-1], [c]).score]
        distinct.append(len(set(path)))
    return {
        "interpolation_endpoint_bleu": sum(endpoint_bleu) / len(endpoint_bleu),
        "interpolation_distinct": sum(distinct) / len(distinct),
        "num_interpolation_pairs": len(pairs),
        "num_interpolation_steps": num_steps,
        "interpolations": paths,
    }


__all__ = [
    "evaluate_optimus", "likelihood_measurements", "likelihood_metrics", "latent_metrics", "LikelihoodMeasurements",
    "interpolation_figures", "reconstruction_scores", "count_words",
]
