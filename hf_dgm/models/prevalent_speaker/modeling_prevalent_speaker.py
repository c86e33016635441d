"""The R2R-EnvDrop speaker (Tan et al. 2019) that PREVALENT used to synthesize instructions, as a `PreTrainedModel`.

Inputs per trajectory step t (T steps: one per viewpoint of the path, the last one with the STOP action):
`action_features[:, t]` (the feature of the view pointing at the next viewpoint: visual feature + angle feature;
zeros for STOP) and `view_features[:, t]` (the step's 36 panorama views, same layout); `trajectory_mask` marks real
steps. Encoder: LSTM over the actions → attention over the step's views → second LSTM (both bidirectional by
default). Decoder: word embedding → LSTM → dot-product attention over the encoded steps → projection to the output
vocabulary. Trained by teacher forcing with cross-entropy; `generate_instructions` decodes greedily, by beam search
or by sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_prevalent_speaker import PrevalentSpeakerConfig


@dataclass
class PrevalentSpeakerOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): mean token cross-entropy (when `input_ids` are given).
        logits (`torch.FloatTensor` of shape `(batch, length - 1, output_vocab_size)`): next-token scores over the
            output vocabulary (model indices; `model.to_tokenizer_ids` maps them back).
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch, steps, hidden_size)`): encoded trajectory.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None


class SoftDotAttention(nn.Module):
    """Dot-product attention of a query over a context, followed by `tanh(W [context; query])` (EnvDrop's)."""

    def __init__(self, query_dim: int, ctx_dim: int):
        super().__init__()
        self.linear_in = nn.Linear(query_dim, ctx_dim, bias=False)
        self.linear_out = nn.Linear(query_dim + ctx_dim, query_dim, bias=False)

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None):
        scores = torch.bmm(context, self.linear_in(query).unsqueeze(2)).squeeze(2)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = F.softmax(scores, dim=-1)
        attended = torch.bmm(weights.unsqueeze(1), context).squeeze(1)
        return torch.tanh(self.linear_out(torch.cat([attended, query], dim=-1))), weights


def _run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out


