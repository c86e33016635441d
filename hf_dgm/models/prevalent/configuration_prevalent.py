"""Configuration of Prevalent, the pretrained vision-language navigation encoder of Hao et al. (CVPR 2020)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

from ...modules.hub_compat import drop_locally_registered_pipelines
from ...modules.validation import finite_config


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"`{name}` must be a {'non-negative' if allow_zero else 'positive'} int; got {value!r}")
    return value


def _probability(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1); got {value!r}")
    return float(value)


@finite_config
class PrevalentConfig(PreTrainedConfig):
    r"""
    Configuration of [`PrevalentModel`], [`PrevalentForPreTraining`] and [`PrevalentForNavigation`].

    The encoder is the original's vision-language BERT: `la_layers` BERT layers over the instruction, a vision
    encoder over per-view features, then `vl_layers` LXMERT-style cross-modal layers. The navigation fields configure
    the R2R-EnvDrop agent that [`PrevalentForNavigation`] puts on top of the encoder.

    Args:
        vocab_size, hidden_size, num_attention_heads, intermediate_size, hidden_act, hidden_dropout_prob,
        attention_probs_dropout_prob, max_position_embeddings, type_vocab_size, initializer_range, layer_norm_eps,
        pad_token_id:
            The BERT fields, with BERT's meaning. Defaults are bert-base-uncased's (the original's sizes).
        la_layers (`int`, defaults to 9):
            Number of BERT layers over the language stream alone.
        vl_layers (`int`, defaults to 4):
            Number of cross-modal layers (cross-attention both ways with one shared module, then self-attention and a
            feed-forward in each stream).
        vision_feature_size (`int`, defaults to 2048):
            Size of the image feature of one view (ResNet-152: 2048). `0` is the geometry-only mode: the vision
            tokens are angle features alone.
        angle_feature_size (`int`, defaults to 128):
            Size of the angle feature appended to each view's feature ([sin h, cos h, sin e, cos e] tiled 32 times).
        action_space (`int`, defaults to 37):
            Number of classes of the pretraining action head. hf-dgm's label is the view index (0-35) that faces the
            teacher's next viewpoint, and 36 for STOP.
        nav_hidden_size (`int`, defaults to 1024):
            Hidden size of the agent's instruction BiLSTM (both directions together) and of its decoder LSTM.
        nav_action_embedding_size (`int`, defaults to 64):
            Size of the embedding of the previous action's angle feature fed to the decoder.
        nav_dropout (`float`, defaults to 0.5):
            Dropout of the agent (encoder output, decoder states).
        nav_feature_dropout (`float`, defaults to 0.4):
            Dropout of the image part of view/candidate features (environmental dropout of EnvDrop); angle features are
            never dropped.
        nav_reverse_input (`bool`, defaults to `True`):
            Feed the encoder's language states to the BiLSTM in reverse token order (the original's `reverse_input`).
        max_action_length (`int`, defaults to 35):
            Maximum number of actions of an episode (the original's `maxAction`).
    """

    model_type = "prevalent"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        la_layers: int = 9,
        vl_layers: int = 4,
        vision_feature_size: int = 2048,
        angle_feature_size: int = 128,
        action_space: int = 37,
        nav_hidden_size: int = 1024,
        nav_action_embedding_size: int = 64,
        nav_dropout: float = 0.5,
        nav_feature_dropout: float = 0.4,
        nav_reverse_input: bool = True,
        max_action_length: int = 35,
        **kwargs,
    ):
        for name, value in (
            ("vocab_size", vocab_size), ("hidden_size", hidden_size), ("num_attention_heads", num_attention_heads),
            ("intermediate_size", intermediate_size), ("max_position_embeddings", max_position_embeddings),
            ("type_vocab_size", type_vocab_size), ("angle_feature_size", angle_feature_size),
            ("action_space", action_space), ("nav_action_embedding_size", nav_action_embedding_size),
            ("max_action_length", max_action_length),
        ):  # fmt: skip
            _positive_int(name, value)
        _positive_int("la_layers", la_layers, allow_zero=True)
        _positive_int("vl_layers", vl_layers, allow_zero=True)
        _positive_int("vision_feature_size", vision_feature_size, allow_zero=True)
        _positive_int("nav_hidden_size", nav_hidden_size)
        if hidden_size % num_attention_heads:
            raise ValueError(f"`hidden_size` ({hidden_size}) must be a multiple of `num_attention_heads` ({num_attention_heads})")
        if nav_hidden_size % 2:
            raise ValueError(f"`nav_hidden_size` must be even (two LSTM directions); got {nav_hidden_size}")
        if hidden_act not in ("gelu", "relu", "gelu_new", "silu", "swish"):
            raise ValueError(f"`hidden_act` must be one of gelu, relu, gelu_new, silu, swish; got {hidden_act!r}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = _probability("hidden_dropout_prob", hidden_dropout_prob)
        self.attention_probs_dropout_prob = _probability("attention_probs_dropout_prob", attention_probs_dropout_prob)
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = float(initializer_range)
        self.layer_norm_eps = float(layer_norm_eps)
        self.la_layers = la_layers
        self.vl_layers = vl_layers
        self.vision_feature_size = vision_feature_size
        self.angle_feature_size = angle_feature_size
        self.action_space = action_space
        self.nav_hidden_size = nav_hidden_size
        self.nav_action_embedding_size = nav_action_embedding_size
        self.nav_dropout = _probability("nav_dropout", nav_dropout)
        self.nav_feature_dropout = _probability("nav_feature_dropout", nav_feature_dropout)
        self.nav_reverse_input = bool(nav_reverse_input)
        self.max_action_length = max_action_length
        kwargs.setdefault("tie_word_embeddings", True)
        custom_pipelines = drop_locally_registered_pipelines(kwargs.pop("custom_pipelines", None))
        if custom_pipelines:
            kwargs["custom_pipelines"] = custom_pipelines
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def view_feature_size(self) -> int:
        """Size of one vision token's input: image feature (0 in geometry-only mode) + angle feature."""
        return self.vision_feature_size + self.angle_feature_size

    @property
    def geometry_only(self) -> bool:
        return self.vision_feature_size == 0


@finite_config
class PrevalentNavigationConfig(PrevalentConfig):
    r"""
    Configuration of [`PrevalentForNavigation`], the R2R agent: the same fields as [`PrevalentConfig`] under its own
    `model_type`, so that `AutoModel` and the `vln-navigation` pipeline load the agent (and `AutoModel` on a
    pretraining folder still loads the bare encoder). Build it from a pretraining config with
    `PrevalentNavigationConfig.from_pretraining_config(config, **overrides)`.
    """

    model_type = "prevalent_navigation"

    def __init__(self, **kwargs):  # an explicit __init__: transformers does not pass subclasses the parent's defaults
        super().__init__(**kwargs)

    @classmethod
    def from_pretraining_config(cls, config: PrevalentConfig, **overrides) -> "PrevalentNavigationConfig":
        values = config.to_dict()
        for key in ("model_type", "architectures", "auto_map", "custom_pipelines", "transformers_version"):
            values.pop(key, None)
        values.update(overrides)
        return cls(**values)
