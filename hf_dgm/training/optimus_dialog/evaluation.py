"""Dialog response metrics as the original `eval_dialog_response.py` computes them (after DialogWAE), and the loop
that samples several responses per test context.

- **BLEU precision / recall** over multiple responses: for each context, every sampled response is scored against
  the reference with sentence BLEU of 1- to 3-grams (weights 1/3 each) and NLTK's smoothing *method 7* (method 4,
  then method 5); recall = the best response's score, precision = the mean; both averaged over the contexts, and
  their F1. NLTK is not a dependency: [`sentence_bleu`] re-implements NLTK 3.10's `sentence_bleu` with
  `SmoothingFunction().method7` (values checked against it in the tests), including its quirks — method 5 averages
  with the *5-gram* precision whatever the maximum order, so with 3-gram weights an exact copy of the reference
  scores above 1 (1.154 for six words). `smoothing="none"` gives plain BLEU-3 (0 when some order has no match).
- **distinct-n** (Li et al., 2016): *intra* = distinct n-grams / n-grams of each response, averaged over a context's
  responses; *inter* = distinct n-grams / n-grams over all of a context's responses; both with the original's
  1e-12 / 1e-5 smoothing, averaged over contexts.

Words are whitespace-separated tokens. The original's embedding scores (BOW average/extrema/greedy over GloVe) need a
word-vector file and are not computed.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

BLEU_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)
METHOD4_K = 5  # NLTK's SmoothingFunction default k
SMOOTHINGS = ("method7", "none")


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def modified_precision(references: Sequence[Sequence[str]], hypothesis: Sequence[str], n: int) -> tuple[int, int]:
    """Clipped n-gram matches and the hypothesis's n-gram count (at least 1), as (numerator, denominator)."""
    counts = ngram_counts(hypothesis, n)
    max_ref: Counter = Counter()
    for reference in references:
        max_ref |= ngram_counts(reference, n)
    clipped = sum(min(count, max_ref[gram]) for gram, count in counts.items())
    return clipped, max(1, sum(counts.values()))


def brevity_penalty(references: Sequence[Sequence[str]], hyp_len: int) -> float:
    """exp(1 − r/c) with r the reference length closest to c = `hyp_len` (ties: the shorter); 1 when c > r."""
    ref_len = min((len(r) for r in references), key=lambda length: (abs(length - hyp_len), length))
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


def _method7(fractions: list[tuple[int, int]], references, hypothesis) -> list[float]:
    """NLTK's method 4 (zero matches get 1 / (2^k' · 5 / ln|h|) over the count), then method 5 (each precision
    averaged with its smoothed lower neighbour and its higher one, the highest with the 5-gram precision)."""
    hyp_len = len(hypothesis)
    p_n: list[float] = []
    unmatched = 1
    for numerator, denominator in fractions:
        if numerator == 0 and hyp_len > 1:
            p_n.append(1 / (2**unmatched * METHOD4_K / math.log(hyp_len)) / denominator)
            unmatched += 1
        else:
            p_n.append(numerator / denominator)
    five = modified_precision(references, hypothesis, 5)
    higher = p_n[1:] + [five[0] / five[1]]
    previous = p_n[0] + 1
    smoothed = []
    for p_i, p_next in zip(p_n, higher):
        previous = (previous + p_i + p_next) / 3
        smoothed.append(previous)
    return smoothed


def sentence_bleu(
    references: Sequence[Sequence[str]],
    hypothesis: Sequence[str],
    weights: Sequence[float] = BLEU_WEIGHTS,
    smoothing: str = "method7",
) -> float:
    """Sentence BLEU of a tokenized `hypothesis` against tokenized `references` (NLTK's definition; see the module
    docstring). 0 when no unigram matches."""
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"`smoothing` must be one of {SMOOTHINGS}; got {smoothing!r}")
    if not references:
        raise ValueError("sentence_bleu needs at least one reference")
    fractions = [modified_precision(references, hypothesis, n) for n in range(1, len(weights) + 1)]
    if fractions[0][0] == 0:
        return 0.0
    if smoothing == "none":
        if any(numerator == 0 for numerator, _ in fractions):
            return 0.0
        p_n = [numerator / denominator for numerator, denominator in fractions]
    else:
        p_n = _method7(fractions, references, hypothesis)
    score = math.fsum(w * math.log(p) for w, p in zip(weights, p_n) if p > 0)
    return brevity_penalty(references, len(hypothesis)) * math.exp(score)


def bleu_recall_precision(
    hypotheses: Sequence[Sequence[str]], reference: Sequence[str], smoothing: str = "method7"
) -> tuple[float, float]:
    """(recall, precision) of several responses to one context: the best and the mean sentence BLEU."""
    if not hypotheses:
        raise ValueError("no responses to score")
    scores = [sentence_bleu([reference], hyp, smoothing=smoothing) for hyp in hypotheses]
    return max(scores), sum(scores) / len(scores)