class PrevalentSpeakerEncoder(nn.Module):
    def __init__(self, config: PrevalentSpeakerConfig):
        super().__init__()
        directions = 2 if config.bidirectional else 1
        self.config = config
        self.lstm = nn.LSTM(config.input_size, config.hidden_size // directions, batch_first=True, bidirectional=config.bidirectional)
        self.attention = SoftDotAttention(config.hidden_size, config.input_size)
        self.post_lstm = nn.LSTM(config.hidden_size, config.hidden_size // directions, batch_first=True, bidirectional=config.bidirectional)
        self.dropout = nn.Dropout(config.dropout)
        self.feature_dropout = nn.Dropout(config.feature_dropout)

    def _drop_visual(self, features: torch.Tensor) -> torch.Tensor:
        # EnvDrop drops the visual part only, never the angle feature
        size = self.config.feature_size
        if size == 0 or not self.training:
            return features
        return torch.cat([self.feature_dropout(features[..., :size]), features[..., size:]], dim=-1)

    def forward(self, action_features, view_features, trajectory_mask):
        batch, steps, _ = action_features.shape
        lengths = trajectory_mask.sum(1)
        actions = self._drop_visual(action_features)
        views = self._drop_visual(view_features)
        ctx = self.dropout(_run_lstm(self.lstm, actions, lengths))
        attended, _ = self.attention(ctx.reshape(batch * steps, -1), views.reshape(batch * steps, views.shape[2], views.shape[3]))
        x = self.dropout(attended.view(batch, steps, -1))
        return self.dropout(_run_lstm(self.post_lstm, x, lengths))


class PrevalentSpeakerDecoder(nn.Module):
    def __init__(self, config: PrevalentSpeakerConfig, padding_idx: int):
        super().__init__()
        self.embedding = nn.Embedding(config.output_vocab_size, config.embedding_size, padding_idx=padding_idx)
        self.lstm = nn.LSTM(config.embedding_size, config.hidden_size, batch_first=True)
        self.attention = SoftDotAttention(config.hidden_size, config.hidden_size)
        self.projection = nn.Linear(config.hidden_size, config.output_vocab_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, words, ctx, ctx_mask, state):
        x, state = self.lstm(self.dropout(self.embedding(words)), state)
        x = self.dropout(x)
        batch, length, hidden = x.shape
        steps = ctx.shape[1]
        ctx_rep = ctx.unsqueeze(1).expand(batch, length, steps, ctx.shape[2]).reshape(batch * length, steps, -1)
        mask_rep = ctx_mask.unsqueeze(1).expand(batch, length, steps).reshape(batch * length, steps)
        x, _ = self.attention(x.reshape(batch * length, hidden), ctx_rep, mask_rep)
        logits = self.projection(self.dropout(x.view(batch, length, hidden)))
        return logits, state


class PrevalentSpeakerPreTrainedModel(PreTrainedModel):
    config_class = PrevalentSpeakerConfig
    base_model_prefix = "speaker"
    main_input_name = "action_features"
    supports_gradient_checkpointing = False
    # kept whole on one device by `device_map`: the LSTM encoder and decoder with their attention
    _no_split_modules = ["PrevalentSpeakerEncoder", "PrevalentSpeakerDecoder"]

    def activation_checkpointing_enable(self, *args, **kwargs):
        raise ValueError(
            f"{type(self).__name__} does not support gradient checkpointing: it has no stack of blocks to checkpoint "
            "(one LSTM encoder, one LSTM decoder step with attention); checkpointing a whole LSTM would save almost "
            "no memory. Lower the batch size or the maximum instruction length instead."
        )

    gradient_checkpointing_enable = activation_checkpointing_enable

    @torch.no_grad()
    def _init_weights(self, module):
        # PyTorch's default initialisation, as the original (no BERT-style normal init)
        if isinstance(module, (nn.Linear, nn.LSTM, nn.Embedding)):
            module.reset_parameters()


class PrevalentSpeakerModel(PrevalentSpeakerPreTrainedModel):
    """The speaker. `model.tokenizer` (the BERT word-piece tokenizer, loaded by `from_pretrained` when the folder
    holds one) is saved next to the weights by `save_pretrained`."""

    def __init__(self, config: PrevalentSpeakerConfig):
        super().__init__(config)
        self.tokenizer = None
        # id maps as plain lists (not buffers: models are built on the meta device when loaded)
        to_tokenizer = list(config.token_ids) if config.token_ids is not None else list(range(config.vocab_size))
        position = {t: k for k, t in enumerate(to_tokenizer)}
        unk = position[config.unk_token_id]
        self._model_to_tokenizer = to_tokenizer
        self._tokenizer_to_model = [position.get(t, unk) for t in range(config.vocab_size)]
        self._maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.pad_index = position[config.pad_token_id]
        self.bos_index = position[config.bos_token_id]
        self.eos_index = position[config.eos_token_id]
        self.encoder = PrevalentSpeakerEncoder(config)
        self.decoder = PrevalentSpeakerDecoder(config, padding_idx=self.pad_index)
        self.post_init()

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

    def _id_maps(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._maps:
            self._maps[key] = (
                torch.tensor(self._tokenizer_to_model, dtype=torch.long, device=device),
                torch.tensor(self._model_to_tokenizer, dtype=torch.long, device=device),
            )
        return self._maps[key]

    def to_model_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Tokenizer ids -> output-vocabulary indices (ids outside `config.token_ids` map to [UNK])."""
        return self._id_maps(token_ids.device)[0][token_ids]

    def to_tokenizer_ids(self, model_ids: torch.Tensor) -> torch.Tensor:
        return self._id_maps(model_ids.device)[1][model_ids]

    def _check(self, action_features, view_features, trajectory_mask):
        size = self.config.input_size
        if action_features.dim() != 3 or action_features.shape[-1] != size:
            raise ValueError(f"action_features must be (batch, steps, {size}); got {tuple(action_features.shape)}")
        if view_features.dim() != 4 or view_features.shape[-1] != size or view_features.shape[:2] != action_features.shape[:2]:
            raise ValueError(
                f"view_features must be (batch, steps, views, {size}) matching action_features; got {tuple(view_features.shape)}"
            )
        if trajectory_mask is None:
            trajectory_mask = torch.ones(action_features.shape[:2], dtype=torch.bool, device=action_features.device)
        trajectory_mask = trajectory_mask.bool()
        if not bool(trajectory_mask[:, 0].all()):
            raise ValueError("every trajectory needs at least one step (trajectory_mask[:, 0] must be true)")
        return trajectory_mask

    def encode(self, action_features, view_features, trajectory_mask=None):
        trajectory_mask = self._check(action_features, view_features, trajectory_mask)
        return self.encoder(action_features, view_features, trajectory_mask), trajectory_mask

    def _initial_state(self, batch: int, device, dtype):
        zeros = torch.zeros(1, batch, self.config.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def forward(
        self,
        action_features: torch.FloatTensor,
        view_features: torch.FloatTensor,
        trajectory_mask: torch.BoolTensor | None = None,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        return_dict: bool | None = None,
    ) -> PrevalentSpeakerOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, length)`): tokenizer ids `[CLS] instruction [SEP] [PAD]...`.
        attention_mask (`torch.LongTensor` of shape `(batch, length)`, *optional*): 0 on padding.
        labels (`torch.LongTensor` of shape `(batch, length)`, *optional*): targets aligned with `input_ids` (-100 to
            ignore; -1, the original pretraining code's ignore index, is accepted too); defaults to `input_ids` with
            padding ignored. Position t is predicted from positions < t.
        token_type_ids (`torch.LongTensor` of shape `(batch, length)`, *optional*): accepted so that a BERT
            tokenizer's output can be passed as is (`model(..., **tokenizer(texts))`); the speaker has one segment,
            so it must be all zeros (anything else raises a `ValueError` rather than being ignored).
        return_dict (`bool`, *optional*): `False` returns a tuple of the output's non-None fields.
        Unknown keyword arguments raise a `TypeError` naming them.
        """
        if token_type_ids is not None and bool((token_type_ids != 0).any()):
            raise ValueError("the speaker has a single segment: `token_type_ids` must be all zeros (or not given)")
        ctx, mask = self.encode(action_features, view_features, trajectory_mask)
        if input_ids is None:
            output = PrevalentSpeakerOutput(encoder_last_hidden_state=ctx)
            return output.to_tuple() if return_dict is False else output
        if labels is None:
            labels = input_ids.masked_fill(input_ids == self.config.pad_token_id, -100)
            if attention_mask is not None:
                labels = labels.masked_fill(attention_mask == 0, -100)
        else:
            if labels.shape != input_ids.shape:
                raise ValueError(f"`labels` must have the shape of `input_ids` {tuple(input_ids.shape)}; got {tuple(labels.shape)}")
            labels = labels.masked_fill(labels == -1, -100)
            if bool(((labels < 0) & (labels != -100)).any()):
                raise ValueError("`labels` must be token ids, or -100 / -1 (ignored)")
        words = self.to_model_ids(input_ids[:, :-1])
        logits, _ = self.decoder(words, ctx, mask, self._initial_state(ctx.shape[0], ctx.device, ctx.dtype))
        targets = labels[:, 1:]
        ignore = targets == -100
        model_targets = self.to_model_ids(targets.clamp(min=0)).masked_fill(ignore, -100)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), model_targets.reshape(-1), ignore_index=-100)
        output = PrevalentSpeakerOutput(loss=loss, logits=logits, encoder_last_hidden_state=ctx)
        return output.to_tuple() if return_dict is False else output

    # ------------------------------------------------------------------------------------------------ decoding
    def _filter(self, logits, temperature, top_k, top_p):
        logits = logits / max(temperature, 1e-6)
        if top_k and top_k > 0:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cumulative = sorted_logits.softmax(-1).cumsum(-1)
            remove = cumulative - sorted_logits.softmax(-1) > top_p
            sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        return logits

    def _block_special(self, logits):
        logits[..., self.pad_index] = float("-inf")
        logits[..., self.bos_index] = float("-inf")
        return logits

    @torch.no_grad()
    def _greedy_or_sample(self, ctx, mask, max_length, do_sample, temperature, top_k, top_p, generator):
        batch = ctx.shape[0]
        state = self._initial_state(batch, ctx.device, ctx.dtype)
        words = torch.full((batch, 1), self.bos_index, dtype=torch.long, device=ctx.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=ctx.device)
        out = []
        for _ in range(max_length):
            logits, state = self.decoder(words, ctx, mask, state)
            logits = self._block_special(logits[:, -1].float())
            if do_sample:
                probs = self._filter(logits, temperature, top_k, top_p).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                nxt = logits.argmax(-1)
            nxt = nxt.masked_fill(finished, self.eos_index)
            out.append(nxt)
            finished |= nxt == self.eos_index
            words = nxt.unsqueeze(1)
            if bool(finished.all()):
                break
        seqs = torch.stack(out, 1).tolist()
        return [s[: s.index(self.eos_index)] if self.eos_index in s else s for s in seqs]

    @torch.no_grad()
    def _beam(self, ctx, mask, max_length, num_beams, length_penalty):
        results = []
        for b in range(ctx.shape[0]):
            c, m = ctx[b : b + 1], mask[b : b + 1]
            beams = [([], 0.0, self._initial_state(1, ctx.device, ctx.dtype), self.bos_index)]
            done = []
            for _ in range(max_length):
                k = len(beams)
                words = torch.tensor([[w] for *_, w in beams], device=ctx.device)
                h = torch.cat([s[0] for _, _, s, _ in beams], dim=1)
                cc = torch.cat([s[1] for _, _, s, _ in beams], dim=1)
                logits, (h, cc) = self.decoder(words, c.expand(k, -1, -1), m.expand(k, -1), (h, cc))
                logp = self._block_special(logits[:, -1].float()).log_softmax(-1)
                total = logp + torch.tensor([score for _, score, _, _ in beams], device=ctx.device).unsqueeze(1)
                top = torch.topk(total.view(-1), min(2 * num_beams, total.numel()))
                new = []
                for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                    i, w = divmod(flat, logp.shape[1])
                    seq = beams[i][0]
                    if w == self.eos_index:
                        done.append((seq, score / (max(len(seq), 1) ** length_penalty)))
                    else:
                        new.append((seq + [w], score, (h[:, i : i + 1], cc[:, i : i + 1]), w))
                    if len(new) == num_beams:
                        break
                beams = new
                if not beams or (len(done) >= num_beams and max(s for _, s in done) >= beams[0][1] / (len(beams[0][0]) ** length_penalty)):
                    break
            if not done:
                done = [(seq, score / (max(len(seq), 1) ** length_penalty)) for seq, score, _, _ in beams]
            results.append(max(done, key=lambda x: x[1])[0])
        return results

    @torch.no_grad()
    def generate_instructions(
        self,
        action_features: torch.FloatTensor,
        view_features: torch.FloatTensor,
        trajectory_mask: torch.BoolTensor | None = None,
        max_length: int | None = None,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        length_penalty: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Instructions as lists of tokenizer ids (no [CLS]/[SEP]): greedy (default), beam search (`num_beams` > 1)
        or sampling (`do_sample`, with `temperature`, `top_k`, `top_p`, and a `generator` for reproducibility)."""
        if num_beams < 1:
            raise ValueError(f"num_beams must be >= 1; got {num_beams}")
        if do_sample and num_beams > 1:
            raise ValueError("choose sampling or beam search, not both")
        max_length = max_length or self.config.max_instruction_length
        ctx, mask = self.encode(action_features, view_features, trajectory_mask)
        if num_beams > 1:
            seqs = self._beam(ctx, mask, max_length, num_beams, length_penalty)
        else:
            seqs = self._greedy_or_sample(ctx, mask, max_length, do_sample, temperature, top_k, top_p, generator)
        table = self._model_to_tokenizer
        return [[table[i] for i in seq] for seq in seqs]


__all__ = ["PrevalentSpeakerModel", "PrevalentSpeakerOutput", "PrevalentSpeakerPreTrainedModel"]
