"""Publish probe of the prevalent family (`HubEntry.probe`, whose docstring states the contract): loaded by file
path in an interpreter without hf_dgm, deterministic, never published as remote code."""

from __future__ import annotations

from typing import Any

import torch


# a three-viewpoint corridor (poses: 4x4 row-major, translation at 3/7/11), sent inline as connectivity
PREVALENT_PROBE_SCAN = "probeScan"


def prevalent_probe_connectivity() -> dict[str, list[dict]]:
    """`{scan: [connectivity entries]}` of a tiny fixed graph a-b-c (b 3 m north of a, c 2 m east of b)."""
    positions = {"a": (0.0, 0.0, 1.5), "b": (0.0, 3.0, 1.5), "c": (2.0, 3.0, 1.5)}
    edges = {("a", "b"), ("b", "c")}
    names = list(positions)
    entries = []
    for name in names:
        x, y, z = positions[name]
        linked = [(name, o) in edges or (o, name) in edges for o in names]
        entries.append({"image_id": name, "pose": [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0],
                        "included": True, "visible": linked, "unobstructed": linked, "height": 1.5})
    return {PREVALENT_PROBE_SCAN: entries}


def _prevalent_inputs(config, generator, batch: int = 2, length: int = 7):
    ids = torch.randint(1, config.vocab_size, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, length - 2 :] = 0
    return ids, mask


@torch.no_grad()
def prevalent_probe(model, pipe) -> dict[str, Any]:
    """The pretraining heads' masked-LM and action logits for fixed random token ids and view features (seed 0). The pretraining family has no pipeline: `pipe` is None."""
    model.eval()
    config = model.config
    generator = torch.Generator().manual_seed(0)
    ids, mask = _prevalent_inputs(config, generator)
    vision = torch.randn(2, 5, config.vision_feature_size + config.angle_feature_size, generator=generator)
    vision_mask = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    out = model(input_ids=ids, attention_mask=mask, vision_features=vision, vision_attention_mask=vision_mask)
    tensors = {"prediction_logits": out.prediction_logits, "action_logits": out.action_logits}
    return {"tensors": tensors, "values": {"prediction_argmax": out.prediction_logits.argmax(-1).tolist()}}


@torch.no_grad()
def prevalent_navigation_probe(model, pipe) -> dict[str, Any]:
    """The agent's teacher-forced logits and values for fixed random inputs (seed 0), and, for a geometry-only
    agent, the `vln-navigation` pipeline's greedy episodes on a tiny inline graph."""
    model.eval()
    config = model.config
    generator = torch.Generator().manual_seed(0)
    ids, mask = _prevalent_inputs(config, generator)
    width = config.vision_feature_size + config.angle_feature_size
    steps, count = 3, 4
    previous = torch.randn(2, steps, config.angle_feature_size, generator=generator)
    views = torch.randn(2, steps, 36, width, generator=generator)
    candidates = torch.randn(2, steps, count, width, generator=generator)
    candidate_mask = torch.ones(2, steps, count, dtype=torch.bool)
    candidate_mask[1, :, 2:] = False
    out = model(ids, mask, previous, views, candidates, candidate_mask)
    values: dict[str, Any] = {}
    if not config.vision_feature_size:
        episodes = [{"instr_id": "p0", "scan": PREVALENT_PROBE_SCAN, "start": "a", "heading": 0.0, "instruction": "walk forward and stop"},
                    {"instr_id": "p1", "scan": PREVALENT_PROBE_SCAN, "start": "c", "heading": 3.1, "instruction": "turn left then go straight"}]
        values["pipeline"] = pipe(episodes, connectivity=prevalent_probe_connectivity())
    # masked candidates score -inf; a finite stand-in keeps the reported max |difference| a number
    logits = out.logits.masked_fill(torch.isinf(out.logits), -1e4)
    return {"tensors": {"logits": logits, "values": out.values}, "values": values}
