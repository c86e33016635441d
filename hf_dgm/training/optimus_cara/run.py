"""`hf-dgm train optimus_cara --recipe FILE [--flag value ...]`: Optimus-CARA on top of a saved Optimus.

1. loads the Optimus folder (`optimus_model_name_or_path`) and wraps it with fresh latent modules;
2. reads one sentence file per label (`train_files`; `eval_files` for evaluation) and caches the posterior means
   μ(x) of a seeded subset (`max_train_per_label`, `max_eval_per_label`);
3. trains C, D and G on them with the VAE frozen (`hf_dgm.training.optimus_cara.trainer`);
4. evaluates (`hf_dgm.training.optimus_cara.evaluation`): latent classifier accuracy on held-out means, a
   TF-IDF + logistic-regression judge trained on the whole training files, the label accuracy of generated
   sentences, plain-decoder perplexity and distinct-n;
5. writes the run folder: model (safetensors, config, tokenizers), `metrics.json`, `samples.md`, `training_curves.png`,
   `recipe.yaml`, `run_metadata.json` and the model card.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .trainer import CaraTrainingArguments

logger = logging.getLogger(__name__)


@dataclass
class CaraModelArguments:
    optimus_model_name_or_path: str = field(default=None, metadata={"help": "the trained Optimus folder to build on"})
    label_names: list[str] = field(default_factory=lambda: ["negative", "positive"],
                                   metadata={"help": "label names, in the order of the label files"})
    hidden_size: int = field(default=256, metadata={"help": "width of G, D and C"})
    num_hidden_layers: int = field(default=2, metadata={"help": "hidden layers of G, D and C"})
    label_embedding_size: int = field(default=32, metadata={"help": "size of G's label embedding"})
    noise_size: int | None = field(default=None, metadata={"help": "size of ε (default: the latent size)"})
    classifier_weight: float = field(default=1.0, metadata={"help": "weight of G's auxiliary classification loss"})


@dataclass
class CaraDataArguments:
    train_files: list[str] = field(default=None, metadata={"help": "one sentence file per label (file i = label i)"})
    eval_files: list[str] = field(default=None, metadata={"help": "held-out sentence files, one per label"})
    dataset_name: str | None = field(default=None, metadata={"help": "dataset name for the model card"})
    max_train_per_label: int | None = field(default=5000, metadata={"help": "sentences per label encoded for training"})
    max_eval_per_label: int | None = field(default=1000, metadata={"help": "held-out sentences per label"})
    max_length: int = field(default=40, metadata={"help": "max encoder/decoder tokens"})
    encode_batch_size: int = field(default=64, metadata={"help": "batch size of the posterior-mean encoding"})


@dataclass
class CaraEvaluationArguments:
    num_samples_per_label: int = field(default=100, metadata={"help": "generated sentences per label (0: no evaluation)"})
    max_new_tokens: int = field(default=25, metadata={"help": "decoding cap of the generated sentences"})
    plain_decoder: str | None = field(default="offline", metadata={
        "help": "plain LM for the fluency PPL: 'offline' (pip-shipped SmolLM2-135M), a causal-LM folder "
                "('folder::file.gguf' for GGUF), or 'none'"})
    judge_max_train_per_label: int | None = field(default=None, metadata={"help": "cap the judge's training sentences"})
    eval_seed: int = field(default=0, metadata={"help": "seed of the evaluation's latents"})


ARGUMENT_CLASSES = (CaraModelArguments, CaraDataArguments, CaraTrainingArguments, CaraEvaluationArguments)


def parse_args(argv: list[str] | None = None):
    from ..recipes import parse_recipe_args

    model_args, data_args, training_args, eval_args = parse_recipe_args(ARGUMENT_CLASSES, argv)
    if not model_args.optimus_model_name_or_path:
        raise ValueError("--optimus_model_name_or_path is required (a trained Optimus folder)")
    for name in ("train_files", "eval_files"):
        files = getattr(data_args, name)
        if files is not None and len(files) != len(model_args.label_names):
            raise ValueError(f"--{name} needs one file per label ({len(model_args.label_names)}); got {len(files)}")
    if not data_args.train_files:
        raise ValueError("--train_files is required (one sentence file per label)")
    return model_args, data_args, training_args, eval_args


def main(argv: list[str] | None = None) -> int:
    """Entry point of `hf-dgm train optimus_cara`."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        args = parse_args(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics = train_and_evaluate(*args)
    print(json.dumps({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, indent=2))
    return 0


def train_and_evaluate(model_args, data_args, training_args, eval_args) -> dict[str, Any]:
    """Steps 1-5 of the module docstring; returns the metrics."""
    from transformers import set_seed

    from hf_dgm.models.optimus_cara import OptimusForLabelConditionalGeneration
    from .data import posterior_means, read_labelled_sentences
    from .trainer import train_latent_modules

    started = time.time()
    out_dir = Path(training_args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(training_args.seed)
    model = OptimusForLabelConditionalGeneration.from_optimus_pretrained(
        model_args.optimus_model_name_or_path, id2label=model_args.label_names, hidden_size=model_args.hidden_size,
        num_hidden_layers=model_args.num_hidden_layers, label_embedding_size=model_args.label_embedding_size,
        noise_size=model_args.noise_size, classifier_weight=model_args.classifier_weight,
    )
    processor = model.processor
    train_text, train_labels = read_labelled_sentences(data_args.train_files, data_args.max_train_per_label, training_args.seed)
    latents = posterior_means(model.optimus, processor, train_text, data_args.encode_batch_size, data_args.max_length)
    result = train_latent_modules(model, latents, torch.tensor(train_labels), training_args)
    model.save_pretrained(out_dir)
    metrics: dict[str, Any] = {"train_seconds": round(result["train_seconds"], 1), "train_latents": len(train_text)}
    metrics.update({f"train_{k}": v for k, v in result["log_history"][-1].items() if k != "step"})
    samples: dict[str, Any] = {}
    if data_args.eval_files and eval_args.num_samples_per_label > 0:
        figures, samples = evaluate_model(model, data_args, eval_args, train_files=data_args.train_files)
        metrics.update(figures)
    metrics["wall_clock_seconds"] = round(time.time() - started, 1)
    write_outputs(out_dir, model, metrics, samples, result["log_history"], (model_args, data_args, training_args, eval_args))
    return metrics


def evaluate_model(model, data_args, eval_args, train_files) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures of `hf_dgm.training.optimus_cara.evaluation` for `model`, and the samples shown in samples.md."""
    from .data import posterior_means, read_labelled_sentences
    from .evaluation import (
        distinct_n, generate_per_label, judge_accuracy, label_accuracy_figures, latent_classifier_accuracy,
        latent_spread_ratio, load_plain_decoder, reconstruction_label_accuracy, train_judge,
    )

    eval_text, eval_labels = read_labelled_sentences(data_args.eval_files, data_args.max_eval_per_label, seed=1)
    eval_latents = posterior_means(model.optimus, model.processor, eval_text, data_args.encode_batch_size, data_args.max_length)
    label_tensor = torch.tensor(eval_labels)
    figures: dict[str, Any] = {"latent_classifier_accuracy": latent_classifier_accuracy(model, eval_latents, label_tensor),
                               "latent_spread_ratio": latent_spread_ratio(model, eval_latents, label_tensor)}
    judge_text, judge_labels = read_labelled_sentences(train_files, eval_args.judge_max_train_per_label, seed=2)
    judge = train_judge(judge_text, judge_labels)
    figures["judge_accuracy"] = judge_accuracy(judge, eval_text, eval_labels)
    figures["judge_train_sentences"] = len(judge_text)
    texts, labels = generate_per_label(model, eval_args.num_samples_per_label, seed=eval_args.eval_seed,
                                       max_new_tokens=eval_args.max_new_tokens)
    figures.update(label_accuracy_figures(judge, texts, labels, model.config.num_labels))
    figures["reconstruction_label_accuracy"] = reconstruction_label_accuracy(
        model, judge, eval_text, eval_labels, eval_args.num_samples_per_label, data_args.max_length,
        max_new_tokens=eval_args.max_new_tokens)
    figures["distinct_1"], figures["distinct_2"] = distinct_n(texts, 1), distinct_n(texts, 2)
    figures["num_generated"] = len(texts)
    figures["eval_sentences"] = len(eval_text)
    if eval_args.plain_decoder and eval_args.plain_decoder != "none":
        from ..optimus.baseline import decoder_perplexity

        decoder = load_plain_decoder(eval_args.plain_decoder, model.processor)
        nonempty = [t for t in texts if t] or ["."]
        real = eval_text[: len(texts)]
        figures["plain_decoder_ppl"] = decoder_perplexity(decoder, model.processor, nonempty, data_args.max_length)["ppl_per_token"]
        figures["plain_decoder_ppl_real"] = decoder_perplexity(decoder, model.processor, real, data_args.max_length)["ppl_per_token"]
        figures["real_distinct_1"], figures["real_distinct_2"] = distinct_n(real, 1), distinct_n(real, 2)
    predicted = [int(p) for p in judge.predict(texts)]
    samples = {"texts": texts, "labels": labels, "judged": predicted}
    return figures, samples


def write_outputs(out_dir: Path, model, metrics: dict, samples: dict, history: list[dict], recipe_parts) -> None:
    """metrics.json, run_metadata.json, recipe.yaml, the card (via `write_run_folder`), samples.md, the curves PNG."""
    from ..run_folder import write_run_folder

    model_args, data_args, training_args, eval_args = recipe_parts
    plot_training_curves(history, out_dir / "training_curves.png")
    if samples:
        write_samples(out_dir / "samples.md", model, metrics, samples)
    metadata = {
        "dataset": data_args.dataset_name, "eval_split": _split_name(data_args.eval_files),
        "base_model": [model_args.optimus_model_name_or_path],
        "judge": "TF-IDF (word 1-2 grams) + logistic regression trained on the training files' sentences",
    }
    if "/" in str(model_args.optimus_model_name_or_path) and Path(model_args.optimus_model_name_or_path).exists():
        metadata["base_model"] = None  # a local folder is no Hub id
    write_run_folder(out_dir, metrics=metrics, metadata=metadata,
                     recipe={"model": model_args, "data": data_args, "training": training_args, "evaluation": eval_args})


def _split_name(files: list[str] | None) -> str | None:
    """`dev` for files named `<prefix>.dev.<label>` (the Yelp layout), else "held-out files"; None without files."""
    if not files:
        return None
    parts = {Path(f).name.split(".")[1] if Path(f).name.count(".") == 2 else None for f in files}
    return parts.pop() if len(parts) == 1 and None not in parts else "held-out files"


def write_samples(path: Path, model, metrics: dict, samples: dict, per_label: int = 10) -> None:
    names = model.config.id2label
    lines = ["# Samples", "", "Greedy decodes of latents drawn from the label-conditional generator G(ε, y) "
             f"(evaluation seed); 'judge' is the TF-IDF + logistic-regression classifier's reading.", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items() if isinstance(v, float)]
    lines.append("")
    for label in range(model.config.num_labels):
        rows = [(t, j) for t, y, j in zip(samples["texts"], samples["labels"], samples["judged"]) if y == label]
        lines += [f"## requested: {names.get(label, label)}", "", "| sentence | judge |", "|---|---|"]
        lines += [f"| {t.replace('|', '/') or '(empty)'} | {names.get(j, j)} |" for t, j in rows[:per_label]]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def plot_training_curves(history: list[dict], path: Path) -> None:
    """Losses and accuracies of C, D, G over steps (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = [r["step"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("loss_c", "loss_d", "loss_g"):
        axes[0].plot(steps, [r[key] for r in history], label=key)
    for key in ("c_accuracy_real", "c_accuracy_generated", "d_accuracy"):
        axes[1].plot(steps, [r[key] for r in history], label=key)
    for ax, title in zip(axes, ("losses", "accuracies (training batches)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CaraModelArguments", "CaraDataArguments", "CaraEvaluationArguments", "parse_args", "main",
           "train_and_evaluate", "evaluate_model"]
