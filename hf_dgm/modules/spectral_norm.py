"""Spectral normalisation with one tracked singular vector, in BigGAN's formulation (Miyato et al., 2018, as
BigGAN-PyTorch computes it).

For a weight W reshaped to a matrix `(out, in·k·k)` and the stored left singular vector `u` `(1, out)`, each forward
runs `iterations` power iterations

    v = normalize(u W),    u' = normalize(v Wᵀ),    σ̂ = v Wᵀ u'ᵀ,

and uses `W / σ̂`. `u` is overwritten by `u'` (and `weight_sigma` by σ̂, for logging) in training mode only; in eval
mode every iteration restarts from the stored `u`. Gradients flow through σ̂ via `W` only (u and v are constants).

`torch.nn.utils.parametrizations.spectral_norm` is NOT used: it stores both `u` and `v` and computes
σ̂ = uᵀ W v with the order of updates reversed, so its numbers differ from BigGAN's (and checkpoints converted from
BigGAN-PyTorch, which store `u0` and `sv0`, would not reproduce the original's outputs).

Buffers (saved with the model): `weight_u` `(1, out)`, `weight_sigma` `(1,)`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SpectralNormMixin:
    """Adds buffers `weight_u` `(1, out)` and `weight_sigma` `(1,)` and `normalized_weight()` = W / σ̂(W)."""

    def _setup_spectral_norm(self, num_outputs: int, iterations: int, eps: float) -> None:
        if not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"spectral norm needs `iterations` >= 1, got {iterations!r}")
        if eps <= 0:
            raise ValueError(f"spectral norm needs `eps` > 0, got {eps!r}")
        self.sn_iterations = iterations
        self.sn_eps = eps
        self.register_buffer("weight_u", torch.randn(1, num_outputs))
        self.register_buffer("weight_sigma", torch.ones(1))

    def normalized_weight(self) -> torch.Tensor:
        weight = self.weight
        matrix = weight.reshape(weight.shape[0], -1)
        u = self.weight_u
        for _ in range(self.sn_iterations):
            with torch.no_grad():
                v = F.normalize(u @ matrix, eps=self.sn_eps)
                u_next = F.normalize(v @ matrix.t(), eps=self.sn_eps)
                if self.training:
                    self.weight_u.copy_(u_next)
            # In eval mode `u` is not updated, so every iteration restarts from the stored vector (as the original).
            sigma = (v @ matrix.t() @ u_next.t()).squeeze()
        if self.training:
            with torch.no_grad():
                self.weight_sigma.copy_(sigma.detach())
        return weight / sigma


class SNConv2d(SpectralNormMixin, nn.Conv2d):
    """`nn.Conv2d` with spectral normalisation of its weight (stride 1)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, padding=1, bias=True, iterations=1, eps=1e-8):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._setup_spectral_norm(out_channels, iterations, eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.conv2d(hidden_states, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(SpectralNormMixin, nn.Linear):
    """`nn.Linear` with spectral normalisation of its weight."""

    def __init__(self, in_features, out_features, bias=True, iterations=1, eps=1e-8):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._setup_spectral_norm(out_features, iterations, eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden_states, self.normalized_weight(), self.bias)


class SNEmbedding(SpectralNormMixin, nn.Embedding):
    """`nn.Embedding` with spectral normalisation of its `(num_embeddings, dim)` table (a projection D's class
    embedding)."""

    def __init__(self, num_embeddings, embedding_dim, iterations=1, eps=1e-8):
        nn.Embedding.__init__(self, num_embeddings, embedding_dim)
        self._setup_spectral_norm(num_embeddings, iterations, eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.normalized_weight())


__all__ = ["SNConv2d", "SNEmbedding", "SNLinear", "SpectralNormMixin"]
