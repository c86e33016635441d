"""Losses of the latent modules of Optimus-CARA (non-saturating GAN + auxiliary classifier), all batch means."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """D: −log σ(D(μ(x), y)) − log(1 − σ(D(G(ε, y), y))); scores `(batch_size,)` logits."""
    return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
            + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))


def generator_loss(
    fake_scores: torch.Tensor, fake_class_logits: torch.Tensor, labels: torch.Tensor, classifier_weight: float
) -> torch.Tensor:
    """G: −log σ(D(G(ε, y), y)) + w · CE(C(G(ε, y)), y); logits `(batch_size,)` and `(batch_size, num_labels)`."""
    adversarial = F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    if classifier_weight == 0:
        return adversarial
    return adversarial + classifier_weight * F.cross_entropy(fake_class_logits, labels)


def classifier_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """C: CE(C(μ(x)), y)."""
    return F.cross_entropy(class_logits, labels)


__all__ = ["discriminator_loss", "generator_loss", "classifier_loss"]
