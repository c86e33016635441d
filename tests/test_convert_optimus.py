"""hf_dgm.models.optimus.convert_optimus: an original Optimus checkpoint (pytorch-transformers 1.2 BertForLatentConnector +
GPT2ForLatentConnector folders), built here with the original key names and shapes, converts into an hf-dgm Optimus
whose outputs equal an independent re-implementation of the original forward passes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import hf_dgm  # noqa: F401
from hf_dgm.convert.__main__ import main as convert_main
from hf_dgm.models.optimus.convert_optimus import convert_optimus
from hf_dgm.models.optimus import OptimusForConditionalGeneration
from tolerances import assert_fp32_close


H, N_LAYERS, N_HEADS, INTER, LATENT = 16, 2, 2, 32, 4
BERT_VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "sat", "on", "the", "mat", "dog",
              ".", "The", "Cat", "ran", "##s", "big", "small"]  # fmt: skip
GPT2_BASE = ["a", "c", "t", "s", "d", "o", "g", ".", "m", "n", "Ġ", "at", "Ġc", "Ġcat", "Ġs", "Ġsat", "Ġd", "og", "Ġdog",
             "Ġm", "Ġmat", "on", "Ġon", "e", "h", "r", "<|endoftext|>"]  # fmt: skip
GPT2_MERGES = ["a t", "Ġ c", "Ġc at", "Ġ s", "Ġs at", "Ġ d", "o g", "Ġd og", "Ġ m", "Ġm at", "o n", "Ġ on"]
PAD, BOS, EOS = 27, 28, 29
GPT2_VOCAB = len(GPT2_BASE) + 3  # 30, as 50257 + 3 in the original
POSITIONS = 32


# --------------------------------------------------------------------------------------- an original checkpoint
def _rand(*shape, std=0.3):
    return torch.randn(*shape) * std


def _ln(prefix, sd):
    sd[f"{prefix}.weight"] = 1.0 + _rand(H, std=0.1)
    sd[f"{prefix}.bias"] = _rand(H, std=0.1)


def original_bert_state_dict(prefix=""):
    """BertForLatentConnector.state_dict() of pytorch-transformers 1.2 (embeddings/encoder/pooler at the top)."""
    sd = {
        f"{prefix}embeddings.word_embeddings.weight": _rand(len(BERT_VOCAB), H),
        f"{prefix}embeddings.position_embeddings.weight": _rand(POSITIONS, H),
        f"{prefix}embeddings.token_type_embeddings.weight": _rand(2, H),
    }
    _ln(f"{prefix}embeddings.LayerNorm", sd)
    for i in range(N_LAYERS):
        p = f"{prefix}encoder.layer.{i}"
        for name in ("query", "key", "value"):
            sd[f"{p}.attention.self.{name}.weight"] = _rand(H, H)
            sd[f"{p}.attention.self.{name}.bias"] = _rand(H, std=0.1)
        sd[f"{p}.attention.output.dense.weight"] = _rand(H, H)
        sd[f"{p}.attention.output.dense.bias"] = _rand(H, std=0.1)
        _ln(f"{p}.attention.output.LayerNorm", sd)
        sd[f"{p}.intermediate.dense.weight"] = _rand(INTER, H)
        sd[f"{p}.intermediate.dense.bias"] = _rand(INTER, std=0.1)
        sd[f"{p}.output.dense.weight"] = _rand(H, INTER)
        sd[f"{p}.output.dense.bias"] = _rand(H, std=0.1)
        _ln(f"{p}.output.LayerNorm", sd)
    sd[f"{prefix}pooler.dense.weight"] = _rand(H, H)
    sd[f"{prefix}pooler.dense.bias"] = _rand(H, std=0.1)
    sd[f"{prefix}linear.weight"] = _rand(2 * LATENT, H)
    return sd


def original_gpt2_state_dict():
    """GPT2ForLatentConnector.state_dict() of the Optimus fork of pytorch-transformers 1.2 (Conv1D weights are (in, out))."""
    wte = _rand(GPT2_VOCAB, H)
    sd = {"transformer.wte.weight": wte, "transformer.wpe.weight": _rand(POSITIONS, H)}
    for i in range(N_LAYERS):
        p = f"transformer.h.{i}"
        _ln(f"{p}.ln_1", sd)
        sd[f"{p}.attn.bias"] = torch.tril(torch.ones(POSITIONS, POSITIONS)).view(1, 1, POSITIONS, POSITIONS)
        sd[f"{p}.attn.c_attn.weight"] = _rand(H, 3 * H)
        sd[f"{p}.attn.c_attn.bias"] = _rand(3 * H, std=0.1)
        sd[f"{p}.attn.c_proj.weight"] = _rand(H, H)
        sd[f"{p}.attn.c_proj.bias"] = _rand(H, std=0.1)
        _ln(f"{p}.ln_2", sd)
        sd[f"{p}.mlp.c_fc.weight"] = _rand(H, 4 * H)
        sd[f"{p}.mlp.c_fc.bias"] = _rand(4 * H, std=0.1)
        sd[f"{p}.mlp.c_proj.weight"] = _rand(4 * H, H)
        sd[f"{p}.mlp.c_proj.bias"] = _rand(H, std=0.1)
    _ln("transformer.ln_f", sd)
    sd["transformer.linear.weight"] = _rand(N_LAYERS * H, LATENT, std=0.5)  # memory: hidden * n_layer outputs
    sd["transformer.linear_emb.weight"] = _rand(H, LATENT, std=0.5)  # embedding
    sd["lm_head.weight"] = wte  # tied (shared storage, as torch.save keeps it)
    return sd


BERT_CONFIG_12 = {  # BertConfig.to_dict() of pytorch-transformers 1.2, plus Optimus' latent_size
    "attention_probs_dropout_prob": 0.1, "finetuning_task": None, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": H, "initializer_range": 0.02, "intermediate_size": INTER, "layer_norm_eps": 1e-12,
    "max_position_embeddings": POSITIONS, "num_attention_heads": N_HEADS, "num_hidden_layers": N_LAYERS,
    "num_labels": 2, "output_attentions": False, "output_hidden_states": False, "pruned_heads": {},
    "torchscript": False, "type_vocab_size": 2, "vocab_size": len(BERT_VOCAB), "latent_size": LATENT,
}  # fmt: skip
GPT2_CONFIG_12 = {
    "attn_pdrop": 0.1, "embd_pdrop": 0.1, "finetuning_task": None, "initializer_range": 0.02, "latent_size": LATENT,
    "layer_norm_epsilon": 1e-05, "n_ctx": POSITIONS, "n_embd": H, "n_head": N_HEADS, "n_layer": N_LAYERS,
    "n_positions": POSITIONS, "num_labels": 1, "output_attentions": False, "output_hidden_states": False,
    "pruned_heads": {}, "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True, "torchscript": False,
    "vocab_size": GPT2_VOCAB,
}  # fmt: skip


def write_original(root: Path, bert_sd, gpt2_sd, tokenizers=True):
    enc, dec = root / "checkpoint-encoder-7", root / "checkpoint-decoder-7"
    enc.mkdir(parents=True)
    dec.mkdir(parents=True)
    torch.save(bert_sd, enc / "pytorch_model.bin")
    torch.save(gpt2_sd, dec / "pytorch_model.bin")
    (enc / "config.json").write_text(json.dumps(BERT_CONFIG_12))
    (dec / "config.json").write_text(json.dumps(GPT2_CONFIG_12))
    if tokenizers:
        (enc / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
        (enc / "special_tokens_map.json").write_text(json.dumps({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}))
        (dec / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(GPT2_BASE)}))
        (dec / "merges.txt").write_text("#version: 0.2\n" + "\n".join(GPT2_MERGES) + "\n")
        (dec / "added_tokens.json").write_text(json.dumps({"<PAD>": PAD, "<BOS>": BOS, "<EOS>": EOS}))
        (dec / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<BOS>", "eos_token": "<EOS>", "unk_token": "<|endoftext|>", "pad_token": "<PAD>"}))
    return enc, dec


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    torch.manual_seed(0)
    bert_sd, gpt2_sd = original_bert_state_dict(), original_gpt2_state_dict()
    root = tmp_path_factory.mktemp("original")
    enc, dec = write_original(root, bert_sd, gpt2_sd)
    out = root / "converted"
    assert convert_main(["optimus", "--encoder", str(enc), "--decoder", str(dec), "--out", str(out)]) == 0
    model = OptimusForConditionalGeneration.from_pretrained(out).eval()
    return bert_sd, gpt2_sd, model, root


# --------------------------------------------------------------------- the original forward, re-implemented
def _layer_norm(x, sd, prefix, eps):
    return F.layer_norm(x, (H,), sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps)


def reference_posterior(sd, input_ids, attention_mask):
    """BertForLatentConnector forward (erf GELU, −10000 mask) → pooler → `linear` → chunk(mean, logvar)."""
    B, T = input_ids.shape
    d = H // N_HEADS
    x = sd["embeddings.word_embeddings.weight"][input_ids] + sd["embeddings.position_embeddings.weight"][:T]
    x = x + sd["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, sd, "embeddings.LayerNorm", 1e-12)
    ext = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}"

        def heads(name):
            y = x @ sd[f"{p}.attention.self.{name}.weight"].T + sd[f"{p}.attention.self.{name}.bias"]
            return y.view(B, T, N_HEADS, d).permute(0, 2, 1, 3)

        scores = heads("query") @ heads("key").transpose(-1, -2) / math.sqrt(d) + ext
        ctx = (scores.softmax(-1) @ heads("value")).permute(0, 2, 1, 3).reshape(B, T, H)
        attn = ctx @ sd[f"{p}.attention.output.dense.weight"].T + sd[f"{p}.attention.output.dense.bias"]
        x = _layer_norm(attn + x, sd, f"{p}.attention.output.LayerNorm", 1e-12)
        inter = x @ sd[f"{p}.intermediate.dense.weight"].T + sd[f"{p}.intermediate.dense.bias"]
        inter = inter * 0.5 * (1.0 + torch.erf(inter / math.sqrt(2.0)))
        out = inter @ sd[f"{p}.output.dense.weight"].T + sd[f"{p}.output.dense.bias"]
        x = _layer_norm(out + x, sd, f"{p}.output.LayerNorm", 1e-12)
    pooled = torch.tanh(x[:, 0] @ sd["pooler.dense.weight"].T + sd["pooler.dense.bias"])
    return (pooled @ sd["linear.weight"].T).chunk(2, -1)


def reference_decoder_logits(sd, input_ids, z):
    """GPT2ForLatentConnector forward with `past=z`, latent_as_gpt_memory and latent_as_gpt_emb (no attention mask):
    past = linear(z) split into n_layer chunks of `hidden`, each the layer's past key AND value (split into heads);
    position ids start at 1; linear_emb(z) is added to the token + position embeddings; tanh GELU; lm_head = wte."""
    B, T = input_ids.shape
    d = H // N_HEADS
    past = torch.split((z @ sd["transformer.linear.weight"].T).unsqueeze(1), H, dim=2)  # n_layer × (B, 1, H)
    x = sd["transformer.wte.weight"][input_ids] + sd["transformer.wpe.weight"][torch.arange(1, T + 1)]
    x = x + (z @ sd["transformer.linear_emb.weight"].T).unsqueeze(1)
    causal = torch.tril(torch.ones(T + 1, T + 1))[1:, :]  # bias[:, :, ns-nd:ns, :ns] with ns = T+1, nd = T
    for i in range(N_LAYERS):
        p = f"transformer.h.{i}"
        a = _layer_norm(x, sd, f"{p}.ln_1", 1e-5) @ sd[f"{p}.attn.c_attn.weight"] + sd[f"{p}.attn.c_attn.bias"]
        q, k, v = (t.view(B, T, N_HEADS, d).permute(0, 2, 1, 3) for t in a.split(H, dim=2))
        mem = past[i].view(B, 1, N_HEADS, d).permute(0, 2, 1, 3)
        k, v = torch.cat([mem, k], dim=2), torch.cat([mem, v], dim=2)
        w = q @ k.transpose(-1, -2) / math.sqrt(d)
        w = w * causal - 1e4 * (1 - causal)
        o = (w.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B, T, H)
        x = x + o @ sd[f"{p}.attn.c_proj.weight"] + sd[f"{p}.attn.c_proj.bias"]
        m = _layer_norm(x, sd, f"{p}.ln_2", 1e-5) @ sd[f"{p}.mlp.c_fc.weight"] + sd[f"{p}.mlp.c_fc.bias"]
        m = 0.5 * m * (1 + torch.tanh(math.sqrt(2 / math.pi) * (m + 0.044715 * m**3)))
        x = x + m @ sd[f"{p}.mlp.c_proj.weight"] + sd[f"{p}.mlp.c_proj.bias"]
    x = _layer_norm(x, sd, "transformer.ln_f", 1e-5)
    return x @ sd["lm_head.weight"].T


# ------------------------------------------------------------------------------------------------------- tests
def expected_target(key: str) -> str | None:
    """Where each original key must land (None: a buffer that is dropped)."""
    if key.startswith("transformer.h.") and key.endswith(".attn.bias"):
        return None
    if key == "linear.weight":
        return "posterior.weight"
    if key == "transformer.linear.weight":
        return "latent_to_memory.weight"
    if key == "transformer.linear_emb.weight":
        return "latent_to_embedding.weight"
    if key.startswith(("transformer.", "lm_head.")):
        return f"decoder.{key}"
    return f"encoder.{key}"


def test_every_weight_lands_where_it_should(original):
    bert_sd, gpt2_sd, model, _ = original
    converted = model.state_dict()
    covered = set()
    for key, tensor in {**bert_sd, **gpt2_sd}.items():
        target = expected_target(key)
        if target is None:
            continue
        assert torch.equal(converted[target], tensor), f"{key} -> {target}"
        covered.add(target)
    assert covered == set(converted), sorted(set(converted) - covered)
    cfg = model.config
    assert cfg.latent_size == LATENT and cfg.latent_injection == "both" and cfg.pooling == "pooler"
    assert (cfg.decoder_pad_token_id, cfg.decoder_bos_token_id, cfg.decoder_eos_token_id) == (PAD, BOS, EOS)
    assert cfg.decoder.n_embd == H and cfg.decoder.n_layer == N_LAYERS and cfg.decoder.vocab_size == GPT2_VOCAB
    assert cfg.decoder.activation_function == "gelu_new" and cfg.encoder.hidden_act == "gelu"
    assert cfg.encoder.num_hidden_layers == N_LAYERS and cfg.encoder.vocab_size == len(BERT_VOCAB)
    assert model.decoder.lm_head.weight.data_ptr() == model.decoder.transformer.wte.weight.data_ptr()  # tied


def test_posterior_matches_original_encoder(original):
    bert_sd, _, model, _ = original
    ids = torch.tensor([[3, 6, 7, 8, 9, 10, 11, 13, 4], [3, 14, 12, 16, 13, 4, 0, 0, 0]])
    mask = (ids > 0).long()  # the original's encoder mask
    ref_mean, ref_logvar = reference_posterior(bert_sd, ids, mask)
    with torch.no_grad():
        post = model.encode(ids, mask)
    assert_fp32_close(post.mean, ref_mean)
    assert_fp32_close(post.logvar, ref_logvar)


def test_decoder_matches_original_memory_and_embedding_injection(original):
    _, gpt2_sd, model, _ = original
    torch.manual_seed(1)
    ids = torch.tensor([[BOS, 0, 13, 15, 22, 20, 7, EOS], [BOS, 18, 22, 7, EOS, PAD, PAD, PAD]])
    z = torch.randn(2, LATENT)
    ref = reference_decoder_logits(gpt2_sd, ids, z)
    mask = (ids != PAD).long()
    with torch.no_grad():
        logits = model.decode(ids, z, mask)
        out = model(decoder_input_ids=ids, decoder_attention_mask=mask, latents=z)
    real = mask.bool()
    assert_fp32_close(logits[real], ref[real])
    # the original's loss: CrossEntropy(ignore_index=<PAD>) on shifted labels, summed per sentence
    ref_loss = F.cross_entropy(ref[:, :-1].reshape(-1, GPT2_VOCAB), ids[:, 1:].reshape(-1), ignore_index=PAD, reduction="none")
    assert_fp32_close(out.reconstruction_loss, ref_loss.view(2, -1).sum(-1))
    # and z matters through both paths
    assert not torch.allclose(logits, model.decode(ids, torch.zeros_like(z), mask), atol=1e-3)


def test_tokenizers_are_converted(original):
    _, _, model, _ = original
    processor = model.processor
    assert processor is not None
    batch = processor(["a cat sat on the mat.", "The dog ran."], return_tensors="pt")
    assert batch["input_ids"][0].tolist() == [3, 6, 7, 8, 9, 10, 11, 13, 4]  # [CLS] … [SEP], cased
    assert batch["input_ids"][1].tolist()[:6] == [3, 14, 12, 16, 13, 4]
    dec = batch["decoder_input_ids"][0].tolist()
    assert dec[0] == BOS and dec[-1] == EOS
    assert processor.decoder_tokenizer.convert_ids_to_tokens(dec[1:4]) == ["a", "Ġcat", "Ġsat"]
    assert batch["decoder_input_ids"][1].tolist()[-1] == PAD
    assert processor.batch_decode(batch["decoder_input_ids"][:1]) == ["a cat sat on the mat."]


def test_prefixed_and_gamma_beta_variants_and_memory_only(tmp_path):
    torch.manual_seed(2)
    bert_sd, gpt2_sd = original_bert_state_dict(prefix="bert."), original_gpt2_state_dict()
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in bert_sd.items()}
    enc, dec = write_original(tmp_path, renamed, gpt2_sd, tokenizers=False)
    with pytest.warns(UserWarning, match="drops one"):
        model = convert_optimus(enc, dec, latent_injection="memory")
    assert model.processor is None and not hasattr(model, "latent_to_embedding")
    assert torch.equal(model.posterior.weight, bert_sd["bert.linear.weight"])
    assert torch.equal(model.encoder.embeddings.LayerNorm.weight, bert_sd["bert.embeddings.LayerNorm.weight"])
    assert torch.equal(model.latent_to_memory.weight, gpt2_sd["transformer.linear.weight"])


def test_tokenizers_from_separate_folders(tmp_path):
    torch.manual_seed(4)
    with_tok, _ = write_original(tmp_path / "tok", original_bert_state_dict(), original_gpt2_state_dict())
    enc, dec = write_original(tmp_path / "ckpt", original_bert_state_dict(), original_gpt2_state_dict(), tokenizers=False)
    (dec / "added_tokens.json").write_text(json.dumps({"<PAD>": PAD, "<BOS>": BOS, "<EOS>": EOS}))
    model = convert_optimus(
        enc, dec, encoder_tokenizer_dir=with_tok.parent / "checkpoint-encoder-7",
        decoder_tokenizer_dir=with_tok.parent / "checkpoint-decoder-7",
    )
    assert model.processor is not None
    assert model.processor(["a cat sat."])["decoder_input_ids"][0].tolist()[:4] == [BOS, 0, 13, 15]


def test_rejects_foreign_checkpoints(tmp_path):
    torch.manual_seed(3)
    bert_sd = original_bert_state_dict()
    bert_sd["cls.predictions.bias"] = torch.zeros(len(BERT_VOCAB))
    enc, dec = write_original(tmp_path / "a", bert_sd, original_gpt2_state_dict(), tokenizers=False)
    with pytest.raises(ValueError, match="unexpected keys"):
        convert_optimus(enc, dec)
    gpt2_sd = original_gpt2_state_dict()
    gpt2_sd["transformer.linear.weight"] = torch.zeros(N_LAYERS * H, LATENT + 1)
    enc, dec = write_original(tmp_path / "b", original_bert_state_dict(), gpt2_sd, tokenizers=False)
    with pytest.raises(ValueError, match="latent dims"):
        convert_optimus(enc, dec)
    with pytest.raises(ValueError, match="config.json"):
        convert_optimus(tmp_path, dec)
