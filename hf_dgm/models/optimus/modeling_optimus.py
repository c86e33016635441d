"""Optimus: a sentence VAE with a pretrained BERT-family encoder and a pretrained causal-LM decoder.

Li et al., "Optimus: Organizing Sentences via Pre-trained Modeling of a Latent Space", EMNLP 2020.

The encoder's pooled sentence feature is mapped linearly to the mean and log-variance of a diagonal Gaussian
posterior q(z|x) (bias-free as in the original when `config.posterior_logvar_bias` is None; by default with a bias
that starts the log-variance at -4, see [`OptimusConfig`]); the prior is N(0, I). The latent `z` reaches the decoder in one or both of two ways:

* **memory** – `z` is mapped (bias-free) to one vector per decoder layer; in every layer that vector is used as the
  key *and* the value of one extra attention slot that every position can attend to. The slot is handed to the
  decoder through transformers' `Cache` API (past length 1), so real tokens take positions 1, 2, ... On rotary
  decoders (Llama family) the slot's key is stored unrotated, which is exactly a key at position 0 (the rotation
  of angle 0 is the identity): the slot sits at position 0 and the tokens follow it.
* **embedding** – `z` is mapped (bias-free) to the hidden size and added to every input token embedding.
* **prefix** (not in the paper) – `z` is mapped (bias-free) to one input embedding placed before BOS: a soft prompt
  token at position 0 that the decoder's own layers turn into keys and values (tokens take positions 1, 2, ... as
  with the memory slot). Its keys and values have the decoder's own scale from the first step, where the memory
  slot's start near zero.
"""

from __future__ import annotations

import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.utils import ModelOutput

from .configuration_optimus import OptimusConfig
from ...modules.validation import check_float, check_float_tensor, check_int, check_pretrained_folder


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class OptimusEncoderOutput(ModelOutput):
    """
    Posterior parameters of q(z|x).

    Args:
        mean (`torch.FloatTensor` of shape `(batch_size, latent_size)`): posterior mean μ(x).
        logvar (`torch.FloatTensor` of shape `(batch_size, latent_size)`): posterior log-variance log σ²(x).
        pooled (`torch.FloatTensor` of shape `(batch_size, encoder_hidden_size)`): sentence feature fed to the
            posterior head (BERT pooler output, `[CLS]` state or masked mean, by `config.pooling`).
    """

    mean: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None
    pooled: torch.FloatTensor | None = None


