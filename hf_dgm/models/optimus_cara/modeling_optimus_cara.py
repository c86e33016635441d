"""Optimus-CARA: label-conditional sentence generation through the latent space of a (frozen) Optimus VAE.

A conditional latent generator G(ε, y) draws a latent for label y; the Optimus decoder turns it into a sentence.
G is trained adversarially against a conditional latent discriminator D(z, y) that sees the encoder's posterior
means of real sentences with label y, and cooperatively with a latent classifier C(z). See [`OptimusCaraConfig`]
for the variant and how it differs from the original CARA.

Latents are handled in a standardised space: `latent_mean` / `latent_std` (buffers, saved with the model, set from
the training posterior means by [`OptimusForLabelConditionalGeneration.set_latent_statistics`]) map the MLPs'
unit-scale outputs to the VAE's latent space and back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_optimus_cara import OptimusCaraConfig
from ..optimus.modeling_optimus import OptimusForConditionalGeneration, OptimusProcessorMixin
from ...modules.validation import check_float_tensor, check_int, check_int_tensor


@dataclass
class OptimusCaraOutput(ModelOutput):
    """
    Output of [`OptimusForLabelConditionalGeneration.forward`].

    Args:
        generated_latents (`torch.FloatTensor` of shape `(batch_size, latent_size)`): G(ε, y).
        fake_scores (`torch.FloatTensor` of shape `(batch_size,)`): D(G(ε, y), y) logits.
        fake_class_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`): C(G(ε, y)).
        real_scores (`torch.FloatTensor` of shape `(batch_size,)`, *optional*): D(z, y) of the given real latents.
        real_class_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*): C(z) of them.
    """

    generated_latents: torch.FloatTensor | None = None
    fake_scores: torch.FloatTensor | None = None
    fake_class_logits: torch.FloatTensor | None = None
    real_scores: torch.FloatTensor | None = None
    real_class_logits: torch.FloatTensor | None = None


def _mlp(in_features: int, hidden: int, layers: int, out_features: int | None) -> nn.Sequential:
    """`layers` × (Linear, LeakyReLU 0.2), then a Linear to `out_features` (None: no output layer)."""
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    if out_features is not None:
        modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)


class OptimusCaraPreTrainedModel(PreTrainedModel):
    config_class = OptimusCaraConfig
    base_model_prefix = "optimus_cara"
    main_input_name = "labels"
    _no_split_modules = []
    _supports_sdpa = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        optimus = getattr(self, "optimus", None)
        if optimus is not None and any(module is m for m in optimus.modules()):
            optimus._init_weights(module)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=0.2, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0)


class OptimusForLabelConditionalGeneration(OptimusProcessorMixin, OptimusCaraPreTrainedModel):
    r"""
    An Optimus VAE (`self.optimus`) with CARA-style conditional latent modules (see the module docstring).

    Example:

    ```python
    >>> import hf_dgm, torch
    >>> from hf_dgm import OptimusForLabelConditionalGeneration
    >>> model = OptimusForLabelConditionalGeneration.from_optimus_pretrained(
    ...     "optimus-dir", id2label={0: "negative", 1: "positive"})
    >>> ids = model.generate(["positive", 0], num_return_sequences=2, generator=torch.Generator().manual_seed(0))
    >>> model.processor.batch_decode(ids)     # 4 sentences: 2 positive, then 2 negative
    ```
    """

    def __init__(self, config: OptimusCaraConfig, optimus: OptimusForConditionalGeneration | None = None):
        if getattr(config, "model_type", None) != OptimusCaraConfig.model_type:
            raise ValueError(f"`config` must be an OptimusCaraConfig; got model_type {getattr(config, 'model_type', None)!r}")
        super().__init__(config)
        self.optimus = optimus if optimus is not None else OptimusForConditionalGeneration(config.optimus)
        self.optimus.config = self.config.optimus
        latent, hidden, layers = config.latent_size, config.hidden_size, config.num_hidden_layers
        self.generator_label_embedding = nn.Embedding(config.num_labels, config.label_embedding_size)
        self.latent_generator = _mlp(config.noise_size + config.label_embedding_size, hidden, layers, latent)
        self.latent_discriminator = _mlp(latent, hidden, layers, None)
        self.discriminator_output = nn.Linear(hidden, 1)
        self.discriminator_label_embedding = nn.Embedding(config.num_labels, hidden)
        self.latent_classifier = _mlp(latent, hidden, layers, config.num_labels)
        self.register_buffer("latent_mean", torch.zeros(latent))
        self.register_buffer("latent_std", torch.ones(latent))
        self.processor = None
        self.post_init()

    # ------------------------------------------------------------------ labels and latent statistics
    def label_ids(self, labels: Any) -> torch.LongTensor:
        """Label names (`config.label2id`) or ids, one or a sequence, as a `(batch_size,)` LongTensor."""
        if isinstance(labels, torch.Tensor):
            labels = check_int_tensor(labels.reshape(-1) if labels.dim() == 0 else labels, "labels", ndim=1)
            ids = labels.tolist()
        else:
            ids = [labels] if isinstance(labels, (str, int)) else list(labels)
        if not ids:
            raise ValueError("`labels` is empty: pass at least one label")
        out = []
        for label in ids:
            if isinstance(label, str):
                if label not in self.config.label2id:
                    raise ValueError(f"unknown label {label!r}; the model knows {sorted(self.config.label2id)}")
                label = self.config.label2id[label]
            label = check_int(label, "label", minimum=0, maximum=self.config.num_labels - 1)
            out.append(label)
        return torch.tensor(out, dtype=torch.long, device=self.latent_mean.device)

    @torch.no_grad()
    def set_latent_statistics(self, latents: torch.Tensor) -> None:
        """Set the standardisation of the latent space from real latents `(num_examples, latent_size)`."""
        check_float_tensor(latents, "latents", ndim=2, size=self.config.latent_size)
        if latents.shape[0] < 2:
            raise ValueError("set_latent_statistics needs at least 2 latents")
        self.latent_mean.copy_(latents.mean(0))
        self.latent_std.copy_(latents.std(0).clamp(min=1e-4))

    def standardize(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.latent_mean) / self.latent_std

    def unstandardize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std + self.latent_mean

    # ------------------------------------------------------------------ latent modules
    def sample_noise(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """ε ~ N(0, I): `(batch_size, noise_size)`, drawn on the CPU with `generator` (device independent)."""
        noise = torch.randn((batch_size, self.config.noise_size), generator=generator)
        return noise.to(device=self.latent_mean.device, dtype=self.latent_mean.dtype)

    def generate_latents(
        self, labels: Any, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """G(ε, y) in the VAE's latent space: `(batch_size, latent_size)` for `labels` `(batch_size,)`."""
        ids = self.label_ids(labels)
        if noise is None:
            noise = self.sample_noise(ids.shape[0], generator)
        check_float_tensor(noise, "noise", ndim=2, size=self.config.noise_size)
        if noise.shape[0] != ids.shape[0]:
            raise ValueError(f"`noise` has {noise.shape[0]} rows for {ids.shape[0]} labels")
        inputs = torch.cat([noise, self.generator_label_embedding(ids)], dim=-1)
        return self.unstandardize(self.latent_generator(inputs))

    def discriminate(self, latents: torch.Tensor, labels: Any) -> torch.Tensor:
        """D(z, y) logits `(batch_size,)`: real (an encoder posterior mean of label y) vs generated."""
        check_float_tensor(latents, "latents", ndim=2, size=self.config.latent_size)
        ids = self.label_ids(labels)
        features = self.latent_discriminator(self.standardize(latents))
        projection = (self.discriminator_label_embedding(ids) * features).sum(-1)
        return self.discriminator_output(features).squeeze(-1) + projection

    def classify_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """C(z) logits `(batch_size, num_labels)`."""
        check_float_tensor(latents, "latents", ndim=2, size=self.config.latent_size)
        return self.latent_classifier(self.standardize(latents))

    @torch.no_grad()
    def encode_latents(self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor | None = None) -> torch.Tensor:
        """Posterior means μ(x) of the frozen VAE: `(batch_size, latent_size)`."""
        return self.optimus.encode(input_ids, attention_mask).mean

    def forward(
        self,
        labels: Any = None,
        latents: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
    ) -> OptimusCaraOutput:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(batch_size,)`, or label names): the conditioning labels.
            latents (`torch.FloatTensor` of shape `(batch_size, latent_size)`, *optional*): real latents (posterior
                means) with these labels, scored by D and C too.
            noise (`torch.FloatTensor` of shape `(batch_size, noise_size)`, *optional*): ε (drawn otherwise).
        """
        if labels is None:
            raise ValueError("`labels` are required")
        ids = self.label_ids(labels)
        generated = self.generate_latents(ids, noise=noise, generator=generator)
        out = OptimusCaraOutput(
            generated_latents=generated,
            fake_scores=self.discriminate(generated, ids),
            fake_class_logits=self.classify_latents(generated),
        )
        if latents is not None:
            if latents.shape[0] != ids.shape[0]:
                raise ValueError(f"`latents` has {latents.shape[0]} rows for {ids.shape[0]} labels")
            out.real_scores = self.discriminate(latents, ids)
            out.real_class_logits = self.classify_latents(latents)
        return out

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        labels: Any,
        num_return_sequences: int = 1,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        return_latents: bool = False,
        **generation_kwargs,
    ):
        """
        Sentences for `labels` (names or ids): each label is repeated `num_return_sequences` times (label-major),
        latents are drawn from G with `generator` (or `noise` `(batch * num_return_sequences, noise_size)`) and
        decoded by the Optimus decoder (`generation_kwargs` go to [`OptimusForConditionalGeneration.generate`]:
        greedy by default). Returns decoder ids `(batch_size * num_return_sequences, length)`, and the latents too
        with `return_latents=True`.
        """
        num_return_sequences = check_int(num_return_sequences, "num_return_sequences", minimum=1)
        if "latents" in generation_kwargs:
            raise ValueError("`generate` draws the latents from the label-conditional generator; do not pass `latents`")
        ids = self.label_ids(labels).repeat_interleave(num_return_sequences)
        latents = self.generate_latents(ids, noise=noise, generator=generator)
        sequences = self.optimus.generate(latents=latents.to(self.optimus.dtype), **generation_kwargs)
        return (sequences, latents) if return_latents else sequences

    # ------------------------------------------------------------------ construction & persistence
    @classmethod
    def from_optimus_pretrained(
        cls, optimus_name_or_path: str | os.PathLike, id2label: dict | Sequence[str] | None = None, **config_kwargs
    ) -> "OptimusForLabelConditionalGeneration":
        """Wrap a saved Optimus (folder or repo, its tokenizers attached as `processor`) with fresh latent modules;
        `id2label` (a dict or a list of names) sets the labels, `config_kwargs` go to [`OptimusCaraConfig`]."""
        optimus = OptimusForConditionalGeneration.from_pretrained(optimus_name_or_path)
        return cls.from_optimus(optimus, id2label=id2label, **config_kwargs)

    @classmethod
    def from_optimus(
        cls, optimus: OptimusForConditionalGeneration, id2label: dict | Sequence[str] | None = None, **config_kwargs
    ) -> "OptimusForLabelConditionalGeneration":
        """Wrap a loaded Optimus model (see `from_optimus_pretrained`)."""
        if id2label is not None:
            if not isinstance(id2label, dict):
                id2label = dict(enumerate(id2label))
            id2label = {int(k): str(v) for k, v in id2label.items()}
            config_kwargs["id2label"] = id2label
            config_kwargs["label2id"] = {v: k for k, v in id2label.items()}
        # building the outer config/model resets the nested attention settings: keep the loaded sub-models' own
        attention = [(part.config, part.config._attn_implementation) for part in (optimus.encoder, optimus.decoder)]
        config = OptimusCaraConfig(optimus=optimus.config, **config_kwargs)
        model = cls(config, optimus=optimus)
        for part_config, implementation in attention:
            part_config._attn_implementation = implementation
        model.processor = optimus.processor
        return model

    def _attach_processor(self, processor) -> None:
        self.processor = processor
        self.optimus.processor = processor


__all__ = ["OptimusCaraOutput", "OptimusCaraPreTrainedModel", "OptimusForLabelConditionalGeneration"]
