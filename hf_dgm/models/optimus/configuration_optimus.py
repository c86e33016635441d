"""Configuration of Optimus, the sentence VAE of Li et al. (EMNLP 2020)."""

from __future__ import annotations

import copy
from typing import Any

from transformers import AutoConfig, PreTrainedConfig

from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import check_float, check_int, finite_config


LATENT_INJECTIONS = ("memory", "embedding", "both", "prefix")
POOLINGS = ("pooler", "cls", "mean")
KL_THRESHOLD_MODES = ("mask", "max")


def _as_config(value: Any, field: str) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return copy.deepcopy(value)  # never alias a sub-model's live config
    if isinstance(value, dict):
        value = dict(value)
        model_type = value.pop("model_type", None)
        if model_type is None:
            raise ValueError(f"`{field}` must carry a `model_type` (e.g. 'bert', 'gpt2', 'llama'); got keys {sorted(value)}")
        return AutoConfig.for_model(model_type, **value)
    raise ValueError(f"`{field}` must be a PreTrainedConfig or a dict with a `model_type`; got {type(value).__name__}")


@finite_config
class OptimusConfig(HubCompatibleConfig):
    r"""
    Configuration of [`OptimusForConditionalGeneration`]: a BERT-family encoder, a causal-LM decoder, and the
    latent space between them.

    Args:
        encoder (`PreTrainedConfig` or `dict`):
            Config of the encoder (any model loadable with `AutoModel` whose output has `last_hidden_state`;
            BERT-family for `pooling="pooler"`).
        decoder (`PreTrainedConfig` or `dict`):
            Config of the decoder (any model loadable with `AutoModelForCausalLM` that takes a `Cache`:
            GPT-2, Llama-family, ...).
        latent_size (`int`, defaults to 32):
            Dimension of the latent `z`. The paper uses 32 and 768.
        latent_injection (`str`, defaults to `"memory"`):
            How `z` reaches the decoder: `"memory"` (one extra key/value slot in every attention layer),
            `"embedding"` (added to every input embedding), `"both"` (what the released code does) or `"prefix"`
            (not in the paper: `z` mapped to one input embedding placed before BOS, a soft prompt token that the
            decoder's own layers turn into keys and values; this library's main job uses it, see
            benchmarks/optimus_main_job_avenues.md).
        pooling (`str`, defaults to `"pooler"`):
            Sentence feature fed to the posterior: `"pooler"` (BERT's tanh pooler over `[CLS]`, as the original),
            `"cls"` (the raw `[CLS]` hidden state) or `"mean"` (masked mean over tokens).
        beta (`float`, defaults to 1.0):
            Weight of the KL term when `forward` is not given an explicit `beta` (the trainer's cyclical schedule
            passes its own).
        kl_threshold (`float`, defaults to 0.5):
            Dimension-wise KL threshold λ ("free bits"). 0 disables thresholding.
        kl_threshold_mode (`str`, defaults to `"mask"`):
            `"mask"`: KL_λ = Σ_d KL_d·1[KL_d > λ] (the released code, `fb_mode=1`); `"max"`: Σ_d max(λ, KL_d)
            (the paper's formula; same gradients, different reported loss).
        length_weighted_loss (`bool`, defaults to `False`):
            Divide each sentence's summed reconstruction loss by its number of decoder tokens, `<BOS>` included
            (the non-pad tokens of `BOS tokens EOS`: one more than the targets), as the original's `VAE.forward`.
        max_new_tokens (`int`, defaults to 40):
            Default generation cap for the latent helpers and pipelines.
        decoder_bos_token_id / decoder_eos_token_id / decoder_pad_token_id (`int`):
            Special tokens of the decoder: generation starts at BOS and stops at EOS; PAD fills batches.
        encoder_pad_token_id (`int`, defaults to 0):
            Padding id of the encoder tokenizer.
        posterior_logvar_bias (`float` or `None`, defaults to -4.0):
            `None`: the posterior head is bias-free, as in the original (converted checkpoints use this). A float:
            the head has a learned bias whose log-variance half starts at this value (mean half at 0), so a freshly
            initialised posterior starts with σ² = e^-4 ≈ 0.02 instead of 1. With σ = 1 at init the sampled `z` is
            almost pure noise next to the small initial mean, and a decoder fed `z` through the embedding learns
            to ignore it (see `benchmarks/optimus_latent_path.py`).
        posterior_mean_batch_norm (`float` or `None`, defaults to `None`):
            `None`: the paper's posterior. A float γ > 0: BN-VAE (Zhu et al., ACL 2020, not in Optimus): the posterior
            mean passes through batch normalization with the fixed scale γ and a learned shift, so across a batch
            every latent dimension's μ has variance γ² — the expected KL cannot vanish and every dimension stays an
            active unit; inference uses the running statistics (saved with the weights).
    """

    model_type = "optimus"
    sub_configs = {"encoder": AutoConfig, "decoder": AutoConfig}
    has_no_defaults_at_init = False

    def __init__(
        self,
        encoder: PreTrainedConfig | dict | None = None,
        decoder: PreTrainedConfig | dict | None = None,
        latent_size: int = 32,
        latent_injection: str = "memory",
        pooling: str = "pooler",
        beta: float = 1.0,
        kl_threshold: float = 0.5,
        kl_threshold_mode: str = "mask",
        length_weighted_loss: bool = False,
        max_new_tokens: int = 40,
        decoder_bos_token_id: int | None = None,
        decoder_eos_token_id: int | None = None,
        decoder_pad_token_id: int | None = None,
        encoder_pad_token_id: int = 0,
        posterior_logvar_bias: float | None = -4.0,
        posterior_mean_batch_norm: float | None = None,
        **kwargs,
    ):
        if encoder is None:
            encoder = AutoConfig.for_model("bert")
        if decoder is None:
            decoder = AutoConfig.for_model("gpt2")
        self.encoder = _as_config(encoder, "encoder")
        self.decoder = _as_config(decoder, "decoder")

        if not isinstance(latent_size, int) or isinstance(latent_size, bool) or latent_size < 1:
            raise ValueError(f"`latent_size` must be a positive int; got {latent_size!r}")
        if latent_injection not in LATENT_INJECTIONS:
            raise ValueError(f"`latent_injection` must be one of {LATENT_INJECTIONS}; got {latent_injection!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}; got {pooling!r}")
        if pooling == "pooler" and getattr(self.encoder, "model_type", None) not in _POOLER_MODEL_TYPES:
            raise ValueError(
                f"`pooling='pooler'` needs an encoder with BERT's pooler ({sorted(_POOLER_MODEL_TYPES)}); "
                f"the encoder is {self.encoder.model_type!r}: use pooling='cls' or 'mean'"
            )
        beta = check_float(beta, "beta", minimum=0.0)
        kl_threshold = check_float(kl_threshold, "kl_threshold", minimum=0.0)
        if kl_threshold_mode not in KL_THRESHOLD_MODES:
            raise ValueError(f"`kl_threshold_mode` must be one of {KL_THRESHOLD_MODES}; got {kl_threshold_mode!r}")
        max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
        for name, value in (
            ("decoder_bos_token_id", decoder_bos_token_id),
            ("decoder_eos_token_id", decoder_eos_token_id),
            ("decoder_pad_token_id", decoder_pad_token_id),
            ("encoder_pad_token_id", encoder_pad_token_id),
        ):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"`{name}` must be a non-negative int or None; got {value!r}")

        if posterior_logvar_bias is not None and (
            isinstance(posterior_logvar_bias, bool) or not isinstance(posterior_logvar_bias, (int, float))
        ):
            raise ValueError(f"`posterior_logvar_bias` must be a float or None; got {posterior_logvar_bias!r}")
        if posterior_mean_batch_norm is not None:
            posterior_mean_batch_norm = check_float(
                posterior_mean_batch_norm, "posterior_mean_batch_norm", minimum=0.0, exclusive_minimum=True
            )
        self.posterior_mean_batch_norm = posterior_mean_batch_norm
        self.latent_size = latent_size
        self.posterior_logvar_bias = None if posterior_logvar_bias is None else float(posterior_logvar_bias)
        self.latent_injection = latent_injection
        self.pooling = pooling
        self.beta = float(beta)
        self.kl_threshold = float(kl_threshold)
        self.kl_threshold_mode = kl_threshold_mode
        self.length_weighted_loss = bool(length_weighted_loss)
        self.max_new_tokens = max_new_tokens
        self.decoder_bos_token_id = decoder_bos_token_id
        self.decoder_eos_token_id = decoder_eos_token_id
        self.decoder_pad_token_id = decoder_pad_token_id
        self.encoder_pad_token_id = encoder_pad_token_id
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def uses_memory(self) -> bool:
        return self.latent_injection in ("memory", "both")

    @property
    def uses_embedding(self) -> bool:
        return self.latent_injection in ("embedding", "both")

    @property
    def uses_prefix(self) -> bool:
        return self.latent_injection == "prefix"

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        if encoder:
            return self.encoder
        return self.decoder


_POOLER_MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "ernie", "mpnet", "data2vec-text"}


__all__ = ["OptimusConfig", "LATENT_INJECTIONS", "POOLINGS", "KL_THRESHOLD_MODES"]
