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
from shared_data import SHARED_DATA as DATA_DIR  # noqa: E402  ($HF_DGM_SHARED_DATA or ../shared/data)
from shared_data import require as require_data  # noqa: E402


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


# ------------------------------------------------------------------ the latent-path autoencoder experiment (issue 17)


def snli_sentences(count: int = 16) -> list[str]:
    """The first `count` SNLI training sentences, lower-cased with punctuation split off (word-level tokens)."""
    lines = require_data("snli", "train.txt").read_text().splitlines()[:count]
    return [" ".join(line.strip().lower().replace(".", " .").replace(",", " ,").split()) for line in lines]


def word_tokenizers(sentences: list[str]) -> tuple[PreTrainedTokenizerFast, PreTrainedTokenizerFast]:
    """Word-level (encoder, decoder) tokenizers over the words of `sentences`."""
    words = sorted({w for s in sentences for w in s.split()})
    enc_vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    enc = Tokenizer(models.WordLevel(vocab=enc_vocab, unk_token="[UNK]"))
    enc.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    enc.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", enc_vocab["[CLS]"]), ("[SEP]", enc_vocab["[SEP]"])]
    )
    dec_vocab = {t: i for i, t in enumerate(["<PAD>", "<BOS>", "<EOS>", "<UNK>"] + words)}
    dec = Tokenizer(models.WordLevel(vocab=dec_vocab, unk_token="<UNK>"))
    dec.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    dec.decoder = decoders.WordPiece(prefix="##")
    return (
        PreTrainedTokenizerFast(
            tokenizer_object=enc, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
            mask_token="[MASK]",
        ),
        PreTrainedTokenizerFast(
            tokenizer_object=dec, unk_token="<UNK>", pad_token="<PAD>", bos_token="<BOS>", eos_token="<EOS>"
        ),
    )


def autoencode(
    decoder: str = "gpt2",
    injection: str = "memory",
    steps: int = 400,
    learning_rate: float = 3e-3,
    head_lr_multiplier: float = 1.0,
    latent_size: int = 16,
    num_sentences: int = 16,
    seed: int = 0,
    patch=None,
    **config_kwargs,
) -> dict:
    """
    Train a tiny Optimus (2 layers, hidden 32) as a plain autoencoder (β = 0, z sampled from q(z|x)) with AdamW on
    `num_sentences` SNLI sentences, then count greedy reconstructions from the posterior means that are exactly
    right (`exact`) and how many are right when every sentence is decoded from z = 0 (`exact_at_zero`).
    `patch(model)` may modify the model before training (the benchmark uses it to restore older inits).
    """
    import torch

    from hf_dgm import OptimusConfig, OptimusForConditionalGeneration

    sentences = snli_sentences(num_sentences)
    enc_tok, dec_tok = word_tokenizers(sentences)
    enc = enc_tok(sentences, padding=True, return_tensors="pt")
    rows = [[dec_tok.bos_token_id] + dec_tok(s, add_special_tokens=False)["input_ids"] + [dec_tok.eos_token_id] for s in sentences]
    length = max(map(len, rows))
    dec_ids = torch.tensor([r + [dec_tok.pad_token_id] * (length - len(r)) for r in rows])
    dec_mask = (dec_ids != dec_tok.pad_token_id).long()

    torch.manual_seed(seed)
    dec_cfg = gpt2_config(len(dec_tok)) if decoder == "gpt2" else llama_config(len(dec_tok))
    config = OptimusConfig(
        encoder=bert_config(len(enc_tok)), decoder=dec_cfg, latent_size=latent_size, latent_injection=injection,
        decoder_bos_token_id=dec_tok.bos_token_id, decoder_eos_token_id=dec_tok.eos_token_id,
        decoder_pad_token_id=dec_tok.pad_token_id, **config_kwargs,
    )
    model = OptimusForConditionalGeneration(config)
    if patch is not None:
        patch(model)
    is_head = lambda name: name.startswith(("posterior", "latent_to"))  # noqa: E731
    groups = [
        {"params": [p for n, p in model.named_parameters() if not is_head(n)]},
        {"params": [p for n, p in model.named_parameters() if is_head(n)], "lr": learning_rate * head_lr_multiplier},
    ]
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=0.0)
    grad_norms: dict[str, float] = {}
    model.train()
    for step in range(steps):
        out = model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], decoder_input_ids=dec_ids,
            decoder_attention_mask=dec_mask, beta=0.0,
        )
        optimizer.zero_grad()
        out.loss.backward()
        if step == 0:
            grad_norms = {
                n.split(".")[0]: p.grad.norm().item() for n, p in model.named_parameters() if is_head(n) and p.grad is not None
            }
        optimizer.step()
    model.eval()
    with torch.no_grad():
        posterior = model.encode(enc["input_ids"], enc["attention_mask"])
        from_mean = model.generate(latents=posterior.mean, max_new_tokens=length)
        from_zero = model.generate(latents=torch.zeros_like(posterior.mean), max_new_tokens=length)

    def count(generated) -> int:  # exact = the same token ids up to and including EOS
        hits = 0
        for row, target in zip(generated.tolist(), rows):
            if dec_tok.eos_token_id in row:
                row = row[: row.index(dec_tok.eos_token_id) + 1]
            hits += row == target
        return hits

    return {
        "exact": count(from_mean),
        "exact_at_zero": count(from_zero),
        "first_step_grad_norms": grad_norms,
        "mean_std": posterior.mean.std().item(),
        "mean_logvar": posterior.logvar.mean().item(),
        "final_loss": out.loss.item(),
    }
