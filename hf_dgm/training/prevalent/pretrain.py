"""Prevalent pretraining with `Trainer`: image-text-action triplets from R2R train (+ speaker-synthesized R2R-format
JSON, mixed at `augmented_ratio`), attended masked LM + action prediction.

    accelerate launch training/pretrain_prevalent.py --recipe training/recipes/prevalent_pretrain.yaml \
        --augmented runs/aug.json --output_dir runs/prevalent

Resume: rerun the same command; the latest `checkpoint-*` in `output_dir` is picked up (or pass
`--resume_from_checkpoint DIR`). The output folder holds the model (safetensors), the tokenizer, `recipe.yaml`,
`training_args.json` and `pretrain_metrics.json` (held-out MLM loss, action loss and action accuracy on val_seen
triplets).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


@dataclass
class PrevalentPretrainArguments:
    data_dir: str = field(default="../shared/data/r2r", metadata={"help": "folder with R2R_<split>.json and connectivity/"})
    augmented: str | None = field(default=None, metadata={"help": "speaker-synthesized R2R-format JSON"})
    augmented_ratio: float = field(default=0.0, metadata={"help": "fraction of training triplets drawn from --augmented"})
    max_train_items: int | None = field(default=None, metadata={"help": "use the first N R2R train instructions"})
    max_augmented_items: int | None = field(default=None, metadata={"help": "use the first N synthesized instructions"})
    max_eval_items: int = field(default=200, metadata={"help": "val_seen instructions for the held-out metrics"})
    features: str | None = field(default=None, metadata={"help": "view-feature store (TSV/HDF5); none = geometry-only"})
    vision_feature_size: int = field(default=0, metadata={"help": "image feature size of --features (2048 for ResNet-152)"})
    angle_feature_size: int = field(default=128)
    init_bert: str | None = field(default="minilm", metadata={"help": "BERT folder to initialise from; 'minilm' = the pip-shipped all-MiniLM-L6-v2; 'none' = random"})
    init_cross_modal_from_bert: bool = field(default=False, metadata={"help": "start cross-modal layers from BERT layers la_layers.."})
    la_layers: int = field(default=6)
    vl_layers: int = field(default=2)
    hidden_size: int | None = field(default=None, metadata={"help": "only without --init_bert (taken from the BERT otherwise)"})
    num_attention_heads: int | None = field(default=None)
    intermediate_size: int | None = field(default=None)
    mlm_probability: float = field(default=0.15)
    max_instruction_length: int = field(default=80)


def _bert_path(init_bert: str | None) -> str | None:
    if init_bert in (None, "", "none"):
        return None
    if init_bert == "minilm":
        from hf_dgm.training.offline_assets import minilm_path

        return str(minilm_path())
    return init_bert


def load_tokenizer(init_bert: str | None):
    from transformers import AutoTokenizer

    path = _bert_path(init_bert)
    if path is None:
        from hf_dgm.training.offline_assets import minilm_path

        path = str(minilm_path())  # the BERT uncased word-piece vocabulary
    return AutoTokenizer.from_pretrained(path)


def build_pretraining_model(args: PrevalentPretrainArguments, tokenizer):
    from transformers import AutoConfig

    from hf_dgm.models.prevalent import PrevalentConfig, PrevalentForPreTraining

    path = _bert_path(args.init_bert)
    sizes = {}
    if path is not None:
        bert = AutoConfig.from_pretrained(path)
        if args.la_layers > bert.num_hidden_layers:
            raise ValueError(f"la_layers={args.la_layers} exceeds the {bert.num_hidden_layers} layers of {path}")
        sizes = {k: getattr(bert, k) for k in ("vocab_size", "hidden_size", "num_attention_heads", "intermediate_size",
                                               "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "hidden_act")}  # fmt: skip
    else:
        sizes["vocab_size"] = len(tokenizer)
        for k in ("hidden_size", "num_attention_heads", "intermediate_size"):
            if getattr(args, k) is not None:
                sizes[k] = getattr(args, k)
    config = PrevalentConfig(
        la_layers=args.la_layers, vl_layers=args.vl_layers, vision_feature_size=args.vision_feature_size,
        angle_feature_size=args.angle_feature_size, pad_token_id=tokenizer.pad_token_id, **sizes,
    )  # fmt: skip
    model = PrevalentForPreTraining(config)
    if path is not None:
        untouched = model.prevalent.load_bert_weights(path, init_cross_modal=args.init_cross_modal_from_bert)
        logger.info("initialised from %s; %d tensors start random", path, len(untouched))
        model.tie_weights()
    return model


def build_triplets(args: PrevalentPretrainArguments):
    from hf_dgm.training.prevalent.data import walk_triplets
    from hf_dgm.vln import NavGraphs, R2RDataset

    graphs = NavGraphs.from_dir(Path(args.data_dir) / "connectivity")
    train = R2RDataset.load(args.data_dir, "train").to_list()[: args.max_train_items]
    real = walk_triplets(train, graphs, source="r2r")
    augmented = []
    if args.augmented:
        items = R2RDataset.from_episodes(R2RDataset.read_episodes(args.augmented)).to_list()[: args.max_augmented_items]
        augmented = walk_triplets(items, graphs, source="speaker")
    val = R2RDataset.load(args.data_dir, "val_seen").to_list()[: args.max_eval_items]
    held_out = walk_triplets(val, graphs, source="r2r")
    return real, augmented, held_out


@torch.no_grad()
def evaluate_pretraining(model, collator, triplets, batch_size: int = 64) -> dict[str, float]:
    """Held-out masked-LM loss, action loss and action accuracy (one fixed masking via the collator's seed)."""
    model.eval()
    device = next(model.parameters()).device
    totals = {"mlm": 0.0, "mlm_tokens": 0, "action": 0.0, "correct": 0, "n": 0}
    for start in range(0, len(triplets), batch_size):
        batch = collator(triplets[start : start + batch_size])
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        out = model(**batch, masked_positions_only=True)
        labels = batch["labels"]
        mlm = torch.nn.functional.cross_entropy(out.prediction_logits, labels[labels != -100], reduction="sum")
        totals["mlm"] += float(mlm)
        totals["mlm_tokens"] += int((labels != -100).sum())
        totals["action"] += float(torch.nn.functional.cross_entropy(out.action_logits, batch["action_labels"], reduction="sum"))
        totals["correct"] += int((out.action_logits.argmax(-1) == batch["action_labels"]).sum())
        totals["n"] += len(batch["action_labels"])
    return {
        "eval_masked_lm_loss": totals["mlm"] / max(1, totals["mlm_tokens"]),
        "eval_action_loss": totals["action"] / max(1, totals["n"]),
        "eval_action_accuracy": totals["correct"] / max(1, totals["n"]),
        "eval_triplets": totals["n"],
    }


def parse_args(argv: list[str] | None = None):
    """(PrevalentPretrainArguments, TrainingArguments, recipe path) from `--recipe FILE` plus overriding flags
    (`hf_dgm.training.recipes` rules: recipe paths starting with ./ or ../ are relative to the recipe file)."""
    from transformers import TrainingArguments

    from hf_dgm.training.recipes import parse_recipe_args, split_recipe_flag

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, _ = split_recipe_flag(argv)
    args, training_args = parse_recipe_args((PrevalentPretrainArguments, TrainingArguments), argv)
    training_args.remove_unused_columns = False
    return args, training_args, recipe

def run(args: PrevalentPretrainArguments, training_args, recipe: str | None = None) -> dict:
    import yaml
    from transformers import Trainer
    from transformers.trainer_utils import get_last_checkpoint

    from hf_dgm.training.prevalent.data import MixedTriplets, PrevalentPretrainingCollator
    from hf_dgm.vln import load_feature_store

    if args.features is None and args.vision_feature_size:
        raise ValueError("--vision_feature_size needs --features (geometry-only mode has no image part)")
    tokenizer = load_tokenizer(args.init_bert)
    started = time.time()
    real, augmented, held_out = build_triplets(args)
    logger.info("triplets: %d R2R, %d synthesized, %d val_seen (%.1fs)", len(real), len(augmented), len(held_out), time.time() - started)
    train_set = MixedTriplets(real, augmented, args.augmented_ratio, seed=training_args.seed)
    features = load_feature_store(args.features) if args.features else None
    collator = PrevalentPretrainingCollator(tokenizer, args.angle_feature_size, features, args.mlm_probability, args.max_instruction_length)
    model = build_pretraining_model(args, tokenizer)
    trainer = Trainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator)
    resume = training_args.resume_from_checkpoint
    if resume is None and Path(training_args.output_dir).is_dir():
        resume = get_last_checkpoint(training_args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    eval_collator = PrevalentPretrainingCollator(tokenizer, args.angle_feature_size, features, args.mlm_probability, args.max_instruction_length, seed=1234)
    metrics.update(evaluate_pretraining(trainer.model, eval_collator, held_out))
    metrics.update({"train_triplets_r2r": len(real), "train_triplets_synthesized": len(augmented), "augmented_ratio": args.augmented_ratio})
    if trainer.is_world_process_zero():
        out = Path(training_args.output_dir)
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
        (out / "recipe.yaml").write_text(yaml.safe_dump({"recipe": recipe, **asdict(args)}, sort_keys=False))
        (out / "training_args.json").write_text(training_args.to_json_string())
        (out / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args, training_args, recipe = parse_args(argv)
    metrics = run(args, training_args, recipe)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}, indent=2))
    return metrics