@dataclass
class OptimusOutput(ModelOutput):
    """
    Output of [`OptimusForConditionalGeneration.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): mean over the batch of `rec + beta * kl_thresholded`, where `rec`
            is `reconstruction_loss` (when `config.length_weighted_loss`, divided by the sentence's decoder tokens
            `BOS … EOS`, i.e. `num_tokens + 1`, as the original).
        reconstruction_loss (`torch.FloatTensor` of shape `(batch_size,)`): −log p(x|z), the token cross-entropy
            summed over each sentence's target tokens (never length-weighted).
        kl (`torch.FloatTensor` of shape `(batch_size,)`): analytic KL(q(z|x) ‖ N(0, I)), not thresholded.
        kl_per_dim (`torch.FloatTensor` of shape `(batch_size, latent_size)`): KL of each latent dimension.
        kl_thresholded (`torch.FloatTensor` of shape `(batch_size,)`): the KL term that enters the loss
            (dimension-wise threshold λ applied; the plain KL when λ = 0 or β = 0).
        beta (`float`): KL weight used for this loss.
        latents (`torch.FloatTensor` of shape `(batch_size, latent_size)`): the `z` the decoder was fed.
        mean, logvar (`torch.FloatTensor` of shape `(batch_size, latent_size)`): posterior parameters.
        logits (`torch.FloatTensor` of shape `(batch_size, target_length, vocab_size)`): decoder logits.
        num_tokens (`torch.LongTensor` of shape `(batch_size,)`): number of target tokens per sentence.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    kl: torch.FloatTensor | None = None
    kl_per_dim: torch.FloatTensor | None = None
    kl_thresholded: torch.FloatTensor | None = None
    beta: float | None = None
    latents: torch.FloatTensor | None = None
    mean: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    num_tokens: torch.LongTensor | None = None


@dataclass
class OptimusInterpolationOutput(ModelOutput):
    """
    Args:
        alphas (`torch.FloatTensor` of shape `(num_steps,)`): interpolation weights, 0 … 1.
        latents (`torch.FloatTensor` of shape `(batch_size, num_steps, latent_size)`): z_start + α (z_end − z_start).
        sequences (`torch.LongTensor` of shape `(batch_size * num_steps, length)`): decoded token ids, row
            `b * num_steps + s` for pair `b` at step `s`.
    """

    alphas: torch.FloatTensor | None = None
    latents: torch.FloatTensor | None = None
    sequences: torch.LongTensor | None = None


# --------------------------------------------------------------------------------------------------------------
# The latent memory slot, through the Cache API
# --------------------------------------------------------------------------------------------------------------


class LatentMemoryLayer(DynamicLayer):
    """
    One decoder layer's cache, pre-filled with the latent memory slot (key = value, shape `(B, kv_heads, 1, d)`).

    With `read_only=True` (training / scoring forward passes) `update` returns `[slot; new]` without storing the
    new states, so replaying the layer under gradient checkpointing sees exactly the same keys. With
    `read_only=False` (generation) it grows like a `DynamicLayer`.
    """

    def __init__(self, memory: torch.Tensor, read_only: bool):
        super().__init__()
        self.lazy_initialization(memory, memory)
        self.keys = memory
        self.values = memory
        self.read_only = read_only

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys = torch.cat([self.keys, key_states], dim=-2)
        values = torch.cat([self.values, value_states], dim=-2)
        if not self.read_only:
            self.keys, self.values = keys, values
        return keys, values


class LatentMemoryCache(DynamicCache):
    """A `DynamicCache` whose every layer starts with one latent memory slot (see [`LatentMemoryLayer`])."""

    def __init__(self, memories: list[torch.Tensor], read_only: bool):
        # Skip DynamicCache.__init__ (it builds empty layers) and hand the pre-filled layers to Cache directly.
        super(DynamicCache, self).__init__(layers=[LatentMemoryLayer(m, read_only) for m in memories])


class PosteriorMeanBatchNorm(nn.Module):
    """
    BN-VAE's posterior mean (Zhu et al., "A Batch Normalized Inference Network Keeps the KL Vanishing Away", ACL 2020):
    μ ← γ · (μ − mean_batch(μ)) / sqrt(var_batch(μ) + ε) + shift, per latent dimension, with γ fixed
    (`config.posterior_mean_batch_norm`) and `shift` learned. In training mode with more than one sentence the batch
    statistics are used and the running ones updated (momentum 0.1); otherwise (eval mode, or a batch of one) the
    running statistics. Input and output `(batch_size, latent_size)`.
    """

    def __init__(self, latent_size: int, gamma: float, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.gamma, self.momentum, self.eps = float(gamma), momentum, eps
        self.shift = nn.Parameter(torch.zeros(latent_size))
        self.register_buffer("running_mean", torch.zeros(latent_size))
        self.register_buffer("running_var", torch.ones(latent_size))

    def forward(self, mean: torch.Tensor) -> torch.Tensor:
        use_batch = self.training and mean.shape[0] > 1
        normalized = F.batch_norm(
            mean, self.running_mean, self.running_var, training=use_batch, momentum=self.momentum, eps=self.eps
        )
        return self.gamma * normalized + self.shift.to(normalized.dtype)


def _decoder_geometry(config) -> tuple[int, int, int, int]:
    """(num_layers, num_key_value_heads, head_dim, hidden_size) of a causal-LM config."""
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return config.num_hidden_layers, kv_heads, head_dim, hidden


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------


class OptimusProcessorMixin:
    """Saves the attached `processor` (an `OptimusProcessor`: both tokenizers) with the weights and attaches it again
    when a local folder is loaded. Shared by every model built around an Optimus VAE; put it before
    `PreTrainedModel` in the bases. A model that wraps an Optimus overrides `_attach_processor`."""

    processor = None

    def _attach_processor(self, processor) -> None:
        self.processor = processor

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`, plus the attached `processor` (both tokenizers) when there is one."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.processor is not None and kwargs.get("is_main_process", True):
            self.processor.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; a local folder's tokenizers are attached as `model.processor`."""
        check_pretrained_folder(pretrained_model_name_or_path, cls.config_class.model_type,
                                config_given=kwargs.get("config") is not None)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        path = str(pretrained_model_name_or_path)
        if os.path.isdir(os.path.join(path, "decoder_tokenizer")):
            from .processing_optimus import OptimusProcessor

            model._attach_processor(OptimusProcessor.from_pretrained(path))
        return loaded


