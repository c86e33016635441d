"""Fixed-input probes that prove a published repo computes what the source model computes.

Each probe takes a loaded model and a pipeline of one of the family's tasks and returns
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
    """Generator images for fixed latents and classes, plus the pipeline's output for a fixed seed."""
    model.eval()
    config = model.config
    num_classes = int(getattr(config, "num_classes", 0) or 0)
    z_dim = int(getattr(config, "dim_z", None) or getattr(config, "z_dim", None) or getattr(config, "latent_dim"))
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, z_dim, generator=gen).to(model.device)
    labels = torch.arange(2, device=model.device) % max(num_classes, 1)
    images = model.generate(latents=z, labels=labels) if num_classes else model.generate(latents=z)
    images = images.images if hasattr(images, "images") else images
    result = pipe(labels.tolist() if num_classes else 2, seed=0, output_type="pt")
    return {
        "tensors": {"images": images.float(), "pipeline_images": _pipeline_tensor(result)},
        "values": {},
    }


def _pipeline_tensor(result: Any) -> torch.Tensor:
    if isinstance(result, torch.Tensor):
        return result.float()
    if isinstance(result, dict):
        return _pipeline_tensor(result.get("images", result.get("image")))
    if isinstance(result, (list, tuple)):
        return torch.stack([_pipeline_tensor(r) for r in result])
    raise TypeError(f"cannot read the pipeline's output of type {type(result).__name__} as a tensor")


PROBES = {"optimus_probe": optimus_probe, "fq_biggan_probe": fq_biggan_probe}
