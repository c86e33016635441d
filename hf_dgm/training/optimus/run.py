"""End-to-end Optimus runs: build or load a model, fine-tune with `OptimusTrainer`, evaluate, write the run folder.

Used by `training/train_optimus.py` (any recipe) and `python -m hf_dgm.training.optimus.main_job` (the offline CPU demo). The run
folder receives: `model.safetensors` + `config.json` + tokenizers, `metrics.json`, `samples.md` (interpolations and
reconstructions), `training_curves.png` (β, KL, reconstruction over steps), `latent_space.png` (2-D PCA of posterior
means), `recipe.yaml`, `training_args.json`, and a model card `README.md`.
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

logger = logging.getLogger(__name__)


@dataclass
class OptimusModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "an existing Optimus folder/repo to fine-tune"})
    encoder: str | None = field(default=None, metadata={"help": "pretrained encoder (AutoModel), e.g. bert-base-cased"})
    decoder: str | None = field(default=None, metadata={"help": "pretrained causal-LM decoder, e.g. gpt2"})
    decoder_gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside the decoder folder"})
    offline_parts: bool = field(default=False, metadata={"help": "use the pip-shipped MiniLM encoder + SmolLM2 decoder"})
    latent_size: int = field(default=32, metadata={"help": "latent dimension (paper: 32 or 768)"})
    latent_injection: str = field(default="both", metadata={"help": "memory | embedding | both (released code: both)"})
    pooling: str | None = field(default=None, metadata={"help": "pooler | cls | mean (default: pooler if the encoder has one)"})
    length_weighted_loss: bool = field(default=False, metadata={"help": "divide each sentence's loss by its length"})


@dataclass
class OptimusDataArguments:
    dataset: str | None = field(default=None, metadata={"help": "Hub dataset name (e.g. stanfordnlp/snli)"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config"})
    text_column: str = field(default="text", metadata={"help": "column holding the sentence"})
    train_split: str = field(default="train", metadata={"help": "training split"})
    eval_split: str | None = field(default=None, metadata={"help": "evaluation split of --dataset (default: none)"})
    train_file: str | None = field(default=None, metadata={"help": "local training text file, one sentence a line"})
    eval_file: str | None = field(default=None, metadata={"help": "local evaluation text file"})
    streaming: bool = field(default=False, metadata={"help": "stream the training set (large corpora)"})
    sentence_split: bool = field(
        default=False,
        metadata={"help": "split each row (a whole article) into sentences and drop sentences over max_length tokens (Wikipedia pretraining)"},
    )
    max_length: int = field(default=100, metadata={"help": "max decoder tokens (paper block size: 100 PTB/SNLI)"})
    max_words: int = field(default=64, metadata={"help": "drop sentences with this many words or more"})
    max_train_examples: int | None = field(default=None, metadata={"help": "cap the training set"})
    max_eval_examples: int | None = field(default=500, metadata={"help": "cap the evaluation set"})
    num_importance_samples: int = field(default=100, metadata={"help": "importance samples for IW-NLL (paper: 100)"})
    interpolation_steps: int = field(default=5, metadata={"help": "points per interpolation sample"})
    dataset_name: str | None = field(default=None, metadata={"help": "human-readable dataset name for the model card"})
    dataset_id: str | None = field(default=None, metadata={"help": "Hub id of the dataset, for the model card"})


def parse_args(argv: list[str] | None = None):
    """(model_args, data_args, training_args) from `--recipe FILE` plus overriding flags (`hf_dgm.training.recipes`)."""
    from ..recipes import parse_recipe_args, split_recipe_flag
    from .trainer import OptimusTrainingArguments

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, _ = split_recipe_flag(argv)
    model_args, data_args, training_args = parse_recipe_args(
        (OptimusModelArguments, OptimusDataArguments, OptimusTrainingArguments), argv
    )
    training_args.recipe_path = recipe
    return model_args, data_args, training_args


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train optimus --recipe FILE [--flag value ...]` (also `training/train_optimus.py`)."""
    from .trainer import OptimusTrainingDivergedError

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        model_args, data_args, training_args = parse_args(argv)
    except ValueError as err:  # a bad recipe value or flag: one line naming it, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        metrics = train_and_evaluate(model_args, data_args, training_args, {"recipe": training_args.recipe_path})
    except OptimusTrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # bad data or settings found while loading (the message names the file/argument)
        print(f"error: {err}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(json.dumps({k: v for k, v in metrics.items() if k.startswith("eval_")}, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------------------------------


def build_model(args: OptimusModelArguments, seed: int | None = None):
    """The model of `args`; with `seed`, every RNG is seeded first, so fresh latent heads are reproducible."""
    from transformers import set_seed

    from hf_dgm.models.optimus.modeling_optimus import OptimusForConditionalGeneration

    if seed is not None:
        set_seed(seed)
    config_kwargs: dict[str, Any] = {
        "latent_size": args.latent_size,
        "latent_injection": args.latent_injection,
        "length_weighted_loss": args.length_weighted_loss,
    }
    if args.pooling:
        config_kwargs["pooling"] = args.pooling
    if args.model_name_or_path:
        model = OptimusForConditionalGeneration.from_pretrained(args.model_name_or_path)
        if model.processor is None:
            from hf_dgm.models.optimus.processing_optimus import OptimusProcessor

            model.processor = OptimusProcessor.from_pretrained(args.model_name_or_path)
        return model
    encoder, decoder, gguf = args.encoder, args.decoder, args.decoder_gguf_file
    if args.offline_parts:
        from ..offline_assets import minilm_path, smollm2_path

        folder, gguf = smollm2_path()
        encoder, decoder = str(minilm_path()), str(folder)
    if not encoder or not decoder:
        raise ValueError("give --model_name_or_path, or --encoder and --decoder, or --offline_parts")
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
        encoder, decoder, decoder_gguf_file=gguf, **config_kwargs
    )