class OptimusPreTrainedModel(PreTrainedModel):
    config_class = OptimusConfig
    base_model_prefix = "optimus"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    # `device_map` keeps the wrapped encoder's and decoder's own `_no_split_modules` (their transformer layers)
    # whole; the latent heads are single linear layers
    _no_split_modules = []
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        # Only the latent heads belong to Optimus; the encoder and decoder initialise their own modules.
        role = getattr(module, "_optimus_head", None)
        if role is not None:
            self._init_latent_head(module, role)
            return
        encoder = getattr(self, "encoder", None)
        decoder = getattr(self, "decoder", None)
        if encoder is not None and any(module is m for m in encoder.modules()):
            encoder._init_weights(module)
        elif decoder is not None and any(module is m for m in decoder.modules()):
            decoder._init_weights(module)


    @torch.no_grad()
    def _init_latent_head(self, module: nn.Linear, role: str) -> None:
        """
        Scales chosen so that `z` is informative from the first step (measured in
        `benchmarks/optimus_latent_path.py`; with a uniform N(0, 0.02²) init the `embedding` injection carried nothing):

        * posterior: mean rows N(0, 1/hidden), so μ has the scale of the pooled feature rather than 0.02·√hidden of
          it; log-variance rows N(0, 0.02²); the optional bias is 0 on the mean and `posterior_logvar_bias` on the
          log-variance (σ² ≈ 0.02 instead of 1: the sampled `z` is not noise burying μ);
        * latent_to_embedding and latent_to_prefix: N(0, r²/latent_size) with r the RMS of the decoder's input
          embeddings, so the shift added to every token embedding (the prefix embedding) has the token embeddings'
          own scale for a `z` of unit variance, instead of several times it;
        * latent_to_memory: N(0, initializer_range²) like the decoder's own projections.
        """
        std = getattr(self.config.decoder, "initializer_range", 0.02)
        latent = self.config.latent_size
        if role == "posterior":
            nn.init.normal_(module.weight, mean=0.0, std=std)
            module.weight[:latent].normal_(mean=0.0, std=module.in_features**-0.5)
            if module.bias is not None:
                module.bias.zero_()
                module.bias[latent:].fill_(self.config.posterior_logvar_bias)
            return
        if role in ("embedding", "prefix"):
            decoder = getattr(self, "decoder", None)
            weight = None if decoder is None else decoder.get_input_embeddings().weight
            if weight is not None and not weight.is_meta:
                std = weight.detach().float().pow(2).mean().sqrt().item() * latent**-0.5
        nn.init.normal_(module.weight, mean=0.0, std=std)


_GENERATE_RESERVED = frozenset({
    "past_key_values", "cache", "use_cache", "inputs_embeds", "position_ids", "decoder_input_ids",
    "decoder_attention_mask", "cache_position",
})


def _check_generation_values(generation_kwargs: dict) -> None:
    """Clear errors for malformed counts (positive ints) and sampling/beam numbers (finite floats) given to
    `generate`."""
    for key in ("num_beams", "num_return_sequences", "max_new_tokens"):
        if generation_kwargs.get(key) is not None:
            check_int(generation_kwargs[key], key, minimum=1)
    for key in ("temperature", "top_p", "repetition_penalty", "length_penalty"):
        if generation_kwargs.get(key) is not None:
            check_float(generation_kwargs[key], key)


def _head(in_features: int, out_features: int, role: str, bias: bool = False) -> nn.Linear:
    layer = nn.Linear(in_features, out_features, bias=bias)
    layer._optimus_head = role
    return layer


