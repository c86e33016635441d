"""GAN losses and regularisers shared by the zoo's GANs.

Notation: `logits_real` / `logits_fake` are the discriminator's raw scores (any shape; every element is one
decision, e.g. `(B,)` for a global D, `(B, 1, h, w)` for a patch D), `mean` is over all elements.

| loss | discriminator (minimised by D)                          | generator (minimised by G)  |
|------|---------------------------------------------------------|-----------------------------|
| hinge (BigGAN)                 | `mean(relu(1 − real))`, `mean(relu(1 + fake))` | `−mean(fake)`        |
| non-saturating logistic (StyleGAN2) | `mean(softplus(−real))`, `mean(softplus(fake))` | `mean(softplus(−fake))` |
| least squares (LSGAN, U-GAT-IT) | `mean((real − 1)²)`, `mean(fake²)`             | `mean((fake − 1)²)`  |

The discriminator functions return the two terms `(loss_real, loss_fake)` separately (their sum is D's loss), so a
trainer can log them.

Regularisers (StyleGAN2; to be applied lazily, every k steps, with the penalty multiplied by k):

- R1: `‖∇_x D(x)‖²` at real images, per sample; StyleGAN2 adds `γ/2 · mean(R1)` to D's loss.
- path length: for `J = ∂g(w)/∂w`, `a = ‖Jᵀ y‖₂` with `y ~ N(0, I)/√(H·W)`; the penalty `(a − ā)²` keeps `a` at
  its running mean `ā`, updated as `ā ← lerp(ā, mean(a), decay)` BEFORE the penalty and kept in the graph (as
  StyleGAN2-ADA's `loss.py`: the penalty's gradient includes the term through `mean(a)`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def hinge_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mean(relu(1 − logits_real)), mean(relu(1 + logits_fake)))`, each of shape `()`."""
    return F.relu(1.0 - logits_real).mean(), F.relu(1.0 + logits_fake).mean()


def hinge_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """`−mean(logits_fake)`, shape `()`."""
    return -logits_fake.mean()


def nonsaturating_discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic loss: `(mean(softplus(−logits_real)), mean(softplus(logits_fake)))` = `(−log σ(real), −log(1 − σ(fake)))`
    averaged, each of shape `()`."""
    return F.softplus(-logits_real).mean(), F.softplus(logits_fake).mean()


def nonsaturating_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss `mean(softplus(−logits_fake))` = `mean(−log σ(fake))`, shape `()`."""
    return F.softplus(-logits_fake).mean()


def least_squares_discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mean((logits_real − 1)²), mean(logits_fake²))`, each of shape `()`."""
    return (logits_real - 1.0).square().mean(), logits_fake.square().mean()


def least_squares_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """`mean((logits_fake − 1)²)`, shape `()`."""
    return (logits_fake - 1.0).square().mean()


def r1_penalty(logits_real: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty per sample: `‖∇_x Σ D(x)‖²` summed over all but the batch dimension.

    Args:
        logits_real (`torch.Tensor` of shape `(B, ...)`): D's scores of `real_images`, computed with
            `real_images.requires_grad_(True)`.
        real_images (`torch.Tensor` of shape `(B, C, H, W)`): The real images (a leaf that requires grad).

    Returns:
        `torch.Tensor` of shape `(B,)`, differentiable (`create_graph=True`) so that D can be trained on it.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs `real_images` with requires_grad=True before D scores them")
    (grad,) = torch.autograd.grad(logits_real.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1)


def path_length_penalty(
    images: torch.Tensor,
    latents: torch.Tensor,
    mean_path_length: torch.Tensor,
    decay: float = 0.01,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    detach_mean: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length regulariser.

    Args:
        images (`torch.Tensor` of shape `(B, C, H, W)`): Generated images, a differentiable function of `latents`.
        latents (`torch.Tensor` of shape `(B, L, w_dim)` or `(B, w_dim)`): The w (per layer) they came from.
        mean_path_length (`torch.Tensor` of shape `()`): Running mean ā (a buffer); updated IN PLACE to
            `ā.lerp(mean(a), decay)` (detached).
        decay (`float`, defaults to 0.01): Update rate of ā.
        generator (`torch.Generator`, *optional*): Source of the projection noise y.
        noise (`torch.Tensor` of the shape of `images`, *optional*): The projection noise y BEFORE the division by
            `√(H·W)` (default: drawn from N(0, 1) with `generator`).
        detach_mean (`bool`, defaults to `False`): `False` (StyleGAN2-ADA, `loss.py:85-87`): the penalty is
            `(a − ā_new)²` with `ā_new = ā.lerp(mean(a), decay)` IN the graph, so its gradient carries the term
            through `mean(a)` (scaled by `decay`). `True` (not in the original): `ā_new` is a constant.

    Returns:
        `(penalty, path_lengths)`: `penalty` `(B,)` = `(a − ā_new)²` (differentiable), `path_lengths` `(B,)` = a
        (detached), where `a = sqrt(mean over layers of ‖Σ_pixels y·∂g/∂w‖²)`.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"`decay` must be in [0, 1], got {decay!r}")
    if noise is None:
        source = generator.device if generator is not None else images.device
        noise = torch.randn(images.shape, device=source, dtype=images.dtype, generator=generator).to(images.device)
    elif noise.shape != images.shape:
        raise ValueError(f"`noise` must have the images' shape {tuple(images.shape)}, got {tuple(noise.shape)}")
    noise = noise / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
    if grad.dim() == 2:
        grad = grad.unsqueeze(1)
    lengths = grad.square().sum(2).mean(1).sqrt()
    new_mean = mean_path_length.lerp(lengths.mean(), decay)
    with torch.no_grad():
        mean_path_length.copy_(new_mean.detach())
    if detach_mean:
        new_mean = new_mean.detach()
    return (lengths - new_mean).square(), lengths.detach()


__all__ = [
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "nonsaturating_discriminator_loss",
    "nonsaturating_generator_loss",
    "path_length_penalty",
    "r1_penalty",
]
