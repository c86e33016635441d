"""Optimus for dialog response generation, in the style of SpaceFusion (Gao et al., NAACL 2019), as the Optimus
paper's dialog experiment (Li et al., EMNLP 2020) does it.

Two encoders share one latent space:

* the **AE branch** is Optimus's own encoder: a *response* → its pooled feature → the posterior head → z_AE;
* the **S2S branch** reads the dialog *context* (turns joined by `[SEP]`, speaker token types alternating per turn)
  with the same encoder up to its last `num_s2s_layers` layers, then through its own copies of those layers, then
  the shared pooling and posterior head → z_S2S.

Training decodes the response from z_AE, from z_S2S and from a noisy random interpolation between them, and adds a
fusion regulariser: pull the two branches' latents of the same pair together, push each branch's latents of different
pairs apart (see [`fusion_regularizer`]). No KL term: as in the original, the latents are sampled from the
posteriors but not pulled towards the prior. At inference, several responses come from several samples of the
context's posterior q_S2S(z | context), each decoded by nucleus sampling (the original: top-p 0.9, temperature 1).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_optimus_dialog import OptimusDialogConfig
from ..optimus.modeling_optimus import OptimusEncoderOutput, OptimusForConditionalGeneration, OptimusProcessorMixin
from ...modules.validation import check_float, check_int, check_int_tensor


PAIRWISE_EPS = 1e-6  # `torch.nn.functional.pairwise_distance`'s eps, which the original's distances carry


# --------------------------------------------------------------------------------------------------------------
# Speaker token types and the fusion regulariser
# --------------------------------------------------------------------------------------------------------------


def speaker_token_type_ids(
    input_ids: torch.LongTensor, sep_token_id: int, attention_mask: torch.LongTensor | None = None
) -> torch.LongTensor:
    """
    Speaker token types of contexts `(batch_size, seq_len)` whose turns each end with `sep_token_id`: the last turn
    (and its `[SEP]`) is type 0, the turn before it type 1, alternating backwards; padding is 0. This is what the
    original's `ids2speaker` gives the real tokens (it alternates at every `[SEP]` and flips the row so that the last
    turn is speaker 0).
    """
    is_sep = input_ids == sep_token_id
    if attention_mask is not None:
        is_sep = is_sep & attention_mask.bool()
    is_sep = is_sep.long()
    turn_index = torch.cumsum(is_sep, dim=1) - is_sep  # 0 for the first turn, its [SEP] included
    num_turns = is_sep.sum(dim=1, keepdim=True)
    types = torch.remainder(num_turns - 1 - turn_index, 2)
    if attention_mask is not None:
        types = types * attention_mask.long()
    return types


def latent_distances(latents: torch.Tensor) -> torch.Tensor:
    """`‖z_i − z_j + ε‖₂` for every pair of rows of `latents` `(n, latent_size)`: `(n, n)` (ε = 1e-6, as
    `pairwise_distance`, so the diagonal is ε·√latent_size, not 0)."""
    return (latents.unsqueeze(1) - latents.unsqueeze(0) + PAIRWISE_EPS).norm(dim=-1)


def nearest_neighbour_distance(latents: torch.Tensor, include_self: bool = False) -> torch.Tensor:
    """
    Mean over the rows of `latents` `(n, latent_size)` of the distance to the nearest row: the nearest *other* row
    (default; 0 when n = 1), or any row including itself (`include_self=True`, what the released Optimus code
    computes: then every minimum is the diagonal's ε·√latent_size).
    """
    distances = latent_distances(latents)
    if not include_self:
        if latents.shape[0] < 2:
            return distances.new_zeros(())
        eye = torch.eye(latents.shape[0], dtype=torch.bool, device=latents.device)
        distances = distances.masked_fill(eye, float("inf"))
    return distances.min(dim=1).values.mean()


def fusion_regularizer(
    latents_ae: torch.Tensor, latents_s2s: torch.Tensor, push_weight: float = 2.0, push: str = "nearest"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    SpaceFusion's fusion term for paired latents `(batch_size, latent_size)`: returns `(regulariser, pull, push)`,

        pull = mean_i ‖z_AE,i − z_S2S,i‖,   push = min(nn(z_AE), nn(z_S2S)),
        regulariser = (pull − push_weight · push) / √latent_size,

    with nn(·) the mean nearest-neighbour distance of [`nearest_neighbour_distance`] (`push="released"`: itself
    included, as the released code).
    """
    pull = F.pairwise_distance(latents_ae, latents_s2s, eps=PAIRWISE_EPS).mean()
    include_self = push == "released"
    push_term = torch.stack(
        [nearest_neighbour_distance(z, include_self=include_self) for z in (latents_ae, latents_s2s)]
    ).min()
    regulariser = (pull - push_weight * push_term) / math.sqrt(latents_ae.shape[-1])
    return regulariser, pull, push_term


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class OptimusDialogOutput(ModelOutput):
    """
    Output of [`OptimusForDialogResponse.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): mean over the batch of `reconstruction_loss`, plus
            `fusion_weight · fusion_loss`.
        reconstruction_loss (`torch.FloatTensor` of shape `(batch_size,)`): the response's token NLL (summed over
            its tokens) averaged over the three latents it was decoded from.
        branch_reconstruction_losses (`torch.FloatTensor` of shape `(batch_size, 3)`): the NLL from z_AE, z_S2S and
            the interpolation, in that order.
        fusion_loss (`torch.FloatTensor` of shape `()`): the regulariser of [`fusion_regularizer`].
        pull_distance, push_distance (`torch.FloatTensor` of shape `()`): its two distances.
        latents_ae, latents_s2s, latents_interp (`torch.FloatTensor` of shape `(batch_size, latent_size)`): the
            latents the response was decoded from.
        context_mean, context_logvar, response_mean, response_logvar (`torch.FloatTensor` of shape
            `(batch_size, latent_size)`): the two posteriors.
        num_tokens (`torch.LongTensor` of shape `(batch_size,)`): target tokens per response.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    branch_reconstruction_losses: torch.FloatTensor | None = None
    fusion_loss: torch.FloatTensor | None = None
    pull_distance: torch.FloatTensor | None = None
    push_distance: torch.FloatTensor | None = None
    latents_ae: torch.FloatTensor | None = None
    latents_s2s: torch.FloatTensor | None = None
    latents_interp: torch.FloatTensor | None = None
    context_mean: torch.FloatTensor | None = None
    context_logvar: torch.FloatTensor | None = None
    response_mean: torch.FloatTensor | None = None
    response_logvar: torch.FloatTensor | None = None
    num_tokens: torch.LongTensor | None = None


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------


def _encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"the S2S branch copies the encoder's last layers, found at `encoder.encoder.layer` in BERT-family "
            f"encoders; {type(encoder).__name__} has none"
        )
    return layers


class OptimusDialogPreTrainedModel(PreTrainedModel):
    config_class = OptimusDialogConfig
    base_model_prefix = "optimus_dialog"
    main_input_name = "context_input_ids"
    _no_split_modules = []
    _supports_sdpa = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        # The Optimus sub-model initialises itself; the S2S layers are encoder layers: the encoder's own scheme.
        optimus = getattr(self, "optimus", None)
        if optimus is not None:
            optimus.encoder._init_weights(module)


class OptimusForDialogResponse(OptimusProcessorMixin, OptimusDialogPreTrainedModel):
    r"""
    Optimus with SpaceFusion's S2S branch: dialog context → several diverse responses (see the module docstring).

    Example:

    ```python
    >>> import hf_dgm
    >>> from hf_dgm import OptimusForDialogResponse
    >>> model = OptimusForDialogResponse.from_encoder_decoder_pretrained("bert-base-cased", "gpt2", latent_size=32)
    >>> # or from a trained Optimus VAE, as the original starts from its pretrained checkpoint:
    >>> model = OptimusForDialogResponse.from_optimus("optimus-dir", num_s2s_layers=2)
    ```
    """

    def __init__(self, config: OptimusDialogConfig, optimus: OptimusForConditionalGeneration | None = None):
        if getattr(config, "model_type", None) != OptimusDialogConfig.model_type:
            raise ValueError(
                f"`config` must be an OptimusDialogConfig (model_type 'optimus_dialog'); got {type(config).__name__}"
            )
        if optimus is not None:
            config.optimus = optimus.config
        super().__init__(config)
        self.optimus = optimus if optimus is not None else OptimusForConditionalGeneration(config.optimus)
        layers = _encoder_layers(self.optimus.encoder)
        if config.num_s2s_layers > len(layers):
            raise ValueError(f"`num_s2s_layers`={config.num_s2s_layers} exceeds the encoder's {len(layers)} layers")
        self.s2s_layers = nn.ModuleList(copy.deepcopy(layer) for layer in layers[-config.num_s2s_layers:])
        for module in self.s2s_layers.modules():  # one encoder config (attention implementation) for both branches
            if isinstance(getattr(module, "config", None), PreTrainedConfig):
                module.config = self.optimus.encoder.config
        self.processor = None
        self.post_init()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_optimus(
        cls, optimus: OptimusForConditionalGeneration | str | os.PathLike, **config_kwargs
    ) -> "OptimusForDialogResponse":
        """
        Wrap an Optimus VAE (a model, or a folder / repo to load one from); the S2S layers start as copies of its
        encoder's last `num_s2s_layers` layers. `config_kwargs` go to [`OptimusDialogConfig`]; the separator and
        `[CLS]` ids default to the processor's encoder tokenizer's.
        """
        if not isinstance(optimus, OptimusForConditionalGeneration):
            optimus = OptimusForConditionalGeneration.from_pretrained(optimus)
        processor = optimus.processor
        if processor is not None:
            config_kwargs.setdefault("encoder_sep_token_id", processor.tokenizer.sep_token_id)
            config_kwargs.setdefault("encoder_cls_token_id", processor.tokenizer.cls_token_id)
        model = cls(OptimusDialogConfig(optimus=optimus.config, **config_kwargs), optimus=optimus)
        source = _encoder_layers(optimus.encoder)[-model.config.num_s2s_layers:]
        for copy_layer, layer in zip(model.s2s_layers, source):
            copy_layer.load_state_dict(layer.state_dict())
        model.processor = processor
        return model

    @classmethod
    def from_encoder_decoder_pretrained(
        cls, encoder_pretrained_model_name_or_path, decoder_pretrained_model_name_or_path, *,
        dialog_kwargs: dict | None = None, **optimus_kwargs,
    ) -> "OptimusForDialogResponse":
        """A fresh Optimus from a pretrained encoder and decoder (`OptimusForConditionalGeneration.
        from_encoder_decoder_pretrained`, `optimus_kwargs`), wrapped by [`from_optimus`] (`dialog_kwargs`)."""
        optimus = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
            encoder_pretrained_model_name_or_path, decoder_pretrained_model_name_or_path, **optimus_kwargs
        )
        return cls.from_optimus(optimus, **(dialog_kwargs or {}))

    def get_input_embeddings(self) -> nn.Module:
        return self.optimus.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.optimus.get_output_embeddings()

    # ---------------------------------------------------------------- the two encoders
    def encode_response(
        self, input_ids: torch.LongTensor, attention_mask: torch.LongTensor | None = None
    ) -> OptimusEncoderOutput:
        """AE branch: q(z | response) of encoder `input_ids` `(batch_size, seq_len)` (`[CLS] … [SEP]`)."""
        return self.optimus.encode(input_ids, attention_mask)

    def encode_context(
        self,
        context_input_ids: torch.LongTensor,
        context_attention_mask: torch.LongTensor | None = None,
        context_token_type_ids: torch.LongTensor | None = None,
    ) -> OptimusEncoderOutput:
        """
        S2S branch: q(z | context) of contexts `(batch_size, seq_len)` (`[CLS] turn [SEP] turn [SEP] …`). Speaker
        token types are derived from the `[SEP]`s unless given (see [`speaker_token_type_ids`]). Returns `mean`
        and `logvar` `(batch_size, latent_size)` and the `pooled` S2S feature.
        """
        check_int_tensor(context_input_ids, "context_input_ids", ndim=2)
        encoder = self.optimus.encoder
        mask = context_attention_mask
        if mask is None:
            mask = (context_input_ids != self.config.optimus.encoder_pad_token_id).long()
        if context_token_type_ids is None and getattr(encoder.config, "type_vocab_size", 1) >= 2:
            if self.config.encoder_sep_token_id is None:
                raise ValueError("config.encoder_sep_token_id is not set: the context's turns cannot be told apart")
            context_token_type_ids = speaker_token_type_ids(context_input_ids, self.config.encoder_sep_token_id, mask)
        kwargs = {} if context_token_type_ids is None else {"token_type_ids": context_token_type_ids}
        out = encoder(input_ids=context_input_ids, attention_mask=mask, output_hidden_states=True, **kwargs)
        hidden = out.hidden_states[-(self.config.num_s2s_layers + 1)]
        from transformers.masking_utils import create_bidirectional_mask

        layer_mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in self.s2s_layers:
            hidden = layer(hidden, attention_mask=layer_mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        pooled = self._pool(hidden, mask)
        mean, logvar = self.optimus.posterior(pooled).chunk(2, dim=-1)
        return OptimusEncoderOutput(mean=mean, logvar=logvar, pooled=pooled)

    def _pool(self, hidden: torch.Tensor, mask: torch.LongTensor) -> torch.Tensor:
        """The Optimus config's pooling of a sequence of S2S states `(batch, seq, hidden)` → `(batch, hidden)`."""
        pooling = self.config.optimus.pooling
        if pooling == "pooler":
            pooler = getattr(self.optimus.encoder, "pooler", None)
            if pooler is None:
                raise ValueError("pooling='pooler' but the encoder has no pooler; use 'cls' or 'mean'")
            return pooler(hidden)
        if pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        context_input_ids: torch.LongTensor | None = None,
        context_attention_mask: torch.LongTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        context_token_type_ids: torch.LongTensor | None = None,
        fusion_weight: float | None = None,
        sample_latent: bool | None = None,
        return_dict: bool | None = None,
    ) -> OptimusDialogOutput:
        r"""
        Args:
            context_input_ids (`torch.LongTensor` of shape `(batch_size, ctx_len)`): contexts,
                `[CLS] turn [SEP] … turn [SEP]`.
            context_attention_mask (`torch.LongTensor` of shape `(batch_size, ctx_len)`, *optional*).
            input_ids, attention_mask (`torch.LongTensor` of shape `(batch_size, enc_len)`): the responses for the
                encoder (`[CLS] … [SEP]`).
            decoder_input_ids, decoder_attention_mask (`torch.LongTensor` of shape `(batch_size, dec_len)`): the
                responses for the decoder, `BOS tokens EOS`, right-padded.
            fusion_weight (`float`, *optional*): weight of the fusion regulariser; defaults to `config.fusion_weight`.
            sample_latent (`bool`, *optional*): sample both latents from their posteriors (default in training mode,
                as the original) or use the means (default in eval mode: then the interpolation is the midpoint,
                without noise, so the output is deterministic).
        """
        if context_input_ids is None or input_ids is None or decoder_input_ids is None:
            raise ValueError("pass `context_input_ids`, the response's encoder `input_ids` and its `decoder_input_ids`")
        weight = check_float(self.config.fusion_weight if fusion_weight is None else fusion_weight, "fusion_weight",
                             minimum=0.0)
        sample = self.training if sample_latent is None else bool(sample_latent)
        response = self.encode_response(input_ids, attention_mask)
        context = self.encode_context(context_input_ids, context_attention_mask, context_token_type_ids)
        z_ae, z_s2s = response.mean, context.mean
        if sample:
            z_ae = self.optimus.reparameterize(response.mean, response.logvar)
            z_s2s = self.optimus.reparameterize(context.mean, context.logvar)
        if sample:
            u = torch.rand((z_ae.shape[0], 1), device=z_ae.device, dtype=z_ae.dtype)
        else:
            u = torch.full((z_ae.shape[0], 1), 0.5, device=z_ae.device, dtype=z_ae.dtype)
        z_interp = u * z_ae + (1 - u) * z_s2s
        if sample and self.config.interpolation_noise_std > 0:
            z_interp = z_interp + self.config.interpolation_noise_std * torch.randn_like(z_interp)

        branch = self._reconstruction(torch.cat([z_ae, z_s2s, z_interp]), decoder_input_ids, decoder_attention_mask)
        batch = z_ae.shape[0]
        branch_losses = branch.reconstruction_loss.view(3, batch).transpose(0, 1)
        reconstruction = branch_losses.mean(dim=1)
        fusion, pull, push = fusion_regularizer(
            z_ae, z_s2s, push_weight=self.config.push_weight, push=self.config.fusion_push
        )
        return OptimusDialogOutput(
            loss=reconstruction.mean() + weight * fusion,
            reconstruction_loss=reconstruction,
            branch_reconstruction_losses=branch_losses,
            fusion_loss=fusion,
            pull_distance=pull,
            push_distance=push,
            latents_ae=z_ae,
            latents_s2s=z_s2s,
            latents_interp=z_interp,
            context_mean=context.mean,
            context_logvar=context.logvar,
            response_mean=response.mean,
            response_logvar=response.logvar,
            num_tokens=branch.num_tokens[:batch],
        )

    def _reconstruction(self, latents, decoder_input_ids, decoder_attention_mask):
        """One decoder pass over the responses repeated once per latent block (`latents` `(k·batch, latent)`)."""
        repeats = latents.shape[0] // decoder_input_ids.shape[0]
        mask = None if decoder_attention_mask is None else decoder_attention_mask.repeat(repeats, 1)
        return self.optimus(
            latents=latents, decoder_input_ids=decoder_input_ids.repeat(repeats, 1), decoder_attention_mask=mask
        )

    # ---------------------------------------------------------------- generation
    @torch.no_grad()
    def generate_responses(
        self,
        context_input_ids: torch.LongTensor,
        context_attention_mask: torch.LongTensor | None = None,
        num_responses: int = 5,
        sample_latent: bool = True,
        output_latents: bool = False,
        **generation_kwargs,
    ) -> torch.LongTensor | tuple[torch.LongTensor, torch.FloatTensor]:
        """
        `num_responses` responses per context `(batch_size, ctx_len)`: decoder ids `(batch_size * num_responses,
        length)` (row `b * num_responses + k`), starting with BOS. Each response decodes its own sample of
        q_S2S(z | context) (`sample_latent=False`: the mean for all), by nucleus sampling as the original (defaults
        `do_sample=True, top_p=0.9, top_k=0`; `generation_kwargs` go to the decoder's `generate`). With
        `output_latents=True`, returns `(ids, latents)`, the latents `(batch_size * num_responses, latent_size)`.
        """
        num_responses = check_int(num_responses, "num_responses", minimum=1)
        if generation_kwargs.get("num_return_sequences", 1) != 1 or generation_kwargs.get("num_beams", 1) != 1:
            raise ValueError("use `num_responses` for several responses (num_return_sequences / num_beams must be 1)")
        generation_kwargs.pop("num_return_sequences", None)
        posterior = self.encode_context(context_input_ids, context_attention_mask)
        mean = posterior.mean.repeat_interleave(num_responses, dim=0)
        logvar = posterior.logvar.repeat_interleave(num_responses, dim=0)
        latents = self.optimus.reparameterize(mean, logvar) if sample_latent else mean
        generation_kwargs.setdefault("do_sample", True)
        if generation_kwargs["do_sample"]:
            generation_kwargs.setdefault("top_p", 0.9)
            generation_kwargs.setdefault("top_k", 0)
        sequences = self.optimus.generate(latents=latents, **generation_kwargs)
        return (sequences, latents) if output_latents else sequences

    # ---------------------------------------------------------------- persistence
    def _attach_processor(self, processor) -> None:
        self.processor = processor
        self.optimus.processor = processor


__all__ = [
    "OptimusDialogOutput",
    "OptimusDialogPreTrainedModel",
    "OptimusForDialogResponse",
    "fusion_regularizer",
    "latent_distances",
    "nearest_neighbour_distance",
    "speaker_token_type_ids",
]
