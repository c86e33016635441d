"""OptimusForDialogResponse (SpaceFusion over Optimus): speaker types, the fusion regulariser, the S2S branch, the
`dialog-response` pipeline, save/load, and a tiny training run on a dialog set built here."""

from __future__ import annotations

import json
import math

import pytest
import torch

import hf_dgm  # noqa: F401  (registers the family)
from hf_dgm.models.optimus_dialog import OptimusDialogConfig, OptimusForDialogResponse
from hf_dgm.models.optimus_dialog.modeling_optimus_dialog import (
    PAIRWISE_EPS,
    fusion_regularizer,
    nearest_neighbour_distance,
    speaker_token_type_ids,
)
from hf_dgm.models.optimus_dialog.processing_optimus_dialog import context_token_ids, encode_contexts
from optimus_tiny import SENTENCES, build_parts
from tolerances import assert_fp32_close

S = SENTENCES
CONTEXTS = [[S[0], S[7]], [S[4]]]
RESPONSES = [S[6], S[1]]
DIALOGS = [[S[i % 8], S[(i + 1) % 8], S[(i + 3) % 8]] for i in range(8)]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("dialog-parts"))


@pytest.fixture(scope="module")
def model(parts):
    torch.manual_seed(0)
    enc, dec = parts
    return OptimusForDialogResponse.from_encoder_decoder_pretrained(
        str(enc), str(dec), latent_size=8, dialog_kwargs={"num_s2s_layers": 1}
    ).eval()


def batch_of(model):
    ctx = encode_contexts(model.processor.tokenizer, CONTEXTS)
    return {**ctx, **model.processor(RESPONSES, return_tensors="pt")}


# ------------------------------------------------------------------------------------------ pieces


def test_speaker_types_alternate_backwards_from_the_last_turn():
    cls, sep, pad = 2, 3, 0
    ids = torch.tensor([[cls, 7, 8, sep, 9, sep, 10, 11, sep], [cls, 7, sep, pad, pad, pad, pad, pad, pad]])
    mask = (ids != pad).long()
    types = speaker_token_type_ids(ids, sep, mask)
    # three turns: the first (with [CLS]) is type 0, the second 1, the last 0; a one-turn context is all 0
    assert types.tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]]
    two = speaker_token_type_ids(torch.tensor([[cls, 7, sep, 8, sep]]), sep)
    assert two.tolist() == [[1, 1, 1, 0, 0]]  # the original's ids2speaker: last turn speaker 0 after its flip


def test_context_tokens_keep_cls_and_the_most_recent_turns(model):
    tok = model.processor.tokenizer
    ids = context_token_ids(tok, ["a man", "the cat"])
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2 and ids[-1] == tok.sep_token_id
    cut = context_token_ids(tok, ["a man", "the cat"], max_length=4)
    assert cut == [tok.cls_token_id] + ids[-3:]  # the oldest tokens go first
    with pytest.raises(ValueError, match="turn 1"):
        encode_contexts(tok, [["a man", " "]])


def test_fusion_regularizer_hand_case():
    z_ae = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    z_s2s = z_ae.clone()
    reg, pull, push = fusion_regularizer(z_ae, z_s2s, push_weight=2.0, push="nearest")
    assert pull.item() == pytest.approx(PAIRWISE_EPS * math.sqrt(2), rel=1e-3)  # identical pairs: only the eps
    assert push.item() == pytest.approx(5.0, abs=1e-5)  # the other latent is 5 away
    assert reg.item() == pytest.approx((pull.item() - 10.0) / math.sqrt(2), rel=1e-6)
    # the released code's push finds each latent itself: the term is eps * sqrt(d), whatever the latents
    _, _, released = fusion_regularizer(z_ae, z_s2s, push="released")
    assert released.item() == pytest.approx(PAIRWISE_EPS * math.sqrt(2), rel=1e-3)
    assert nearest_neighbour_distance(torch.zeros(1, 3)).item() == 0.0  # no other latent


