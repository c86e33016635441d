"""Optimus model: config validation, shapes, latent injection, KL, generation, persistence, checkpointing."""

from __future__ import annotations

import pytest
import torch

import hf_dgm  # noqa: F401  (registers the Auto classes)
from hf_dgm import OptimusConfig, OptimusForConditionalGeneration, OptimusProcessor
from tolerances import assert_fp32_close
from optimus_tiny import SENTENCES, bert_config, build_parts, gpt2_config
from transformers import AutoConfig, AutoModel


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    return {"gpt2": build_parts(root / "g", "gpt2"), "llama": build_parts(root / "l", "llama")}


def make(parts, decoder="gpt2", seed=0, **config):
    torch.manual_seed(seed)
    enc_dir, dec_dir = parts[decoder]
    config.setdefault("latent_size", 8)
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), **config)


def no_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"latent_size": 0}, "latent_size"),
        ({"latent_size": 3.5}, "latent_size"),
        ({"latent_injection": "cross"}, "latent_injection"),
        ({"pooling": "max"}, "pooling"),
        ({"beta": -1.0}, "beta"),
        ({"kl_threshold": -0.1}, "kl_threshold"),
        ({"kl_threshold_mode": "soft"}, "kl_threshold_mode"),
        ({"decoder_pad_token_id": -3}, "decoder_pad_token_id"),
        ({"encoder": {"hidden_size": 8}}, "encoder"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        OptimusConfig(**kwargs)


def test_config_pooler_needs_bert_family():
    with pytest.raises(ValueError, match="pooling"):
        OptimusConfig(encoder=gpt2_config(10), pooling="pooler")
    assert OptimusConfig(encoder=gpt2_config(10), pooling="mean").pooling == "mean"


def test_config_round_trip(tmp_path):
    config = OptimusConfig(encoder=bert_config(20), decoder=gpt2_config(30), latent_size=16, latent_injection="both")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, OptimusConfig)
    assert loaded.latent_size == 16 and loaded.latent_injection == "both"
    assert loaded.encoder.model_type == "bert" and loaded.decoder.model_type == "gpt2"
    assert loaded.decoder.vocab_size == 30


# ------------------------------------------------------------------ shapes and loss


@pytest.mark.parametrize("decoder", ["gpt2", "llama"])
@pytest.mark.parametrize("injection", ["memory", "embedding", "both", "prefix"])
def test_forward_shapes_and_loss_terms(parts, decoder, injection):
    model = make(parts, decoder, latent_injection=injection)
    batch = model.processor(SENTENCES[:3])
    out = model(**batch, beta=0.7, kl_threshold=0.0)
    B, T = batch["decoder_input_ids"].shape
    vocab = model.config.decoder.vocab_size
    assert out.logits.shape == (B, T, vocab) and out.logits.dtype == torch.float32
    assert out.latents.shape == out.mean.shape == out.logvar.shape == (B, 8)
    assert out.kl_per_dim.shape == (B, 8) and out.kl.shape == out.reconstruction_loss.shape == (B,)
    assert torch.equal(out.num_tokens, batch["decoder_attention_mask"][:, 1:].sum(-1))
    torch.testing.assert_close(out.loss, (out.reconstruction_loss + 0.7 * out.kl).mean())
    expected_kl = 0.5 * (out.mean**2 + out.logvar.exp() - out.logvar - 1)
    torch.testing.assert_close(out.kl_per_dim, expected_kl)
    out.loss.backward()
    assert model.posterior.weight.grad is not None and model.posterior.weight.grad.abs().sum() > 0
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_dimensionwise_kl_threshold_modes(parts):
    model = make(parts).eval()
    batch = model.processor(SENTENCES[:2])
    base = model(**batch, beta=1.0, kl_threshold=0.0)
    lam = float(base.kl_per_dim.detach().median())
    masked = model(**batch, beta=1.0, kl_threshold=lam)
    expected = (base.kl_per_dim * (base.kl_per_dim > lam)).sum(-1)
    torch.testing.assert_close(masked.kl_thresholded, expected)
    assert torch.all(masked.kl_thresholded < base.kl)  # some dimensions were dropped
    model.config.kl_threshold_mode = "max"
    maxed = model(**batch, beta=1.0, kl_threshold=lam)
    torch.testing.assert_close(maxed.kl_thresholded, base.kl_per_dim.clamp(min=lam).sum(-1))
    # beta = 0 is an autoencoder step: the un-thresholded KL is reported, the loss is the reconstruction alone
    ae = model(**batch, beta=0.0, kl_threshold=lam)
    torch.testing.assert_close(ae.kl_thresholded, base.kl)
    torch.testing.assert_close(ae.loss, ae.reconstruction_loss.mean())


