"""The plain-decoder baseline of the main job: the same pretrained decoder, fine-tuned as a language model on the same
sentences with the same budget (steps, batch size, learning rate, schedule, clipping), scored with the same token
count as Optimus's perplexity (decoder tokens of `BOS sentence EOS`, BOS and EOS included)."""

from __future__ import annotations

import time
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from ...metrics.vae_math import perplexity


def _batch(processor, sentences: list[str], max_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    return _pad(processor.decoder_token_ids(list(sentences), max_length=max_length), processor.decoder_tokenizer.pad_token_id, device)


def _pad(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `(ids, attention_mask)` of token-id rows."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    return ids, mask


def _sentence_nll(decoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−log p(x) per sentence (targets: every token after BOS, EOS included)."""
    logits = decoder(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none")
    return nll.view(targets.shape).sum(-1)


def _length_grouped_batches(lengths: list[int], batch_size: int, seed: int):
    """Endless batches of indices, epoch after epoch, from transformers' `LengthGroupedSampler` (the sampler the
    Optimus run's `train_sampling_strategy="group_by_length"` uses): each batch holds sentences of similar length,
    so little of it is padding. Epoch `e` shuffles with a generator seeded `seed + e`; the last batch of an epoch
    may be short, as the Trainer's (no `drop_last`)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    epoch = 0
    while True:
        generator = torch.Generator()
        generator.manual_seed(seed + epoch)
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]
        epoch += 1


def finetune_plain_decoder(
    decoder,
    processor,
    sentences: list[str],
    max_steps: int,
    batch_size: int,
    learning_rate: float,
    max_length: int = 40,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    lr_scheduler_type: str = "linear",
    lora: dict | None = None,
) -> dict[str, Any]:
    """Fine-tunes `decoder` as a language model (loss: −log p(x) per sentence, batch mean — Optimus's reconstruction
    term) the way `OptimusTrainer` trains Optimus by default: length-grouped batches of `batch_size` sentences,
    fused AdamW (eps 1e-8, no weight decay), the learning rate decaying linearly to 0 (`lr_scheduler_type="linear"`,
    the Trainer's default) or held (`"constant"`), gradient clipping at `max_grad_norm`.
    With `lora` (`{"rank", "alpha", "target_modules", "lr_multiplier"}`), only LoRA adapters train, at
    `learning_rate × lr_multiplier`, as the Optimus run's decoder does under `decoder_training="lora"`; they are merged
    into the weights at the end. Returns `{"train_seconds", "final_loss"}`."""
    if lr_scheduler_type not in ("linear", "constant"):
        raise ValueError(f"`lr_scheduler_type` must be 'linear' or 'constant'; got {lr_scheduler_type!r}")
    if max_steps < 1 or batch_size < 1:
        raise ValueError(f"`max_steps` and `batch_size` must be >= 1; got {max_steps}, {batch_size}")
    if not sentences:
        raise ValueError("`sentences` is empty: the plain decoder needs at least one training sentence")
    rows = processor.decoder_token_ids(list(sentences), max_length=max_length)  # tokenized once, batched below
    batches = _length_grouped_batches([len(row) for row in rows], batch_size, seed)
    pad = processor.decoder_tokenizer.pad_token_id
    torch.manual_seed(seed)
    decoder.train()
    rate = learning_rate
    if lora is not None:
        from .adapters import add_lora

        add_lora(decoder, lora["rank"], lora["alpha"], lora["target_modules"])
        rate = learning_rate * lora["lr_multiplier"]
    trainable = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=rate, eps=1e-8, weight_decay=0.0, fused=True)
    schedule = get_scheduler(lr_scheduler_type, optimizer, num_warmup_steps=0, num_training_steps=max_steps)  # the Trainer's
    started, loss = time.time(), float("nan")
    for _ in tqdm(range(max_steps), desc="plain decoder", disable=not progress):
        ids, mask = _pad([rows[i] for i in next(batches)], pad, decoder.device)
        nll = _sentence_nll(decoder, ids, mask)
        optimizer.zero_grad()
        nll.mean().backward()
        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        schedule.step()
        loss = nll.mean().item()
    if lora is not None:
        from .adapters import merge_lora

        merge_lora(decoder)
    decoder.eval()
    return {"train_seconds": time.time() - started, "final_loss": loss}


@torch.no_grad()
def decoder_perplexity(decoder, processor, sentences: list[str], max_length: int = 40, batch_size: int = 16) -> dict[str, float]:
    """Exact −log p(x) of a plain LM: `nll` (nats per sentence, mean) and `ppl_per_token` (BOS and EOS counted)."""
    decoder.eval()
    total, tokens = 0.0, 0
    for i in range(0, len(sentences), batch_size):
        ids, mask = _batch(processor, sentences[i : i + batch_size], max_length, decoder.device)
        total += float(_sentence_nll(decoder, ids, mask).sum())
        tokens += int(mask.sum())
    return {"nll": total / len(sentences), "ppl_per_token": perplexity(total, tokens), "num_tokens": tokens}


__all__ = ["finetune_plain_decoder", "decoder_perplexity"]