def test_config_validation_and_round_trip(model, tmp_path):
    config = model.config
    assert config.encoder_sep_token_id == model.processor.tokenizer.sep_token_id
    config.save_pretrained(tmp_path)
    again = OptimusDialogConfig.from_pretrained(tmp_path)
    assert again.to_dict() == config.to_dict() and again.optimus.latent_size == 8
    with pytest.raises(ValueError, match="fusion_push"):
        OptimusDialogConfig(optimus=config.optimus, fusion_push="far")
    with pytest.raises(ValueError, match="num_s2s_layers"):
        OptimusDialogConfig(optimus=config.optimus, num_s2s_layers=3)  # the tiny encoder has 2 layers
    with pytest.raises(ValueError, match="fusion_weight"):
        OptimusDialogConfig(optimus=config.optimus, fusion_weight=float("nan"))


# ------------------------------------------------------------------------------------------ the model


def test_s2s_branch_starts_as_the_shared_encoder(model):
    """The S2S layers are copies of the encoder's last layers, so before training z_S2S of a context is the Optimus
    posterior of the same ids with the same speaker types."""
    ctx = encode_contexts(model.processor.tokenizer, CONTEXTS)
    types = speaker_token_type_ids(ctx["context_input_ids"], model.config.encoder_sep_token_id, ctx["context_attention_mask"])
    with torch.no_grad():
        s2s = model.encode_context(ctx["context_input_ids"], ctx["context_attention_mask"])
        plain = model.optimus.encode(ctx["context_input_ids"], ctx["context_attention_mask"], token_type_ids=types)
    assert_fp32_close(s2s.mean, plain.mean)
    assert_fp32_close(s2s.logvar, plain.logvar)
    assert s2s.mean.shape == (2, 8)
    other = model.encode_context(ctx["context_input_ids"], ctx["context_attention_mask"], torch.zeros_like(types))
    assert not torch.allclose(other.mean, s2s.mean)  # the speaker types reach the encoder


def test_forward_objective_and_gradients(model):
    batch = batch_of(model)
    model.train()
    try:
        torch.manual_seed(0)
        out = model(**batch)
        expected = out.reconstruction_loss.mean() + model.config.fusion_weight * out.fusion_loss
        assert_fp32_close(out.loss, expected)
        assert out.branch_reconstruction_losses.shape == (2, 3)
        assert_fp32_close(out.reconstruction_loss, out.branch_reconstruction_losses.mean(1))
        assert torch.isfinite(out.loss) and out.latents_interp.shape == (2, 8)
        model.zero_grad()
        out.loss.backward()
        for name in ("s2s_layers.0.attention.self.query.weight", "optimus.posterior.weight",
                     "optimus.latent_to_memory.weight", "optimus.encoder.encoder.layer.0.attention.self.query.weight"):
            grad = dict(model.named_parameters())[name].grad
            assert grad is not None and grad.abs().sum() > 0, name
        torch.manual_seed(0)
        weighted = model(**batch, fusion_weight=0.0)
        assert_fp32_close(weighted.loss, weighted.reconstruction_loss.mean())
    finally:
        model.zero_grad()
        model.eval()
    with torch.no_grad():  # eval: posterior means, midpoint interpolation without noise -> deterministic
        first, second = model(**batch), model(**batch)
    assert torch.equal(first.loss, second.loss)
    assert_fp32_close(first.latents_interp, (first.response_mean + first.context_mean) / 2)
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(context_input_ids=batch["context_input_ids"], input_ids=batch["input_ids"])


def test_generate_responses_shapes_and_seeds(model):
    ctx = encode_contexts(model.processor.tokenizer, CONTEXTS)
    args = (ctx["context_input_ids"], ctx["context_attention_mask"])
    torch.manual_seed(1)
    ids, latents = model.generate_responses(*args, num_responses=3, max_new_tokens=6, output_latents=True)
    assert ids.shape[0] == 6 and latents.shape == (6, 8)
    assert not torch.allclose(latents[0], latents[1])  # each response has its own posterior sample
    torch.manual_seed(1)
    assert torch.equal(model.generate_responses(*args, num_responses=3, max_new_tokens=6), ids)
    greedy = model.generate_responses(*args, num_responses=2, sample_latent=False, do_sample=False, max_new_tokens=6)
    assert torch.equal(greedy[0], greedy[1])
    with pytest.raises(ValueError, match="num_responses"):
        model.generate_responses(*args, num_return_sequences=2)


