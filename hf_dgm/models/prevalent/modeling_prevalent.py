"""Prevalent (Hao et al., CVPR 2020): a vision-language BERT pretrained on image-text-action triplets, and the
R2R-EnvDrop navigation agent built on it.

Encoder ([`PrevalentModel`]):

* a BERT text encoder: embeddings, then `la_layers` BERT layers over the instruction alone;
* a vision encoder: one linear layer from each view's feature (image feature ++ angle feature, or the angle feature
  alone in geometry-only mode) to the hidden size, LayerNorm, dropout;
* `vl_layers` cross-modal layers, LXMERT-style: the language stream attends to the vision stream and the vision stream
  to the language stream through ONE shared cross-attention module, then each stream runs its own self-attention, then
  its own feed-forward;
* BERT's tanh pooler over the language stream's first token.

Heads: [`PrevalentForPreTraining`] (masked LM tied to the word embeddings + action prediction from the pooled output)
and [`PrevalentForNavigation`] (the encoder's language states → BiLSTM → attention LSTM decoder scoring candidates and
STOP, plus the A2C critic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from ...modules.checkpointing import CheckpointableBlock
from .configuration_prevalent import PrevalentConfig, PrevalentNavigationConfig


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------
@dataclass
class PrevalentModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch, text_len, hidden)`):
        Language stream after the cross-modal layers (after the language layers alone when no vision is given).
    pooler_output (`torch.FloatTensor` of shape `(batch, hidden)`):
        tanh(dense(last_hidden_state[:, 0])).
    vision_hidden_state (`torch.FloatTensor` of shape `(batch, vision_len, hidden)`, *optional*):
        Vision stream after the cross-modal layers (None without vision input).
    language_hidden_state (`torch.FloatTensor` of shape `(batch, text_len, hidden)`):
        Language stream after the `la_layers` language-only layers, before the cross-modal layers.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    vision_hidden_state: torch.FloatTensor | None = None
    language_hidden_state: torch.FloatTensor | None = None


@dataclass
class PrevalentForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        masked_lm_loss + action_loss (each term present only when its labels are given).
    masked_lm_loss, action_loss (`torch.FloatTensor` of shape `()`, *optional*):
        The two terms (mean cross-entropy over the labelled positions; label -100 is ignored).
    prediction_logits (`torch.FloatTensor` of shape `(batch, text_len, vocab_size)`):
        Masked-LM logits over the language stream.
    action_logits (`torch.FloatTensor` of shape `(batch, action_space)`):
        Action logits from the pooled output.
    """

    loss: torch.FloatTensor | None = None
    masked_lm_loss: torch.FloatTensor | None = None
    action_loss: torch.FloatTensor | None = None
    prediction_logits: torch.FloatTensor | None = None
    action_logits: torch.FloatTensor | None = None


@dataclass
class PrevalentNavigationEncoderOutput(ModelOutput):
    r"""
    context (`torch.FloatTensor` of shape `(batch, text_len, nav_hidden_size)`):
        BiLSTM states over the encoder's language stream (in the encoder's token order).
    context_mask (`torch.BoolTensor` of shape `(batch, text_len)`):
        True at real tokens.
    hidden, cell (`torch.FloatTensor` of shape `(batch, nav_hidden_size)`):
        Initial decoder state: tanh(linear(last BiLSTM states)) and the concatenated last cells.
    """

    context: torch.FloatTensor | None = None
    context_mask: torch.BoolTensor | None = None
    hidden: torch.FloatTensor | None = None
    cell: torch.FloatTensor | None = None


@dataclass
class PrevalentNavigationStepOutput(ModelOutput):
    r"""
    logits (`torch.FloatTensor` of shape `(batch, num_candidates + 1)`):
        Scores of the candidates and, in the last column, of STOP; padded candidates are -inf.
    hidden, cell (`torch.FloatTensor` of shape `(batch, nav_hidden_size)`):
        Decoder LSTM state after this step.
    attended_hidden (`torch.FloatTensor` of shape `(batch, nav_hidden_size)`):
        h̃: the instruction-attended state (the LSTM's input hidden state at the next step and the critic's input).
    """

    logits: torch.FloatTensor | None = None
    hidden: torch.FloatTensor | None = None
    cell: torch.FloatTensor | None = None
    attended_hidden: torch.FloatTensor | None = None