def _hub_name(name: str | None, model_args: OptimusModelArguments, side: str) -> str | None:
    """The Hub id of a part (the pip-shipped offline parts are copies of Hub models)."""
    if model_args.offline_parts:
        from ..offline_assets import MINILM_HUB_ID, SMOLLM2_HUB_ID

        return MINILM_HUB_ID if side == "encoder" else SMOLLM2_HUB_ID
    return name


def load_data(data_args: OptimusDataArguments):
    """(train, eval) sentence datasets; eval may be None."""
    from .data import load_sentences

    common = {"text_column": data_args.text_column, "max_words": data_args.max_words}
    split = {"sentence_split": data_args.sentence_split}
    if data_args.train_file:
        train = load_sentences(train_file=data_args.train_file, streaming=data_args.streaming, max_examples=data_args.max_train_examples, **common, **split)
    else:
        train = load_sentences(
            dataset=data_args.dataset, dataset_config=data_args.dataset_config, split=data_args.train_split,
            streaming=data_args.streaming, max_examples=data_args.max_train_examples, **common, **split,
        )
    evaluation = None
    if data_args.eval_file:
        evaluation = load_sentences(train_file=data_args.eval_file, split="test", max_examples=data_args.max_eval_examples, **common)
    elif data_args.dataset and data_args.eval_split:
        evaluation = load_sentences(
            dataset=data_args.dataset, dataset_config=data_args.dataset_config, split=data_args.eval_split,
            max_examples=data_args.max_eval_examples, **common,
        )
    return train, evaluation


