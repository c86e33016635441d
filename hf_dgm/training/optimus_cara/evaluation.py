"""Evaluating label-conditional generation: a judge classifier, label accuracy, plain-decoder perplexity, distinct-n.

- **judge**: TF-IDF (word 1-2 grams) + logistic regression (scikit-learn) trained on real labelled sentences; its
  accuracy on held-out real sentences is reported next to the figure it judges (`judge_accuracy`);
- **label accuracy**: the share of generated sentences (the same number per label) the judge assigns to their
  requested label, overall and per label (chance: 1 / num_labels);
- **plain-decoder perplexity**: per-token perplexity of the generated sentences under a plain causal LM (the
  pretrained decoder the Optimus was composed from, no latent), next to the same figure for real held-out sentences;
- **distinct-n**: distinct n-grams / all n-grams over the generated sentences (n = 1, 2).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def train_judge(sentences: Sequence[str], labels: Sequence[int], seed: int = 0):
    """A fitted scikit-learn pipeline: TF-IDF (word 1-2 grams, min_df 2, sublinear tf) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(labels)) < 2:
        raise ValueError("the judge needs sentences of at least two labels")
    judge = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=1000, random_state=seed),
    )
    judge.fit(list(sentences), list(labels))
    return judge


def judge_accuracy(judge, sentences: Sequence[str], labels: Sequence[int]) -> float:
    predicted = judge.predict(list(sentences))
    return float(sum(int(p) == int(y) for p, y in zip(predicted, labels)) / max(1, len(labels)))


def distinct_n(sentences: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the whitespace-tokenised sentences (0 when there are none)."""
    total, seen = 0, set()
    for sentence in sentences:
        words = sentence.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


@torch.no_grad()
def generate_per_label(
    model, num_per_label: int, seed: int = 0, batch_size: int = 64, **generation_kwargs
) -> tuple[list[str], list[int]]:
    """`num_per_label` sentences for every label (greedy from G's latents by default), label-major."""
    texts, labels = [], []
    rng = torch.Generator().manual_seed(seed)
    for label in range(model.config.num_labels):
        for start in range(0, num_per_label, batch_size):
            count = min(batch_size, num_per_label - start)
            ids = model.generate([label] * count, generator=rng, **generation_kwargs)
            texts += [t.strip() for t in model.processor.batch_decode(ids)]
            labels += [label] * count
    return texts, labels


def load_plain_decoder(spec: str, processor):
    """The plain LM for the fluency figure: `"offline"` (the pip-shipped SmolLM2-135M, the main job's decoder), or a
    causal-LM folder/Hub id (`"folder::file.gguf"` for a GGUF file in it); embeddings resized to the decoder
    tokenizer (added special tokens)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if spec == "offline":
        from ..offline_assets import smollm2_path

        folder, gguf = smollm2_path()
        spec, kwargs = str(folder), {"gguf_file": gguf}
    elif "::" in spec:
        spec, gguf = spec.split("::", 1)
        kwargs = {"gguf_file": gguf}
    decoder = AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    if len(processor.decoder_tokenizer) > decoder.get_input_embeddings().weight.shape[0]:
        decoder.resize_token_embeddings(len(processor.decoder_tokenizer))
    return decoder.eval()


def label_accuracy_figures(judge, texts: Sequence[str], labels: Sequence[int], num_labels: int) -> dict[str, float]:
    """`label_accuracy` over all generated sentences and `label_accuracy_<label>` per requested label."""
    predicted = [int(p) for p in judge.predict(list(texts))]
    out = {"label_accuracy": sum(p == y for p, y in zip(predicted, labels)) / max(1, len(labels))}
    for label in range(num_labels):
        rows = [p for p, y in zip(predicted, labels) if y == label]
        if rows:
            out[f"label_accuracy_{label}"] = sum(p == label for p in rows) / len(rows)
    return out


@torch.no_grad()
def latent_classifier_accuracy(model, latents: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of C on real posterior means (how well the frozen VAE's latents separate the labels)."""
    predicted = model.classify_latents(latents.to(model.latent_mean.device)).argmax(-1).cpu()
    return float((predicted == labels.cpu()).float().mean())


@torch.no_grad()
def reconstruction_label_accuracy(
    model, judge, sentences: Sequence[str], labels: Sequence[int], per_label: int, max_length: int = 40,
    batch_size: int = 64, **generation_kwargs,
) -> float:
    """The judge's accuracy on the VAE's greedy reconstructions (decodes of the posterior means) of `per_label` real
    held-out sentences per label: how much of the label the frozen VAE carries from a real latent to a sentence — the
    ceiling of any latent-space conditional generator on top of it."""
    chosen = []
    for label in range(model.config.num_labels):
        chosen += [(t, y) for t, y in zip(sentences, labels) if y == label][:per_label]
    texts = []
    for start in range(0, len(chosen), batch_size):
        batch = model.processor([t for t, _ in chosen[start : start + batch_size]], max_length=max_length, return_tensors="pt")
        ids = model.optimus.generate(input_ids=batch["input_ids"].to(model.device),
                                     attention_mask=batch["attention_mask"].to(model.device), **generation_kwargs)
        texts += [t.strip() for t in model.processor.batch_decode(ids)]
    return judge_accuracy(judge, texts, [y for _, y in chosen])


@torch.no_grad()
def latent_spread_ratio(model, latents: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Mean over labels of (mean per-dimension std of G(ε, y)) / (the same of the real μ(x) of label y): 1 when G
    spreads like the data, below 1 when it collapses towards fewer modes (less varied sentences)."""
    ratios = []
    for label in range(model.config.num_labels):
        real = latents[labels == label]
        if real.shape[0] < 2:
            continue
        fake = model.generate_latents([label] * real.shape[0], generator=torch.Generator().manual_seed(seed + label))
        ratios.append(float(fake.float().std(0).mean() / real.float().std(0).mean().clamp(min=1e-8)))
    return sum(ratios) / len(ratios) if ratios else float("nan")


__all__ = [
    "latent_spread_ratio",
    "reconstruction_label_accuracy",
    "train_judge", "judge_accuracy", "distinct_n", "generate_per_label", "load_plain_decoder",
    "label_accuracy_figures", "latent_classifier_accuracy",
]
