"""Convert an original Optimus checkpoint (`checkpoint-encoder-N/` + `checkpoint-decoder-N/`) into an hf-dgm folder.

The original (ChunyuanLI/Optimus, vendored pytorch-transformers 1.2) saves two folders with `save_pretrained`:

* encoder: `BertForLatentConnector` — a `BertPreTrainedModel` holding `embeddings`, `encoder`, `pooler` directly
  (state-dict keys `embeddings.…`, `encoder.layer.N.…`, `pooler.dense.…`; a `bert.` prefix is accepted too) and the
  bias-free posterior head `linear.weight` (2·latent × hidden; rows [0, latent) give the mean, the rest the logvar);
* decoder: `GPT2ForLatentConnector` — `transformer.{wte,wpe,h.N.…,ln_f}` (GPT-2 names, Conv1D weights stored
  (in, out) like transformers'), the causal-mask buffers `transformer.h.N.attn.bias`, the latent heads
  `transformer.linear.weight` (memory: (n_layer·hidden) × latent, chunk ℓ of the output is layer ℓ's key = value,
  split into heads like any key) and `transformer.linear_emb.weight` (embedding: hidden × latent), and
  `lm_head.weight` tied to `transformer.wte.weight`. Vocabulary: GPT-2's 50257 + `<PAD>`, `<BOS>`, `<EOS>`
  (50257, 50258, 50259).

Usage:
    python -m hf_dgm.convert optimus --encoder checkpoint-encoder-508523 --decoder checkpoint-decoder-508523 \
        --out optimus-wiki-beta0.5-32 [--latent_injection both]

Weights are read with `torch.load(weights_only=True)` (no pickled code runs) and written as safetensors.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ...convert import load_state_dict_weights_only


logger = logging.getLogger(__name__)

WEIGHTS_NAMES = ("pytorch_model.bin", "model.safetensors")
DEFAULT_DECODER_SPECIAL_TOKENS = {"<PAD>": 50257, "<BOS>": 50258, "<EOS>": 50259}

BERT_CONFIG_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps",
)  # fmt: skip
GPT2_CONFIG_KEYS = (
    "vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "resid_pdrop", "embd_pdrop", "attn_pdrop",
    "layer_norm_epsilon", "initializer_range",
)  # fmt: skip

_GPT2_BUFFER = re.compile(r"^transformer\.h\.\d+\.attn\.(bias|masked_bias)$")


# ------------------------------------------------------------------------------------------------------ loading
def load_original_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config dict, state dict) of one original checkpoint folder."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{folder} has no config.json: expected an original Optimus checkpoint-encoder/decoder folder")
    with open(config_file, encoding="utf-8") as f:
        config = json.load(f)
    for name in WEIGHTS_NAMES:
        path = folder / name
        if path.is_file():
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                state_dict = load_file(str(path))
            else:
                state_dict = load_state_dict_weights_only(path, str(folder))
            break
    else:
        raise ValueError(f"{folder} holds none of {WEIGHTS_NAMES}")
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{folder}: the weights file is not a flat state dict of tensors")
    return config, state_dict


# ------------------------------------------------------------------------------------------------------ configs
def convert_bert_config(old: dict[str, Any]):
    """A transformers `BertConfig` from a pytorch-transformers 1.2 BERT config.json."""
    from transformers import BertConfig

    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads") if k not in old]
    if missing:
        raise ValueError(f"encoder config.json lacks {missing}: is this a BERT (BertForLatentConnector) config?")
    kwargs = {k: old[k] for k in BERT_CONFIG_KEYS if k in old}
    return BertConfig(pad_token_id=0, **kwargs)  # 1.2's "gelu" is the erf GELU, transformers' "gelu" too


def convert_gpt2_config(old: dict[str, Any], special_tokens: dict[str, int] | None):
    """A transformers `GPT2Config` from a pytorch-transformers 1.2 GPT-2 config.json (n_embd, n_layer, …)."""
    from transformers import GPT2Config

    missing = [k for k in ("vocab_size", "n_embd", "n_layer", "n_head") if k not in old]
    if missing:
        raise ValueError(f"decoder config.json lacks {missing}: is this a GPT-2 (GPT2ForLatentConnector) config?")
    kwargs = {k: old[k] for k in GPT2_CONFIG_KEYS if k in old}
    if "n_positions" not in kwargs and "n_ctx" in old:
        kwargs["n_positions"] = old["n_ctx"]
    special_tokens = special_tokens or {}
    return GPT2Config(
        activation_function="gelu_new",  # 1.2's GPT-2 gelu is the tanh approximation
        bos_token_id=special_tokens.get("<BOS>"),
        eos_token_id=special_tokens.get("<EOS>"),
        pad_token_id=special_tokens.get("<PAD>"),
        tie_word_embeddings=True,
        **kwargs,
    )


def decoder_special_tokens(decoder_dir: str | Path, vocab_size: int) -> dict[str, int] | None:
    """`<PAD>`/`<BOS>`/`<EOS>` ids: from `added_tokens.json` when present, else the original's 50257-50259 when the
    vocabulary has 50260 entries, else None."""
    added = Path(decoder_dir) / "added_tokens.json"
    if added.is_file():
        with open(added, encoding="utf-8") as f:
            tokens = {k: int(v) for k, v in json.load(f).items()}
        found = {k: tokens[k] for k in DEFAULT_DECODER_SPECIAL_TOKENS if k in tokens}
        if len(found) == 3:
            return found
        logger.warning("%s lacks some of <PAD>/<BOS>/<EOS>: %s", added, sorted(tokens))
    if vocab_size == 50260:
        return dict(DEFAULT_DECODER_SPECIAL_TOKENS)
    return None


# ------------------------------------------------------------------------------------------------------ weights
def convert_encoder_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BertForLatentConnector keys → hf-dgm Optimus keys (`encoder.…`, `posterior.weight`)."""
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in state_dict.items():
        name = key[len("bert.") :] if key.startswith("bert.") else key
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        if name == "linear.weight":
            out["posterior.weight"] = tensor
        elif name == "embeddings.position_ids":
            continue  # a buffer of newer BERTs, rebuilt at load
        elif name.startswith(("embeddings.", "encoder.", "pooler.")):
            out[f"encoder.{name}"] = tensor
        else:
            unexpected.append(key)
    if unexpected:
        raise ValueError(f"unexpected keys in the encoder checkpoint (not BertForLatentConnector?): {unexpected[:10]}")
    if "posterior.weight" not in out:
        raise ValueError("the encoder checkpoint has no `linear.weight` (the posterior head of BertForLatentConnector)")
    return out