def train_and_evaluate(model_args, data_args, training_args, extra_metadata: dict | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate and write the run folder; returns the metrics."""
    from .data import OptimusDataCollator, tokenize_sentences
    from .evaluation import evaluate_optimus
    from ..run_folder import write_run_folder
    from .trainer import OptimusTrainer

    out_dir = Path(training_args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model = build_model(model_args, seed=training_args.seed)
    processor = model.processor
    train_raw, eval_raw = load_data(data_args)
    train = tokenize_sentences(train_raw, processor, data_args.max_length, drop_longer=data_args.sentence_split)
    train = train.remove_columns([c for c in (train.column_names or []) if c in ("text", "label")])
    # `--gradient_checkpointing` needs nothing here: Trainer calls the model's `activation_checkpointing_enable`,
    # which keeps the (read-only) latent memory slot under checkpointing.

    trainer = OptimusTrainer(
        model=model, args=training_args, train_dataset=train, data_collator=OptimusDataCollator.from_processor(processor)
    )
    resume = training_args.resume_from_checkpoint
    train_result = trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        # not trainer.save_model(): it adds a pickled training_args.bin; the run folder stays pickle-free
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(out_dir)  # weights, config, tokenizers

    from ..checkpoints import whole_run_train_metrics

    whole_run = whole_run_train_metrics(trainer, train_result.metrics)  # after a resume: the whole run, not the segment
    metrics: dict[str, Any] = {"train_" + k if not k.startswith("train_") else k: v for k, v in whole_run.items()}
    if eval_raw is not None and trainer.is_world_process_zero():
        model.eval()
        sentences = [row["text"].strip() for row in eval_raw]
        evaluation = evaluate_optimus(
            model, processor, sentences, num_importance_samples=data_args.num_importance_samples,
            max_length=data_args.max_length,
        )
        metrics.update({f"eval_{k}": v for k, v in evaluation.items() if isinstance(v, (int, float))})
        metrics["eval_num_sentences"] = len(sentences)
        metrics["eval_num_importance_samples"] = data_args.num_importance_samples
        write_samples(model, processor, sentences, out_dir, data_args.interpolation_steps, evaluation)
        labels = [row.get("label") for row in eval_raw] if "label" in (eval_raw.column_names or []) else None
        plot_latent_space(model, processor, sentences, out_dir / "latent_space.png", labels=labels)
    if trainer.is_world_process_zero():
        plot_training_curves(trainer.state.log_history, out_dir / "training_curves.png")
        metadata = {
            "dataset": data_args.dataset or (Path(data_args.train_file).name if data_args.train_file else None),
            "eval_split": data_args.eval_split if data_args.dataset else (Path(data_args.eval_file).stem if data_args.eval_file else None),
            "encoder": _hub_name(model_args.encoder, model_args, "encoder") or model.config.encoder._name_or_path,
            "decoder": _hub_name(model_args.decoder, model_args, "decoder") or model.config.decoder._name_or_path,
            "wall_clock_seconds": round(time.time() - started, 1),
            **(extra_metadata or {}),
        }
        run_metadata = {
            "dataset": data_args.dataset_name or metadata["dataset"],
            "dataset_id": data_args.dataset_id or data_args.dataset,
            "eval_split": metadata["eval_split"],
            "base_model": [m for m in (metadata["encoder"], metadata["decoder"]) if m],
        }
        write_run_folder(
            out_dir, metrics={**metadata, **metrics}, metadata=run_metadata,
            recipe={"model": model_args, "data": data_args}, training_args=training_args,
        )
    return metrics


# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def write_samples(model, processor, sentences: list[str], out_dir: Path, steps: int, evaluation: dict | None = None) -> None:
    """`samples.md`: interpolations between evaluation sentences and reconstructions (greedy decoding)."""
    lines = ["# Samples", "", "Greedy decoding from posterior means.", ""]
    pairs = [(sentences[i], sentences[i + 1]) for i in range(0, min(len(sentences) - 1, 6), 2)]
    for a, b in pairs:
        batch = processor([a, b], return_tensors="pt").to(model.device)
        mean = model.encode(batch["input_ids"], batch["attention_mask"]).mean
        out = model.interpolate(mean[:1], mean[1:], num_steps=steps)
        lines += ["## Interpolation", "", f"- source: {a}", f"- target: {b}", ""]
        for alpha, text in zip(out.alphas.tolist(), processor.batch_decode(out.sequences)):
            lines.append(f"  - α={alpha:.2f}: {text}")
        lines.append("")
    lines += ["## Reconstructions", ""]
    batch = processor(sentences[:8], return_tensors="pt").to(model.device)
    for src, rec in zip(sentences[:8], processor.batch_decode(model.reconstruct(batch["input_ids"], batch["attention_mask"]))):
        lines.append(f"- {src}  →  {rec}")
    (out_dir / "samples.md").write_text("\n".join(lines) + "\n")


def plot_training_curves(log_history: list[dict], path: Path) -> None:
    """β, KL and reconstruction loss over optimizer steps (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "rec_loss" in r]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, key, title in zip(axes, ("beta", "kl", "rec_loss"), ("β (cyclical schedule)", "KL per sentence", "reconstruction NLL per sentence")):
        ax.plot(steps, [r[key] for r in rows], marker="o", ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def plot_latent_space(model, processor, sentences: list[str], path: Path, labels: list | None = None, max_points: int = 500) -> None:
    """2-D PCA projection of posterior means, coloured by label (or by sentence length when there are no labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sentences = sentences[:max_points]
    means = []
    for i in range(0, len(sentences), 32):
        batch = processor(sentences[i : i + 32], return_tensors="pt").to(model.device)
        means.append(model.encode(batch["input_ids"], batch["attention_mask"]).mean.float().cpu())
    z = torch.cat(means)
    z = z - z.mean(0)
    _, _, v = torch.linalg.svd(z, full_matrices=False)
    xy = (z @ v[:2].T).numpy()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if labels is not None and any(label is not None for label in labels[: len(sentences)]):
        colour, name = labels[: len(sentences)], "label"
    else:
        colour, name = [len(s.split()) for s in sentences], "sentence length (words)"
    points = ax.scatter(xy[:, 0], xy[:, 1], c=colour, s=10, cmap="viridis")
    fig.colorbar(points, ax=ax, label=name)
    ax.set_title("posterior means, first two principal components")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    "OptimusModelArguments",
    "OptimusDataArguments",
    "parse_args",
    "main",
    "build_model",
    "train_and_evaluate",
]
