"""FQ-U-GAT-IT's training steps (the training side of `hf_dgm.modules.gan_protocol`): U-GAT-IT's least-squares
adversarial terms on the patch and CAM logits of four discriminators, the L1 cycle and identity terms, the generators'
CAM classification term, and the feature quantizers' commitment terms (FQ-U-GAT-IT). Registered as the family's
`FamilySpec.gan_steps`; the model (`FQUGATITModel`) holds only networks, ρ clipping and translation.

Neither step draws random numbers: each is a deterministic function of the weights, the state (spectral-norm vectors,
dictionaries) and the two batches (`batch["pixel_values_a"]` `(B, C, S, S)`, `batch["pixel_values_b"]` `(B', C, S,
S)`, real images in [-1, 1]), so parity needs no noise argument (`benchmarks/parity/fq_ugatit.py`: with
`use_fq=False` a D and a G step give UGATIT-pytorch's losses, gradients and spectral-norm vectors to fp32 rounding).

Terms (all detached; the per-discriminator ones unweighted, for `<d>` in `global_a`, `local_a`, `global_b`,
`local_b`, the port's `GA`, `LA`, `GB`, `LB`):

- D step: `d_adv_loss_<d>` = `mean((D(real) − 1)²) + mean(D(fake)²)` of the patch logits, `d_cam_loss_<d>` the same on
  the CAM logits; `d_loss_a` / `d_loss_b` (`adv_weight ×` the four terms of a domain's two discriminators, the port's
  `D_loss_A` / `_B`), `d_adv_loss` (their sum), `d_loss_real` / `d_loss_fake` (the real / fake halves),
  `quantization_loss` (`_real` + `_fake`), `fq_perplexity`, `fq_usage`; tensors `fake_a`, `fake_b`. `loss = d_adv_loss
  + quantization_loss`.
- G step: `g_adv_loss_<d>` = `mean((D(fake) − 1)²)`, `g_cam_loss_<d>` on the CAM logits; `g_adv_loss` (sum of the
  eight), `cycle_loss(_a/_b)` (L1 of B→A(A→B(A)) to A, ...), `identity_loss(_a/_b)` (L1 of B→A(A) to A, ...),
  `cam_loss(_a/_b)` (binary cross-entropy of each generator's CAM logits: 1 on its source domain, 0 on its target),
  `g_loss_a` / `g_loss_b` (the port's `G_loss_A` / `_B`: `adv_weight·adv + cycle_weight·cycle + identity_weight·identity
  + cam_weight·cam` of the domain), `quantization_loss`; tensors `fake_a`, `fake_b`. `loss = g_loss_a + g_loss_b +
  quantization_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ...modules.gan_protocol import (
    DiscriminatorStepOutput,
    GANSteps,
    GeneratorStepOutput,
    check_batch_keys,
    step_output,
)
from ..gan_losses import least_squares_discriminator_loss, least_squares_generator_loss


BATCH_KEYS = ("pixel_values_a", "pixel_values_b")


class FQUGATITSteps(GANSteps):
    """D and G steps of an `FQUGATITModel` (see the module docstring). U-GAT-IT has no lazy regularisation: `step` /
    `d_step` are accepted and unused."""

    def _pair(self, batch: Mapping[str, Any], where: str) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, Mapping) and "pixel_values" in batch:
            raise ValueError(f"{where} takes `pixel_values_a` and `pixel_values_b`, not `pixel_values`")
        check_batch_keys(batch, BATCH_KEYS, where)
        num_channels = self.model.config.num_channels
        for name in BATCH_KEYS:
            value = batch.get(name)
            if not isinstance(value, torch.Tensor) or value.dim() != 4:
                raise ValueError(f"`{name}` must be a (B, C, H, W) tensor, got {type(value).__name__}")
            if value.shape[1] != num_channels:
                raise ValueError(f"`{name}` has {value.shape[1]} channels, expected {num_channels}")
        return batch["pixel_values_a"], batch["pixel_values_b"]

    def discriminator_step(self, batch, *, step=None, d_step=None, update_dictionary: bool = True):
        """One D step's loss (the port's "Update D"): both batches translated without gradient to the generators,
        real and translated images scored by the four discriminators (in training mode each call runs one
        spectral-norm power iteration, as the port's). `update_dictionary`: let the quantizers update (training mode
        only), on the real then the fake images of each domain, as FQ-U-GAT-IT's D run."""
        real_a, real_b = self._pair(batch, "the discriminator step")
        model, cfg = self.model, self.model.config
        with torch.no_grad():
            fake_b = model.generator_a2b(real_a).images
            fake_a = model.generator_b2a(real_b).images
        terms: dict[str, torch.Tensor] = {}
        real_parts, fake_parts, q_real, q_fake, ppl, usage = [], [], [], [], [], []
        for domain, real, fake in (("a", real_a, fake_a), ("b", real_b, fake_b)):
            for kind in ("global", "local"):
                key = f"{kind}_{domain}"
                disc = getattr(model, f"discriminator_{key}")
                r = disc(real, update_dictionary=update_dictionary)
                f = disc(fake, update_dictionary=update_dictionary)
                out_real, out_fake = least_squares_discriminator_loss(r.logits, f.logits)
                cam_real, cam_fake = least_squares_discriminator_loss(r.cam_logits, f.cam_logits)
                terms[f"d_adv_loss_{key}"] = out_real + out_fake
                terms[f"d_cam_loss_{key}"] = cam_real + cam_fake
                real_parts += [out_real, cam_real]
                fake_parts += [out_fake, cam_fake]
                if r.fq_perplexity is not None:
                    q_real.append(r.quantization_loss)
                    q_fake.append(f.quantization_loss)
                    ppl += [r.fq_perplexity.mean(), f.fq_perplexity.mean()]
                    usage += [r.fq_usage.mean(), f.fq_usage.mean()]
        per_domain = {}
        for domain in ("a", "b"):  # the port's D_loss_A / D_loss_B, summed in its order
            g, l = f"global_{domain}", f"local_{domain}"
            per_domain[domain] = cfg.adv_weight * (
                terms[f"d_adv_loss_{g}"] + terms[f"d_cam_loss_{g}"] + terms[f"d_adv_loss_{l}"] + terms[f"d_cam_loss_{l}"]
            )
        d_adv = per_domain["a"] + per_domain["b"]
        zero = d_adv.new_zeros(())
        quantization_real = torch.stack(q_real).sum() if q_real else zero
        quantization_fake = torch.stack(q_fake).sum() if q_fake else zero
        quantization_loss = quantization_real + quantization_fake
        return step_output(
            DiscriminatorStepOutput,
            d_adv + quantization_loss if q_real else d_adv,
            d_adv_loss=d_adv.detach(),
            d_loss_a=per_domain["a"].detach(),
            d_loss_b=per_domain["b"].detach(),
            d_loss_real=cfg.adv_weight * torch.stack(real_parts).sum().detach(),
            d_loss_fake=cfg.adv_weight * torch.stack(fake_parts).sum().detach(),
            **{name: value.detach() for name, value in terms.items()},
            quantization_loss=quantization_loss.detach(),
            quantization_loss_real=quantization_real.detach(),
            quantization_loss_fake=quantization_fake.detach(),
            fq_perplexity=torch.stack(ppl).mean().detach() if ppl else None,
            fq_usage=torch.stack(usage).mean().detach() if usage else None,
            fake_a=fake_a,
            fake_b=fake_b,
        )

    def generator_step(self, batch, *, step=None, update_dictionary: bool | None = None):
        """One G step's loss (the port's "Update G", in its order of network calls): translations, cycles,
        identities, the four discriminators on the translations (their spectral-norm vectors advance in training
        mode, as the port's). `update_dictionary` (default `config.fq_update_in_generator_step`, True: FQ-U-GAT-IT's
        G run updates them, its loss containing the fakes' quantizer losses)."""
        real_a, real_b = self._pair(batch, "the generator step")
        model, cfg = self.model, self.model.config
        if update_dictionary is None:
            update_dictionary = cfg.fq_update_in_generator_step
        a2b, b2a = model.generator_a2b(real_a), model.generator_b2a(real_b)
        a2b2a = model.generator_b2a(a2b.images).images
        b2a2b = model.generator_a2b(b2a.images).images
        a2a, b2b = model.generator_b2a(real_a), model.generator_a2b(real_b)

        terms: dict[str, torch.Tensor] = {}
        fq_terms = []
        for domain, fake in (("a", b2a.images), ("b", a2b.images)):
            for kind in ("global", "local"):
                key = f"{kind}_{domain}"
                out = getattr(model, f"discriminator_{key}")(fake, update_dictionary=update_dictionary)
                terms[f"g_adv_loss_{key}"] = least_squares_generator_loss(out.logits)
                terms[f"g_cam_loss_{key}"] = least_squares_generator_loss(out.cam_logits)
                if out.fq_perplexity is not None:
                    fq_terms.append(out.quantization_loss)
        cycle = {"a": F.l1_loss(a2b2a, real_a), "b": F.l1_loss(b2a2b, real_b)}
        identity = {"a": F.l1_loss(a2a.images, real_a), "b": F.l1_loss(b2b.images, real_b)}
        # Each generator's classifier: inputs of its source domain -> 1, of its target domain -> 0.
        bce = F.binary_cross_entropy_with_logits
        cam = {
            "a": bce(b2a.cam_logits, torch.ones_like(b2a.cam_logits)) + bce(a2a.cam_logits, torch.zeros_like(a2a.cam_logits)),
            "b": bce(a2b.cam_logits, torch.ones_like(a2b.cam_logits)) + bce(b2b.cam_logits, torch.zeros_like(b2b.cam_logits)),
        }  # fmt: skip
        per_domain = {}
        for domain in ("a", "b"):  # the port's G_loss_A / G_loss_B, summed in its order
            g, l = f"global_{domain}", f"local_{domain}"
            adv = terms[f"g_adv_loss_{g}"] + terms[f"g_cam_loss_{g}"] + terms[f"g_adv_loss_{l}"] + terms[f"g_cam_loss_{l}"]
            per_domain[domain] = (
                cfg.adv_weight * adv
                + cfg.cycle_weight * cycle[domain]
                + cfg.identity_weight * identity[domain]
                + cfg.cam_weight * cam[domain]
            )
        loss = per_domain["a"] + per_domain["b"]
        quantization_loss = torch.stack(fq_terms).sum() if fq_terms else loss.new_zeros(())
        if fq_terms:
            loss = loss + quantization_loss
        return step_output(
            GeneratorStepOutput,
            loss,
            g_loss_a=per_domain["a"].detach(),
            g_loss_b=per_domain["b"].detach(),
            g_adv_loss=torch.stack(list(terms.values())).sum().detach(),
            **{name: value.detach() for name, value in terms.items()},
            cycle_loss=(cycle["a"] + cycle["b"]).detach(),
            cycle_loss_a=cycle["a"].detach(),
            cycle_loss_b=cycle["b"].detach(),
            identity_loss=(identity["a"] + identity["b"]).detach(),
            identity_loss_a=identity["a"].detach(),
            identity_loss_b=identity["b"].detach(),
            cam_loss=(cam["a"] + cam["b"]).detach(),
            cam_loss_a=cam["a"].detach(),
            cam_loss_b=cam["b"].detach(),
            quantization_loss=quantization_loss.detach(),
            fake_a=b2a.images.detach(),
            fake_b=a2b.images.detach(),
        )


__all__ = ["FQUGATITSteps"]
