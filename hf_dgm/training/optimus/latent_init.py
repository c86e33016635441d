"""Data-dependent start for the posterior head of a freshly composed Optimus: the mean rows become the whitened
principal components of the encoder's pooled features (PCA on training sentences).

Why: the composed model's posterior head is random (`OptimusPreTrainedModel._init_latent_head`), so at the first step
μ is a random 32-d projection of the pooled feature whose spread across sentences (~0.26 per dimension for
all-MiniLM-L6-v2 on SNLI) is barely above the sampling noise σ = exp(-2) ≈ 0.14: the decoder first sees mostly noise
in `z`. With the whitened principal components, every latent dimension starts with unit variance across the training
sentences (the prior's scale), the 32 dimensions carry the most variance a linear map can keep, and σ is a seventh of
the spread. The log-variance rows and the decoder-side heads are left as initialised.

Used by the Optimus trainer's `posterior_init="pca"` (the main job's default); measured in
benchmarks/optimus_main_job_avenues.md.
"""

from __future__ import annotations

import torch

from ...modules.validation import check_int

POSTERIOR_INITS = ("random", "pca")


@torch.no_grad()
def pooled_features(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The encoder's pooled sentence features `(num_sentences, encoder_hidden)` of padded encoder `input_ids`
    `(num_sentences, seq_len)`, in eval mode (no dropout), as float32."""
    was_training = model.training
    model.eval()
    try:
        chunks = [
            model.encode(input_ids[i : i + batch_size], attention_mask[i : i + batch_size]).pooled.float()
            for i in range(0, input_ids.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


@torch.no_grad()
def initialize_posterior_from_pca(model, features: torch.Tensor) -> dict[str, float]:
    """
    Set the mean rows of `model.posterior` so that μ = W (x − x̄) / s: the top `latent_size` principal components of
    `features` `(num_sentences, encoder_hidden)` (pooled features of training sentences), each divided by its standard
    deviation. The head's mean bias absorbs −W x̄ (the head must have a bias, as the default config's does).

    Returns `explained_variance` (the share of the features' variance the components keep) and `num_sentences`.
    """
    latent = model.config.latent_size
    head = model.posterior
    if head.bias is None:
        raise ValueError(
            "posterior_init='pca' centres the features through the posterior head's bias; this model's head has none "
            "(config.posterior_logvar_bias is None). Use posterior_init='random'."
        )
    if features.dim() != 2 or features.shape[1] != head.in_features:
        raise ValueError(f"`features` must have shape (num_sentences, {head.in_features}); got {tuple(features.shape)}")
    count = check_int(features.shape[0], "number of sentences for the PCA", minimum=latent + 1)
    features = features.double()
    centre = features.mean(0)
    _, singular, components = torch.linalg.svd(features - centre, full_matrices=False)
    std = singular[:latent] / (count - 1) ** 0.5
    if not bool((std > 0).all()):
        raise ValueError(f"the pooled features span fewer than latent_size={latent} directions; use more, or more varied, sentences")
    weight = components[:latent] / std.unsqueeze(1)
    head.weight[:latent] = weight.to(head.weight.dtype)
    head.bias[:latent] = (-weight @ centre).to(head.bias.dtype)
    explained = float(singular[:latent].pow(2).sum() / singular.pow(2).sum())
    return {"explained_variance": explained, "num_sentences": count}