def test_length_weighted_loss(parts):
    model = make(parts, length_weighted_loss=True).eval()
    batch = model.processor(SENTENCES[:3])
    out = model(**batch, beta=0.0)
    # divided by the sentence's decoder tokens BOS … EOS (BOS included), as the original's `sent_length`
    lengths = batch["decoder_attention_mask"].sum(-1)
    assert torch.equal(lengths, out.num_tokens + 1)
    torch.testing.assert_close(out.loss, (out.reconstruction_loss / lengths).mean())


def test_float64_model_keeps_float64_loss_terms(parts):
    """KL and cross-entropy are computed in at least fp32, and in float64 for a float64 model (the parity script
    compares with the original in float64)."""
    model = make(parts).double().eval()
    out = model(**model.processor(SENTENCES[:2]), beta=1.0)
    assert out.kl_per_dim.dtype == out.reconstruction_loss.dtype == out.loss.dtype == torch.float64


def test_sampling_in_train_mean_in_eval(parts):
    model = make(parts)
    batch = model.processor(SENTENCES[:2])
    model.train()
    out = model(**batch)
    assert not torch.allclose(out.latents, out.mean)
    model.eval()
    out = model(**batch)
    torch.testing.assert_close(out.latents, out.mean)


def test_overfit_one_batch(parts):
    """A batch is memorised: the loss falls by at least 80% within a few dozen steps."""
    model = no_dropout(make(parts, latent_injection="memory", kl_threshold=0.0))
    batch = model.processor(SENTENCES[:4])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        out = model(**batch, beta=0.1)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert min(losses[-5:]) < 0.2 * losses[0], losses


# ------------------------------------------------------------------ the latent reaches every position


def _position_dependence_on_z(model, batch):
    z = torch.randn(1, model.config.latent_size, requires_grad=True)
    ids = batch["decoder_input_ids"][:1]
    logits = model.decode(ids, z)
    grads = []
    for t in range(ids.shape[1]):
        (g,) = torch.autograd.grad(logits[0, t].sum(), z, retain_graph=True)
        grads.append(g.abs().sum().item())
    return grads


@pytest.mark.parametrize("decoder", ["gpt2", "llama"])
@pytest.mark.parametrize("injection", ["memory", "embedding", "prefix"])
def test_latent_reaches_every_position(parts, decoder, injection):
    model = no_dropout(make(parts, decoder, latent_injection=injection)).eval()
    batch = model.processor(SENTENCES[:1])
    grads = _position_dependence_on_z(model, batch)
    assert all(g > 0 for g in grads), grads
    # and it changes the output
    ids = batch["decoder_input_ids"]
    with torch.no_grad():
        a = model.decode(ids, torch.zeros(1, 8))
        b = model.decode(ids, torch.full((1, 8), 3.0))
    assert (a - b).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("decoder", ["gpt2", "llama"])
