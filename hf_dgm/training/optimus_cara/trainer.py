"""Training the latent modules of Optimus-CARA on cached posterior means (the VAE stays frozen).

Every step draws a batch of real (μ(x), y) pairs and makes three Adam updates, in this order:
1. the latent classifier C on CE(C(μ(x)), y);
2. the discriminator D on real μ(x) vs G(ε, y) (detached), same labels;
3. the generator G on −log σ(D(G(ε, y'), y')) + w · CE(C(G(ε, y')), y'), with labels y' drawn uniformly.

A GAN on a few thousand 32-d points is cheap: thousands of steps take a minute on one CPU core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .losses import classifier_loss, discriminator_loss, generator_loss


@dataclass
class CaraTrainingArguments:
    output_dir: str = field(default="runs/optimus-cara", metadata={"help": "run folder (model, metrics, samples)"})
    max_steps: int = field(default=3000, metadata={"help": "optimizer steps (each: one C, one D and one G update)"})
    batch_size: int = field(default=256, metadata={"help": "latents per step"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam rate of G and D"})
    classifier_learning_rate: float = field(default=1e-3, metadata={"help": "Adam rate of the latent classifier C"})
    adam_beta1: float = field(default=0.5, metadata={"help": "Adam β1 of G and D (GAN practice)"})
    seed: int = field(default=42, metadata={"help": "seed of initialisation, batches and noise"})
    logging_steps: int = field(default=100, metadata={"help": "log the running losses every N steps"})

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1; got {getattr(self, name)}")
        for name in ("learning_rate", "classifier_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0; got {getattr(self, name)}")


def _optimizers(model, args: CaraTrainingArguments) -> dict[str, torch.optim.Optimizer]:
    betas = (args.adam_beta1, 0.999)
    generator = [*model.latent_generator.parameters(), *model.generator_label_embedding.parameters()]
    discriminator = [*model.latent_discriminator.parameters(), *model.discriminator_output.parameters(),
                     *model.discriminator_label_embedding.parameters()]
    return {
        "c": torch.optim.Adam(model.latent_classifier.parameters(), lr=args.classifier_learning_rate),
        "d": torch.optim.Adam(discriminator, lr=args.learning_rate, betas=betas),
        "g": torch.optim.Adam(generator, lr=args.learning_rate, betas=betas),
    }


def _step(model, optimizers, z: torch.Tensor, y: torch.Tensor, rng: torch.Generator) -> dict[str, float]:
    """One C, D and G update on real latents `z` `(batch, latent)` with labels `y` `(batch,)`."""
    batch = z.shape[0]
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    real_logits = model.classify_latents(z)
    loss_c = classifier_loss(real_logits, y)
    loss_c.backward()
    optimizers["c"].step()

    fake = model.generate_latents(y, noise=model.sample_noise(batch, rng)).detach()
    real_scores, fake_scores = model.discriminate(z, y), model.discriminate(fake, y)
    loss_d = discriminator_loss(real_scores, fake_scores)
    optimizers["d"].zero_grad(set_to_none=True)
    loss_d.backward()
    optimizers["d"].step()

    y_gen = torch.randint(0, model.config.num_labels, (batch,), generator=rng).to(z.device)
    generated = model.generate_latents(y_gen, noise=model.sample_noise(batch, rng))
    gen_logits = model.classify_latents(generated)
    loss_g = generator_loss(model.discriminate(generated, y_gen), gen_logits, y_gen, model.config.classifier_weight)
    optimizers["g"].zero_grad(set_to_none=True)
    loss_g.backward()
    optimizers["g"].step()
    return {
        "loss_c": loss_c.item(), "loss_d": loss_d.item(), "loss_g": loss_g.item(),
        "c_accuracy_real": (real_logits.argmax(-1) == y).float().mean().item(),
        "c_accuracy_generated": (gen_logits.argmax(-1) == y_gen).float().mean().item(),
        "d_accuracy": 0.5 * ((real_scores > 0).float().mean() + (fake_scores < 0).float().mean()).item(),
    }


def train_latent_modules(model, latents: torch.Tensor, labels: torch.Tensor, args: CaraTrainingArguments) -> dict:
    """
    Train C, D and G of `model` on real `latents` `(num_examples, latent_size)` with `labels` `(num_examples,)`;
    the Optimus VAE is frozen (`requires_grad` off). Sets the latent standardisation from `latents` first.
    Returns `{"log_history": [...], "train_seconds": ...}` (running means every `logging_steps`).
    """
    from tqdm.auto import tqdm

    if latents.shape[0] != labels.shape[0] or latents.shape[0] < 2:
        raise ValueError(f"need as many labels as latents (>= 2); got {latents.shape[0]} latents, {labels.shape[0]} labels")
    if int(labels.min()) < 0 or int(labels.max()) >= model.config.num_labels:
        raise ValueError(f"labels must lie in [0, {model.config.num_labels}); got {int(labels.min())}..{int(labels.max())}")
    torch.manual_seed(args.seed)
    model.optimus.requires_grad_(False)
    model.optimus.eval()
    model.set_latent_statistics(latents)
    model.train()
    optimizers = _optimizers(model, args)
    rng = torch.Generator().manual_seed(args.seed)
    device = model.latent_mean.device
    latents, labels = latents.to(device), labels.to(device)
    history, window, started = [], [], time.time()
    progress = tqdm(range(1, args.max_steps + 1), desc="latent GAN")
    for step in progress:
        index = torch.randint(0, latents.shape[0], (args.batch_size,), generator=rng).to(device)
        window.append(_step(model, optimizers, latents[index], labels[index], rng))
        if step % args.logging_steps == 0 or step == args.max_steps:
            row = {key: sum(w[key] for w in window) / len(window) for key in window[0]}
            row["step"] = step
            history.append(row)
            progress.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"})
            window = []
    model.eval()
    return {"log_history": history, "train_seconds": time.time() - started}


__all__ = ["CaraTrainingArguments", "train_latent_modules"]
