"""FQ-StyleGAN's training steps (the training side of `hf_dgm.modules.gan_protocol`), as StyleGAN2-ADA's
`training/loss.py`: non-saturating logistic losses with style mixing, the feature quantizers' commitment terms, lazy R1
and path-length regularisation. Registered as the family's `FamilySpec.gan_steps`; the model
(`FQStyleGANForImageGeneration`) holds only networks, EMA and inference.

- `discriminator_step` (D step `d_step`): fresh fakes (G with style mixing, no gradient) and the real
  `batch["pixel_values"]`, D called separately on each (so the minibatch-stddev groups never mix real and fake); the
  FQ dictionaries update in both calls (as FQ-StyleGAN) and their commitment losses are added.
- `generator_step` (G step `step`): `softplus(−D(G(z)))` with style mixing (probability `style_mixing_prob`, one
  cutoff per batch) plus the FQ loss of the fakes; by default D's call on the fakes updates the dictionaries too
  (`fq_update_in_generator_step`, as FQ-GAN's TF code).
- Lazy regularisation (`lazy_regularization="separate"`, the default, ADA's `Dreg` / `Greg` phases):
  `discriminator_regularization_step` returns `r1_interval · γ/2 · mean(‖∇_x D(x)‖²)` at the reals (dictionaries
  untouched), `generator_regularization_step` `pl_interval · pl_weight · mean((a − ā)²)` on `B // pl_batch_shrink`
  new images, with ā updated BEFORE the penalty and kept in its graph (ADA). [`FQStyleGANSteps.regularization_due`]
  tells `GANTrainer` when. `"folded"` adds them to the main steps' loss instead (not the original).
- `w_avg` moves towards the batch mean of w on EVERY training-mode mapping call (as ADA's `MappingNetwork`).
- Every step takes explicit `z`, `style_mixing`, `pl_noise` and a `torch.Generator` for everything it draws, so a parity
  script can feed both sides the same randomness (`benchmarks/parity/fq_stylegan.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from ...modules.gan_protocol import (
    DiscriminatorStepOutput,
    GANSteps,
    GeneratorStepOutput,
    check_batch_keys,
    step_output,
)
from ..gan_losses import (
    nonsaturating_discriminator_loss,
    nonsaturating_generator_loss,
    path_length_penalty,
    r1_penalty,
)


BATCH_KEYS = ("pixel_values", "labels")


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class FQStyleGANSteps(GANSteps):
    """D, G, R1 and path-length steps of an `FQStyleGANForImageGeneration` (see the module docstring).

    Keyword options of every step: `z` `(B, z_dim)` (the fakes' latents, default drawn with `generator`; the
    path-length step uses its first `B // pl_batch_shrink` rows, as ADA), `generator` (a `torch.Generator`, source of
    every draw of the call; the global RNG when None), `style_mixing` (`None`: as the config says; `False`: none;
    `(cutoff, z2)`: the ws from layer `cutoff` on come from latents `z2`)."""

    # -- helpers (ADA's run_G) --------------------------------------------------------------------------------------
    def _check_batch(self, batch: Mapping[str, Any] | None, where: str) -> Mapping[str, Any]:
        batch = {} if batch is None else batch
        check_batch_keys(batch, BATCH_KEYS, where)
        if batch.get("labels") is not None:
            raise ValueError("FQ-StyleGAN is unconditional: `labels` must be None (build the data without labels)")
        return batch

    def _check_pixels(self, pixel_values) -> torch.Tensor:
        config = self.model.config
        expected = (config.num_channels, config.resolution, config.resolution)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"`pixel_values` must be a (B, {', '.join(map(str, expected))}) tensor in [-1, 1], got {shape}")
        return pixel_values

    def _reals(self, batch, generator, where: str) -> torch.Tensor:
        batch = self._check_batch(batch, where)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        if batch.get("pixel_values") is None:
            raise ValueError(f"{where} needs `pixel_values` (real images)")
        return self._check_pixels(batch["pixel_values"])

    def _batch_size(self, batch, batch_size, z, generator, where: str) -> int:
        batch = self._check_batch(batch, where)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        if batch.get("pixel_values") is not None:
            batch_size = self._check_pixels(batch["pixel_values"]).shape[0]
        elif batch_size is None and isinstance(z, torch.Tensor) and z.dim() == 2:
            batch_size = z.shape[0]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{where} needs `pixel_values`, `z` or a positive int `batch_size`, got {batch_size!r}")
        return batch_size

    def _latents(self, z, batch_size: int, device, generator: torch.Generator | None) -> torch.Tensor:
        z_dim = self.model.config.z_dim
        if z is None:
            source = generator.device if generator is not None else device
            return torch.randn(batch_size, z_dim, device=source, generator=generator).to(device)
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or tuple(z.shape) != (batch_size, z_dim):
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"`z` must be a ({batch_size}, {z_dim}) tensor, got {shape}")
        return z.to(device)

    def run_generator(self, batch_size: int, device, z=None, generator=None, mixing=None):
        """Fakes `(B, C, R, R)` and their ws `(B, num_ws, w_dim)` as StyleGAN2-ADA's `run_G`: map z (updating `w_avg`
        in training mode), style mixing with probability `style_mixing_prob` (one cutoff per batch; the mixing
        latents' mapping call leaves `w_avg` alone), synthesis with random noise drawn with `generator`."""
        model, config = self.model, self.model.config
        z = self._latents(z, batch_size, device, generator)
        ws = model.generator.mapping(z)
        if mixing is None and config.style_mixing_prob > 0 and config.num_ws > 1:
            source = generator.device if generator is not None else device
            cutoff = int(torch.randint(1, config.num_ws, (), generator=generator, device=source))
            if float(torch.rand((), generator=generator, device=source)) < config.style_mixing_prob:
                mixing = (cutoff, torch.randn(z.shape, generator=generator, device=source).to(device))
        if mixing:
            cutoff, z2 = mixing
            mixed = model.generator.mapping(self._latents(z2, batch_size, device, None), update_w_avg=False)
            ws = torch.cat([ws[:, :cutoff], mixed[:, cutoff:]], dim=1)
        return model.generator.synthesis(ws, noise_mode="random", generator=generator), ws

    def _r1(self, reals: torch.Tensor) -> torch.Tensor:
        """Mean R1 penalty at the reals (D pass with the dictionaries untouched, as the original's R1 graph)."""
        reals_r1 = reals.detach().requires_grad_(True)
        logits = self.model.discriminator(reals_r1, update_dictionary=False).logits
        return r1_penalty(logits, reals_r1).mean()

    def _path_length(self, batch_size: int, device, z=None, generator=None, mixing=None, pl_noise=None):
        model, config = self.model, self.model.config
        pl_batch = max(batch_size // config.pl_batch_shrink, 1)
        if isinstance(z, torch.Tensor) and z.dim() == 2:
            z = z[:pl_batch]  # ADA: gen_z[:batch_size // pl_batch_shrink]
        if mixing and isinstance(mixing, tuple):
            mixing = (mixing[0], mixing[1][:pl_batch])
        images, ws = self.run_generator(pl_batch, device, z, generator, mixing)
        penalty, lengths = path_length_penalty(
            images, ws, model.training_state.pl_mean, decay=config.pl_decay, generator=generator, noise=pl_noise
        )
        return penalty.mean(), lengths.mean(), images

    # -- the protocol -----------------------------------------------------------------------------------------------
    def regularization_due(self, network: str, step: int | None) -> bool:
        """Whether `GANTrainer` runs the separate lazy-regularisation step of `network` (`"discriminator"`: R1 when
        `d_step % r1_interval == 0`; `"generator"`: path length when `step % pl_interval == 0`) after that network's
        main step. Always False with `lazy_regularization="folded"`."""
        config = self.model.config
        if config.lazy_regularization != "separate" or step is None:
            return False
        if network == "discriminator":
            return config.r1_gamma > 0 and step % config.r1_interval == 0
        if network == "generator":
            return config.pl_weight > 0 and step % config.pl_interval == 0
        raise ValueError(f"`network` must be 'generator' or 'discriminator', got {network!r}")

    def discriminator_step(self, batch, *, step=None, d_step=None, z=None, generator=None, style_mixing=None):
        """D loss `d_loss_real + d_loss_fake + quantization_loss` (+ the folded R1 on `d_step % r1_interval == 0`).
        Terms: `d_loss_real`, `d_loss_fake`, `quantization_loss` (`_real` / `_fake`), `r1_penalty` (folded),
        `fq_perplexity`, `fq_usage` (real batch); tensors: `logits_real`, `logits_fake`, `fakes`."""
        model, config = self.model, self.model.config
        reals = self._reals(batch, generator, "the discriminator step")
        size = reals.shape[0]
        with torch.no_grad():  # G frozen; its mapping still updates w_avg in training mode, as ADA's Dmain run_G
            fakes, _ = self.run_generator(size, reals.device, z, generator, style_mixing)
        scores_fake = model.discriminator(fakes, update_dictionary=True)
        scores_real = model.discriminator(reals, update_dictionary=True)
        d_loss_real, d_loss_fake = nonsaturating_discriminator_loss(scores_real.logits, scores_fake.logits)
        q_real = q_fake = None
        if scores_real.quantization_loss is not None:
            q_real, q_fake = scores_real.quantization_loss.mean(), scores_fake.quantization_loss.mean()
            quantization_loss = q_real + q_fake
        else:
            quantization_loss = torch.zeros((), device=reals.device, dtype=d_loss_real.dtype)
        loss = d_loss_real + d_loss_fake + quantization_loss
        penalty = None
        if config.lazy_regularization == "folded" and config.r1_gamma > 0 and d_step is not None and d_step % config.r1_interval == 0:
            penalty = self._r1(reals)
            loss = loss + penalty * (config.r1_gamma / 2) * config.r1_interval
        if model.training:
            with torch.no_grad():
                model.training_state.images_seen.add_(size * _world_size())
        return step_output(
            DiscriminatorStepOutput, loss, d_loss_real=d_loss_real, d_loss_fake=d_loss_fake,
            quantization_loss=quantization_loss, quantization_loss_real=q_real, quantization_loss_fake=q_fake,
            r1_penalty=penalty.detach() if penalty is not None else None, fq_perplexity=scores_real.fq_perplexity,
            fq_usage=scores_real.fq_usage, logits_real=scores_real.logits.detach(),
            logits_fake=scores_fake.logits.detach(), fakes=fakes,
        )  # fmt: skip

    def discriminator_regularization_step(self, batch, *, step=None, d_step=None) -> DiscriminatorStepOutput:
        """ADA's `Dreg` phase: `loss = r1_interval · γ/2 · mean(R1)` (its gain is the interval); term `r1_penalty`."""
        config = self.model.config
        penalty = self._r1(self._reals(batch, None, "the discriminator regularization step"))
        return step_output(DiscriminatorStepOutput, penalty * (config.r1_gamma / 2) * config.r1_interval,
                           r1_penalty=penalty.detach())  # fmt: skip

    def generator_step(self, batch=None, *, step=None, batch_size=None, z=None, generator=None, style_mixing=None,
                       update_dictionary=None) -> GeneratorStepOutput:  # fmt: skip
        """G loss `g_loss + quantization_loss` (+ the folded path length on `step % pl_interval == 0`). B from
        `batch["pixel_values"]`, `z` or `batch_size`. Terms: `g_loss`, `quantization_loss`, `pl_penalty`,
        `path_length`, `pl_mean` (folded); tensors: `logits_fake`, `fakes`."""
        model, config = self.model, self.model.config
        size = self._batch_size(batch, batch_size, z, generator, "the generator step")
        device = model.device
        if update_dictionary is None:
            update_dictionary = config.fq_update_in_generator_step
        fakes, _ = self.run_generator(size, device, z, generator, style_mixing)
        scores = model.discriminator(fakes, update_dictionary=update_dictionary)
        g_loss = nonsaturating_generator_loss(scores.logits)
        if scores.quantization_loss is not None:
            quantization_loss = scores.quantization_loss.mean()
        else:
            quantization_loss = torch.zeros((), device=device, dtype=g_loss.dtype)
        loss = g_loss + quantization_loss
        pl_mean_penalty = lengths = None
        if config.lazy_regularization == "folded" and config.pl_weight > 0 and step is not None and step % config.pl_interval == 0:
            pl_mean_penalty, lengths, _ = self._path_length(size, device, None, generator)
            loss = loss + pl_mean_penalty * config.pl_weight * config.pl_interval
        if model.training:
            model.count_generator_images(size * _world_size())
        return step_output(
            GeneratorStepOutput, loss, g_loss=g_loss, quantization_loss=quantization_loss,
            pl_penalty=pl_mean_penalty.detach() if pl_mean_penalty is not None else None, path_length=lengths,
            pl_mean=model.training_state.pl_mean.detach().clone() if lengths is not None else None,
            logits_fake=scores.logits.detach(), fakes=fakes,
        )  # fmt: skip

    def generator_regularization_step(self, batch=None, *, step=None, batch_size=None, z=None, generator=None,
                                      style_mixing=None, pl_noise=None) -> GeneratorStepOutput:  # fmt: skip
        """ADA's `Greg` phase: path length on `B // pl_batch_shrink` new images, `loss = pl_interval · pl_weight ·
        mean((a − ā)²)` with ā in the graph. Terms: `pl_penalty`, `path_length`, `pl_mean`; tensor: `fakes`."""
        model, config = self.model, self.model.config
        size = self._batch_size(batch, batch_size, z, generator, "the generator regularization step")
        penalty, lengths, images = self._path_length(size, model.device, z, generator, style_mixing, pl_noise)
        return step_output(
            GeneratorStepOutput, penalty * config.pl_weight * config.pl_interval, pl_penalty=penalty.detach(),
            path_length=lengths, pl_mean=model.training_state.pl_mean.detach().clone(), fakes=images,
        )  # fmt: skip


__all__ = ["FQStyleGANSteps"]
