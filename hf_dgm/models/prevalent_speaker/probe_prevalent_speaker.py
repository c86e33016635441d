"""Publish probe of the prevalent_speaker family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def prevalent_speaker_probe(model, pipe) -> dict[str, Any]:
    """Teacher-forced logits and greedy instruction ids for fixed random trajectory features, and the pipeline's
    greedy instruction for a fixed geometry-only trajectory in its compact form (view indices, action angles)."""
    model.eval()
    size = model.config.input_size
    generator = torch.Generator().manual_seed(0)
    actions = torch.randn(2, 3, size, generator=generator)
    views = torch.randn(2, 3, model.config.num_views, size, generator=generator)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    ids = torch.tensor([[model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id]] * 2)
    out = model(actions, views, mask, input_ids=ids)
    generated = model.generate_instructions(actions, views, mask, max_length=8)
    values = {"generated_ids": generated}
    if model.config.feature_size == 0:
        trajectory = {"view_indices": [12, 13, 15], "action_angles": [[0.52, -0.02], [1.05, 0.01]]}
        values["pipeline_instruction"] = pipe(trajectory, max_length=12)["instruction"]
    return {"tensors": {"logits": out.logits, "encoder_last_hidden_state": out.encoder_last_hidden_state}, "values": values}
