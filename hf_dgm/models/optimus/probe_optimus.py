"""Publish probe of the optimus family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


OPTIMUS_SENTENCES = ("a man is playing a guitar .", "two dogs run through the snow .")


@torch.no_grad()
def optimus_probe(model, pipe) -> dict[str, Any]:
    """Encoder posterior (mean, log-variance), decoder logits and greedy continuations for two fixed sentences,
    plus a greedy interpolation through the `sentence-interpolation` pipeline."""
    model.eval()
    batch = pipe.processor(list(OPTIMUS_SENTENCES), return_tensors="pt")
    batch = {k: v.to(model.device) for k, v in batch.items()}
    posterior = model.encode(batch["input_ids"], batch["attention_mask"])
    out = model(**batch, sample_latent=False)
    # min_new_tokens keeps EOS away, so even an untrained model yields ids worth comparing
    generated = model.generate(latents=posterior.mean, do_sample=False, num_beams=1, min_new_tokens=6, max_new_tokens=6)
    steps = pipe(OPTIMUS_SENTENCES, num_steps=3, do_sample=False, num_beams=1, max_new_tokens=8)
    return {
        "tensors": {
            "encoder_mean": posterior.mean,
            "encoder_logvar": posterior.logvar,
            "logits": out.logits,
            "generated_ids": generated,
        },
        "values": {"interpolation": [step["text"] for step in steps]},
    }