@dataclass
class PrevalentNavigationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        Teacher-forced imitation loss: cross-entropy summed over the labelled steps, divided by the batch size (the
        original's normalisation); label -100 is ignored.
    logits (`torch.FloatTensor` of shape `(batch, steps, num_candidates + 1)`):
        Per-step candidate + STOP scores.
    values (`torch.FloatTensor` of shape `(batch, steps)`):
        The critic's value of each step's attended state.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    values: torch.FloatTensor | None = None


# --------------------------------------------------------------------------------------------------------------
# Encoder blocks (BERT sub-module names inside, so BERT checkpoints map onto them)
# --------------------------------------------------------------------------------------------------------------
def _extended_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, len) 1/0 → (batch, 1, 1, len) additive: 0 where attended, the dtype's minimum elsewhere."""
    if mask is None:
        return None
    mask = mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * torch.finfo(dtype).min


IGNORE_INDEX = -100
ORIGINAL_IGNORE_INDEX = -1
"""The original pretraining code (`r2rpretrain_class.py`, `nn.CrossEntropyLoss(ignore_index=-1)`) marks unlabelled
positions with -1; transformers uses -100. [`PrevalentForPreTraining`] accepts both."""


def normalize_ignore_index(labels: torch.Tensor, num_classes: int, name: str) -> torch.Tensor:
    """
    Labels with either ignore index (-100, or the original code's -1) → labels with -100 only.

    labels: any shape, integer; every other value must be a class in `[0, num_classes)`, else a ValueError naming
    `name` (instead of an IndexError from inside the loss).
    """
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"`{name}` must be an integer tensor of class indices; got dtype {labels.dtype}")
    labels = labels.long().masked_fill(labels == ORIGINAL_IGNORE_INDEX, IGNORE_INDEX)
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"`{name}` must hold classes in [0, {num_classes}), or -100 / -1 (ignored); found "
            f"{sorted(set(labels[bad].tolist()))[:5]}"
        )
    return labels


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Losses in at least fp32: half-precision logits are upcast; fp32 and fp64 stay as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _as_return_type(output: ModelOutput, return_dict: bool | None):
    """`return_dict=False` gives the output's non-None fields as a tuple (transformers' convention)."""
    return output.to_tuple() if return_dict is False else output


class PrevalentEmbeddings(nn.Module):
    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(f"the instruction has {length} tokens; the model takes at most {self.position_embeddings.num_embeddings}")
        positions = torch.arange(length, device=input_ids.device)[None, :]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


class PrevalentAttentionScores(nn.Module):
    """Multi-head scaled dot-product attention of `hidden` (queries) over `context` (keys and values)."""

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        query, key, value = self._split(self.query(hidden)), self._split(self.key(context)), self._split(self.value(context))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size)
        if mask is not None:
            scores = scores + mask
        probs = self.dropout(scores.softmax(dim=-1))
        out = torch.matmul(probs, value).transpose(1, 2).contiguous()
        return out.view(out.shape[0], out.shape[1], -1)


class PrevalentSelfOutput(nn.Module):
    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class PrevalentAttention(nn.Module):
    """Attention + residual + LayerNorm. Self-attention when `context` is None; cross-attention otherwise."""

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.self = PrevalentAttentionScores(config)
        self.output = PrevalentSelfOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None = None) -> torch.Tensor:
        attended = self.self(hidden, hidden if context is None else context, mask)
        return self.output(attended, hidden)


class PrevalentIntermediate(nn.Module):
    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden))