def convert_decoder_state_dict(
    state_dict: dict[str, torch.Tensor], latent_injection: str = "both"
) -> dict[str, torch.Tensor]:
    """GPT2ForLatentConnector keys → hf-dgm Optimus keys (`decoder.transformer.…`, `decoder.lm_head.weight`,
    `latent_to_memory.weight`, `latent_to_embedding.weight`)."""
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in state_dict.items():
        if _GPT2_BUFFER.match(key):
            continue  # causal-mask buffers of 1.2's attention
        if key == "transformer.linear.weight":
            if latent_injection in ("memory", "both"):
                out["latent_to_memory.weight"] = tensor
        elif key == "transformer.linear_emb.weight":
            if latent_injection in ("embedding", "both"):
                out["latent_to_embedding.weight"] = tensor
        elif key == "lm_head.weight":
            out["decoder.lm_head.weight"] = tensor
        elif key.startswith("transformer."):
            out[f"decoder.{key}"] = tensor
        else:
            unexpected.append(key)
    if unexpected:
        raise ValueError(f"unexpected keys in the decoder checkpoint (not GPT2ForLatentConnector?): {unexpected[:10]}")
    if "decoder.lm_head.weight" not in out:
        out["decoder.lm_head.weight"] = out["decoder.transformer.wte.weight"]  # tied in the original
    elif not torch.equal(out["decoder.lm_head.weight"], out["decoder.transformer.wte.weight"]):
        warnings.warn("lm_head.weight differs from transformer.wte.weight; the original ties them, keeping wte")
        out["decoder.lm_head.weight"] = out["decoder.transformer.wte.weight"]
    needed = {"memory": ["latent_to_memory.weight"], "embedding": ["latent_to_embedding.weight"]}
    needed["both"] = needed["memory"] + needed["embedding"]
    for name in needed[latent_injection]:
        if name not in out:
            raise ValueError(f"latent_injection={latent_injection!r} needs {name}, absent from the decoder checkpoint")
    return out


def infer_latent_size(encoder_sd: dict[str, torch.Tensor], decoder_sd: dict[str, torch.Tensor]) -> int:
    rows = encoder_sd["linear.weight" if "linear.weight" in encoder_sd else "bert.linear.weight"].shape[0]
    if rows % 2:
        raise ValueError(f"the posterior head has {rows} rows: expected 2 × latent_size")
    latent = rows // 2
    for key in ("transformer.linear.weight", "transformer.linear_emb.weight"):
        if key in decoder_sd and decoder_sd[key].shape[1] != latent:
            raise ValueError(f"{key} takes {decoder_sd[key].shape[1]} latent dims but the encoder gives {latent}")
    return latent