def test_prefix_is_a_soft_prompt_token_before_bos(parts, decoder):
    """`prefix`: the decoder sees [latent_to_prefix(z), token embeddings] at positions 0, 1, ... and Optimus returns the
    logits of the token positions: the same as calling the decoder on those embeddings directly."""
    model = make(parts, decoder, latent_injection="prefix").eval()
    assert not hasattr(model, "latent_to_memory") and not hasattr(model, "latent_to_embedding")
    ids = model.processor(SENTENCES[:2])["decoder_input_ids"]
    z = torch.randn(2, 8)
    with torch.no_grad():
        embeds = torch.cat([model.latent_to_prefix(z).unsqueeze(1), model.decoder.get_input_embeddings()(ids)], dim=1)
        direct = model.decoder(inputs_embeds=embeds, position_ids=torch.arange(ids.shape[1] + 1).expand(2, -1)).logits
        assert_fp32_close(model.decode(ids, z), direct[:, 1:])
        sequences = model.generate(latents=z, max_new_tokens=5)
        assert bool((sequences[:, 0] == model.config.decoder_bos_token_id).all())
    # the head starts at the scale of the decoder's token embeddings (for a unit-variance z)
    token_rms = model.decoder.get_input_embeddings().weight.pow(2).mean().sqrt()
    with torch.no_grad():
        prefix_rms = model.latent_to_prefix(torch.randn(4096, 8)).pow(2).mean().sqrt()
    assert 0.7 < float(prefix_rms / token_rms) < 1.4


def test_memory_slot_is_one_past_position(parts):
    """The slot enters as past length 1: tokens take positions 1.. and the cache holds exactly one slot per layer."""
    model = make(parts, latent_injection="memory").eval()
    z = torch.randn(2, 8)
    cache = model.build_latent_cache(z)
    assert cache.get_seq_length() == 1 and len(cache.layers) == model.config.decoder.num_hidden_layers
    assert cache.layers[0].keys.shape == (2, 4, 1, 8)
    # read-only: a forward pass does not grow it (safe under gradient checkpointing)
    ids = model.processor(SENTENCES[:2])["decoder_input_ids"]
    model.decoder(input_ids=ids, cache=cache, use_cache=False)
    assert cache.get_seq_length() == 1


def test_llama_memory_uses_grouped_query_geometry(parts):
    model = make(parts, "llama", latent_injection="memory")
    cfg = model.config.decoder
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    assert model.latent_to_memory.out_features == cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim


# ------------------------------------------------------------------ generation


@pytest.mark.parametrize("decoder", ["gpt2", "llama"])
@pytest.mark.parametrize("injection", ["memory", "embedding", "both", "prefix"])
def test_greedy_generation_matches_teacher_forcing(parts, decoder, injection):
    """Cached generation and the teacher-forced forward agree: same positions, same slot, same embedding shift."""
    model = make(parts, decoder, latent_injection=injection).eval()
    z = torch.randn(3, 8) * 3
    seq = model.generate(latents=z, max_new_tokens=8, eos_token_id=None)
    assert seq.shape == (3, 9) and torch.all(seq[:, 0] == model.config.decoder_bos_token_id)
    with torch.no_grad():
        logits = model.decode(seq, z)
    assert torch.equal(logits[:, :-1].argmax(-1), seq[:, 1:])
    assert torch.equal(seq, model.generate(latents=z, max_new_tokens=8, eos_token_id=None))  # deterministic


@pytest.mark.parametrize("injection", ["both", "prefix"])
def test_beam_and_sampling(parts, injection):
    model = make(parts, latent_injection=injection).eval()
    z = torch.randn(2, 8)
    beams = model.generate(latents=z, max_new_tokens=5, num_beams=3, num_return_sequences=2)
    assert beams.shape[0] == 4
    torch.manual_seed(1)
    s1 = model.generate(latents=z, max_new_tokens=5, do_sample=True, top_k=0, num_return_sequences=3)
    torch.manual_seed(1)
    s2 = model.generate(latents=z, max_new_tokens=5, do_sample=True, top_k=0, num_return_sequences=3)
    assert s1.shape[0] == 6 and torch.equal(s1, s2)


