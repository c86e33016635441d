"""evaluate_optimus and `python -m hf_dgm.evaluate optimus` on a tiny random Optimus (BERT + GPT-2, word-level tokenizers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import BertConfig, GPT2Config, PreTrainedTokenizerFast

import hf_dgm  # noqa: F401
from hf_dgm.evaluate import load_sentences, main
from hf_dgm.metrics import vae_math
from hf_dgm.models.optimus import OptimusConfig, OptimusForConditionalGeneration, OptimusProcessor
from hf_dgm.training.optimus.evaluation import count_words, evaluate_optimus


SENTENCES = [
    "a man is playing a guitar .",
    "two dogs run through the snow .",
    "a woman is reading a book in the park .",
    "the cat sits on the mat .",
    "people are walking down the street .",
    "a dog is sleeping .",
]
from shared_data import SHARED_DATA as DATA_DIR  # noqa: E402


def _word_vocab(specials):
    words = sorted({w for s in SENTENCES for w in s.split()})
    return {tok: i for i, tok in enumerate(specials + words)}


def _tokenizers():
    enc_vocab = _word_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    enc = Tokenizer(models.WordLevel(vocab=enc_vocab, unk_token="[UNK]"))
    enc.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    enc.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", enc_vocab["[CLS]"]), ("[SEP]", enc_vocab["[SEP]"])]
    )
    enc_tok = PreTrainedTokenizerFast(
        tokenizer_object=enc, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    dec_vocab = _word_vocab(["<PAD>", "<BOS>", "<EOS>", "<UNK>"])
    dec = Tokenizer(models.WordLevel(vocab=dec_vocab, unk_token="<UNK>"))
    dec.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    dec.decoder = decoders.WordPiece(prefix="##")  # joins word tokens with spaces
    dec_tok = PreTrainedTokenizerFast(
        tokenizer_object=dec, unk_token="<UNK>", pad_token="<PAD>", bos_token="<BOS>", eos_token="<EOS>"
    )
    return enc_tok, dec_tok


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    enc_tok, dec_tok = _tokenizers()
    config = OptimusConfig(
        encoder=BertConfig(
            vocab_size=len(enc_tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, initializer_range=0.5,  # a random encoder whose [CLS] depends on the words
        ),
        decoder=GPT2Config(
            vocab_size=len(dec_tok), n_embd=32, n_layer=2, n_head=4, n_positions=64,
            bos_token_id=dec_tok.bos_token_id, eos_token_id=dec_tok.eos_token_id, pad_token_id=dec_tok.pad_token_id,
        ),
        latent_size=8,
        latent_injection="both",
        max_new_tokens=12,
        decoder_bos_token_id=dec_tok.bos_token_id,
        decoder_eos_token_id=dec_tok.eos_token_id,
        decoder_pad_token_id=dec_tok.pad_token_id,
        encoder_pad_token_id=enc_tok.pad_token_id,
    )
    model = OptimusForConditionalGeneration(config)
    with torch.no_grad():  # spread the posteriors so that MI / AU are not trivially zero
        model.posterior.weight.normal_(0.0, 0.2)
    model.processor = OptimusProcessor(enc_tok, dec_tok)
    path = tmp_path_factory.mktemp("optimus") / "tiny-optimus"
    model.save_pretrained(path)
    return model.eval(), model.processor, path


def test_metrics_are_finite_and_consistent(tiny):
    model, processor, _ = tiny
    m = evaluate_optimus(model, processor, SENTENCES, num_importance_samples=12, chunk_size=5, batch_size=4, progress=False)
    for key in ("iw_nll", "neg_elbo", "kl", "reconstruction_nll", "ppl_per_token", "ppl_per_word", "mutual_information"):
        assert math.isfinite(m[key]), key
    assert m["num_examples"] == len(SENTENCES) and m["num_truncated"] == 0
    # word-level tokenizer: one token per word, plus BOS and EOS (counted, as the original)
    assert m["num_tokens"] == sum(len(s.split()) + 2 for s in SENTENCES)
    assert m["num_words"] == sum(count_words(s) for s in SENTENCES) == sum(len(s.split()) + 1 for s in SENTENCES)
    total_nll = m["iw_nll"] * len(SENTENCES)
    assert m["ppl_per_token"] == pytest.approx(math.exp(total_nll / m["num_tokens"]), rel=1e-9)
    assert m["ppl_per_word"] == pytest.approx(math.exp(total_nll / m["num_words"]), rel=1e-9)
    assert m["ppl_per_word"] > m["ppl_per_token"]
    assert m["neg_elbo"] == pytest.approx(m["kl"] + m["reconstruction_nll"], rel=1e-9)
    # the IW bound is tighter than the ELBO (on average over sentences)
    assert m["iw_nll"] <= m["neg_elbo"] + 1e-6
    assert m["kl"] > 0 and 0 < m["active_units"] <= m["latent_size"] == 8
    assert 0 < m["mutual_information"] < math.log(len(SENTENCES)) + 0.5
    assert 0.0 <= m["reconstruction_bleu"] <= 100.0 and len(m["reconstruction_examples"]) == 5
    # deterministic given the seed
    again = evaluate_optimus(model, processor, SENTENCES, num_importance_samples=12, chunk_size=5, batch_size=4, progress=False, compute_bleu=False)
    assert again["iw_nll"] == pytest.approx(m["iw_nll"], abs=1e-9)
    assert again["mutual_information"] == pytest.approx(m["mutual_information"], abs=1e-9)


def test_iw_nll_matches_unbatched_recomputation(tiny):
    """The padded, chunked, batched IW estimate equals one computed sentence by sentence with the same z samples."""
    model, processor, _ = tiny
    num_samples, seed = 4, 3
    m = evaluate_optimus(
        model, processor, SENTENCES, num_importance_samples=num_samples, chunk_size=num_samples,
        batch_size=len(SENTENCES), progress=False, compute_bleu=False, seed=seed,
    )
    with torch.no_grad():
        batch = processor(SENTENCES, return_tensors="pt")
        post = model.encode(batch["input_ids"], batch["attention_mask"])
        latents = vae_math.sample_gaussian(post.mean, post.logvar, num_samples, generator=torch.Generator().manual_seed(seed))
        log_px = []
        for i, sentence in enumerate(SENTENCES):
            one = processor([sentence], return_tensors="pt")  # no padding at all
            ll = []
            for k in range(num_samples):
                logits = model.decode(one["decoder_input_ids"], latents[i, k : k + 1])
                targets = one["decoder_input_ids"][0, 1:]
                ll.append(torch.log_softmax(logits[0, :-1], -1).gather(-1, targets[:, None]).sum())
            log_w = vae_math.log_importance_weights(latents[i : i + 1], post.mean[i : i + 1], post.logvar[i : i + 1], torch.stack(ll)[None])
            log_px.append(torch.logsumexp(log_w, dim=1) - math.log(num_samples))
    assert m["iw_nll"] == pytest.approx(-float(torch.cat(log_px).mean()), abs=1e-4)


def test_reconstruction_bleu_is_100_for_a_perfect_autoencoder(tiny, monkeypatch):
    model, processor, _ = tiny
    sentences = SENTENCES[:4]
    encoded = processor(sentences, return_tensors="pt")
    pad = processor.tokenizer.pad_token_id
    by_input = {
        tuple(i for i in ids.tolist() if i != pad): dec for ids, dec in zip(encoded["input_ids"], encoded["decoder_input_ids"])
    }

    def perfect_generate(input_ids=None, attention_mask=None, **kwargs):  # echoes each input as `BOS words EOS PAD..`
        return torch.stack([by_input[tuple(i for i in ids.tolist() if i != pad)] for ids in input_ids])

    monkeypatch.setattr(model, "generate", perfect_generate)
    m = evaluate_optimus(model, processor, sentences, num_importance_samples=2, batch_size=3, progress=False)
    assert m["reconstruction_bleu"] == pytest.approx(100.0)
    assert m["reconstruction_exact_match"] == 1.0
    assert m["reconstruction_examples"][0]["input"] == sentences[0]
    assert m["reconstruction_examples"][0]["reconstruction"].replace(" ", "") == sentences[0].replace(" ", "")


def test_rejects_bad_inputs(tiny):
    model, processor, _ = tiny
    with pytest.raises(ValueError):
        evaluate_optimus(model, processor, [], progress=False)
    with pytest.raises(ValueError):
        evaluate_optimus(model, processor, "a single string", progress=False)
    with pytest.raises(ValueError):
        evaluate_optimus(model, processor, SENTENCES, num_importance_samples=0, progress=False)


def test_load_sentences(tmp_path):
    text = tmp_path / "sents.txt"
    text.write_text("\n".join(SENTENCES[:3]) + "\n\n")
    assert load_sentences(str(text)) == SENTENCES[:3]
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "test.txt").write_text("\n".join(SENTENCES))
    (folder / "valid.txt").write_text(SENTENCES[0])
    assert load_sentences(str(folder), split="test", max_examples=2) == SENTENCES[:2]
    assert load_sentences(str(folder), split="valid") == SENTENCES[:1]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"id": i, "sentence": s}) for i, s in enumerate(SENTENCES[:2])))
    assert load_sentences(str(rows), text_column="sentence") == SENTENCES[:2]
    with pytest.raises(ValueError):
        load_sentences(str(rows), text_column="missing")


def test_cli_writes_json(tiny, tmp_path, capsys):
    _, _, model_dir = tiny
    data = tmp_path / "test.txt"
    data.write_text("\n".join(SENTENCES))
    out = tmp_path / "metrics.json"
    rc = main([
        "optimus", str(model_dir), "--dataset", str(data), "--max_examples", "4", "--num_importance_samples", "6",
        "--batch_size", "2", "--device", "cpu", "--quiet", "--output", str(out),
    ])
    assert rc == 0
    metrics = json.loads(out.read_text())
    assert metrics["num_examples"] == 4 and metrics["num_importance_samples"] == 6
    for key in ("iw_nll", "ppl_per_token", "ppl_per_word", "neg_elbo", "kl", "mutual_information", "active_units", "reconstruction_bleu"):
        assert key in metrics
    assert math.isfinite(metrics["iw_nll"])
    printed = capsys.readouterr().out
    assert "ppl_per_token" in printed and "metrics written to" in printed


@pytest.mark.skipif(not (DATA_DIR / "ptb" / "test.txt").is_file(), reason="shared data (../shared/data/ptb) not present")
def test_cli_on_ptb_folder(tiny, tmp_path):
    _, _, model_dir = tiny
    out = tmp_path / "ptb.json"
    main([
        "optimus", str(model_dir), "--dataset", str(DATA_DIR / "ptb"), "--split", "test", "--max_examples", "3",
        "--num_importance_samples", "2", "--no_bleu", "--max_length", "60", "--device", "cpu", "--quiet", "--output", str(out),
    ])
    metrics = json.loads(out.read_text())
    assert metrics["num_examples"] == 3 and "reconstruction_bleu" not in metrics
    assert math.isfinite(metrics["iw_nll"]) and metrics["num_tokens"] > 3 * 2


def test_cli_cpu_defaults_and_estimate(tiny, tmp_path, capsys):
    _, _, model_dir = tiny
    data = tmp_path / "test.txt"
    data.write_text("\n".join((SENTENCES * 100)[:240]))  # 240 sentences: the CPU default keeps 200
    out = tmp_path / "metrics.json"
    rc = main(["optimus", str(model_dir), "--dataset", str(data), "--device", "cpu", "--no_bleu", "--batch_size", "50",
               "--output", str(out)])
    assert rc == 0
    metrics = json.loads(out.read_text())
    assert metrics["num_examples"] == 200 and metrics["num_importance_samples"] == 20
    printed = capsys.readouterr().out
    assert "200 sentences x K = 20 importance samples on cpu: about" in printed and " min (one batch of 50 took" in printed
