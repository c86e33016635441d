"""Sentence data for Optimus: loading (Hub datasets, local text files, streaming), filtering, tokenization, collation.

Each sentence is tokenized twice (encoder `[CLS] … [SEP]`, decoder `BOS … EOS`); the collator pads both sides.
Sentences are kept when they have fewer than `max_words` words (the paper: 64) and at most `max_length` decoder
tokens (the paper's block sizes: 100 for PTB/SNLI, 300 Yelp, 512 Yahoo; pretraining ≤ 256).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, IterableDataset, load_dataset

from hf_dgm.models.optimus.processing_optimus import OptimusProcessor

SHARED_DATA_ENV = "HF_DGM_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """`../shared/data` next to the repository (or `$HF_DGM_SHARED_DATA`), if present."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    candidate = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def check_text_file(path: str | os.PathLike, what: str) -> None:
    """A text file of sentences must be non-empty UTF-8 text with at least one non-blank line; `ValueError` naming
    `what` and the file otherwise (instead of `datasets`' errors or a `num_samples=0` sampler)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if not head:
        raise ValueError(f"`{what}` {path} is empty (0 bytes); it must hold one sentence per line")
    if b"\x00" in head:
        raise ValueError(f"`{what}` {path} is a binary file (it holds NUL bytes); pass UTF-8 text, one sentence a line")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a character cut at the 1 MiB boundary
            raise ValueError(f"`{what}` {path} is not UTF-8 text (byte {err.start}: {err.reason})") from None
        text = head[: err.start].decode("utf-8")
    if not text.strip() and path.stat().st_size == len(head):
        raise ValueError(f"`{what}` {path} holds only blank lines; it must hold one sentence per line")


# Abbreviations whose trailing period does not end a sentence (lower-cased, without the period).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx inc ltd co corp jan feb mar apr jun jul aug sep sept "
    "oct nov dec no vol pp fig gen gov sen rep col lt capt sgt u.s u.k".split()
)
_SENTENCE_END = re.compile(r"""(?<=[.!?])["')\]]*\s+(?=["'(\[]?[A-Z0-9])""")


def split_sentences(text: str) -> list[str]:
    """
    Split running text (a Wikipedia article) into sentences: paragraphs at line breaks, then sentences at `.`, `!`
    or `?` followed by white space and an upper-case letter or digit — except after a known abbreviation ("Dr.",
    "U.S.") or a single initial ("J. Smith"). A dependency-free stand-in for the NLTK (punkt) split of the paper;
    headings and list items (lines without final punctuation) come out as their own "sentences".
    """
    sentences: list[str] = []
    for paragraph in text.splitlines():
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            candidate = paragraph[start : match.start()].rstrip()
            last = candidate.rstrip("\"')]").rsplit(None, 1)[-1] if candidate else ""
            word = last.rstrip(".!?").lower()
            if last.endswith(".") and (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
                continue
            sentences.append(paragraph[start : match.end()].strip())
            start = match.end()
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def load_sentences(
    dataset: str | None = None,
    train_file: str | None = None,
    split: str = "train",
    text_column: str = "text",
    dataset_config: str | None = None,
    streaming: bool = False,
    max_words: int = 64,
    max_examples: int | None = None,
    sentence_split: bool = False,
) -> Dataset | IterableDataset:
    """
    A dataset with one sentence per row in a `text` column, from a local text file (one sentence per line) or a Hub
    dataset (`dataset`, `dataset_config`, `split`, `text_column`), blank lines dropped and sentences of `max_words`
    words or more removed. `streaming=True` streams the Hub dataset (for large pretraining corpora).
    `sentence_split=True` splits every row (e.g. a whole Wikipedia article) into sentences first (see
    [`split_sentences`]); it works on streamed datasets too.
    """
    if (dataset is None) == (train_file is None):
        raise ValueError("pass exactly one of `dataset` (a Hub dataset name) or `train_file` (a local text file)")
    if train_file is not None:
        if not Path(train_file).is_file():
            raise ValueError(f"`train_file` {train_file!r} does not exist")
        check_text_file(train_file, "train_file")
        data = load_dataset("text", data_files={split: str(train_file)}, split=split, streaming=streaming)
        text_column = "text"
    else:
        try:
            data = load_dataset(dataset, dataset_config, split=split, streaming=streaming)
        except Exception as err:  # noqa: BLE001 - re-raised with the actionable message
            raise RuntimeError(
                f"could not load the Hub dataset {dataset!r} (split {split!r}): {err}. Offline? Pass a local text "
                "file with --train_file (one sentence per line)."
            ) from err
    columns = data.column_names or []
    if text_column not in columns:
        raise ValueError(f"the dataset has no column {text_column!r}; its columns are {columns}")
    if text_column != "text":
        data = data.rename_column(text_column, "text")
    keep = [c for c in (data.column_names or []) if c not in ("text", "label")]
    if keep:
        data = data.remove_columns(keep)
    if sentence_split:
        if "label" in (data.column_names or []):
            data = data.remove_columns(["label"])

        def split(batch: dict[str, list]) -> dict[str, list]:
            return {"text": [s for text in batch["text"] if isinstance(text, str) for s in split_sentences(text)]}

        data = data.map(split, batched=True, remove_columns=["text"])

    def ok(example: dict[str, Any]) -> bool:
        text = example["text"]
        return isinstance(text, str) and bool(text.strip()) and len(text.split()) < max_words

    data = data.filter(ok)
    if not isinstance(data, IterableDataset) and len(data) == 0:
        source = f"`train_file` {train_file}" if train_file is not None else f"dataset {dataset!r} (split {split!r})"
        raise ValueError(f"{source} has no usable sentence (non-blank, fewer than max_words={max_words} words)")
    if max_examples is not None:
        data = data.take(max_examples) if isinstance(data, IterableDataset) else data.select(range(min(max_examples, len(data))))
    return data


def tokenize_sentences(
    data: Dataset | IterableDataset, processor: OptimusProcessor, max_length: int = 100, drop_longer: bool = False
) -> Dataset | IterableDataset:
    """
    Adds `input_ids` (encoder), `decoder_input_ids` and `length` (decoder tokens, for length grouping). Sentences
    longer than `max_length` tokens are truncated, or dropped with `drop_longer=True` (the paper's pretraining
    keeps sentences of ≤ 256 tokens).
    """

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        texts = [t.strip() for t in batch["text"]]
        limit = 10**9 if drop_longer else max_length
        enc = processor.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        dec = processor.decoder_token_ids(texts, max_length=limit)
        if drop_longer:
            kept = [i for i in range(len(texts)) if len(enc[i]) <= max_length and len(dec[i]) <= max_length]
            texts, enc, dec = [texts[i] for i in kept], [enc[i] for i in kept], [dec[i] for i in kept]
            return {"text": texts, "input_ids": enc, "decoder_input_ids": dec, "length": [len(d) for d in dec]}
        return {"input_ids": enc, "decoder_input_ids": dec, "length": [len(d) for d in dec]}

    kwargs: dict[str, Any] = {"batched": True}
    if drop_longer:  # rows may vanish: every other column goes
        kwargs["remove_columns"] = list(data.column_names or ["text"])
    if isinstance(data, Dataset):
        kwargs["desc"] = "tokenizing (encoder + decoder)"
    return data.map(tokenize, **kwargs)


@dataclass
class OptimusDataCollator:
    """Pads encoder and decoder ids of a list of tokenized examples into a batch (right padding, with masks)."""

    encoder_pad_token_id: int
    decoder_pad_token_id: int

    @classmethod
    def from_processor(cls, processor: OptimusProcessor) -> "OptimusDataCollator":
        return cls(processor.tokenizer.pad_token_id or 0, processor.decoder_tokenizer.pad_token_id)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        batch = {}
        for key, pad in (("input_ids", self.encoder_pad_token_id), ("decoder_input_ids", self.decoder_pad_token_id)):
            seqs = [list(f[key]) for f in features]
            width = max(len(s) for s in seqs)
            batch[key] = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], dtype=torch.long)
            batch["attention_mask" if key == "input_ids" else "decoder_attention_mask"] = mask
        return batch


__all__ = ["split_sentences", "load_sentences", "tokenize_sentences", "OptimusDataCollator", "shared_data_dir"]
