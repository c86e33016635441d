"""The GAN step protocol, as types: what `hf_dgm.training.gan_trainer.GANTrainer` needs from a GAN.

A GAN is split in two, as in NVlabs/stylegan2-ada-pytorch (`training/networks.py` vs `training/loss.py`):

- the **model** (shipped, `hf_dgm/models/<family>/modeling_*.py`): networks and inference. Its `forward` generates
  (a discriminator scores); it has no training mode flag. For training it offers [`GANModel`]:
  `generator_parameters()` / `discriminator_parameters()` (or `parameter_groups(network)`), and optionally
  `update_generator_ema`, `after_generator_step`, `sample_images`, `sample_grid_columns`.
- the **steps** (training side, never shipped, `hf_dgm/training/<family>/loss.py`): a [`GANSteps`] object bound to
  one model, holding the losses and regularisers. `discriminator_step(batch, d_step=...)` returns a
  [`DiscriminatorStepOutput`] whose `loss` D minimises; `generator_step(batch, step=...)` a
  [`GeneratorStepOutput`] whose `loss` G minimises. A family names its class in its registry entry
  (`FamilySpec.gan_steps`), so the trainer finds it without naming conventions.

`batch` is a mapping holding the collator's entries for the rows of this step (`pixel_values`, `labels`,
`pixel_values_a` / `pixel_values_b`, ...). `step` is the number of G updates done before this call and `d_step` the
number of D updates; steps use them for lazy regularisation. Lazy regularisation as separate optimizer steps
(StyleGAN2's `Dreg` / `Greg` phases) is `regularization_due(network, step)` plus
`discriminator_regularization_step` / `generator_regularization_step`.

This module is light (torch and transformers' `ModelOutput` only) so that model code may import it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from transformers.utils import ModelOutput


NETWORKS = ("generator", "discriminator")


@dataclass
class GANStepOutput(ModelOutput):
    r"""
    Output of one step of the protocol (base of the D and G outputs).

    Args:
        loss (`torch.FloatTensor` of shape `()`): What the stepped network minimises.
        terms (`dict[str, torch.FloatTensor]`): Named scalar terms (shape `()`), e.g. `d_loss_real`,
            `quantization_loss`, `fq_perplexity`, `r1_penalty`, `cycle_loss_a`. `GANTrainer` logs each as
            `d_<name>` / `g_<name>` (a name already carrying that prefix is kept).
        tensors (`dict[str, torch.Tensor]`): Named non-scalar outputs (e.g. `logits_real` `(B,)`, `fakes`
            `(B, C, H, W)`, `fake_a`); not logged.
    """

    loss: torch.FloatTensor | None = None
    terms: dict[str, torch.Tensor] | None = None
    tensors: dict[str, torch.Tensor] | None = None

    def __post_init__(self):
        for name in ("terms", "tensors"):  # before ModelOutput collects the set fields
            if getattr(self, name) is None:
                setattr(self, name, {})
        super().__post_init__()

    def term(self, name: str) -> torch.Tensor | None:
        """A scalar term or a tensor by name (None when absent)."""
        if name in self.terms:
            return self.terms[name]
        return self.tensors.get(name)


@dataclass
class DiscriminatorStepOutput(GANStepOutput):
    """Output of [`GANSteps.discriminator_step`] (and of `discriminator_regularization_step`); see
    [`GANStepOutput`]."""


@dataclass
class GeneratorStepOutput(GANStepOutput):
    """Output of [`GANSteps.generator_step`] (and of `generator_regularization_step`); see [`GANStepOutput`]."""


def step_output(cls: type[GANStepOutput], loss: torch.Tensor, **values: Any) -> GANStepOutput:
    """`cls(loss, terms, tensors)` from keyword values: tensors with one element go to `terms`, other tensors to
    `tensors`; `None` values are dropped."""
    terms, tensors = {}, {}
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"step output {name!r} must be a tensor, got {type(value).__name__}")
        (terms if value.dim() == 0 else tensors)[name] = value
    return cls(loss=loss, terms=terms, tensors=tensors)


@runtime_checkable
class GANModel(Protocol):
    """The model side of the protocol: what each optimizer trains. (A model may instead define
    `parameter_groups(network) -> list[dict]`, which `GANTrainer` prefers.)"""

    def generator_parameters(self) -> Iterable[torch.nn.Parameter]: ...

    def discriminator_parameters(self) -> Iterable[torch.nn.Parameter]: ...


class GANSteps(abc.ABC):
    """The training side of the protocol: one GAN's losses, bound to its model (`self.model`).

    Subclasses implement `discriminator_step` and `generator_step`; those with lazy regularisation as separate
    optimizer steps also override `regularization_due` and the two `*_regularization_step` methods."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @abc.abstractmethod
    def discriminator_step(
        self, batch: Mapping[str, Any], *, step: int = 0, d_step: int = 0
    ) -> DiscriminatorStepOutput:
        """One D loss on `batch` (the rows of this D step). Updates state only D steps may change (e.g. FQ
        dictionaries)."""

    @abc.abstractmethod
    def generator_step(self, batch: Mapping[str, Any], *, step: int = 0) -> GeneratorStepOutput:
        """One G loss; `batch` holds the rows of the iteration's first D step (real images for image-to-image
        models; a model that only needs a batch size takes it from there)."""

    def regularization_due(self, network: str, step: int) -> bool:
        """Whether a separate regularisation step of `network` follows its optimizer step number `step`."""
        return False

    def discriminator_regularization_step(
        self, batch: Mapping[str, Any], *, step: int = 0, d_step: int = 0
    ) -> DiscriminatorStepOutput:
        raise NotImplementedError(f"{type(self).__name__} has no separate discriminator regularisation step")

    def generator_regularization_step(self, batch: Mapping[str, Any], *, step: int = 0) -> GeneratorStepOutput:
        raise NotImplementedError(f"{type(self).__name__} has no separate generator regularisation step")


def check_gan_model(model: Any) -> None:
    """TypeError naming what `model` lacks to be trained by `GANTrainer`."""
    if callable(getattr(model, "parameter_groups", None)) or isinstance(model, GANModel):
        return
    missing = [name for name in ("generator_parameters", "discriminator_parameters")
               if not callable(getattr(model, name, None))]  # fmt: skip
    raise TypeError(
        f"{type(model).__name__} is not a GAN model of the protocol (hf_dgm.modules.gan_protocol.GANModel): it lacks "
        f"{', '.join(f'`{m}()`' for m in missing)} (or `parameter_groups(network)`)"
    )


def check_batch_keys(batch: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """ValueError naming the keys of `batch` a step does not take."""
    if not isinstance(batch, Mapping):
        raise ValueError(f"{where}: `batch` must be a mapping of collator entries, got {type(batch).__name__}")
    unknown = sorted(set(batch) - set(allowed))
    if unknown:
        raise ValueError(f"{where} got unexpected batch entries {unknown}; it takes {sorted(allowed)}")


__all__ = [
    "DiscriminatorStepOutput",
    "GANModel",
    "GANStepOutput",
    "GANSteps",
    "GeneratorStepOutput",
    "NETWORKS",
    "check_batch_keys",
    "check_gan_model",
    "step_output",
]