def test_latent_helpers(parts):
    model = make(parts).eval()
    batch = model.processor(SENTENCES[:2])
    mean = model.encode(batch["input_ids"], batch["attention_mask"]).mean
    interp = model.interpolate(mean[:1], mean[1:], num_steps=4, max_new_tokens=5)
    assert interp.alphas.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert interp.latents.shape == (1, 4, 8)
    torch.testing.assert_close(interp.latents[0, 0], mean[0])
    torch.testing.assert_close(interp.latents[0, -1], mean[1])
    recon = model.reconstruct(batch["input_ids"][:1], batch["attention_mask"][:1], max_new_tokens=5)
    assert torch.equal(interp.sequences[:1], recon)
    analogy = model.analogy(mean[:1], mean[1:], mean[:1], degree=1.0, max_new_tokens=5)
    assert torch.equal(analogy, model.generate(latents=mean[1:], max_new_tokens=5))
    with pytest.raises(ValueError, match="num_steps"):
        model.interpolate(mean[:1], mean[1:], num_steps=1)
    with pytest.raises(ValueError, match="latents"):
        model.generate(latents=torch.randn(2, 5))


# ------------------------------------------------------------------ persistence and checkpointing


@pytest.mark.parametrize("decoder,injection", [("gpt2", "both"), ("llama", "both"), ("llama", "prefix")])
def test_save_load_identical_and_auto(parts, decoder, injection, tmp_path):
    model = make(parts, decoder, latent_injection=injection).eval()
    batch = model.processor(SENTENCES[:3])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    assert (tmp_path / "decoder_tokenizer").is_dir()
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, OptimusForConditionalGeneration)
    assert isinstance(loaded.processor, OptimusProcessor)
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    for name in saved:  # save -> load is bitwise
        assert torch.equal(saved[name], restored[name]), name
    with torch.no_grad():  # two instances: equal up to fp32 kernel choice, not bitwise
        assert_fp32_close(loaded(**batch).logits, model(**batch).logits)
        z = torch.randn(2, 8)
        sequence = loaded.generate(latents=z, max_new_tokens=6)
        assert sequence.shape[0] == 2 and bool((sequence[:, 0] == loaded.config.decoder_bos_token_id).all())
        assert_fp32_close(loaded.decode(sequence, z), model.decode(sequence, z))


