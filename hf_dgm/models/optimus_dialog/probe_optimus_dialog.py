"""Publish probe of the optimus_dialog family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch

CONTEXT = ("hi , how are you ?", "fine , thanks . and you ?")
RESPONSES = ("i am fine .", "not bad at all .")


@torch.no_grad()
def probe(model, pipe) -> dict[str, Any]:
    """S2S and AE posteriors, the three-branch losses (eval mode: means, midpoint interpolation), greedy responses
    from the context's posterior mean, and the pipeline's greedy and seeded-sampling responses."""
    model.eval()
    context = pipe.preprocess({"context": list(CONTEXT)})
    context = {k: v.to(model.device) for k, v in context.items()}
    responses = pipe.processor(list(RESPONSES), return_tensors="pt")
    responses = {k: v.to(model.device) for k, v in responses.items()}
    pair = {k: v.repeat(2, 1) for k, v in context.items()}
    out = model(**pair, **responses, sample_latent=False)
    posterior = model.encode_context(context["context_input_ids"], context["context_attention_mask"])
    greedy = model.generate_responses(context["context_input_ids"], context["context_attention_mask"], num_responses=1,
                                      sample_latent=False, do_sample=False, min_new_tokens=6, max_new_tokens=6)
    piped = pipe(list(CONTEXT), num_responses=2, sample_latent=False, do_sample=False, max_new_tokens=8)
    sampled = pipe(list(CONTEXT), num_responses=3, seed=0, max_new_tokens=8)
    return {
        "tensors": {
            "context_mean": posterior.mean,
            "context_logvar": posterior.logvar,
            "branch_reconstruction_losses": out.branch_reconstruction_losses,
            "fusion_loss": out.fusion_loss,
            "greedy_ids": greedy,
        },
        "values": {"greedy": [r["text"] for r in piped], "sampled": [r["text"] for r in sampled]},
    }