class PrevalentOutput(nn.Module):
    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class PrevalentLayer(CheckpointableBlock):
    """A BERT layer: self-attention, then feed-forward (same sub-module names as transformers' BERT)."""

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.attention = PrevalentAttention(config)
        self.intermediate = PrevalentIntermediate(config)
        self.output = PrevalentOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class PrevalentCrossModalLayer(CheckpointableBlock):
    """
    One LXMERT-style layer. With L (batch, text_len, hidden) and V (batch, vision_len, hidden):
    L' = X(L, V), V' = X(V, L) with the SAME cross-attention module X; then L'' = SelfAtt_l(L'), V'' = SelfAtt_v(V');
    then L''' = FFN_l(L''), V''' = FFN_v(V'').
    """

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.cross_attention = PrevalentAttention(config)
        self.language_self_attention = PrevalentAttention(config)
        self.language_intermediate = PrevalentIntermediate(config)
        self.language_output = PrevalentOutput(config)
        self.vision_self_attention = PrevalentAttention(config)
        self.vision_intermediate = PrevalentIntermediate(config)
        self.vision_output = PrevalentOutput(config)

    def forward(
        self, language: torch.Tensor, language_mask: torch.Tensor | None, vision: torch.Tensor, vision_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        language_cross = self.cross_attention(language, vision_mask, context=vision)
        vision_cross = self.cross_attention(vision, language_mask, context=language)
        language_self = self.language_self_attention(language_cross, language_mask)
        vision_self = self.vision_self_attention(vision_cross, vision_mask)
        language_out = self.language_output(self.language_intermediate(language_self), language_self)
        vision_out = self.vision_output(self.vision_intermediate(vision_self), vision_self)
        return language_out, vision_out


class PrevalentVisionEncoder(nn.Module):
    """Linear(view feature → hidden), LayerNorm (eps 1e-12, as the original), dropout."""

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.projection = nn.Linear(config.view_feature_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.layer_norm(self.projection(features)))


class PrevalentPooler(nn.Module):
    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------
class PrevalentPreTrainedModel(PreTrainedModel):
    config_class = PrevalentConfig
    base_model_prefix = "prevalent"
    main_input_name = "input_ids"
    # `gradient_checkpointing_enable()` checkpoints the language and cross-modal transformer layers (all heads;
    # the navigation head's LSTMs run as before)
    supports_gradient_checkpointing = True
    # kept whole on one device by `device_map`: the transformer layers (attention + residual + layer norm)
    _no_split_modules = ["PrevalentLayer", "PrevalentCrossModalLayer", "PrevalentEmbeddings"]

    tokenizer = None
    """The BERT word-piece tokenizer of the folder the model was loaded from (None when it holds none); saved with
    the model, so a published folder carries it."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        # the family's tokenizer is BERT word-piece; its class is named directly so that no config (and no
        # remote-code prompt) is involved
        from transformers import BertTokenizer

        options = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only", "subfolder") if k in kwargs}
        try:
            model.tokenizer = BertTokenizer.from_pretrained(pretrained_model_name_or_path, **options)
        except (OSError, ValueError, TypeError):
            model.tokenizer = None  # a folder without tokenizer files
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, PrevalentLMHead):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM | nn.LSTMCell):
            for name, param in module.named_parameters():
                if "weight" in name:
                    nn.init.uniform_(param, -1.0 / math.sqrt(module.hidden_size), 1.0 / math.sqrt(module.hidden_size))
                else:
                    nn.init.zeros_(param)


class PrevalentModel(PrevalentPreTrainedModel):
    r"""
    The Prevalent encoder (see the module docstring).

    Example:
    ```python
    >>> config = PrevalentConfig(hidden_size=64, num_attention_heads=4, intermediate_size=128, la_layers=2, vl_layers=1,
    ...                          vision_feature_size=0)
    >>> model = PrevalentModel(config)
    >>> out = model(torch.tensor([[101, 2175, 102]]), vision_features=torch.randn(1, 5, 128))
    >>> out.last_hidden_state.shape
    torch.Size([1, 3, 64])
    ```
    """

    def __init__(self, config: PrevalentConfig):
        super().__init__(config)
        self.embeddings = PrevalentEmbeddings(config)
        self.language_layers = nn.ModuleList(PrevalentLayer(config) for _ in range(config.la_layers))
        self.vision_encoder = PrevalentVisionEncoder(config)
        self.cross_modal_layers = nn.ModuleList(PrevalentCrossModalLayer(config) for _ in range(config.vl_layers))
        self.pooler = PrevalentPooler(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        vision_features: torch.FloatTensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> PrevalentModelOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, text_len)`): word-piece ids, `[CLS] ... [SEP]`.
        attention_mask (`torch.Tensor` of shape `(batch, text_len)`, *optional*): 1 at real tokens, 0 at padding.
        vision_features (`torch.FloatTensor` of shape `(batch, vision_len, view_feature_size)`, *optional*):
            One row per view (or candidate): image feature ++ angle feature (angle feature alone when
            `vision_feature_size=0`). Without it only the language layers run (the original's behaviour).
        vision_attention_mask (`torch.Tensor` of shape `(batch, vision_len)`, *optional*): 1 at real views.
        return_dict (`bool`, *optional*): `False` returns a tuple of the output's non-None fields.

        Unknown keyword arguments raise a `TypeError` naming them (a misspelt `visual_features=` must not silently
        run the language layers alone).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must be (batch, text_len); got shape {tuple(input_ids.shape)}")
        dtype = self.embeddings.word_embeddings.weight.dtype
        language = self.embeddings(input_ids, token_type_ids)
        language_mask = _extended_mask(attention_mask, dtype)
        for layer in self.language_layers:
            language = layer(language, language_mask)
        language_only = language
        vision = None
        if vision_features is not None:
            expected = self.config.view_feature_size
            if vision_features.dim() != 3 or vision_features.shape[-1] != expected or vision_features.shape[0] != input_ids.shape[0]:
                raise ValueError(
                    f"`vision_features` must be (batch={input_ids.shape[0]}, vision_len, {expected}) "
                    f"(vision_feature_size {self.config.vision_feature_size} + angle_feature_size "
                    f"{self.config.angle_feature_size}); got shape {tuple(vision_features.shape)}"
                )
            vision = self.vision_encoder(vision_features.to(dtype))
            vision_mask = _extended_mask(vision_attention_mask, dtype)
            for layer in self.cross_modal_layers:
                language, vision = layer(language, language_mask, vision, vision_mask)
        output = PrevalentModelOutput(
            last_hidden_state=language,
            pooler_output=self.pooler(language),
            vision_hidden_state=vision,
            language_hidden_state=language_only,
        )
        return _as_return_type(output, return_dict)

    @classmethod
    def bert_key_mapping(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """
        Map a transformers BERT state dict (`[bert.]embeddings.*`, `[bert.]encoder.layer.N.*`, `[bert.]pooler.*`) onto
        this encoder's names. Layers beyond `la_layers` are dropped by the caller (`load_state_dict(strict=False)`).
        """
        mapped = {}
        for key, value in state_dict.items():
            name = key[len("bert."):] if key.startswith("bert.") else key
            if name.startswith("embeddings.") and "position_ids" not in name:
                mapped[name] = value
            elif name.startswith("encoder.layer."):
                mapped["language_layers." + name[len("encoder.layer."):]] = value
            elif name.startswith("pooler."):
                mapped[name] = value
        return mapped

    def load_bert_weights(self, bert_path: str, init_cross_modal: bool = False) -> list[str]:
        """
        Initialise the text encoder (embeddings, the first `la_layers` layers, pooler) from a BERT checkpoint folder
        (safetensors). With `init_cross_modal`, cross-modal layer i's self-attention/feed-forward of BOTH streams and
        its cross-attention start from BERT layer `la_layers + i` (when the checkpoint has it), as LXMERT-style models
        are often initialised. Returns the names of this model's parameters that stayed randomly initialised.
        """
        from pathlib import Path

        from safetensors.torch import load_file

        files = sorted(Path(bert_path).glob("*.safetensors"))
        if not files:
            raise ValueError(f"{bert_path} holds no .safetensors file: expected a BERT checkpoint folder")
        state = {}
        for file in files:
            state.update(load_file(str(file)))
        mapped = self.bert_key_mapping(state)
        own = self.state_dict()
        if "embeddings.word_embeddings.weight" in mapped and mapped["embeddings.word_embeddings.weight"].shape != own["embeddings.word_embeddings.weight"].shape:
            raise ValueError(
                f"the BERT checkpoint's word embeddings are {tuple(mapped['embeddings.word_embeddings.weight'].shape)}; "
                f"this config expects {tuple(own['embeddings.word_embeddings.weight'].shape)}"
            )
        if init_cross_modal:
            for i in range(self.config.vl_layers):
                source = f"language_layers.{self.config.la_layers + i}."
                for sub_src, targets in (
                    ("attention.", ("cross_attention.", "language_self_attention.", "vision_self_attention.")),
                    ("intermediate.", ("language_intermediate.", "vision_intermediate.")),
                    ("output.", ("language_output.", "vision_output.")),
                ):
                    for key, value in list(mapped.items()):
                        if key.startswith(source + sub_src):
                            rest = key[len(source + sub_src):]
                            for target in targets:
                                mapped[f"cross_modal_layers.{i}.{target}{rest}"] = value.clone()
        usable = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
        self.load_state_dict(usable, strict=False)
        return sorted(set(own) - set(usable))


class PrevalentLMHead(nn.Module):
    """BERT's MLM head: dense + activation + LayerNorm, then the decoder tied to the word embeddings, plus a bias."""

    def __init__(self, config: PrevalentConfig):
        super().__init__()
        self.transform_dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act = ACT2FN[config.hidden_act]
        self.transform_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.transform_layer_norm(self.transform_act(self.transform_dense(hidden)))
        return self.decoder(hidden) + self.bias


class PrevalentForPreTraining(PrevalentPreTrainedModel):
    r"""
    Prevalent with its two pretraining heads: attended masked LM on the language stream after the cross-modal layers
    (decoder tied to the word embeddings) and action prediction from the pooled `[CLS]` output. The loss is the sum.
    """

    _tied_weights_keys = {"lm_head.decoder.weight": "prevalent.embeddings.word_embeddings.weight"}

    def __init__(self, config: PrevalentConfig):
        super().__init__(config)
        self.prevalent = PrevalentModel(config)
        self.lm_head = PrevalentLMHead(config)
        self.action_head = nn.Linear(config.hidden_size, config.action_space)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        vision_features: torch.FloatTensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        action_labels: torch.LongTensor | None = None,
        masked_positions_only: bool = False,
        return_dict: bool | None = None,
    ) -> PrevalentForPreTrainingOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch, text_len)`, *optional*): original ids at masked positions, -100
            elsewhere (see `hf_dgm.training.prevalent.data.mask_tokens`); -1, the original code's ignore index, is
            accepted as well.
        masked_positions_only (`bool`, defaults to `False`): with `labels`, run the vocabulary projection only at the
            labelled positions (same loss, far less compute); `prediction_logits` is then `(num_labelled, vocab_size)`.
        action_labels (`torch.LongTensor` of shape `(batch,)`, *optional*): the teacher action class in
            `[0, action_space)`, -100 (or the original's -1) to ignore.
        Other inputs: as [`PrevalentModel.forward`]; unknown keywords raise a `TypeError`.
        """
        out = self.prevalent(input_ids, attention_mask, token_type_ids, vision_features, vision_attention_mask)
        action_logits = self.action_head(out.pooler_output)
        masked_lm_loss = action_loss = loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"`labels` must have the shape of `input_ids` {tuple(input_ids.shape)}; got {tuple(labels.shape)}")
            labels = normalize_ignore_index(labels, self.config.vocab_size, "labels")
        if masked_positions_only and labels is not None:
            selected = labels != -100
            prediction_logits = self.lm_head(out.last_hidden_state[selected])
            target = labels[selected]
        else:
            prediction_logits = self.lm_head(out.last_hidden_state)
            target = labels
        if labels is not None:
            masked_lm_loss = F.cross_entropy(_upcast(prediction_logits.reshape(-1, prediction_logits.shape[-1])), target.flatten(), ignore_index=-100)
            loss = masked_lm_loss
        if action_labels is not None:
            if action_labels.dim() != 1 or action_labels.shape[0] != input_ids.shape[0]:
                raise ValueError(f"`action_labels` must be (batch={input_ids.shape[0]},); got {tuple(action_labels.shape)}")
            action_labels = normalize_ignore_index(action_labels, self.config.action_space, "action_labels")
            action_loss = F.cross_entropy(_upcast(action_logits), action_labels, ignore_index=-100)
            loss = action_loss if loss is None else loss + action_loss
        output = PrevalentForPreTrainingOutput(
            loss=loss,
            masked_lm_loss=masked_lm_loss,
            action_loss=action_loss,
            prediction_logits=prediction_logits,
            action_logits=action_logits,
        )
        return _as_return_type(output, return_dict)


# --------------------------------------------------------------------------------------------------------------
# Navigation agent (R2R-EnvDrop with the Prevalent encoder in place of its language encoder)
# --------------------------------------------------------------------------------------------------------------
class SoftDotAttention(nn.Module):
    """
    Dot-product attention of a query `h` (batch, query_dim) over `context` (batch, n, ctx_dim):
    scores = context · W_in h; with `output_tilde`, returns tanh(W_out [attended; h]).
    """

    def __init__(self, query_dim: int, ctx_dim: int, with_output: bool = True):
        super().__init__()
        self.linear_in = nn.Linear(query_dim, ctx_dim, bias=False)
        # only attentions that return h̃ need the output projection (no unused parameters under DDP)
        self.linear_out = nn.Linear(query_dim + ctx_dim, query_dim, bias=False) if with_output else None

    def forward(
        self, h: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None, output_tilde: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mask: (batch, n) True where attention is allowed. Returns (tilde or attended context, raw masked scores)."""
        scores = torch.bmm(context, self.linear_in(h).unsqueeze(2)).squeeze(2)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        attended = torch.bmm(weights.unsqueeze(1), context).squeeze(1)
        if output_tilde:
            if self.linear_out is None:
                raise ValueError("this attention was built without an output projection (with_output=False)")
            return torch.tanh(self.linear_out(torch.cat([attended, h], dim=1))), scores
        return attended, scores


class PrevalentForNavigation(PrevalentPreTrainedModel):
    r"""
    The R2R-EnvDrop agent with the Prevalent encoder as its language encoder.

    * [`encode`]: Prevalent's language stream (cross-modal layers applied when `vision_features` of the start
      position are given), optionally reversed per instruction → dropout → BiLSTM → context + initial decoder state.
    * [`decode_step`]: one decoder step. Embed the previous action's angle feature; attend over the panorama's view
      features with the previous attended state h̃; LSTMCell([action embedding; attended view], (h̃, c)) → h;
      attend over the instruction context with h → h̃; score each candidate's feature (plus an all-zero STOP feature
      appended last) by dot-product with W h̃.
    * [`value`]: the A2C critic on h̃.
    * [`forward`]: a teacher-forced rollout over precomputed per-step inputs (imitation loss).

    Feature layout everywhere: image feature (`vision_feature_size`, absent in geometry-only mode) ++ angle feature
    (`angle_feature_size`). Environmental dropout touches only the image part.

    Start from a pretrained Prevalent folder with
    `PrevalentForNavigation.from_pretrained(pretrained_dir, config=PrevalentNavigationConfig.from_pretraining_config(
    AutoConfig.from_pretrained(pretrained_dir)))`: the `prevalent.*` weights load, the agent's own layers start fresh.
    """

    config_class = PrevalentNavigationConfig

    def __init__(self, config: PrevalentNavigationConfig):
        super().__init__(config)
        self.prevalent = PrevalentModel(config)
        hidden = config.nav_hidden_size
        feature_size = config.view_feature_size
        self.encoder_dropout = nn.Dropout(config.nav_dropout)
        self.instruction_lstm = nn.LSTM(config.hidden_size, hidden // 2, batch_first=True, bidirectional=True)
        self.encoder_to_decoder = nn.Linear(hidden, hidden)
        self.action_embedding = nn.Linear(config.angle_feature_size, config.nav_action_embedding_size)
        self.decoder_dropout = nn.Dropout(config.nav_dropout)
        self.feature_dropout = nn.Dropout(config.nav_feature_dropout)
        self.decoder_lstm = nn.LSTMCell(config.nav_action_embedding_size + feature_size, hidden)
        self.view_attention = SoftDotAttention(hidden, feature_size, with_output=False)
        self.instruction_attention = SoftDotAttention(hidden, hidden)
        self.candidate_attention = SoftDotAttention(hidden, feature_size, with_output=False)
        self.critic = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(config.nav_dropout), nn.Linear(hidden, 1))
        self.post_init()

    # -- encoder --------------------------------------------------------------------------------------------------
    def encode(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        vision_features: torch.FloatTensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
    ) -> PrevalentNavigationEncoderOutput:
        r"""
        input_ids, attention_mask (`(batch, text_len)`): the instruction (right-padded); vision_features
        (`(batch, vision_len, view_feature_size)`, *optional*): the start position's vision tokens for the cross-modal
        layers.
        """
        if attention_mask is None:
            raise ValueError("`attention_mask` is required (the BiLSTM packs each instruction to its length)")
        states = self.prevalent(input_ids, attention_mask, vision_features=vision_features, vision_attention_mask=vision_attention_mask).last_hidden_state
        lengths = attention_mask.long().sum(dim=1)
        if (lengths < 1).any():
            raise ValueError("every instruction needs at least one token (an attention_mask row is all zeros)")
        if self.config.nav_reverse_input:
            states = _reverse_padded(states, lengths)
        states = self.encoder_dropout(states)
        packed = nn.utils.rnn.pack_padded_sequence(states, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (h_n, c_n) = self.instruction_lstm(packed)
        context, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=states.shape[1])
        hidden = torch.tanh(self.encoder_to_decoder(torch.cat([h_n[-1], h_n[-2]], dim=1)))
        cell = torch.cat([c_n[-1], c_n[-2]], dim=1)
        return PrevalentNavigationEncoderOutput(
            context=self.encoder_dropout(context), context_mask=attention_mask.bool(), hidden=hidden, cell=cell
        )

    # -- decoder --------------------------------------------------------------------------------------------------
    def _drop_image_part(self, features: torch.Tensor) -> torch.Tensor:
        if self.config.vision_feature_size == 0 or not self.training or self.config.nav_feature_dropout == 0:
            return features
        image, angle = features[..., : self.config.vision_feature_size], features[..., self.config.vision_feature_size :]
        return torch.cat([self.feature_dropout(image), angle], dim=-1)

    def decode_step(
        self,
        previous_action_features: torch.FloatTensor,
        view_features: torch.FloatTensor,
        candidate_features: torch.FloatTensor,
        candidate_mask: torch.Tensor,
        attended_hidden: torch.FloatTensor,
        cell: torch.FloatTensor,
        context: torch.FloatTensor,
        context_mask: torch.Tensor,
    ) -> PrevalentNavigationStepOutput:
        r"""
        previous_action_features (`(batch, angle_feature_size)`): angle feature of the previous action's direction
            (the current heading/elevation at the first step).
        view_features (`(batch, num_views, view_feature_size)`): the panorama at the current viewpoint.
        candidate_features (`(batch, num_candidates, view_feature_size)`): navigable neighbours (padded).
        candidate_mask (`(batch, num_candidates)`): True at real candidates.
        attended_hidden, cell (`(batch, nav_hidden_size)`): h̃ and c of the previous step (the encoder's `hidden` and
            `cell` at the first step).
        context, context_mask: from [`encode`].
        """
        batch = candidate_features.shape[0]
        action = self.decoder_dropout(torch.tanh(self.action_embedding(previous_action_features)))
        view_features = self._drop_image_part(view_features)
        attended_view, _ = self.view_attention(self.decoder_dropout(attended_hidden), view_features, output_tilde=False)
        hidden, cell = self.decoder_lstm(torch.cat([action, attended_view], dim=1), (attended_hidden, cell))
        tilde, _ = self.instruction_attention(self.decoder_dropout(hidden), context, context_mask)
        stop = candidate_features.new_zeros(batch, 1, candidate_features.shape[-1])
        candidates = self._drop_image_part(torch.cat([candidate_features, stop], dim=1))
        mask = torch.cat([candidate_mask.bool(), candidate_mask.new_ones(batch, 1, dtype=torch.bool)], dim=1)
        _, logits = self.candidate_attention(self.decoder_dropout(tilde), candidates, mask, output_tilde=False)
        return PrevalentNavigationStepOutput(logits=logits, hidden=hidden, cell=cell, attended_hidden=tilde)

    def value(self, attended_hidden: torch.FloatTensor) -> torch.FloatTensor:
        """The critic: (batch, nav_hidden_size) → (batch,)."""
        return self.critic(attended_hidden).squeeze(-1)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        previous_action_features: torch.FloatTensor,
        view_features: torch.FloatTensor,
        candidate_features: torch.FloatTensor,
        candidate_mask: torch.Tensor,
        labels: torch.LongTensor | None = None,
        vision_features: torch.FloatTensor | None = None,
        vision_attention_mask: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> PrevalentNavigationOutput:
        r"""
        Teacher-forced rollout over precomputed steps (the inputs of every step of the teacher's path).

        previous_action_features (`(batch, steps, angle_feature_size)`), view_features
        (`(batch, steps, num_views, view_feature_size)`), candidate_features
        (`(batch, steps, num_candidates, view_feature_size)`), candidate_mask (`(batch, steps, num_candidates)`),
        labels (`(batch, steps)`, *optional*): candidate index, `num_candidates` for STOP (the last logit column after
        padding is removed: the STOP column is always `num_candidates`), -100 after the episode ends. Other negative
        labels raise a `ValueError` (-1 is NOT an ignore index here: the environment's teacher uses it for STOP, so
        the caller must map it to `num_candidates`). Unknown keywords raise a `TypeError`.
        """
        steps = candidate_features.shape[1]
        if steps > self.config.max_action_length:
            raise ValueError(f"{steps} steps exceed max_action_length={self.config.max_action_length}")
        enc = self.encode(input_ids, attention_mask, vision_features, vision_attention_mask)
        tilde, cell = enc.hidden, enc.cell
        all_logits, values = [], []
        for t in range(steps):
            step = self.decode_step(
                previous_action_features[:, t], view_features[:, t], candidate_features[:, t], candidate_mask[:, t],
                tilde, cell, enc.context, enc.context_mask,
            )  # fmt: skip
            tilde, cell = step.attended_hidden, step.cell
            all_logits.append(step.logits)
            values.append(self.value(tilde))
        logits = torch.stack(all_logits, dim=1)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"`labels` must be (batch, steps) = {tuple(logits.shape[:2])}; got {tuple(labels.shape)}")
            bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= logits.shape[-1]))
            if bool(bad.any()):
                raise ValueError(
                    f"`labels` must be candidate indices in [0, {logits.shape[-1] - 1}] (the last is STOP) or -100; "
                    f"found {sorted(set(labels[bad].tolist()))[:5]}"
                )
            loss = F.cross_entropy(_upcast(logits.flatten(0, 1)), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
            loss = loss / input_ids.shape[0]
        output = PrevalentNavigationOutput(loss=loss, logits=logits, values=torch.stack(values, dim=1))
        return _as_return_type(output, return_dict)


def _reverse_padded(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first `length` positions; padding stays at the end. states: (batch, len, dim)."""
    positions = torch.arange(states.shape[1], device=states.device)[None, :]
    index = lengths[:, None] - 1 - positions
    index = torch.where(index >= 0, index, positions)
    return states.gather(1, index[:, :, None].expand(-1, -1, states.shape[2]))


__all__ = [
    "PrevalentForNavigation",
    "PrevalentForPreTraining",
    "PrevalentModel",
    "PrevalentModelOutput",
    "PrevalentForPreTrainingOutput",
    "PrevalentNavigationEncoderOutput",
    "PrevalentNavigationOutput",
    "PrevalentNavigationStepOutput",
    "PrevalentPreTrainedModel",
    "normalize_ignore_index",
]
