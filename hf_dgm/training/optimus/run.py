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
from datasets import Dataset

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
    posterior_mean_batch_norm: float | None = field(
        default=None, metadata={"help": "BN-VAE: batch-normalize the posterior mean with this fixed scale γ (None = the paper)"}
    )


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
        "posterior_mean_batch_norm": args.posterior_mean_batch_norm,
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


def train_and_evaluate(
    model_args, data_args, training_args, extra_metadata: dict | None = None, extra_evaluation=None
) -> dict[str, Any]:
    """
    Fine-tune, evaluate and write the run folder; returns the metrics. `extra_evaluation(train_sentences,
    eval_sentences)`, when given, returns more `eval_*` figures (the main job's plain-decoder baseline); they land in
    `metrics.json`, `samples.md` and the card with the rest.
    """
    from ..checkpoints import whole_run_train_metrics

    out_dir = Path(training_args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model = build_model(model_args, seed=training_args.seed)
    processor = model.processor
    train_raw, eval_raw = load_data(data_args)
    trainer, train_result, curve = _train(model, processor, train_raw, eval_raw, data_args, training_args, out_dir)

    whole_run = whole_run_train_metrics(trainer, train_result.metrics)  # after a resume: the whole run, not the segment
    metrics: dict[str, Any] = {"train_" + k if not k.startswith("train_") else k: v for k, v in whole_run.items()}
    if eval_raw is not None and trainer.is_world_process_zero():
        metrics.update(_evaluate_run(model, processor, train_raw, eval_raw, data_args, out_dir, curve, extra_evaluation))
    if trainer.is_world_process_zero():
        plot_training_curves(trainer.state.log_history, out_dir / "training_curves.png")
        _write_run(model, model_args, data_args, training_args, out_dir, metrics, eval_raw is not None,
                   extra_metadata={"wall_clock_seconds": round(time.time() - started, 1), **(extra_metadata or {})})
    return metrics


def _train(model, processor, train_raw, eval_raw, data_args, training_args, out_dir: Path):
    """Tokenize the training sentences, train with `OptimusTrainer` (resuming if asked) and save the model into
    `out_dir` (main process). Returns (trainer, train result, the reconstruction-curve callback or None)."""
    from .data import OptimusDataCollator, tokenize_sentences
    from .trainer import OptimusTrainer, ReconstructionCurveCallback

    train = tokenize_sentences(train_raw, processor, data_args.max_length, drop_longer=data_args.sentence_split)
    train = train.remove_columns([c for c in (train.column_names or []) if c in ("text", "label")])
    # `--gradient_checkpointing` needs nothing here: Trainer calls the model's `activation_checkpointing_enable`,
    # which keeps the (read-only) latent memory slot under checkpointing.

    curve = None
    if training_args.reconstruction_curve_steps and eval_raw is not None:
        curve = ReconstructionCurveCallback(
            processor, [row["text"].strip() for row in eval_raw], training_args.reconstruction_curve_steps,
            max_length=data_args.max_length,
        )
    resume = training_args.resume_from_checkpoint
    if training_args.posterior_init == "pca" and not resume:
        _pca_posterior_init(model, processor, train_raw, data_args.max_length, training_args.posterior_init_sentences)
    trainer = OptimusTrainer(
        model=model, args=training_args, train_dataset=train, data_collator=OptimusDataCollator.from_processor(processor),
        callbacks=[curve] if curve is not None else None,
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        # not trainer.save_model(): it adds a pickled training_args.bin; the run folder stays pickle-free
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(out_dir)  # weights, config, tokenizers
    return trainer, train_result, curve


def _pca_posterior_init(model, processor, train_raw, max_length: int, max_sentences: int) -> None:
    """`posterior_init="pca"`: the posterior mean rows from the first `max_sentences` training sentences (latent_init.py)."""
    from .latent_init import initialize_posterior_from_pca, pooled_features

    texts = [row["text"].strip() for _, row in zip(range(max_sentences), train_raw)]
    enc = processor.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    stats = initialize_posterior_from_pca(model, pooled_features(model, enc["input_ids"], enc["attention_mask"]))
    logger.info("posterior_init=pca: %d training sentences, the %d components keep %.1f%% of the pooled features' variance",
                stats["num_sentences"], model.config.latent_size, 100 * stats["explained_variance"])


def _evaluate_run(model, processor, train_raw, eval_raw, data_args, out_dir: Path, curve, extra_evaluation) -> dict[str, Any]:
    """The paper's evaluation and the interpolations on the evaluation sentences, `extra_evaluation`'s figures,
    the reconstruction curve, samples and latent-space plot in `out_dir`. Returns the `eval_*` metrics."""
    from .evaluation import evaluate_optimus, interpolation_figures

    model.eval()
    sentences = [row["text"].strip() for row in eval_raw]
    evaluation = evaluate_optimus(
        model, processor, sentences, num_importance_samples=data_args.num_importance_samples,
        max_length=data_args.max_length,
    )
    interpolation = interpolation_figures(
        model, processor, sentences, num_steps=data_args.interpolation_steps, max_length=data_args.max_length
    )
    evaluation.update(interpolation)
    metrics = {f"eval_{k}": v for k, v in evaluation.items() if isinstance(v, (int, float))}
    metrics["eval_num_sentences"] = len(sentences)
    metrics["eval_num_importance_samples"] = data_args.num_importance_samples
    if extra_evaluation is not None:
        train_sentences = [row["text"].strip() for row in train_raw] if isinstance(train_raw, Dataset) else None
        extra = extra_evaluation(train_sentences, sentences)
        if "plain_decoder_ppl_per_token" in extra:  # the IW PPL against the plain LM's, in the same run
            extra["ppl_ratio_to_plain_decoder"] = evaluation["ppl_per_token"] / extra["plain_decoder_ppl_per_token"]
        metrics.update({f"eval_{k}": v for k, v in extra.items()})
        evaluation.update(extra)
    if curve is not None and curve.points:
        evaluation["reconstruction_curve"] = curve.points
        (out_dir / "reconstruction_curve.json").write_text(json.dumps(curve.points, indent=2) + "\n")
        plot_reconstruction_curve(curve.points, out_dir / "reconstruction_curve.png")
    write_samples(model, processor, sentences, out_dir, data_args.interpolation_steps, evaluation)
    labels = [row.get("label") for row in eval_raw] if "label" in (eval_raw.column_names or []) else None
    plot_latent_space(model, processor, sentences, out_dir / "latent_space.png", labels=labels)
    return metrics


def _write_run(model, model_args, data_args, training_args, out_dir: Path, metrics: dict[str, Any],
               evaluated: bool, extra_metadata: dict[str, Any]) -> None:
    """`metrics.json` (the run's description, then `metrics`), `run_metadata.json` (what the card reads) and the
    recipe, through `write_run_folder`."""
    from ..run_folder import write_run_folder

    metadata = {
        "dataset": data_args.dataset or (Path(data_args.train_file).name if data_args.train_file else None),
        "eval_split": data_args.eval_split if data_args.dataset else (Path(data_args.eval_file).stem if data_args.eval_file else None),
        "encoder": _hub_name(model_args.encoder, model_args, "encoder") or model.config.encoder._name_or_path,
        "decoder": _hub_name(model_args.decoder, model_args, "decoder") or model.config.decoder._name_or_path,
        **extra_metadata,
    }
    run_metadata = {
        "dataset": data_args.dataset_name or metadata["dataset"],
        "dataset_id": data_args.dataset_id or data_args.dataset,
        "eval_split": metadata["eval_split"],
        "base_model": [m for m in (metadata["encoder"], metadata["decoder"]) if m],
    }
    if evaluated:
        run_metadata["num_importance_samples"] = data_args.num_importance_samples
        run_metadata["plain_decoder"] = "eval_plain_decoder_ppl_per_token" in metrics
    write_run_folder(
        out_dir, metrics={**metadata, **metrics}, metadata=run_metadata,
        recipe={"model": model_args, "data": data_args, "training": _recipe_training_args(training_args)},
        training_args=training_args,
    )


_LORA_RECIPE_KEYS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_lr_multiplier")
_RECIPE_TRAINING_KEYS = (
    "max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
    "latent_lr_multiplier", "decoder_word_dropout", "decoder_word_dropout_kl_phase", "decoder_freeze_steps",
    "reconstruction_curve_steps", "optim", "weight_decay", "adam_epsilon", "max_grad_norm",
    "lr_scheduler_type", "warmup_steps", "beta", "beta_n_cycles", "beta_ratio_zero", "beta_ratio_increase",
    "beta_schedule_steps", "kl_threshold", "seed", "bf16", "posterior_init", "decoder_training", "encoder_training",
) + _LORA_RECIPE_KEYS


def _recipe_training_args(training_args) -> dict[str, Any]:
    """The training settings that shape the model, for `recipe.yaml` (and so the card's recipe block)."""
    out = {}
    for key in _RECIPE_TRAINING_KEYS:
        value = getattr(training_args, key, None)
        if key == "max_steps" and (value is None or value < 0):
            continue
        if key == "beta_schedule_steps" and value is None:
            continue  # the original's whole-epoch schedule
        if key == "num_train_epochs" and (getattr(training_args, "max_steps", -1) or -1) > 0:
            continue  # max_steps wins: the epoch count was not used
        if key in _LORA_RECIPE_KEYS and getattr(training_args, "decoder_training", None) != "lora":
            continue  # no adapters were trained
        out[key] = value.value if hasattr(value, "value") else value
    return out


# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def write_samples(model, processor, sentences: list[str], out_dir: Path, steps: int, evaluation: dict | None = None, seed: int = 0) -> None:
    """
    `samples.md`: the figures (each with how it was computed), reconstructions next to their inputs, interpolations
    with α, one analogy and sentences decoded from the prior — all greedy.
    """
    evaluation = evaluation or {}
    lines = ["# Samples", "", "Everything below is greedy decoding; sentences are encoded with their posterior mean.", ""]
    lines += _figure_lines(evaluation)
    curve = evaluation.get("reconstruction_curve")
    if curve:
        lines += [
            "## Reconstruction BLEU during training", "",
            f"Greedy decodes of the posterior means of the {evaluation.get('num_examples', 'evaluation')} sentences, "
            "every few optimizer steps; minutes of training, decoding time excluded (`reconstruction_curve.png`).", "",
            "| step | training minutes | β | reconstruction BLEU | exact matches |", "|---|---|---|---|---|",
        ]
        lines += [
            f"| {p['step']} | {p['train_seconds'] / 60:.1f} | {p['beta']:.2f} | "
            f"{p['reconstruction_bleu']:.1f} | {p['reconstruction_exact_match']:.1%} |"
            for p in curve
        ]
        lines.append("")

    lines += ["## Reconstructions", "", "| input | reconstruction (greedy, from the posterior mean) |", "|---|---|"]
    batch = processor(sentences[:8], return_tensors="pt").to(model.device)
    for src, rec in zip(sentences[:8], processor.batch_decode(model.reconstruct(batch["input_ids"], batch["attention_mask"]))):
        lines.append(f"| {_cell(src)} | {_cell(rec)} |")
    lines.append("")

    paths = evaluation.get("interpolations")
    if paths is None:
        from .evaluation import interpolation_figures

        paths = interpolation_figures(model, processor, sentences, num_pairs=3, num_steps=steps)["interpolations"]
    lines += ["## Interpolations", "", "z = (1 − α)·z_source + α·z_target between two posterior means.", ""]
    for path in paths[:3]:
        lines += [f"- source: {path['source']}", f"- target: {path['target']}", "", "| α | decoded |", "|---|---|"]
        lines += [f"| {alpha:.2f} | {_cell(text)} |" for alpha, text in zip(path["alphas"], path["texts"])]
        lines.append("")

    if len(sentences) >= 3:
        a, b, c = sentences[0], sentences[1], sentences[2]
        enc = processor([a, b, c], return_tensors="pt").to(model.device)
        z = model.encode(enc["input_ids"], enc["attention_mask"]).mean
        answer = processor.batch_decode(model.analogy(z[0:1], z[1:2], z[2:3], degree=1.0))[0]
        lines += [
            "## Analogy", "", "a : b :: c : d with z_d = z_c + (z_b − z_a) (degree 1).", "",
            f"- a: {a}", f"- b: {b}", f"- c: {c}", f"- **d: {answer}**", "",
        ]

    generator = torch.Generator(device="cpu").manual_seed(seed)
    prior = torch.randn((5, model.config.latent_size), generator=generator).to(model.device, model.dtype)
    lines += ["## Sentences from the prior", "", f"z ~ N(0, I) (5 draws, seed {seed}), greedy.", ""]
    lines += [f"- {text}" for text in processor.batch_decode(model.generate(latents=prior))]
    (out_dir / "samples.md").write_text("\n".join(lines) + "\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _figure_lines(evaluation: dict) -> list[str]:
    """The headline figures with how each was computed (K = importance samples actually used)."""
    if "ppl_per_token" not in evaluation:
        return []
    n, k = evaluation.get("num_examples"), evaluation.get("num_importance_samples")
    rows = [
        ("IW per-token perplexity", evaluation["ppl_per_token"], f"importance-weighted, K = {k} samples of q(z|x), {n} sentences; BOS and EOS counted"),
        ("−ELBO (nats/sentence)", evaluation.get("neg_elbo"), f"KL − mean over K = {k} samples of log p(x|z)"),
        ("reconstruction NLL (nats/sentence)", evaluation.get("reconstruction_nll"), f"mean over K = {k} posterior samples of −log p(x|z) (not importance-weighted)"),
        ("KL (nats/sentence)", evaluation.get("kl"), "analytic, un-thresholded"),
        ("mutual information (nats)", evaluation.get("mutual_information"), "He et al. (2019), from the test posteriors"),
        ("active units", evaluation.get("active_units"), f"of {evaluation.get('latent_size')}; Var_x μ_d(x) ≥ {evaluation.get('au_threshold')}"),
        ("reconstruction BLEU", evaluation.get("reconstruction_bleu"), f"corpus BLEU, greedy decodes of the posterior means of the {n} sentences"),
        ("interpolation endpoint BLEU", evaluation.get("interpolation_endpoint_bleu"), f"mean sentence BLEU of the α = 0 and α = 1 decodes against their sources, {evaluation.get('num_interpolation_pairs')} pairs"),
        ("distinct sentences per interpolation", evaluation.get("interpolation_distinct"), f"of {evaluation.get('num_interpolation_steps')} points, mean over pairs"),
        ("plain decoder per-token perplexity", evaluation.get("plain_decoder_ppl_per_token"), "the same decoder fine-tuned alone as an LM on the same budget, exact likelihood, same token count"),
        ("IW per-token perplexity / plain decoder's", evaluation.get("ppl_ratio_to_plain_decoder"), "the two rows above, measured in the same run"),
    ]
    lines = ["## Figures", "", "| figure | value | how |", "|---|---|---|"]
    for name, value, how in rows:
        if value is not None:
            lines.append(f"| {name} | {value:.4g} | {how} |")
    return lines + [""]


def plot_training_curves(log_history: list[dict], path: Path) -> None:
    """β, KL per sentence and reconstruction NLL per token over optimizer steps (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "rec_loss" in r]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    for r in rows:  # per token: length-grouped batches make the per-sentence figure jump with sentence length
        r["rec_per_token"] = r["rec_loss"] / r["tokens_per_example"] if r.get("tokens_per_example") else float("nan")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    titles = ("β (cyclical schedule)", "KL per sentence (nats)", "reconstruction NLL per token (nats)")
    for ax, key, title in zip(axes, ("beta", "kl", "rec_per_token"), titles):
        ax.plot(steps, [r[key] for r in rows], marker="o", ms=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reconstruction_curve(points: list[dict], path: Path) -> None:
    """Reconstruction BLEU of the evaluation sentences against training minutes, β on a second axis (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [p["train_seconds"] / 60 for p in points]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(minutes, [p["reconstruction_bleu"] for p in points], "o-", label="reconstruction BLEU")
    for p, m in zip(points, minutes):
        ax.annotate(str(p["step"]), (m, p["reconstruction_bleu"]), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("training minutes (decoding excluded)")
    ax.set_ylabel("corpus BLEU (greedy, posterior means)")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(minutes, [p["beta"] for p in points], color="grey", ls="--", lw=1)
    twin.set_ylabel("β (dashed)")
    ax.set_title("reconstruction BLEU during training (labels: steps)", fontsize=10)
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
