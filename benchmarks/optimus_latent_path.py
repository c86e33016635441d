"""Why the `embedding` injection carried nothing, and what fixed it (issue 17, item 1).

A tiny Optimus (BERT/GPT-2/Llama, 2 layers, hidden 32, latent 16) is trained as an autoencoder (β = 0, z sampled from
q(z|x)) for 400 AdamW steps at 3e-3 on 16 SNLI sentences; the figure is the number of greedy reconstructions from the
posterior means that are exactly right. Variants restore the old initialisation (every head N(0, 0.02²), bias-free
posterior: log σ² ≈ 0 at init) and change one thing at a time:

    PYTHONPATH=$PWD python benchmarks/optimus_latent_path.py [--decoders gpt2,llama] [--variants old,new,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from optimus_tiny import autoencode  # noqa: E402


def _old_init(model) -> None:
    for name in ("posterior", "latent_to_memory", "latent_to_embedding"):
        head = getattr(model, name, None)
        if head is not None:
            torch.nn.init.normal_(head.weight, std=0.02)


def _old_but_mean_scaled(model) -> None:
    _old_init(model)
    with torch.no_grad():
        latent = model.config.latent_size
        model.posterior.weight[:latent].normal_(std=model.posterior.in_features**-0.5)


def _old_but_narrow_posterior(model) -> None:
    _old_init(model)  # keeps the default logvar bias of -4


def _old_but_embedding_calibrated(model) -> None:
    _old_init(model)
    if hasattr(model, "latent_to_embedding"):
        rms = model.decoder.get_input_embeddings().weight.pow(2).mean().sqrt().item()
        torch.nn.init.normal_(model.latent_to_embedding.weight, std=rms / model.config.latent_size**0.5)


VARIANTS = {
    "old": dict(patch=_old_init, posterior_logvar_bias=None),
    "old+head_lr_x10": dict(patch=_old_init, posterior_logvar_bias=None, head_lr_multiplier=10.0),
    "old+mean_scale": dict(patch=_old_but_mean_scaled, posterior_logvar_bias=None),
    "old+logvar_bias-4": dict(patch=_old_but_narrow_posterior),
    "old+embedding_calibrated": dict(patch=_old_but_embedding_calibrated, posterior_logvar_bias=None),
    "new (defaults)": dict(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoders", default="gpt2,llama")
    parser.add_argument("--injections", default="memory,embedding,both")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| variant | decoder | injection | exact /16 | from z=0 /16 | first-step grad norms | s |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variants.split(","):
        for decoder in args.decoders.split(","):
            for injection in args.injections.split(","):
                started = time.time()
                r = autoencode(decoder, injection, steps=args.steps, **VARIANTS[variant])
                norms = ", ".join(f"{k} {v:.3g}" for k, v in r["first_step_grad_norms"].items())
                print(
                    f"| {variant} | {decoder} | {injection} | {r['exact']} | {r['exact_at_zero']} | {norms} | "
                    f"{time.time() - started:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
