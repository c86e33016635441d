"""Dialog contexts for the encoder: `[CLS] turn₁ [SEP] turn₂ [SEP] … turnₙ [SEP]`, most recent tokens kept.

The model uses Optimus's own two-tokenizer processor (`OptimusProcessor`) for responses; these helpers add the
context side with its encoder tokenizer.
"""

from __future__ import annotations

from typing import Sequence

import torch


def check_turns(context, what: str = "the context") -> list[str]:
    """A context as a list of non-empty turn strings (a single string is one turn); `ValueError` otherwise."""
    turns = [context] if isinstance(context, str) else context
    if not isinstance(turns, (list, tuple)) or not turns:
        raise ValueError(f"{what} must be a string or a non-empty list of turn strings; got {context!r}")
    for i, turn in enumerate(turns):
        if not isinstance(turn, str) or not turn.strip():
            raise ValueError(f"turn {i} of {what} must be a non-empty string; got {turn!r}")
    return [turn.strip() for turn in turns]


def context_token_ids(tokenizer, turns: Sequence[str], max_length: int = 256) -> list[int]:
    """
    Encoder ids of one context: `[CLS]`, then every turn followed by `[SEP]`; when longer than `max_length`, `[CLS]`
    and the last `max_length − 1` ids are kept (the oldest turns are cut, as the original keeps the last tokens).
    """
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("the encoder tokenizer needs a [CLS] and a [SEP] token to build dialog contexts")
    if max_length < 3:
        raise ValueError(f"`max_length` must be >= 3; got {max_length!r}")
    pieces = tokenizer(list(turns), add_special_tokens=False)["input_ids"]
    body: list[int] = []
    for ids in pieces:
        body += list(ids) + [sep_id]
    return [cls_id] + body[-(max_length - 1):]


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Right-pad id lists: `(ids, attention_mask)`, both `(len(rows), longest)`."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def encode_contexts(tokenizer, contexts: Sequence, max_length: int = 256) -> dict[str, torch.LongTensor]:
    """`context_input_ids` and `context_attention_mask` `(batch_size, longest)` of several contexts."""
    rows = [context_token_ids(tokenizer, check_turns(c, f"context {i}"), max_length) for i, c in enumerate(contexts)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = pad_ids(rows, pad)
    return {"context_input_ids": ids, "context_attention_mask": mask}


__all__ = ["check_turns", "context_token_ids", "encode_contexts", "pad_ids"]
