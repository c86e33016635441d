"""`hf-dgm train optimus_dialog --recipe FILE [--flag value ...]`: build (or load) the dialog model, train it with
`OptimusDialogTrainer`, sample responses for the evaluation contexts, score them, write the run folder.

The run folder receives the model (safetensors, config, both tokenizers), `metrics.json` (`eval_bleu_recall`,
`eval_bleu_precision`, `eval_bleu_f1`, `eval_intra_distinct_1/2`, `eval_inter_distinct_1/2`,
`eval_average_length`, `eval_reconstruction_nll`, training figures), `generations.txt` (the original's
`context<TAB>reference<TAB>response` file), `samples.md`, `recipe.yaml`, `training_args.json` and the model card.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class DialogModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "an optimus_dialog folder/repo to continue"})
    optimus_model: str | None = field(
        default=None, metadata={"help": "an Optimus VAE folder/repo to start from (the original starts from its "
                                        "pretrained Optimus checkpoint)"})
    encoder: str | None = field(default=None, metadata={"help": "pretrained encoder (BERT family), e.g. bert-base-cased"})
    decoder: str | None = field(default=None, metadata={"help": "pretrained causal-LM decoder, e.g. gpt2"})
    decoder_gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside the decoder folder"})
    offline_parts: bool = field(default=False, metadata={"help": "use the pip-shipped MiniLM encoder + SmolLM2 decoder"})
    latent_size: int = field(default=32, metadata={"help": "latent dimension (fresh Optimus only)"})
    latent_injection: str = field(default="memory", metadata={"help": "memory | embedding | both (the dialog "
                                                                       "original: memory)"})
    num_s2s_layers: int = field(default=1, metadata={"help": "encoder layers copied into the S2S branch (script: 2)"})
    fusion_weight: float = field(default=1.0, metadata={"help": "weight of the fusion regulariser (script: 2.0)"})
    fusion_push: str = field(default="nearest", metadata={"help": "nearest (SpaceFusion) | released (the Optimus "
                                                                  "code: a constant push term)"})
    push_weight: float = field(default=2.0, metadata={"help": "factor of the push distance in the regulariser"})
    interpolation_noise_std: float = field(default=0.1, metadata={"help": "noise on the interpolated latent"})
    max_context_length: int = field(default=256, metadata={"help": "context tokens kept ([CLS] + the most recent)"})


@dataclass
class DialogDataArguments:
    dataset: str | None = field(default=None, metadata={"help": "Hub dialog dataset, one dialog per row (daily_dialog)"})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config"})
    dialog_column: str = field(default="dialog", metadata={"help": "column holding a dialog's list of turns"})
    train_split: str = field(default="train", metadata={"help": "training split"})
    eval_split: str | None = field(default=None, metadata={"help": "evaluation split of --dataset (none: no evaluation)"})
    train_file: str | None = field(default=None, metadata={"help": "local training file: .jsonl/.json dialogs or the "
                                                                   "original's context<TAB>response .txt"})
    eval_file: str | None = field(default=None, metadata={"help": "local evaluation file (same formats)"})
    max_context_turns: int | None = field(default=None, metadata={"help": "turns of context kept (default: all)"})
    max_length: int = field(default=64, metadata={"help": "max tokens of a response (encoder and decoder)"})
    max_train_examples: int | None = field(default=None, metadata={"help": "cap the training pairs"})
    max_eval_contexts: int | None = field(default=200, metadata={"help": "cap the evaluation contexts"})
    num_responses: int = field(default=10, metadata={"help": "responses sampled per test context (original: 10)"})
    top_p: float = field(default=0.9, metadata={"help": "nucleus sampling of the responses (original: 0.9)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (original: 1.0)"})
    max_new_tokens: int = field(default=40, metadata={"help": "cap on a sampled response's tokens"})
    dataset_name: str | None = field(default=None, metadata={"help": "human-readable dataset name for the model card"})
    dataset_id: str | None = field(default=None, metadata={"help": "Hub id of the dataset, for the model card"})


def parse_args(argv: list[str] | None = None):
    """(model_args, data_args, training_args) from `--recipe FILE` plus overriding flags (`hf_dgm.training.recipes`)."""
    from ..recipes import parse_recipe_args, split_recipe_flag
    from .trainer import OptimusDialogTrainingArguments

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, _ = split_recipe_flag(argv)
    parsed = parse_recipe_args((DialogModelArguments, DialogDataArguments, OptimusDialogTrainingArguments), argv)
    parsed[2].recipe_path = recipe
    return parsed


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train optimus_dialog --recipe FILE [--flag value ...]`."""
    from .trainer import DialogTrainingDivergedError

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        model_args, data_args, training_args = parse_args(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        metrics = train_and_evaluate(model_args, data_args, training_args)
    except DialogTrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if training_args.process_index == 0:
        print(json.dumps({k: v for k, v in metrics.items() if k.startswith("eval_")}, indent=2))
    return 0


def build_model(args: DialogModelArguments, seed: int | None = None):
    """The dialog model of `args`: continued, wrapped around a trained Optimus, or composed from pretrained parts."""
    from transformers import set_seed

    from hf_dgm.models.optimus_dialog.modeling_optimus_dialog import OptimusForDialogResponse

    if seed is not None:
        set_seed(seed)
    if args.model_name_or_path:
        return OptimusForDialogResponse.from_pretrained(args.model_name_or_path)
    dialog = {"num_s2s_layers": args.num_s2s_layers, "fusion_weight": args.fusion_weight,
              "fusion_push": args.fusion_push, "push_weight": args.push_weight,
              "interpolation_noise_std": args.interpolation_noise_std, "max_context_length": args.max_context_length}
    if args.optimus_model:
        return OptimusForDialogResponse.from_optimus(args.optimus_model, **dialog)
    encoder, decoder, gguf = args.encoder, args.decoder, args.decoder_gguf_file
    if args.offline_parts:
        from ..offline_assets import minilm_path, smollm2_path

        folder, gguf = smollm2_path()
        encoder, decoder = str(minilm_path()), str(folder)
    if not encoder or not decoder:
        raise ValueError("give --model_name_or_path, --optimus_model, --encoder and --decoder, or --offline_parts")
    return OptimusForDialogResponse.from_encoder_decoder_pretrained(
        encoder, decoder, decoder_gguf_file=gguf, latent_size=args.latent_size,
        latent_injection=args.latent_injection, dialog_kwargs=dialog,
    )


def load_pairs(data_args: DialogDataArguments):
    """(train pairs, eval pairs or None)."""
    from .data import load_dialog_pairs

    common = {"dataset_config": data_args.dataset_config, "dialog_column": data_args.dialog_column,
              "max_context_turns": data_args.max_context_turns}
    train = load_dialog_pairs(data_args.dataset, split=data_args.train_split, data_file=data_args.train_file,
                              max_examples=data_args.max_train_examples, **common)
    evaluation = None
    if data_args.eval_file or (data_args.dataset and data_args.eval_split):
        evaluation = load_dialog_pairs(data_args.dataset, split=data_args.eval_split or "test",
                                       data_file=data_args.eval_file, **common)
    if not train:
        raise ValueError("the training data holds no (context, response) pair")
    return train, evaluation


def train_and_evaluate(model_args, data_args, training_args) -> dict[str, Any]:
    """Train, evaluate, write the run folder; returns the metrics."""
    from datasets import Dataset

    from .data import DialogDataCollator, tokenize_pair
    from .evaluation import evaluate_dialog, write_generations
    from .trainer import OptimusDialogTrainer
    from ..run_folder import write_run_folder

    out_dir = Path(training_args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model = build_model(model_args, seed=training_args.seed)
    processor = model.processor
    if processor is None:
        raise ValueError("the model has no tokenizers attached (save it with its processor)")
    train_pairs, eval_pairs = load_pairs(data_args)
    rows = [tokenize_pair(p, processor, model.config.max_context_length, data_args.max_length) for p in train_pairs]
    trainer = OptimusDialogTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                                   data_collator=DialogDataCollator(processor))
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics: dict[str, Any] = {k if k.startswith("train_") else f"train_{k}": v for k, v in result.metrics.items()}
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        metrics["train_first_logged_loss"], metrics["train_last_logged_loss"] = losses[0], losses[-1]
    if not trainer.is_world_process_zero():
        return metrics
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(out_dir)
    if eval_pairs:
        evaluation, generations = evaluate_dialog(
            model, processor, eval_pairs, num_responses=data_args.num_responses,
            max_contexts=data_args.max_eval_contexts, seed=training_args.seed, max_length=data_args.max_length,
            top_p=data_args.top_p, temperature=data_args.temperature, max_new_tokens=data_args.max_new_tokens,
        )
        metrics.update({f"eval_{k}": v for k, v in evaluation.items()})
        write_generations(generations, out_dir / "generations.txt")
        write_samples(generations, out_dir / "samples.md")
    dataset = data_args.dataset_name or data_args.dataset or (Path(data_args.train_file).name if data_args.train_file else None)
    eval_split = data_args.eval_split if data_args.dataset else (Path(data_args.eval_file).name if data_args.eval_file else None)
    metadata = {"dataset": dataset, "dataset_id": data_args.dataset_id or data_args.dataset, "eval_split": eval_split,
                "wall_clock_seconds": round(time.time() - started, 1), "num_train_pairs": len(train_pairs)}
    write_run_folder(out_dir, metrics={**metadata, **metrics}, metadata=metadata,
                     recipe={"model": model_args, "data": data_args, "training": _recipe_training(training_args)},
                     training_args=training_args)
    return metrics


_RECIPE_TRAINING_KEYS = ("max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                         "learning_rate", "weight_decay", "adam_epsilon", "max_grad_norm", "lr_scheduler_type",
                         "warmup_steps", "freeze_encoder_layers", "seed")


def _recipe_training(training_args) -> dict[str, Any]:
    out = {}
    for key in _RECIPE_TRAINING_KEYS:
        value = getattr(training_args, key, None)
        if key == "max_steps" and (value is None or value < 0):
            continue
        if key == "num_train_epochs" and training_args.max_steps > 0:
            continue
        out[key] = value.value if hasattr(value, "value") else value
    return out


def write_samples(generations, path: Path, max_contexts: int = 5) -> None:
    """`samples.md`: a few evaluation contexts with their reference and sampled responses."""
    lines = ["# Sampled responses", "", "Each response decodes its own sample of the context's posterior "
             "(nucleus sampling); the reference is the dialog's actual next turn.", ""]
    for number, g in enumerate(generations[:max_contexts], start=1):
        lines += [f"## Context {number}", ""] + [f"> {turn}" for turn in g["context"]] + [""]
        lines += [f"- reference: {g['response']}"] + [f"- sampled: {text}" for text in g["responses"]] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


__all__ = ["DialogDataArguments", "DialogModelArguments", "build_model", "main", "parse_args", "train_and_evaluate"]