def test_gradient_checkpointing_keeps_the_memory(parts):
    model = no_dropout(make(parts, latent_injection="both"))
    batch = model.processor(SENTENCES[:3])
    torch.manual_seed(3)
    plain = model(**batch)
    plain.loss.backward()
    grad = model.latent_to_memory.weight.grad.clone()
    model.zero_grad()
    model.gradient_checkpointing_enable()
    assert model.decoder.transformer.h[0].gradient_checkpointing
    torch.manual_seed(3)
    ckpt = model(**batch)
    ckpt.loss.backward()
    torch.testing.assert_close(plain.loss, ckpt.loss)
    torch.testing.assert_close(grad, model.latent_to_memory.weight.grad, rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise(parts):
    model = make(parts)
    batch = model.processor(SENTENCES[:2])
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(input_ids=batch["input_ids"])
    with pytest.raises(ValueError, match="input_ids"):
        model(decoder_input_ids=batch["decoder_input_ids"])
    with pytest.raises(ValueError, match="latents"):
        model(decoder_input_ids=batch["decoder_input_ids"], latents=torch.randn(2, 3))
    with pytest.raises(ValueError, match="beta"):
        model(**batch, beta=-1)
    with pytest.raises(ValueError, match="text"):
        model.processor([])
    with pytest.raises(ValueError, match="OptimusConfig"):
        OptimusForConditionalGeneration(bert_config(10))


def test_forward_rejects_unknown_arguments_by_name(parts):
    """Unknown keyword arguments raise (naming them), and Trainer does not take the model for one that accepts loss
    kwargs such as `num_items_in_batch`."""
    import inspect

    model = make(parts)
    batch = model.processor(SENTENCES[:2])
    with pytest.raises(TypeError, match="num_items_in_batch"):
        model(**batch, num_items_in_batch=3)
    kinds = {p.kind for p in inspect.signature(model.forward).parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds


def test_generate_and_processor_reject_unknown_keywords_by_name(parts):
    """Nothing is silently dropped: a misspelt generation argument, a decoder input Optimus builds itself, and an
    unknown tokenizer argument all raise, naming the keyword."""
    model = make(parts, latent_injection="both").eval()
    z = torch.randn(2, 8)
    batch = model.processor(SENTENCES[:2])
    for call in (
        lambda: model.generate(latents=z, max_new_token=3),
        lambda: model.reconstruct(batch["input_ids"], batch["attention_mask"], max_new_token=3),
        lambda: model.interpolate(z[:1], z[1:], num_steps=3, max_new_token=3),
        lambda: model.analogy(z[:1], z[1:], z[:1], max_new_token=3),
    ):
        with pytest.raises(ValueError, match="max_new_token"):
            call()
    with pytest.raises(ValueError, match="past_key_values"):
        model.generate(latents=z, past_key_values=None)
    with pytest.raises(TypeError, match="lowercase"):
        model.processor(SENTENCES[:2], lowercase=True)
    with pytest.raises(TypeError, match="skip_special"):
        model.processor.batch_decode([[1, 2]], skip_special=True)


def test_auto_processor_returns_both_tokenizers(parts, tmp_path):
    from transformers import AutoProcessor

    model = make(parts)
    model.save_pretrained(tmp_path / "m")
    processor = AutoProcessor.from_pretrained(tmp_path / "m")
    assert isinstance(processor, OptimusProcessor)
    assert processor.decoder_tokenizer.bos_token_id is not None
    batch = processor(SENTENCES[:2])
    assert set(batch) == {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}


@pytest.mark.parametrize("injection", ["memory", "both"])
def test_bf16_autocast_training_step(parts, injection):
    model = make(parts, latent_injection=injection).train()
    batch = model.processor(SENTENCES[:4], return_tensors="pt")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, beta=1.0, kl_threshold=0.1)
    assert out.logits.dtype == torch.bfloat16 and out.kl.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.posterior.weight.grad is not None and torch.isfinite(model.posterior.weight.grad).all()


def test_posterior_mean_batch_norm_keeps_every_dimension_active(parts, tmp_path):
    """BN-VAE: in training, μ over a batch has mean `shift` and variance γ² per dimension whatever the encoder does;
    eval mode (and a batch of one) uses the running statistics, which save and load with the weights."""
    with pytest.raises(ValueError, match="posterior_mean_batch_norm"):
        make(parts, posterior_mean_batch_norm=0.0)
    model = no_dropout(make(parts, posterior_mean_batch_norm=0.5, latent_injection="memory"))
    batch = model.processor(SENTENCES)
    with torch.no_grad():
        model.posterior_mean_norm.shift.fill_(0.25)
    model.train()
    encoded = model.encode(batch["input_ids"], batch["attention_mask"])
    mean = encoded.mean.double()
    raw_var = model.posterior(encoded.pooled)[:, :8].double().var(0, unbiased=False)  # before the normalization
    torch.testing.assert_close(mean.mean(0), torch.full((8,), 0.25, dtype=torch.float64), atol=1e-5, rtol=0)
    expected = 0.25 * raw_var / (raw_var + 1e-5)  # γ² up to BatchNorm's ε (this tiny encoder's μ barely varies)
    torch.testing.assert_close(mean.var(0, unbiased=False), expected, atol=1e-5, rtol=1e-4)
    norm = model.posterior_mean_norm
    assert not torch.equal(norm.running_mean, torch.zeros(8)) and not torch.equal(norm.running_var, torch.ones(8))
    running = norm.running_mean.clone()
    one = model.encode(batch["input_ids"][:1], batch["attention_mask"][:1]).mean  # a batch of one: running statistics
    assert torch.equal(norm.running_mean, running)
    model.eval()
    with torch.no_grad():
        eval_mean = model.encode(batch["input_ids"], batch["attention_mask"]).mean
    assert_fp32_close(eval_mean[:1], one.detach())
    (mean.sum()).backward()  # the shift learns; the scale γ is a constant of the config
    assert norm.shift.grad is not None and [n for n, _ in norm.named_parameters()] == ["shift"]
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.posterior_mean_batch_norm == 0.5
    assert torch.equal(loaded.posterior_mean_norm.running_var, norm.running_var)
    with torch.no_grad():
        assert_fp32_close(loaded.encode(batch["input_ids"], batch["attention_mask"]).mean, eval_mean)
