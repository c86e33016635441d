"""Dialog data → (context, response) pairs → tokenized examples for [`OptimusForDialogResponse`].

Sources:
- a Hub dialog dataset with one dialog per row, its turns in a list column (`dialog` in DailyDialog's
  `daily_dialog` layout): `load_dialog_pairs(dataset="daily_dialog", split="train")`;
- a local JSON / JSON-lines file in the same layout (`train_file="dialogs.jsonl"`);
- a local text file in the original's layout (`train_file="train.txt"`): one pair a line, `context<TAB>response`,
  the context's turns separated by ` EOS ` (or `[SEP]`), as the DailyDialog / Switchboard files of the Optimus
  and SpaceFusion repositories.

Every turn after the first of a dialog is a response, its context the turns before it (at most
`max_context_turns`, the most recent; all by default — the encoder keeps the last `max_context_length` tokens, as
the original keeps the last 512).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from hf_dgm.models.optimus_dialog.processing_optimus_dialog import context_token_ids, pad_ids

_TURN_SEPARATOR = re.compile(r"\s+(?:EOS|\[SEP\])\s+")


def _clean(turn: Any) -> str:
    return " ".join(str(turn).split())


def dialog_pairs(dialogs: Iterable[Sequence[str]], max_context_turns: int | None = None) -> list[dict[str, Any]]:
    """`{"context": [turns], "response": turn}` for every turn after the first of each dialog (empty turns skipped)."""
    if max_context_turns is not None and max_context_turns < 1:
        raise ValueError(f"`max_context_turns` must be >= 1 or None; got {max_context_turns!r}")
    pairs = []
    for dialog in dialogs:
        if isinstance(dialog, str) or not isinstance(dialog, Sequence):
            raise ValueError(f"a dialog must be a list of turns; got {type(dialog).__name__}")
        turns = [t for t in (_clean(turn) for turn in dialog) if t]
        for i in range(1, len(turns)):
            start = 0 if max_context_turns is None else max(0, i - max_context_turns)
            pairs.append({"context": turns[start:i], "response": turns[i]})
    return pairs


def read_pairs_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Pairs of a `context<TAB>response` file (turns of the context separated by ` EOS ` or `[SEP]`)."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}:{number}: expected `context<TAB>response`; got {line[:80]!r}")
        turns = [t for t in (_clean(x) for x in _TURN_SEPARATOR.split(f" {fields[0].strip()} ")) if t]
        response = _clean(fields[1])
        if turns and response:
            pairs.append({"context": turns, "response": response})
    return pairs


def load_dialog_pairs(
    dataset: str | None = None,
    dataset_config: str | None = None,
    split: str = "train",
    dialog_column: str = "dialog",
    data_file: str | None = None,
    max_context_turns: int | None = None,
    max_examples: int | None = None,
) -> list[dict[str, Any]]:
    """The (context, response) pairs of a Hub dataset split or a local file (see the module docstring)."""
    if data_file:
        if not Path(data_file).is_file():
            raise ValueError(f"{data_file}: no such file")
        if Path(data_file).suffix.lower() in (".txt", ".tsv"):
            pairs = read_pairs_file(data_file)
            return pairs[:max_examples] if max_examples else pairs
        dataset, dataset_config, split = "json", None, "train"
    if not dataset:
        raise ValueError("give a dataset (e.g. daily_dialog) or a data file")
    from datasets import load_dataset

    kwargs = {"data_files": data_file} if data_file else {}
    rows = load_dataset(dataset, dataset_config, split=split, **kwargs)
    if dialog_column not in rows.column_names:
        raise ValueError(f"{dataset} has no column {dialog_column!r} (columns: {rows.column_names}); set --dialog_column")
    pairs = dialog_pairs(rows[dialog_column], max_context_turns=max_context_turns)
    return pairs[:max_examples] if max_examples else pairs


def tokenize_pair(pair: dict[str, Any], processor, max_context_length: int, max_length: int) -> dict[str, list[int]]:
    """Encoder ids of the context and of the response, decoder ids `BOS response EOS` (at most `max_length`)."""
    enc = processor.tokenizer(pair["response"], truncation=True, max_length=max_length)["input_ids"]
    return {
        "context_input_ids": context_token_ids(processor.tokenizer, pair["context"], max_context_length),
        "input_ids": list(enc),
        "decoder_input_ids": processor.decoder_token_ids([pair["response"]], max_length=max_length)[0],
    }


class DialogDataCollator:
    """Pads tokenized pairs into a batch: context, response-encoder and decoder ids with their masks."""

    def __init__(self, processor):
        self.encoder_pad = processor.tokenizer.pad_token_id or 0
        self.decoder_pad = processor.decoder_tokenizer.pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for key, mask_key, pad in (
            ("context_input_ids", "context_attention_mask", self.encoder_pad),
            ("input_ids", "attention_mask", self.encoder_pad),
            ("decoder_input_ids", "decoder_attention_mask", self.decoder_pad),
        ):
            batch[key], batch[mask_key] = pad_ids([f[key] for f in features], pad)
        return batch


__all__ = ["DialogDataCollator", "dialog_pairs", "load_dialog_pairs", "read_pairs_file", "tokenize_pair"]