class OptimusForConditionalGeneration(OptimusProcessorMixin, OptimusPreTrainedModel):
    r"""
    The Optimus sentence VAE (see the module docstring).

    Example:

    ```python
    >>> import hf_dgm
    >>> from hf_dgm import OptimusForConditionalGeneration
    >>> model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
    ...     "bert-base-cased", "gpt2", latent_size=32, latent_injection="memory")
    >>> batch = model.processor(["a man is playing a guitar ."], return_tensors="pt")
    >>> out = model(**batch)
    >>> out.loss, out.kl.shape, out.latents.shape
    ```
    """

    def __init__(self, config: OptimusConfig, encoder: PreTrainedModel | None = None, decoder: PreTrainedModel | None = None):
        # Compared by model_type, not class: remote code may load two copies of the configuration module.
        if getattr(config, "model_type", None) != OptimusConfig.model_type:
            raise ValueError(
                f"`config` must be an OptimusConfig (model_type 'optimus'); got {type(config).__name__} with "
                f"model_type {getattr(config, 'model_type', None)!r}"
            )
        super().__init__(config)
        if encoder is None:
            encoder = AutoModel.from_config(config.encoder)
        if decoder is None:
            decoder = AutoModelForCausalLM.from_config(config.decoder)
        self.encoder = encoder
        self.decoder = decoder
        # The sub-models read their settings from the shared config from now on.
        self.config.encoder._attn_implementation = self.encoder.config._attn_implementation
        self.config.decoder._attn_implementation = self.decoder.config._attn_implementation
        self.encoder.config = self.config.encoder
        self.decoder.config = self.config.decoder

        encoder_hidden = config.encoder.hidden_size
        num_layers, kv_heads, head_dim, hidden = _decoder_geometry(config.decoder)
        self.posterior = _head(
            encoder_hidden, 2 * config.latent_size, "posterior", bias=config.posterior_logvar_bias is not None
        )
        if config.posterior_mean_batch_norm is not None:
            self.posterior_mean_norm = PosteriorMeanBatchNorm(config.latent_size, config.posterior_mean_batch_norm)
        if config.uses_memory:
            self.latent_to_memory = _head(config.latent_size, num_layers * kv_heads * head_dim, "memory")
        if config.uses_embedding:
            self.latent_to_embedding = _head(config.latent_size, hidden, "embedding")
        if config.uses_prefix:
            self.latent_to_prefix = _head(config.latent_size, hidden, "prefix")

        forward_params = inspect.signature(self.decoder.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_params else "past_key_values"
        self.processor = None
        self.post_init()

    # ---------------------------------------------------------------- plumbing
    def get_input_embeddings(self) -> nn.Module:
        return self.decoder.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.decoder.get_output_embeddings()

    def get_encoder(self) -> PreTrainedModel:
        return self.encoder

    def get_decoder(self) -> PreTrainedModel:
        return self.decoder

    def activation_checkpointing_enable(
        self, activation_checkpointing_kwargs: dict | None = None, every_n_layers: int = 1, offload: bool = False
    ) -> None:
        """
        Checkpoint the encoder and decoder layers (`gradient_checkpointing_enable()` is the deprecated alias). The
        latent memory cache is read-only in training forward passes, so the decoder layers keep it under
        checkpointing: the replay reads the very same slot.
        """
        if activation_checkpointing_kwargs is None:
            activation_checkpointing_kwargs = {"use_reentrant": False}
        self._activation_checkpointing_enable(activation_checkpointing_kwargs, every_n_layers, offload)
        for module in self.decoder.modules():
            if hasattr(module, "_can_checkpoint_with_cache"):
                module._can_checkpoint_with_cache = True
            elif isinstance(module, PreTrainedModel) and getattr(module, "gradient_checkpointing", False):
                # e.g. GPT2Model drops the cache itself when its own flag is set; its layers checkpoint anyway.
                module.gradient_checkpointing = False

    # ---------------------------------------------------------------- encoder side
    def encode(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
    ) -> OptimusEncoderOutput:
        """
        Posterior q(z|x) of a batch of encoder inputs `input_ids` `(batch_size, seq_len)`.

        Returns an [`OptimusEncoderOutput`] with `mean` and `logvar` of shape `(batch_size, latent_size)`.
        """
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError("`input_ids` must be a LongTensor of shape (batch_size, seq_len)")
        if attention_mask is None:
            attention_mask = (input_ids != self.config.encoder_pad_token_id).long()
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if self.config.pooling == "pooler":
            pooled = out.pooler_output
            if pooled is None:
                raise ValueError("pooling='pooler' but the encoder returned no pooler_output; use 'cls' or 'mean'")
        elif self.config.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        mean, logvar = self.posterior(pooled).chunk(2, dim=-1)
        if self.config.posterior_mean_batch_norm is not None:
            mean = self.posterior_mean_norm(mean)
        return OptimusEncoderOutput(mean=mean, logvar=logvar, pooled=pooled)

    @staticmethod
    def reparameterize(
        mean: torch.Tensor,
        logvar: torch.Tensor,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        z = μ + σ·ε. Returns `(batch_size, latent_size)`, or `(batch_size, num_samples, latent_size)` when
        `num_samples` is given.
        """
        std = torch.exp(0.5 * logvar)
        if num_samples is None:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            return mean + std * eps
        shape = (mean.shape[0], num_samples, mean.shape[1])
        eps = torch.randn(shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean.unsqueeze(1) + std.unsqueeze(1) * eps

    @staticmethod
    def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, 1)) per dimension: ½(μ² + σ² − log σ² − 1), shape of `mean`."""
        return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0)

    def sample_prior(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`num_samples` latents from N(0, I): `(num_samples, latent_size)`."""
        return torch.randn(
            (num_samples, self.config.latent_size), generator=generator, device=self.device, dtype=self.dtype
        )

    # ---------------------------------------------------------------- decoder side
    def build_latent_cache(self, latents: torch.Tensor, read_only: bool = True) -> LatentMemoryCache:
        """
        The memory slot of `latents` `(batch_size, latent_size)` as a cache: one `(batch_size, kv_heads, 1, head_dim)`
        key (= value) per decoder layer.
        """
        num_layers, kv_heads, head_dim, _ = _decoder_geometry(self.config.decoder)
        memory = self.latent_to_memory(latents).view(latents.shape[0], num_layers, kv_heads, 1, head_dim)
        memory = memory.to(self.decoder.dtype)
        return LatentMemoryCache([memory[:, layer] for layer in range(num_layers)], read_only=read_only)

    @contextmanager
    def _latent_embedding(self, latents: torch.Tensor | None) -> Iterator[None]:
        """While active, `latent_to_embedding(z)` is added to every output of the decoder's input embedding."""
        if latents is None or not self.config.uses_embedding:
            yield
            return
        shift = self.latent_to_embedding(latents).unsqueeze(1)  # (B, 1, hidden)

        def add_latent(module, args, output):
            if output.shape[0] != shift.shape[0]:
                raise ValueError(
                    f"latent batch {shift.shape[0]} does not match the decoder batch {output.shape[0]}"
                )
            return output + shift.to(output.dtype)

        handle = self.decoder.get_input_embeddings().register_forward_hook(add_latent)
        try:
            yield
        finally:
            handle.remove()

    def decode(
        self,
        decoder_input_ids: torch.LongTensor,
        latents: torch.Tensor,
        decoder_attention_mask: torch.LongTensor | None = None,
    ) -> torch.FloatTensor:
        """
        Teacher-forced decoder logits `(batch_size, seq_len, vocab_size)` for `decoder_input_ids`
        `(batch_size, seq_len)` (right-padded) conditioned on `latents` `(batch_size, latent_size)`.
        """
        batch, length = decoder_input_ids.shape
        if latents.shape != (batch, self.config.latent_size):
            raise ValueError(
                f"`latents` must have shape (batch_size={batch}, latent_size={self.config.latent_size}); "
                f"got {tuple(latents.shape)}"
            )
        if decoder_attention_mask is None:
            decoder_attention_mask = torch.ones_like(decoder_input_ids)
        if self.config.uses_prefix:
            return self._decode_with_prefix(decoder_input_ids, latents, decoder_attention_mask)
        kwargs: dict[str, Any] = {"use_cache": False}
        offset = 0
        if self.config.uses_memory:
            kwargs[self._cache_kwarg] = self.build_latent_cache(latents, read_only=True)
            slot = decoder_attention_mask.new_ones((batch, 1))
            decoder_attention_mask = torch.cat([slot, decoder_attention_mask], dim=1)
            offset = 1
        position_ids = torch.arange(offset, offset + length, device=decoder_input_ids.device).unsqueeze(0)
        with self._latent_embedding(latents):
            out = self.decoder(
                input_ids=decoder_input_ids,
                attention_mask=decoder_attention_mask,
                position_ids=position_ids.expand(batch, -1),
                **kwargs,
            )
        return out.logits

    def latent_prefix(self, latents: torch.Tensor) -> torch.Tensor:
        """The prefix embedding of `latents` `(batch_size, latent_size)`: `(batch_size, 1, hidden_size)`."""
        embeddings = self.decoder.get_input_embeddings()
        return self.latent_to_prefix(latents).unsqueeze(1).to(embeddings.weight.dtype)

    def _decode_with_prefix(
        self, decoder_input_ids: torch.LongTensor, latents: torch.Tensor, decoder_attention_mask: torch.LongTensor
    ) -> torch.FloatTensor:
        """`decode` for `latent_injection="prefix"`: [prefix(z), embeddings of the tokens] at positions 0, 1, ...;
        the prefix's own output is dropped, so the logits align with `decoder_input_ids`."""
        batch, length = decoder_input_ids.shape
        tokens = self.decoder.get_input_embeddings()(decoder_input_ids)
        inputs_embeds = torch.cat([self.latent_prefix(latents), tokens], dim=1)
        mask = torch.cat([decoder_attention_mask.new_ones((batch, 1)), decoder_attention_mask], dim=1)
        position_ids = torch.arange(length + 1, device=decoder_input_ids.device).unsqueeze(0).expand(batch, -1)
        out = self.decoder(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids, use_cache=False)
        return out.logits[:, 1:]

    # ---------------------------------------------------------------- forward
    def _check_forward_inputs(
        self,
        input_ids: torch.LongTensor | None,
        decoder_input_ids: torch.LongTensor | None,
        latents: torch.FloatTensor | None,
        beta: float | None,
        kl_threshold: float | None,
    ) -> tuple[float, float]:
        """Clear errors for missing or malformed `forward` inputs; returns (β, λ) with the config's defaults."""
        if decoder_input_ids is None:
            raise ValueError("`decoder_input_ids` are required (the sentence as `BOS tokens EOS`)")
        if input_ids is None and latents is None:
            raise ValueError("pass encoder `input_ids` (to encode) or `latents` (to decode a given z)")
        beta = check_float(self.config.beta if beta is None else beta, "beta", minimum=0.0)
        kl_threshold = check_float(
            self.config.kl_threshold if kl_threshold is None else kl_threshold, "kl_threshold", minimum=0.0
        )
        if latents is not None:
            check_float_tensor(latents, "latents", ndim=2, size=self.config.latent_size)
        return beta, kl_threshold

    def _kl_terms(
        self, mean: torch.FloatTensor, logvar: torch.FloatTensor, beta: float, kl_threshold: float
    ) -> tuple[torch.FloatTensor, torch.FloatTensor, torch.FloatTensor]:
        """
        KL(q(z|x) ‖ N(0, I)) of the posterior `mean`, `logvar` `(batch_size, latent_size)`: per dimension
        `(batch_size, latent_size)`, summed `(batch_size,)`, and the sum the loss uses `(batch_size,)` — with the
        dimension-wise threshold λ (each dimension clamped at λ, or dropped below it when
        `config.kl_threshold_mode == "mask"`) when λ > 0 and β > 0, else the plain sum.
        """
        # at least fp32 (under bf16/fp16 autocast too); a float64 model keeps float64
        kl_dtype = torch.promote_types(mean.dtype, torch.float32)
        kl_per_dim = self.kl_divergence(mean.to(kl_dtype), logvar.to(kl_dtype))
        kl = kl_per_dim.sum(-1)
        if kl_threshold > 0 and beta > 0:
            if self.config.kl_threshold_mode == "mask":
                kl_thresholded = (kl_per_dim * (kl_per_dim > kl_threshold).to(kl_per_dim.dtype)).sum(-1)
            else:
                kl_thresholded = kl_per_dim.clamp(min=kl_threshold).sum(-1)
        else:
            kl_thresholded = kl
        return kl_per_dim, kl, kl_thresholded

    def _reconstruction_terms(
        self,
        logits: torch.FloatTensor,
        labels: torch.LongTensor | None,
        decoder_input_ids: torch.LongTensor,
        decoder_attention_mask: torch.LongTensor | None,
    ) -> tuple[torch.FloatTensor, torch.FloatTensor, torch.LongTensor]:
        """
        Teacher-forced reconstruction of `logits` `(batch_size, dec_len, vocab_size)` against `labels` (by default
        `decoder_input_ids` with -100 where the mask is 0), shifted by one: (summed token NLL `(batch_size,)`, the
        same divided by the sentence length when `config.length_weighted_loss` (what the loss uses), the number of
        target tokens `(batch_size,)`).
        """
        if labels is None:
            labels = decoder_input_ids
            if decoder_attention_mask is not None:
                labels = labels.masked_fill(decoder_attention_mask == 0, -100)
        targets = labels[:, 1:]
        token_nll = F.cross_entropy(
            logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)).reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=-100,
            reduction="none",
        ).view(targets.shape)
        num_tokens = (targets != -100).sum(-1)
        reconstruction_loss = token_nll.sum(-1)
        rec_for_loss = reconstruction_loss
        if self.config.length_weighted_loss:
            # The original divides by the non-pad decoder tokens, BOS included (`sent_length` in its VAE.forward):
            # the labels before the shift, one more than the targets.
            sentence_length = (labels != -100).sum(-1)
            rec_for_loss = reconstruction_loss / sentence_length.clamp(min=1).to(reconstruction_loss.dtype)
        return reconstruction_loss, rec_for_loss, num_tokens

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        latents: torch.FloatTensor | None = None,
        beta: float | None = None,
        kl_threshold: float | None = None,
        sample_latent: bool | None = None,
        return_dict: bool | None = None,
    ) -> OptimusOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, enc_len)`): encoder tokens (`[CLS] … [SEP]`).
            attention_mask (`torch.LongTensor` of shape `(batch_size, enc_len)`): encoder mask.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, dec_len)`): `BOS tokens EOS`, right-padded.
            decoder_attention_mask (`torch.LongTensor` of shape `(batch_size, dec_len)`): 1 on real tokens.
            labels (`torch.LongTensor` of shape `(batch_size, dec_len)`, *optional*): targets aligned with
                `decoder_input_ids` (shifted inside; -100 ignored). By default `decoder_input_ids` where the mask is 1.
            latents (`torch.FloatTensor` of shape `(batch_size, latent_size)`, *optional*): decode this `z` instead
                of encoding `input_ids` (then no KL is computed unless `input_ids` is also given).
            beta (`float`, *optional*): KL weight; defaults to `config.beta`.
            kl_threshold (`float`, *optional*): dimension-wise λ; defaults to `config.kl_threshold`.
            sample_latent (`bool`, *optional*): sample z ~ q(z|x) (default in training mode) or use the mean
                (default in eval mode).
        """
        beta, kl_threshold = self._check_forward_inputs(input_ids, decoder_input_ids, latents, beta, kl_threshold)
        if sample_latent is None:
            sample_latent = self.training

        mean = logvar = kl_per_dim = kl = kl_thresholded = None
        if input_ids is not None:
            posterior = self.encode(input_ids, attention_mask, token_type_ids)
            mean, logvar = posterior.mean, posterior.logvar
            if latents is None:
                latents = self.reparameterize(mean, logvar) if sample_latent else mean
            kl_per_dim, kl, kl_thresholded = self._kl_terms(mean, logvar, beta, kl_threshold)

        logits = self.decode(decoder_input_ids, latents, decoder_attention_mask)
        reconstruction_loss, rec_for_loss, num_tokens = self._reconstruction_terms(
            logits, labels, decoder_input_ids, decoder_attention_mask
        )
        per_example = rec_for_loss if kl_thresholded is None else rec_for_loss + beta * kl_thresholded
        loss = per_example.mean()

        return OptimusOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            kl=kl,
            kl_per_dim=kl_per_dim,
            kl_thresholded=kl_thresholded,
            beta=beta,
            latents=latents,
            mean=mean,
            logvar=logvar,
            logits=logits,
            num_tokens=num_tokens,
        )

    # ---------------------------------------------------------------- generation
    def _fill_generation_defaults(self, generation_kwargs: dict) -> int:
        """Fill in `max_new_tokens` and the decoder's EOS / PAD ids (in place) and return how many sequences the
        decoder's `generate` makes of each input (max(num_beams, num_return_sequences)): the latent cache and the
        embedding shift must be expanded by the same factor."""
        generation_kwargs.setdefault("max_new_tokens", self.config.max_new_tokens)
        if self.config.decoder_eos_token_id is not None:
            generation_kwargs.setdefault("eos_token_id", self.config.decoder_eos_token_id)
        pad = self.config.decoder_pad_token_id
        generation_kwargs.setdefault("pad_token_id", pad if pad is not None else generation_kwargs.get("eos_token_id"))
        # `generate` expands input ids by this factor itself; the latent cache and embedding shift must match.
        base = self.decoder.generation_config
        num_beams = generation_kwargs.get("num_beams", base.num_beams) or 1
        num_return = generation_kwargs.get("num_return_sequences", base.num_return_sequences) or 1
        return max(num_beams, num_return)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        latents: torch.FloatTensor | None = None,
        **generation_kwargs,
    ) -> torch.LongTensor:
        """
        Decode sentences from `latents` `(batch_size, latent_size)` — or from the posterior means of encoder
        `input_ids` — starting at the decoder's BOS and stopping at its EOS.

        `generation_kwargs` go to the decoder's `generate` (greedy by default; `num_beams`, `do_sample`,
        `top_p`, `temperature`, `num_return_sequences`, `max_new_tokens` …; `max_new_tokens` defaults to
        `config.max_new_tokens`), which raises a `ValueError` naming any argument it does not use; the decoder
        inputs that Optimus builds itself (the latent cache, positions, embeddings) raise here. Returns decoder
        token ids `(batch_size * num_return_sequences, length)`, starting with BOS.
        """
        reserved = sorted(set(generation_kwargs) & _GENERATE_RESERVED)
        if reserved:
            raise ValueError(
                f"`generate` builds the decoder's {reserved} itself from `latents` (the latent memory cache, "
                "positions after the slot, the embedding shift, BOS as the start); do not pass them"
            )
        if latents is None:
            if input_ids is None:
                raise ValueError("pass `latents` or encoder `input_ids` to generate from")
            latents = self.encode(input_ids, attention_mask).mean
        check_float_tensor(latents, "latents", ndim=2, size=self.config.latent_size)
        _check_generation_values(generation_kwargs)
        bos = self.config.decoder_bos_token_id
        if bos is None:
            raise ValueError("config.decoder_bos_token_id is not set: generation has no start token")
        latents = latents.to(device=self.device, dtype=self.dtype)
        batch = latents.shape[0]
        expansion = self._fill_generation_defaults(generation_kwargs)
        if self.config.uses_prefix:
            return self._generate_with_prefix(latents, bos, expansion, generation_kwargs)
        expanded = latents.repeat_interleave(expansion, dim=0)

        input_ids_dec = torch.full((batch, 1), bos, dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {}
        mask_len = 1
        if self.config.uses_memory:
            kwargs[self._cache_kwarg] = self.build_latent_cache(expanded, read_only=False)
            mask_len = 2
        attention = torch.ones((batch, mask_len), dtype=torch.long, device=self.device)
        with self._latent_embedding(expanded):
            return self.decoder.generate(
                input_ids=input_ids_dec, attention_mask=attention, **kwargs, **generation_kwargs
            )

    def _generate_with_prefix(self, latents: torch.Tensor, bos: int, expansion: int, generation_kwargs: dict) -> torch.LongTensor:
        """`generate` for `latent_injection="prefix"`: the decoder continues [prefix(z), BOS] (given as embeddings,
        which `generate` expands for beams / return sequences itself); BOS is put back in front of what it returns."""
        batch = latents.shape[0]
        bos_ids = torch.full((batch, 1), bos, dtype=torch.long, device=self.device)
        inputs_embeds = torch.cat([self.latent_prefix(latents), self.decoder.get_input_embeddings()(bos_ids)], dim=1)
        attention = torch.ones((batch, 2), dtype=torch.long, device=self.device)
        generated = self.decoder.generate(inputs_embeds=inputs_embeds, attention_mask=attention, **generation_kwargs)
        # a decoder-only `generate` given only embeddings returns the new tokens alone
        start = torch.full((generated.shape[0], 1), bos, dtype=generated.dtype, device=generated.device)
        return torch.cat([start, generated], dim=1)

    @torch.no_grad()
    def reconstruct(
        self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor | None = None, **generation_kwargs
    ) -> torch.LongTensor:
        """Encode with the posterior mean and decode: `(batch_size, length)` decoder ids."""
        return self.generate(input_ids=input_ids, attention_mask=attention_mask, **generation_kwargs)

    @torch.no_grad()
    def interpolate(
        self,
        start_latents: torch.Tensor,
        end_latents: torch.Tensor,
        num_steps: int = 5,
        **generation_kwargs,
    ) -> OptimusInterpolationOutput:
        """
        Decode `num_steps` (≥ 2) evenly spaced points z_start + α (z_end − z_start), α = 0 … 1, of each pair of
        `(batch_size, latent_size)` latents.
        """
        if not isinstance(num_steps, int) or num_steps < 2:
            raise ValueError(f"`num_steps` must be an int >= 2 (both endpoints included); got {num_steps!r}")
        check_float_tensor(start_latents, "start_latents", ndim=2, size=self.config.latent_size)
        check_float_tensor(end_latents, "end_latents", ndim=2, size=self.config.latent_size)
        if start_latents.shape != end_latents.shape or start_latents.dim() != 2:
            raise ValueError(
                "`start_latents` and `end_latents` must both have shape (batch_size, latent_size); got "
                f"{tuple(start_latents.shape)} and {tuple(end_latents.shape)}"
            )
        alphas = torch.linspace(0.0, 1.0, num_steps, device=start_latents.device, dtype=start_latents.dtype)
        path = start_latents.unsqueeze(1) + alphas.view(1, -1, 1) * (end_latents - start_latents).unsqueeze(1)
        sequences = self.generate(latents=path.reshape(-1, path.shape[-1]), **generation_kwargs)
        return OptimusInterpolationOutput(alphas=alphas, latents=path, sequences=sequences)

    @torch.no_grad()
    def analogy(
        self,
        latents_a: torch.Tensor,
        latents_b: torch.Tensor,
        latents_c: torch.Tensor,
        degree: float = 1.0,
        **generation_kwargs,
    ) -> torch.LongTensor:
        """a : b :: c : d with z_d = z_c + degree · (z_b − z_a); all `(batch_size, latent_size)`."""
        for name, value in (("latents_a", latents_a), ("latents_b", latents_b), ("latents_c", latents_c)):
            check_float_tensor(value, name, ndim=2, size=self.config.latent_size)
        degree = check_float(degree, "degree")
        if not (latents_a.shape == latents_b.shape == latents_c.shape):
            raise ValueError("analogy latents a, b, c must have the same shape (batch_size, latent_size)")
        return self.generate(latents=latents_c + degree * (latents_b - latents_a), **generation_kwargs)

    # ---------------------------------------------------------------- construction & persistence
    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_pretrained_model_name_or_path: str | os.PathLike,
        decoder_pretrained_model_name_or_path: str | os.PathLike,
        *,
        encoder_kwargs: dict | None = None,
        decoder_kwargs: dict | None = None,
        decoder_gguf_file: str | None = None,
        load_tokenizers: bool = True,
        **config_kwargs,
    ) -> "OptimusForConditionalGeneration":
        """
        Compose Optimus from a pretrained encoder (`AutoModel`) and a pretrained causal-LM decoder
        (`AutoModelForCausalLM`; `decoder_gguf_file` loads a GGUF file in the decoder folder). The tokenizers are
        loaded too (`model.processor`, saved with the model); the decoder gets `<PAD>`/`<BOS>`/`<EOS>` tokens where
        its tokenizer lacks them (embeddings resized). `config_kwargs` go to [`OptimusConfig`].
        """
        from .processing_optimus import OptimusProcessor

        encoder_kwargs = dict(encoder_kwargs or {})
        decoder_kwargs = dict(decoder_kwargs or {})
        if decoder_gguf_file is not None:
            decoder_kwargs["gguf_file"] = decoder_gguf_file
        encoder = AutoModel.from_pretrained(encoder_pretrained_model_name_or_path, **encoder_kwargs)
        decoder = AutoModelForCausalLM.from_pretrained(decoder_pretrained_model_name_or_path, **decoder_kwargs)
        if decoder_gguf_file is not None:
            # GGUF weights are dequantized to plain tensors on load: the model is not quantized, and must not say so
            # (a `quantization_config` would make the saved folder unloadable-then-unsaveable).
            if hasattr(decoder.config, "quantization_config"):
                del decoder.config.quantization_config
            decoder.hf_quantizer = None
            decoder.is_quantized = False
        if getattr(decoder.config, "is_encoder_decoder", False):
            raise ValueError("the decoder must be a causal language model (decoder-only), not an encoder-decoder")

        processor = None
        if load_tokenizers:
            tok_kwargs = {"gguf_file": decoder_gguf_file} if decoder_gguf_file is not None else {}
            processor = OptimusProcessor.from_encoder_decoder_pretrained(
                encoder_pretrained_model_name_or_path, decoder_pretrained_model_name_or_path, decoder_tokenizer_kwargs=tok_kwargs
            )
            vocab = len(processor.decoder_tokenizer)
            if vocab > decoder.get_input_embeddings().weight.shape[0]:
                decoder.resize_token_embeddings(vocab)
            dec_tok = processor.decoder_tokenizer
            config_kwargs.setdefault("decoder_bos_token_id", dec_tok.bos_token_id)
            config_kwargs.setdefault("decoder_eos_token_id", dec_tok.eos_token_id)
            config_kwargs.setdefault("decoder_pad_token_id", dec_tok.pad_token_id)
            if processor.tokenizer.pad_token_id is not None:
                config_kwargs.setdefault("encoder_pad_token_id", processor.tokenizer.pad_token_id)
        if "pooling" not in config_kwargs and getattr(encoder, "pooler", None) is None:
            config_kwargs["pooling"] = "cls"
        config = OptimusConfig(encoder=encoder.config, decoder=decoder.config, **config_kwargs)
        model = cls(config, encoder=encoder, decoder=decoder)
        model.processor = processor
        return model



__all__ = [
    "OptimusPreTrainedModel",
    "OptimusForConditionalGeneration",
    "OptimusOutput",
    "OptimusEncoderOutput",
    "OptimusInterpolationOutput",
    "LatentMemoryCache",
    "LatentMemoryLayer",
]