def test_save_load_pipeline_round_trip(model, tmp_path):
    from transformers import AutoModel, pipeline

    model.save_pretrained(tmp_path / "dialog")
    loaded = AutoModel.from_pretrained(tmp_path / "dialog").eval()
    assert type(loaded) is OptimusForDialogResponse and loaded.processor is not None
    batch = batch_of(model)
    with torch.no_grad():
        a, b = model(**batch), loaded(**batch)
    for name in ("loss", "branch_reconstruction_losses", "context_mean", "context_logvar", "response_mean"):
        assert_fp32_close(getattr(b, name), getattr(a, name), msg=name)

    chat = pipeline("dialog-response", model=str(tmp_path / "dialog"))
    out = chat(CONTEXTS[0], num_responses=3, seed=0, max_new_tokens=6)
    assert len(out) == 3 and all(isinstance(r["text"], str) for r in out)
    assert chat(CONTEXTS[0], num_responses=3, seed=0, max_new_tokens=6) == out  # seeded
    assert chat({"context": CONTEXTS[0]}, num_responses=3, seed=0, max_new_tokens=6) == out
    direct = pipeline("dialog-response", model=model)  # the in-memory model gives the same responses
    assert direct(CONTEXTS[0], num_responses=3, seed=0, max_new_tokens=6) == out
    batched = chat([CONTEXTS[0], {"context": CONTEXTS[1][0]}], num_responses=2, seed=0, max_new_tokens=6)
    assert len(batched) == 2 and all(len(r) == 2 for r in batched)
    with_latents = chat(CONTEXTS[1][0], num_responses=2, seed=0, max_new_tokens=6, return_tensors=True)
    assert with_latents[0]["latent"].shape == (8,)
    for bad, message in (([], "empty"), ({"turns": "x"}, "'context'"), ("  ", "non-empty")):
        with pytest.raises(ValueError, match=message):
            chat(bad)
    with pytest.raises(ValueError, match="num_responses"):
        chat(CONTEXTS[0], num_return_sequences=3)
    with pytest.raises(ValueError, match="num_responses"):
        chat(CONTEXTS[0], num_responses=0)
    with pytest.raises(ValueError, match="model_type 'optimus'"):
        OptimusForDialogResponse.from_pretrained(_optimus_folder(model, tmp_path))


def _optimus_folder(model, tmp_path):
    model.optimus.save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


def test_from_optimus_folder_wraps_a_trained_vae(model, tmp_path):
    folder = _optimus_folder(model, tmp_path)
    wrapped = OptimusForDialogResponse.from_optimus(str(folder), num_s2s_layers=2).eval()
    assert wrapped.config.num_s2s_layers == 2 and wrapped.processor is not None
    source = model.optimus.encoder.encoder.layer
    for copy_layer, layer in zip(wrapped.s2s_layers, source):
        for (name, p), (_, q) in zip(copy_layer.named_parameters(), layer.named_parameters()):
            assert torch.equal(p, q), name
            assert p.data_ptr() != q.data_ptr()  # copies, not shared: the S2S layers train on their own


# ------------------------------------------------------------------------------------------ training