# ------------------------------------------------------------------------------------------------------ tokenizers
def convert_tokenizers(encoder_dir: Path, decoder_dir: Path, special_tokens: dict[str, int] | None, do_lower_case: bool):
    """An `OptimusProcessor` from `encoder_dir/vocab.txt` and `decoder_dir/{vocab.json, merges.txt}` (GPT-2 byte-level
    BPE, extended with `<PAD>`/`<BOS>`/`<EOS>` at the checkpoint's ids), or None when the files are absent."""
    from transformers import BertTokenizer, GPT2Tokenizer

    from hf_dgm.models.optimus import OptimusProcessor

    vocab_txt = encoder_dir / "vocab.txt"
    vocab_json, merges = decoder_dir / "vocab.json", decoder_dir / "merges.txt"
    if not vocab_txt.is_file() or not vocab_json.is_file() or not merges.is_file():
        logger.warning("no tokenizer files (vocab.txt / vocab.json + merges.txt): writing the model without tokenizers")
        return None
    if special_tokens is None:
        raise ValueError("cannot tell the decoder's <PAD>/<BOS>/<EOS> ids: add added_tokens.json to the decoder folder")
    encoder_tokenizer = BertTokenizer(vocab=str(vocab_txt), do_lower_case=do_lower_case)
    decoder_tokenizer = GPT2Tokenizer(vocab=str(vocab_json), merges=str(merges))
    ordered = sorted(special_tokens.items(), key=lambda item: item[1])
    decoder_tokenizer.add_tokens([token for token, _ in ordered], special_tokens=True)
    decoder_tokenizer.pad_token, decoder_tokenizer.bos_token, decoder_tokenizer.eos_token = "<PAD>", "<BOS>", "<EOS>"
    for token, index in special_tokens.items():
        got = decoder_tokenizer.convert_tokens_to_ids(token)
        if got != index:
            raise ValueError(f"decoder token {token} got id {got}, the checkpoint expects {index}")
    return OptimusProcessor(encoder_tokenizer, decoder_tokenizer)


# ------------------------------------------------------------------------------------------------------ driver
def _check_original_folders(encoder_dir: Path, decoder_dir: Path, enc_sd: dict, dec_sd: dict) -> None:
    """Clear errors when the two folders are swapped, or are not an original encoder / decoder checkpoint."""
    enc_is_decoder = any(k.startswith("transformer.") for k in enc_sd)
    dec_is_encoder = not any(k.startswith("transformer.") for k in dec_sd)
    if enc_is_decoder and dec_is_encoder:
        raise ValueError(
            f"--encoder {encoder_dir} holds GPT-2 decoder weights and --decoder {decoder_dir} holds the BERT encoder: "
            "the two folders are swapped"
        )
    if not any(k in enc_sd for k in ("linear.weight", "bert.linear.weight")):
        raise ValueError(
            f"--encoder {encoder_dir} has no posterior head `linear.weight`: expected an original Optimus "
            "checkpoint-encoder-N folder (BertForLatentConnector)"
        )
    if dec_is_encoder:
        raise ValueError(
            f"--decoder {decoder_dir} has no `transformer.*` weights: expected an original Optimus checkpoint-decoder-N "
            "folder (GPT2ForLatentConnector)"
        )


def _checked_latent_size(enc_config: dict, dec_config: dict, enc_sd: dict, dec_sd: dict, latent_injection: str) -> int:
    """The latent size the weights imply, checked against the folders' config.json; warns when `latent_injection`
    drops one of the two latent heads the checkpoint carries."""
    latent_size = infer_latent_size(enc_sd, dec_sd)
    for name, cfg in (("encoder", enc_config), ("decoder", dec_config)):
        if "latent_size" in cfg and int(cfg["latent_size"]) != latent_size:
            raise ValueError(f"{name} config.json says latent_size={cfg['latent_size']} but the weights have {latent_size}")
    if latent_injection != "both" and "transformer.linear_emb.weight" in dec_sd and "transformer.linear.weight" in dec_sd:
        warnings.warn(
            f"the checkpoint carries both latent heads (the original decodes with memory AND embedding injection); "
            f"latent_injection={latent_injection!r} drops one, so outputs will differ from the original's"
        )
    return latent_size


