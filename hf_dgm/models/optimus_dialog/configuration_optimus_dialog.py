"""Configuration of Optimus for dialog response generation, SpaceFusion style (Li et al. 2020; Gao et al. 2019)."""

from __future__ import annotations

from typing import Any

from ..optimus.configuration_optimus import OptimusConfig
from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import check_float, check_int, finite_config


FUSION_PUSH_MODES = ("nearest", "released")


def _as_optimus_config(value: Any) -> OptimusConfig:
    if value is None:
        return OptimusConfig()
    if isinstance(value, OptimusConfig) or getattr(value, "model_type", None) == OptimusConfig.model_type:
        return value
    if isinstance(value, dict):
        value = dict(value)
        model_type = value.pop("model_type", OptimusConfig.model_type)
        if model_type != OptimusConfig.model_type:
            raise ValueError(f"`optimus` must describe an 'optimus' model; got model_type {model_type!r}")
        return OptimusConfig.from_dict(value)
    raise ValueError(f"`optimus` must be an OptimusConfig or a dict; got {type(value).__name__}")


@finite_config
class OptimusDialogConfig(HubCompatibleConfig):
    r"""
    Configuration of [`OptimusForDialogResponse`]: an Optimus VAE (its encoder, posterior head and decoder) plus the
    sequence-to-sequence (S2S) branch of SpaceFusion, which maps a dialog *context* into the same latent space as the
    *responses* that the Optimus encoder (the autoencoder, AE, branch) maps there.

    Args:
        optimus (`OptimusConfig` or `dict`):
            The Optimus VAE the model is built around (encoder, decoder, latent size, injection, pooling, tokens).
        num_s2s_layers (`int`, defaults to 1):
            The S2S branch runs the shared encoder up to its last `num_s2s_layers` layers, then its own copies of those
            layers (initialised from the encoder's), then the shared pooling and posterior head (the original's
            `--num_s2s_bert_layer`; its DailyDialog script uses 2).
        fusion_weight (`float`, defaults to 1.0):
            Weight of the fusion regulariser (the original's `--beta`; its DailyDialog script uses 2.0).
        fusion_push (`str`, defaults to `"nearest"`):
            How the "push" term of the regulariser measures the spread of a batch of latents: `"nearest"` = the mean
            distance of each latent to its nearest *other* latent of the batch (SpaceFusion's definition);
            `"released"` = as the released Optimus code computes it, where the nearest latent includes the latent
            itself, so the term is the constant ε·√latent_size (ε = 1e-6 of `pairwise_distance`) and pushes nothing.
        push_weight (`float`, defaults to 2.0):
            Factor of the push term: regulariser = (pull − push_weight · push) / √latent_size, as in the original.
        interpolation_noise_std (`float`, defaults to 0.1):
            Standard deviation of the Gaussian noise added to the random interpolation u·z_AE + (1 − u)·z_S2S whose
            reconstruction loss makes the space between the two branches smooth.
        encoder_sep_token_id (`int`, *optional*):
            Id of the encoder's separator token (`[SEP]`): it ends every context turn, and the speaker token types
            alternate at it (the last turn of a context is type 0, the one before type 1, ...).
        encoder_cls_token_id (`int`, *optional*):
            Id of the encoder's `[CLS]` token, which starts every context.
        max_context_length (`int`, defaults to 256):
            Encoder tokens kept of a context: `[CLS]` and the most recent tokens (older turns are cut first; the
            original keeps the last 512).
    """

    model_type = "optimus_dialog"
    sub_configs = {"optimus": OptimusConfig}
    has_no_defaults_at_init = False

    def __init__(
        self,
        optimus: OptimusConfig | dict | None = None,
        num_s2s_layers: int = 1,
        fusion_weight: float = 1.0,
        fusion_push: str = "nearest",
        push_weight: float = 2.0,
        interpolation_noise_std: float = 0.1,
        encoder_sep_token_id: int | None = None,
        encoder_cls_token_id: int | None = None,
        max_context_length: int = 256,
        **kwargs,
    ):
        self.optimus = _as_optimus_config(optimus)
        self.num_s2s_layers = check_int(num_s2s_layers, "num_s2s_layers", minimum=1)
        encoder_layers = getattr(self.optimus.encoder, "num_hidden_layers", None)
        if isinstance(encoder_layers, int) and self.num_s2s_layers > encoder_layers:
            raise ValueError(
                f"`num_s2s_layers`={self.num_s2s_layers} exceeds the encoder's {encoder_layers} layers"
            )
        self.fusion_weight = check_float(fusion_weight, "fusion_weight", minimum=0.0)
        if fusion_push not in FUSION_PUSH_MODES:
            raise ValueError(f"`fusion_push` must be one of {FUSION_PUSH_MODES}; got {fusion_push!r}")
        self.fusion_push = fusion_push
        self.push_weight = check_float(push_weight, "push_weight", minimum=0.0)
        self.interpolation_noise_std = check_float(interpolation_noise_std, "interpolation_noise_std", minimum=0.0)
        for name, value in (("encoder_sep_token_id", encoder_sep_token_id), ("encoder_cls_token_id", encoder_cls_token_id)):
            if value is not None:
                check_int(value, name, minimum=0)
        self.encoder_sep_token_id = encoder_sep_token_id
        self.encoder_cls_token_id = encoder_cls_token_id
        self.max_context_length = check_int(max_context_length, "max_context_length", minimum=3)
        kwargs.setdefault("tie_word_embeddings", False)
        # PreTrainedConfig.__init__ sets the attention implementation recursively on the sub-configs (None unless
        # given): keep what a live Optimus model's configs already resolved (its encoder's mask depends on it)
        attention = {id(c): (c, getattr(c, "_attn_implementation_internal", None))
                     for c in (self.optimus, self.optimus.encoder, self.optimus.decoder)}
        super().__init__(**kwargs)
        if "attn_implementation" not in kwargs:
            for sub_config, implementation in attention.values():
                sub_config._attn_implementation_internal = implementation

    @property
    def latent_size(self) -> int:
        return self.optimus.latent_size

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None):
        return self.optimus.get_text_config(decoder=decoder, encoder=encoder)


__all__ = ["OptimusDialogConfig", "FUSION_PUSH_MODES"]
