"""Publish probe of Optimus-CARA (loaded by file path where hf_dgm cannot be imported: torch and transformers only)."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def probe(model, pipe) -> dict[str, Any]:
    """Latents of G for fixed noise and both ends of the label set, D and C on them, greedy decodes of those latents,
    and the `label-conditional-generation` pipeline's sentences for a fixed seed."""
    model.eval()
    labels = torch.tensor([0, model.config.num_labels - 1])
    noise = model.sample_noise(2, torch.Generator().manual_seed(0))
    out = model(labels=labels, noise=noise)
    sequences = model.optimus.generate(latents=out.generated_latents, do_sample=False, num_beams=1,
                                       min_new_tokens=6, max_new_tokens=6)
    results = pipe([0, model.config.num_labels - 1], num_return_sequences=2, seed=0, max_new_tokens=8)
    return {
        "tensors": {
            "generated_latents": out.generated_latents,
            "fake_scores": out.fake_scores,
            "fake_class_logits": out.fake_class_logits,
            "generated_ids": sequences,
        },
        "values": {"pipeline": [[item["label"], item["text"]] for group in results for item in group]},
    }