def _load_converted_weights(model, state_dict: dict) -> None:
    """Load the renamed weights (as float32) into `model`, after checking that the keys and shapes fit exactly."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise ValueError(f"converted weights do not fit the model: missing {missing[:10]}, unexpected {unexpected[:10]}")
    for key, tensor in state_dict.items():
        target = model.state_dict()[key]
        if tuple(target.shape) != tuple(tensor.shape):
            raise ValueError(f"{key}: checkpoint shape {tuple(tensor.shape)} != model shape {tuple(target.shape)}")
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)


def convert_optimus(
    encoder_dir: str | Path,
    decoder_dir: str | Path,
    latent_injection: str = "both",
    encoder_do_lower_case: bool = False,
    encoder_tokenizer_dir: str | Path | None = None,
    decoder_tokenizer_dir: str | Path | None = None,
    **config_kwargs,
):
    """Build an `OptimusForConditionalGeneration` (with `.processor` when tokenizer files are present) holding the
    original checkpoint's weights. The tokenizer files are read from the checkpoint folders unless
    `encoder_tokenizer_dir` / `decoder_tokenizer_dir` (e.g. stock `bert-base-cased` / `gpt2` folders) are given.
    `config_kwargs` go to `OptimusConfig` (beta, kl_threshold, max_new_tokens…)."""
    import hf_dgm  # noqa: F401
    from hf_dgm.models.optimus import OptimusConfig, OptimusForConditionalGeneration

    encoder_dir, decoder_dir = Path(encoder_dir), Path(decoder_dir)
    enc_config, enc_sd = load_original_folder(encoder_dir)
    dec_config, dec_sd = load_original_folder(decoder_dir)
    _check_original_folders(encoder_dir, decoder_dir, enc_sd, dec_sd)
    latent_size = _checked_latent_size(enc_config, dec_config, enc_sd, dec_sd, latent_injection)
    special = decoder_special_tokens(decoder_dir, int(dec_config["vocab_size"]))
    encoder_config = convert_bert_config(enc_config)
    decoder_config = convert_gpt2_config(dec_config, special)
    config = OptimusConfig(
        encoder=encoder_config,
        decoder=decoder_config,
        latent_size=latent_size,
        latent_injection=latent_injection,
        pooling="pooler",
        decoder_bos_token_id=None if special is None else special["<BOS>"],
        decoder_eos_token_id=None if special is None else special["<EOS>"],
        decoder_pad_token_id=None if special is None else special["<PAD>"],
        encoder_pad_token_id=0,
        **{"posterior_logvar_bias": None, **config_kwargs},  # the original's posterior head is bias-free
    )
    model = OptimusForConditionalGeneration(config)
    _load_converted_weights(model, {**convert_encoder_state_dict(enc_sd), **convert_decoder_state_dict(dec_sd, latent_injection)})
    model.processor = convert_tokenizers(
        Path(encoder_tokenizer_dir or encoder_dir), Path(decoder_tokenizer_dir or decoder_dir), special, encoder_do_lower_case
    )
    return model.eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", required=True, help="the original checkpoint-encoder-N/ folder")
    parser.add_argument("--decoder", required=True, help="the original checkpoint-decoder-N/ folder")
    parser.add_argument("--out", required=True, help="output folder (hf-dgm Optimus, safetensors)")
    parser.add_argument(
        "--latent_injection", default="both", choices=["memory", "embedding", "both"],
        help="how z reaches the decoder; the released code uses both (default)",
    )
    parser.add_argument("--encoder_do_lower_case", action="store_true", help="lower-case encoder input (uncased BERT)")
    parser.add_argument("--encoder_tokenizer", default=None, help="folder with vocab.txt when --encoder lacks it")
    parser.add_argument("--decoder_tokenizer", default=None, help="folder with vocab.json + merges.txt when --decoder lacks them")
    parser.add_argument("--beta", type=float, default=None, help="KL weight stored in the config (default 1.0)")
    parser.add_argument("--kl_threshold", type=float, default=None, help="dimension-wise λ stored in the config")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="default generation cap stored in the config")


def run(args: argparse.Namespace) -> int:
    config_kwargs = {k: getattr(args, k) for k in ("beta", "kl_threshold", "max_new_tokens") if getattr(args, k, None) is not None}
    model = convert_optimus(
        args.encoder,
        args.decoder,
        latent_injection=args.latent_injection,
        encoder_do_lower_case=args.encoder_do_lower_case,
        encoder_tokenizer_dir=args.encoder_tokenizer,
        decoder_tokenizer_dir=args.decoder_tokenizer,
        **config_kwargs,
    )
    out = Path(args.out)
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"converted Optimus (latent {model.config.latent_size}, injection {model.config.latent_injection}, "
        f"{n_params / 1e6:.1f}M parameters, tokenizers: {'yes' if model.processor is not None else 'no'}) -> {out}"
    )
    return 0


__all__ = [
    "add_arguments",
    "convert_bert_config",
    "convert_decoder_state_dict",
    "convert_encoder_state_dict",
    "convert_gpt2_config",
    "convert_optimus",
    "load_original_folder",
    "run",
]
