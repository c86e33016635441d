"""Tiny Optimus parts built offline for tests: word-level tokenizers and tiny BERT / GPT-2 / Llama configs."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import BertConfig, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

SENTENCES = [
    "a man is playing a guitar .",
    "two dogs run through the snow .",
    "a woman is reading a book in the park .",
    "the children are playing soccer outside .",
    "a dog is sleeping on the couch .",
    "people are walking down the street .",
    "a man rides a bike .",
    "the cat sits on the mat .",
]
DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _words() -> list[str]:
    words = sorted({w for s in SENTENCES for w in s.split()})
    return words + ["snow", "guitar", "book", "red", "blue", "big", "small"]


def encoder_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(_words())))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


def decoder_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(["<PAD>", "<BOS>", "<EOS>", "<UNK>"] + sorted(set(_words())))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<UNK>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins word-level tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<UNK>", pad_token="<PAD>", bos_token="<BOS>", eos_token="<EOS>"
    )


def bert_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=0,
    )


def gpt2_config(vocab_size: int) -> GPT2Config:
    return GPT2Config(
        vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2,
        pad_token_id=0,
    )


def llama_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=False,
    )


def build_parts(tmp_path: Path, decoder: str = "gpt2") -> tuple[Path, Path]:
    """Save a random tiny encoder and decoder (with tokenizers) as pretrained folders; return their paths."""
    from transformers import AutoModel, AutoModelForCausalLM

    enc_tok, dec_tok = encoder_tokenizer(), decoder_tokenizer()
    enc_dir, dec_dir = tmp_path / "tiny-bert", tmp_path / f"tiny-{decoder}"
    AutoModel.from_config(bert_config(len(enc_tok))).save_pretrained(enc_dir)
    enc_tok.save_pretrained(enc_dir)
    cfg = gpt2_config(len(dec_tok)) if decoder == "gpt2" else llama_config(len(dec_tok))
    AutoModelForCausalLM.from_config(cfg).save_pretrained(dec_dir)
    dec_tok.save_pretrained(dec_dir)
    return enc_dir, dec_dir