def distinct_n(responses: Sequence[Sequence[str]]) -> dict[str, float]:
    """Intra (mean over responses) and inter (over all responses) distinct-1 and distinct-2 of one context."""
    if not responses:
        raise ValueError("no responses to score")
    result: dict[str, float] = {}
    for n in (1, 2):
        intra = []
        pooled: Counter = Counter()
        total = 0
        for tokens in responses:
            grams = ngram_counts(tokens, n)
            count = max(0, len(tokens) - n + 1)
            intra.append((len(grams) + 1e-12) / (count + 1e-5))
            pooled.update(grams)
            total += count
        result[f"intra_distinct_{n}"] = sum(intra) / len(intra)
        result[f"inter_distinct_{n}"] = (len(pooled) + 1e-12) / (total + 1e-5)
    return result


def dialog_response_metrics(items: Sequence[tuple[str, Sequence[str]]], smoothing: str = "method7") -> dict[str, float]:
    """
    Metrics over `items`, one per test context: `(reference_text, [response_text, ...])`. Returns `bleu_recall`,
    `bleu_precision`, `bleu_f1`, `intra_distinct_1/2`, `inter_distinct_1/2`, `average_length` (words),
    `num_contexts`, `num_responses`.
    """
    if not items:
        raise ValueError("no contexts to score")
    sums: Counter = Counter()
    responses = 0
    for reference, texts in items:
        hyps = [text.split() for text in texts]
        recall, precision = bleu_recall_precision(hyps, reference.split(), smoothing=smoothing)
        sums["bleu_recall"] += recall
        sums["bleu_precision"] += precision
        for key, value in distinct_n(hyps).items():
            sums[key] += value
        sums["average_length"] += sum(len(h) for h in hyps) / len(hyps)
        responses += len(hyps)
    metrics = {key: value / len(items) for key, value in sums.items()}
    recall, precision = metrics["bleu_recall"], metrics["bleu_precision"]
    metrics["bleu_f1"] = 2 * precision * recall / (precision + recall + 1e-11)
    metrics["num_contexts"] = len(items)
    metrics["num_responses"] = responses
    return metrics


def group_by_context(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct context (its first reference), in first-seen order, as the original groups its file."""
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    for pair in pairs:
        key = tuple(pair["context"])
        if key not in seen:
            seen[key] = {"context": list(pair["context"]), "response": pair["response"]}
    return list(seen.values())


# --------------------------------------------------------------------------------------------------------------
# Sampling responses from a model
# --------------------------------------------------------------------------------------------------------------


def sample_responses(
    model, processor, contexts: Sequence[Sequence[str]], num_responses: int = 10, seed: int = 0, batch_size: int = 8,
    **generation_kwargs,
) -> list[list[str]]:
    """`num_responses` sampled responses (texts) per context, in batches, from one seeded generator state."""
    import torch

    from hf_dgm.models.optimus_dialog.processing_optimus_dialog import encode_contexts

    model.eval()
    out: list[list[str]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(contexts), batch_size):
            chunk = contexts[start:start + batch_size]
            batch = encode_contexts(processor.tokenizer, chunk, max_length=model.config.max_context_length)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            ids = model.generate_responses(batch["context_input_ids"], batch["context_attention_mask"],
                                           num_responses=num_responses, **generation_kwargs)
            texts = processor.batch_decode(ids)
            out += [texts[i * num_responses:(i + 1) * num_responses] for i in range(len(chunk))]
    return out


def reconstruction_nll(model, processor, pairs: Sequence[dict[str, Any]], batch_size: int = 16, max_length: int = 64) -> float:
    """Mean NLL (nats per response, summed over its tokens) of the reference responses decoded from their contexts'
    posterior means (the S2S branch, eval mode)."""
    import torch

    from .data import DialogDataCollator, tokenize_pair

    collate = DialogDataCollator(processor)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            rows = [tokenize_pair(p, processor, model.config.max_context_length, max_length)
                    for p in pairs[start:start + batch_size]]
            batch = {k: v.to(model.device) for k, v in collate(rows).items()}
            out = model(**batch, sample_latent=False)
            total += out.branch_reconstruction_losses[:, 1].sum().item()
            count += len(rows)
    return total / max(1, count)


def evaluate_dialog(
    model, processor, pairs: Sequence[dict[str, Any]], num_responses: int = 10, max_contexts: int | None = None,
    seed: int = 0, max_length: int = 64, **generation_kwargs,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Metrics of [`dialog_response_metrics`] plus `reconstruction_nll` over the distinct contexts of `pairs` (the
    first `max_contexts`), and the generations (`context`, `response`, `responses`) they were computed from."""
    grouped = group_by_context(pairs)[:max_contexts] if max_contexts else group_by_context(pairs)
    if not grouped:
        raise ValueError("no evaluation pairs")
    responses = sample_responses(model, processor, [g["context"] for g in grouped], num_responses=num_responses,
                                 seed=seed, **generation_kwargs)
    generations = [dict(g, responses=r) for g, r in zip(grouped, responses)]
    metrics = dialog_response_metrics([(g["response"], g["responses"]) for g in generations])
    metrics["reconstruction_nll"] = reconstruction_nll(model, processor, grouped, max_length=max_length)
    return metrics, generations


def write_generations(generations: Sequence[dict[str, Any]], path) -> None:
    """The original's generation file: one line per response, `context<TAB>reference<TAB>response`, the context's
    turns joined by ` EOS `."""
    from pathlib import Path

    lines = [
        "\t".join([" EOS ".join(g["context"]), g["response"], text])
        for g in generations for text in g["responses"]
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