def test_tiny_training_run_decreases_the_loss_and_round_trips(parts, tmp_path):
    """A few steps on a tiny dialog set through `hf-dgm train optimus_dialog`'s entry: finite, decreasing loss, a
    run folder with the dialog metrics and a card, and the saved model gives the same seeded responses."""
    from transformers import pipeline

    from hf_dgm.training.optimus_dialog.run import main

    enc, dec = parts
    data = tmp_path / "dialogs.jsonl"
    data.write_text("\n".join(json.dumps({"dialog": d}) for d in DIALOGS))
    out = tmp_path / "run"
    code = main([
        "--encoder", str(enc), "--decoder", str(dec), "--latent_size", "8", "--train_file", str(data),
        "--eval_file", str(data), "--max_steps", "24", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
        "--output_dir", str(out), "--report_to", "none", "--num_responses", "3", "--max_new_tokens", "8",
        "--save_strategy", "no", "--logging_steps", "6", "--seed", "0", "--disable_tqdm", "true",
        "--freeze_encoder_layers", "1",
    ])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["train_loss"])
    assert metrics["train_last_logged_loss"] < metrics["train_first_logged_loss"] - 2.0
    for key in ("eval_bleu_recall", "eval_bleu_precision", "eval_bleu_f1", "eval_intra_distinct_1",
                "eval_inter_distinct_2", "eval_reconstruction_nll"):
        assert math.isfinite(metrics[key]), key
    assert metrics["eval_bleu_recall"] >= metrics["eval_bleu_precision"] > 0
    assert metrics["eval_num_contexts"] == 16 and metrics["eval_num_responses"] == 48
    lines = (out / "generations.txt").read_text().splitlines()
    assert len(lines) == 48 and all(len(line.split("\t")) == 3 for line in lines)
    card = (out / "README.md").read_text()
    assert "No benchmark run" in card and "bleu" in card.lower()

    loaded = OptimusForDialogResponse.from_pretrained(out)
    frozen = loaded.optimus.encoder.encoder.layer[0].attention.self.query.weight
    torch.manual_seed(0)
    fresh = OptimusForDialogResponse.from_encoder_decoder_pretrained(str(enc), str(dec), latent_size=8)
    assert torch.equal(frozen, fresh.optimus.encoder.encoder.layer[0].attention.self.query.weight)  # layer 0 frozen
    chat = pipeline("dialog-response", model=str(out))
    again = pipeline("dialog-response", model=loaded)
    kwargs = {"num_responses": 4, "seed": 3, "max_new_tokens": 8}
    assert chat(DIALOGS[0][:2], **kwargs) == again(DIALOGS[0][:2], **kwargs)

    # `hf-dgm evaluate optimus_dialog` on the original's context<TAB>response file
    from hf_dgm.cli import main as hf_dgm_main

    pairs = tmp_path / "test.txt"
    pairs.write_text("".join(f"{' EOS '.join(d[:2])}\t{d[2]}\n" for d in DIALOGS))
    report = tmp_path / "eval.json"
    assert hf_dgm_main(["evaluate", "optimus_dialog", str(out), "--data_file", str(pairs), "--num_responses", "2",
                        "--max_new_tokens", "6", "--output", str(report)]) == 0
    scored = json.loads(report.read_text())
    assert scored["num_contexts"] == 8 and scored["num_responses"] == 16
    assert 0 <= scored["bleu_precision"] <= scored["bleu_recall"] and math.isfinite(scored["reconstruction_nll"])


def test_dailydialog_recipe_parses():
    """The shipped DailyDialog recipe (not run here: no dialog data offline) parses into valid settings."""
    from pathlib import Path

    from hf_dgm.training.optimus_dialog.run import parse_args

    recipe = Path(__file__).resolve().parents[1] / "training" / "recipes" / "optimus_dialog_dailydialog.yaml"
    model_args, data_args, training_args = parse_args(["--recipe", str(recipe), "--output_dir", "/tmp/dd", "--use_cpu", "true"])
    assert training_args.output_dir == "/tmp/dd"
    assert (model_args.encoder, model_args.decoder, model_args.latent_size) == ("bert-base-cased", "gpt2", 32)
    assert model_args.fusion_push == "released" and model_args.num_s2s_layers == 2
    assert (data_args.dataset, data_args.train_split, data_args.eval_split) == ("daily_dialog", "train", "test")
