"""Fixed-input probes that prove a published repo computes what the source model computes.

Each probe (named by a family's `HubEntry.probe` as `"hf_dgm.hub.probes:name"`) takes a loaded model and a pipeline of one of the family's tasks and returns
`{"tensors": {name: Tensor}, "values": {name: JSON-able}}`. The publisher runs the same probe twice: on the source
model (with hf_dgm) and, in a fresh interpreter that cannot import hf_dgm, on the assembled repo loaded with
`trust_remote_code=True`; the outputs must match.

This module is loaded by file path in that isolated interpreter, so it must not import hf_dgm (only torch and
transformers), and everything it uses must be deterministic (eval mode, no sampling, fixed seeds).
"""

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


@torch.no_grad()
def fq_biggan_probe(model, pipe) -> dict[str, Any]:
    """Images of the EMA generator for a fixed seed (and classes 0, 1 when conditional), directly and through
    the image-generation pipeline (which returns PIL images, compared as uint8 arrays)."""
    model.eval()
    conditional = bool(getattr(model.config, "num_classes", 0))
    labels = [0, 1] if conditional else None
    images = model.generate(labels=labels, batch_size=None if conditional else 2, truncation=1.0,
                            generator=torch.Generator().manual_seed(0))
    if conditional:
        pil = pipe([0, 1], num_images_per_prompt=1, truncation=1.0, seed=0).images
    else:
        pil = pipe(num_images=2, truncation=1.0, seed=0).images
    return {
        "tensors": {"images": images, "pipeline_images": _pil_to_tensor(pil)},
        "values": {"pipeline_image_sizes": [list(image.size) for image in pil]},
    }


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


@torch.no_grad()
def fq_ugatit_probe(model, pipe) -> dict[str, Any]:
    """Both translation directions of two fixed (seeded) images: translated images, CAM logits and heat maps
    directly, and the `image-translation` pipeline's PIL outputs (as uint8 arrays) with their CAM maps."""
    from PIL import Image

    model.eval()
    size, channels = model.config.image_size, model.config.num_channels
    x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = x.to(model.device)
    tensors: dict[str, Any] = {}
    for direction in ("A2B", "B2A"):
        out = model.translate(x, direction)
        tensors[f"{direction}_images"] = out.images
        tensors[f"{direction}_cam_logits"] = out.cam_logits
        tensors[f"{direction}_heatmap"] = out.heatmap
    pixels = ((x.cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(p[..., 0] if channels == 1 else p) for p in pixels]
    results = pipe(images, direction="B2A", return_attention=True)
    tensors["pipeline_images"] = _pil_to_tensor(results.images)
    tensors["pipeline_attention"] = _pil_to_tensor(results.attention)
    return {"tensors": tensors, "values": {"pipeline_image_sizes": [list(image.size) for image in results.images]}}


@torch.no_grad()
def fq_stylegan_probe(model, pipe) -> dict[str, Any]:
    """Images of the EMA generator for fixed z (seed 0) with constant noise, untruncated and at ψ = 0.7, directly
    and through the unconditional-image-generation pipeline (PIL images, compared as uint8 arrays)."""
    model.eval()
    images = model.generate(batch_size=2, truncation_psi=1.0, noise_mode="const",
                            generator=torch.Generator().manual_seed(0))
    truncated = model.generate(batch_size=2, truncation_psi=0.7, noise_mode="const",
                               generator=torch.Generator().manual_seed(0))
    pil = pipe(num_images=2, truncation_psi=0.7, noise_mode="const", seed=0).images
    return {
        "tensors": {"images": images, "truncated_images": truncated, "pipeline_images": _pil_to_tensor(pil)},
        "values": {"pipeline_image_sizes": [list(image.size) for image in pil]},
    }


def _pil_to_tensor(images) -> torch.Tensor:
    import numpy as np

    return torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32)) for image in images])

