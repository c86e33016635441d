"""The two tokenizers of Optimus: the encoder's (`[CLS] … [SEP]`) and the decoder's (`BOS … EOS`)."""

from __future__ import annotations

import inspect

import os
from typing import Any

import torch
from transformers import AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase, ProcessorMixin

DECODER_TOKENIZER_SUBFOLDER = "decoder_tokenizer"


def _check_keywords(function, kwargs: dict, where: str) -> None:
    """Raise a `TypeError` naming the keys of `kwargs` that `function` has no named parameter for (tokenizers
    would otherwise warn and ignore them)."""
    named = {
        name for name, p in inspect.signature(function).parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    unknown = sorted(set(kwargs) - named)
    if unknown:
        raise TypeError(f"{where} got unknown keyword argument(s) {unknown}")


class OptimusProcessor(ProcessorMixin):
    r"""
    Tokenizes each sentence twice, as Optimus needs: for the encoder (`[CLS] tokens [SEP]`, padded with the encoder's
    pad id) and for the decoder (`BOS tokens EOS`, right-padded with the decoder's pad id).

    Saved as the encoder tokenizer at the folder's root and the decoder tokenizer in `decoder_tokenizer/`. A
    `ProcessorMixin`: with hf_dgm imported, `AutoProcessor.from_pretrained(folder)` returns it with both tokenizers.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the encoder's tokenizer.
        decoder_tokenizer (`PreTrainedTokenizerBase`): the decoder's tokenizer, with BOS, EOS and PAD tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, decoder_tokenizer: PreTrainedTokenizerBase):
        if tokenizer is None or decoder_tokenizer is None:
            raise ValueError("OptimusProcessor needs both an encoder `tokenizer` and a `decoder_tokenizer`")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if getattr(decoder_tokenizer, name) is None:
                raise ValueError(
                    f"the decoder tokenizer has no {name[:-3]}; use OptimusProcessor.prepare_decoder_tokenizer() "
                    "to add <BOS>/<EOS>/<PAD>"
                )
        super().__init__(tokenizer, decoder_tokenizer)

    # ---------------------------------------------------------------- construction
    @staticmethod
    def prepare_decoder_tokenizer(decoder_tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
        """Add `<BOS>`, `<EOS>`, `<PAD>` where the tokenizer lacks them (as the original does for GPT-2's)."""
        missing = {}
        if decoder_tokenizer.bos_token is None:
            missing["bos_token"] = "<BOS>"
        if decoder_tokenizer.eos_token is None:
            missing["eos_token"] = "<EOS>"
        if decoder_tokenizer.pad_token is None:
            missing["pad_token"] = "<PAD>"
        if missing:
            decoder_tokenizer.add_special_tokens(missing)
        return decoder_tokenizer

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_name_or_path: str | os.PathLike,
        decoder_name_or_path: str | os.PathLike,
        decoder_tokenizer_kwargs: dict | None = None,
        **kwargs,
    ) -> "OptimusProcessor":
        tokenizer = AutoTokenizer.from_pretrained(encoder_name_or_path, **kwargs)
        decoder_tokenizer = AutoTokenizer.from_pretrained(decoder_name_or_path, **(decoder_tokenizer_kwargs or {}), **kwargs)
        return cls(tokenizer, cls.prepare_decoder_tokenizer(decoder_tokenizer))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "OptimusProcessor":
        """Load both tokenizers from a local folder or a Hub repo (root + `decoder_tokenizer/`)."""
        kwargs.pop("subfolder", None)
        # the tokenizers are stock classes: never run (or ask about) the repo's model code to load them
        kwargs.setdefault("trust_remote_code", False)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        decoder_tokenizer = AutoTokenizer.from_pretrained(
            pretrained_model_name_or_path, subfolder=DECODER_TOKENIZER_SUBFOLDER, **kwargs
        )
        return cls(tokenizer, decoder_tokenizer)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> list[str]:
        os.makedirs(save_directory, exist_ok=True)
        files = list(self.tokenizer.save_pretrained(save_directory, **kwargs))
        files += list(
            self.decoder_tokenizer.save_pretrained(os.path.join(save_directory, DECODER_TOKENIZER_SUBFOLDER), **kwargs)
        )
        return files

    # ---------------------------------------------------------------- tokenization
    def __call__(
        self,
        text: str | list[str],
        max_length: int = 64,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchEncoding:
        """
        Returns `input_ids`, `attention_mask` (encoder) and `decoder_input_ids`, `decoder_attention_mask` (decoder),
        each `(batch_size, length)`; sentences longer than `max_length` tokens are truncated on both sides.
        """
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("`text` must be a non-empty string or a non-empty list of strings")
        if not isinstance(max_length, int) or max_length < 3:
            raise ValueError(f"`max_length` must be an int >= 3; got {max_length!r}")
        _check_keywords(self.tokenizer.__call__, kwargs, "OptimusProcessor.__call__ (encoder tokenizer)")
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors=None, **kwargs
        )
        dec = self.decoder_token_ids(texts, max_length=max_length)
        width = max(len(ids) for ids in dec)
        pad = self.decoder_tokenizer.pad_token_id
        decoder_input_ids = [ids + [pad] * (width - len(ids)) for ids in dec]
        decoder_attention_mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids in dec]
        data = {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_attention_mask,
        }
        return BatchEncoding(data, tensor_type=return_tensors)

    def decoder_token_ids(self, texts: list[str], max_length: int = 64) -> list[list[int]]:
        """`[BOS] + tokens + [EOS]` per sentence (no padding), at most `max_length` ids."""
        tok = self.decoder_tokenizer
        pieces = tok(list(texts), add_special_tokens=False)["input_ids"]
        return [[tok.bos_token_id] + ids[: max_length - 2] + [tok.eos_token_id] for ids in pieces]

    def batch_decode(self, sequences: torch.Tensor | list[list[int]], **kwargs: Any) -> list[str]:
        """Decoder ids → text, special tokens stripped, stopping at the first EOS of each row."""
        if isinstance(sequences, torch.Tensor):
            sequences = sequences.tolist()
        eos = self.decoder_tokenizer.eos_token_id
        cut = []
        for ids in sequences:
            ids = list(ids)
            if ids and ids[0] == self.decoder_tokenizer.bos_token_id:
                ids = ids[1:]
            if eos in ids:
                ids = ids[: ids.index(eos)]
            cut.append(ids)
        unknown = sorted(set(kwargs) - {"skip_special_tokens", "clean_up_tokenization_spaces"})
        if unknown:
            raise TypeError(
                f"OptimusProcessor.batch_decode got unknown keyword argument(s) {unknown}; it takes "
                "`skip_special_tokens` and `clean_up_tokenization_spaces`"
            )
        kwargs.setdefault("skip_special_tokens", True)
        return [text.strip() for text in self.decoder_tokenizer.batch_decode(cut, **kwargs)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tokenizer={type(self.tokenizer).__name__}, "
            f"decoder_tokenizer={type(self.decoder_tokenizer).__name__})"
        )


__all__ = ["OptimusProcessor", "DECODER_TOKENIZER_SUBFOLDER"]
