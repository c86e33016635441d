"""FQ-BigGAN's training steps (the training side of `hf_dgm.modules.gan_protocol`): hinge losses plus the feature
quantizers' commitment terms, as FQ-GAN's `train_fns.GAN_training_function`. Registered as the family's
`FamilySpec.gan_steps`; the model (`FQBigGANForImageGeneration`) holds only networks and inference.

    steps = FQBigGANSteps(model)
    d = steps.discriminator_step({"pixel_values": reals, "labels": labels})   # d.loss, d.terms["d_loss_real"], ...
    g = steps.generator_step({"pixel_values": reals})                        # g.loss, g.terms["g_loss"], ...

With `config.loss_type` `"tac"` / `"ac"` (FQ-TAC-GAN / FQ-AC-GAN) both steps add TAC-GAN's classifier terms
(`hf_dgm.training.fq_biggan.tac`): the D step `λ·CE(C(real), y_real) + λ·CE(C_mi(fake), y_fake)` (terms
`classifier_loss`, `twin_classifier_loss`, `classifier_accuracy_real`), the G step `λ·(CE(C(fake), y) −
CE(C_mi(fake), y))` (terms `classifier_loss`, `twin_classifier_loss`, `classifier_accuracy_fake`), with `λ` =
`config.classifier_weight`; the hinge and FQ terms are unchanged.

Parity with the original (`benchmarks/parity/fq_biggan.py`): from identical weights and batch, a D step and a G step
agree in every logit, loss term, gradient, spectral-norm vector, batch-norm statistic and dictionary buffer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...modules.gan_protocol import (
    DiscriminatorStepOutput,
    GANSteps,
    GeneratorStepOutput,
    check_batch_keys,
    step_output,
)
from ..gan_losses import hinge_discriminator_loss, hinge_generator_loss
from .tac import classifier_discriminator_loss, classifier_generator_loss


BATCH_KEYS = ("pixel_values", "labels")


class FQBigGANSteps(GANSteps):
    """D and G steps of an `FQBigGANForImageGeneration`.

    - `discriminator_step`: samples z and (uniformly) the fake classes (or takes `z`, `generator_labels`), generates
      fakes without gradient to G, runs D on the concatenated `[fake; real]` batch (as BigGAN-PyTorch) and updates the
      FQ dictionaries from it (training mode only). Terms: `d_loss_real`, `d_loss_fake`, `quantization_loss` (its
      `_real` / `_fake` parts), `fq_perplexity`, `fq_usage`; tensors: `logits_real`, `logits_fake` `(B,)`, `fakes`.
    - `generator_step`: generates `batch_size` images (random classes; with a `pixel_values` batch only its size is
      used, as BigGAN's G classes do not come from the data) or one per entry of `labels` (or from `z`), scores them
      with D. By default (`config.fq_update_in_generator_step=True`) D's quantizers update their dictionaries a second
      time here, from the fakes, as FQ-GAN's `train_fns.py`. Terms: `g_loss`, `quantization_loss`, `fq_perplexity`,
      `fq_usage`; tensors: `images` (with gradient), `labels`, `logits_fake`.

    FQ-BigGAN has no lazy regularisation: `step` / `d_step` are accepted and unused.
    """

    # -- checks and draws -------------------------------------------------------------------------------------------
    def _check_pixels(self, pixel_values) -> None:
        config = self.model.config
        size, channels = config.resolution, config.num_channels
        expected = (channels, size, size)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() != 4 or pixel_values.shape[1:] != expected:
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
            raise ValueError(f"`pixel_values` must be a (B, {channels}, {size}, {size}) tensor in [-1, 1], got {shape}")

    def _check_labels(self, labels, batch_size: int | None, name: str = "labels") -> torch.LongTensor | None:
        num_classes = self.model.config.num_classes
        if num_classes == 0:
            if labels is not None:
                raise ValueError(f"this model is unconditional (num_classes=0): `{name}` must be None")
            return None
        if labels is None:
            return None
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype not in (torch.long, torch.int):
            raise ValueError(f"`{name}` must be a 1-D integer tensor of class ids")
        if batch_size is not None and labels.shape[0] != batch_size:
            raise ValueError(f"`{name}` has {labels.shape[0]} entries, expected {batch_size}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"`{name}` must be in [0, {num_classes})")
        return labels.long()

    def _latents(self, z, batch: int, device, dtype, generator: torch.Generator | None) -> torch.Tensor:
        """`z` checked against `(batch, dim_z)`, or drawn from N(0, 1) with `generator`."""
        dim_z = self.model.config.dim_z
        if z is None:
            source = generator.device if generator is not None else device
            return torch.randn(batch, dim_z, device=source, dtype=dtype, generator=generator).to(device)
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or tuple(z.shape) != (batch, dim_z):
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"`z` must be a ({batch}, {dim_z}) tensor, got {shape}")
        return z.to(device=device, dtype=dtype)

    def _random_labels(self, batch: int, device, generator: torch.Generator | None) -> torch.LongTensor | None:
        num_classes = self.model.config.num_classes
        if num_classes == 0:
            return None
        if generator is None:
            return torch.randint(0, num_classes, (batch,), device=device)
        return torch.randint(0, num_classes, (batch,), device=generator.device, generator=generator).to(device)

    @staticmethod
    def _check_options(generator, update_dictionary) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        if update_dictionary is not None and not isinstance(update_dictionary, bool):
            raise ValueError(f"`update_dictionary` must be a bool or None, got {update_dictionary!r}")

    # -- the protocol -----------------------------------------------------------------------------------------------
    def discriminator_step(
        self,
        batch: Mapping[str, Any],
        *,
        step: int = 0,
        d_step: int = 0,
        generator_labels: torch.LongTensor | None = None,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        update_dictionary: bool | None = None,
    ) -> DiscriminatorStepOutput:
        """D loss on the real `batch["pixel_values"]` (`(B, C, H, W)` in [-1, 1]) with classes `batch["labels"]`
        `(B,)` (required if conditional) against B fakes; see the class docstring."""
        check_batch_keys(batch, BATCH_KEYS, "FQBigGANSteps.discriminator_step")
        self._check_options(generator, update_dictionary)
        pixel_values, labels = batch.get("pixel_values"), batch.get("labels")
        if pixel_values is None:
            raise ValueError("the discriminator step needs `pixel_values` (real images)")
        self._check_pixels(pixel_values)
        size = pixel_values.shape[0]
        labels = self._check_labels(labels, size)
        if self.model.config.num_classes and labels is None:
            raise ValueError("this model is class-conditional: pass `labels` of the real images")
        generator_labels = self._check_labels(generator_labels, size, "generator_labels")
        if generator_labels is None:  # classes before z: the draw order of the global RNG as before z was a parameter
            generator_labels = self._random_labels(size, pixel_values.device, generator)
        z = self._latents(z, size, pixel_values.device, pixel_values.dtype, generator)
        return self._discriminator_losses(pixel_values, labels, generator_labels, z, update_dictionary)

    def _discriminator_losses(self, pixel_values, labels, generator_labels, z, update_dictionary):
        model, size = self.model, pixel_values.shape[0]
        with torch.no_grad():
            fakes = model.generator(z, generator_labels)
        images = torch.cat([fakes, pixel_values], dim=0)
        both_labels = torch.cat([generator_labels, labels], dim=0) if labels is not None else None
        scores = model.discriminator(
            images, both_labels, update_dictionary=True if update_dictionary is None else update_dictionary
        )
        logits_fake, logits_real = scores.logits[:size], scores.logits[size:]
        d_loss_real, d_loss_fake = hinge_discriminator_loss(logits_real, logits_fake)
        if scores.quantization_loss is not None:
            quantization_loss_real = scores.quantization_loss[size:].mean()
            quantization_loss_fake = scores.quantization_loss[:size].mean()
            quantization_loss = quantization_loss_real + quantization_loss_fake
        else:
            quantization_loss_real = quantization_loss_fake = None
            quantization_loss = torch.zeros((), device=pixel_values.device)
        classifier = self._discriminator_classifier_terms(scores, labels, generator_labels, size)
        return step_output(
            DiscriminatorStepOutput,
            d_loss_real + d_loss_fake + quantization_loss + classifier.pop("loss"),
            **classifier,
            d_loss_real=d_loss_real,
            d_loss_fake=d_loss_fake,
            quantization_loss=quantization_loss,
            quantization_loss_real=quantization_loss_real,
            quantization_loss_fake=quantization_loss_fake,
            fq_perplexity=scores.fq_perplexity,
            fq_usage=scores.fq_usage,
            logits_real=logits_real,
            logits_fake=logits_fake,
            fakes=fakes,
        )

    def generator_step(
        self,
        batch: Mapping[str, Any] | None = None,
        *,
        step: int = 0,
        batch_size: int | None = None,
        generator_labels: torch.LongTensor | None = None,
        z: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        update_dictionary: bool | None = None,
    ) -> GeneratorStepOutput:
        """G loss. The fakes' classes: `generator_labels` if given; else, with `batch["pixel_values"]`, B uniform
        classes (the trainer's call); else `batch["labels"]`; else `batch_size` (or `len(z)`) uniform classes."""
        batch = {} if batch is None else batch
        check_batch_keys(batch, BATCH_KEYS, "FQBigGANSteps.generator_step")
        self._check_options(generator, update_dictionary)
        if update_dictionary is None:
            update_dictionary = self.model.config.fq_update_in_generator_step
        labels, pixel_values = batch.get("labels"), batch.get("pixel_values")
        if generator_labels is not None:
            labels, pixel_values = generator_labels, None
        if pixel_values is not None:
            self._check_pixels(pixel_values)
            labels, batch_size = None, pixel_values.shape[0]
        return self._generator_losses(labels, batch_size, z, generator, update_dictionary)

    def _generator_losses(self, labels, batch_size, z, generator, update_dictionary: bool) -> GeneratorStepOutput:
        model = self.model
        device = model.device
        labels = self._check_labels(labels, batch_size)
        if labels is not None:
            batch_size = labels.shape[0]
        elif batch_size is None and isinstance(z, torch.Tensor) and z.dim() == 2:
            batch_size = z.shape[0]
        if labels is None and batch_size is None:
            raise ValueError("the generator step needs `labels`, `z` or `batch_size`")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        if labels is None:
            labels = self._random_labels(batch_size, device, generator)
        z = self._latents(z, batch_size, device, model.dtype, generator)
        images = model.generator(z, labels)
        scores = model.discriminator(images, labels, update_dictionary=update_dictionary)
        g_loss = hinge_generator_loss(scores.logits)
        if scores.quantization_loss is not None:
            quantization_loss = scores.quantization_loss.mean()
        else:
            quantization_loss = torch.zeros((), device=device)
        classifier = self._generator_classifier_terms(scores, labels)
        return step_output(
            GeneratorStepOutput,
            g_loss + quantization_loss + classifier.pop("loss"),
            **classifier,
            g_loss=g_loss,
            quantization_loss=quantization_loss,
            fq_perplexity=scores.fq_perplexity,
            fq_usage=scores.fq_usage,
            images=images,
            labels=labels,
            logits_fake=scores.logits,
        )

    # -- TAC-GAN / AC-GAN classifier terms ----------------------------------------------------------------------------
    def _discriminator_classifier_terms(self, scores, labels, generator_labels, size: int) -> dict[str, Any]:
        """`{"loss": λ·(CE(C(real)) [+ CE(C_mi(fake))]), ...terms}`; `{"loss": 0}` for a projection model. The D
        batch is `[fake; real]`: fakes are rows `:size`."""
        config = self.model.config
        if config.loss_type == "projection":
            return {"loss": 0.0}
        class_logits_real = scores.class_logits[size:]
        twin_logits_fake = scores.twin_class_logits[:size] if scores.twin_class_logits is not None else None
        out = classifier_discriminator_loss(
            class_logits_real, labels, twin_logits_fake, generator_labels, config.classifier_weight, config.loss_type
        )
        accuracy = (class_logits_real.detach().argmax(1) == labels).float().mean()
        return {
            "loss": out.loss,
            "classifier_loss": out.classifier_loss,
            "twin_classifier_loss": out.twin_classifier_loss,
            "classifier_accuracy_real": accuracy,
        }

    def _generator_classifier_terms(self, scores, labels) -> dict[str, Any]:
        """`{"loss": λ·(CE(C(fake)) [− CE(C_mi(fake))]), ...terms}`; `{"loss": 0}` for a projection model."""
        config = self.model.config
        if config.loss_type == "projection":
            return {"loss": 0.0}
        out = classifier_generator_loss(
            scores.class_logits, scores.twin_class_logits, labels, config.classifier_weight, config.loss_type
        )
        accuracy = (scores.class_logits.detach().argmax(1) == labels).float().mean()
        return {
            "loss": out.loss,
            "classifier_loss": out.classifier_loss,
            "twin_classifier_loss": out.twin_classifier_loss,
            "classifier_accuracy_fake": accuracy,
        }


__all__ = ["FQBigGANSteps"]
