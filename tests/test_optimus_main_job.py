"""The main job's training modes (LoRA / frozen decoder, merged before saving), its collapse watch, time estimate and
five-line verdict, on tiny models."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback

import hf_dgm  # noqa: F401
from hf_dgm import OptimusForConditionalGeneration
from hf_dgm.training.optimus.adapters import configure_trainable_parts, has_decoder_lora, merge_decoder_lora
from hf_dgm.training.optimus.data import OptimusDataCollator, tokenize_sentences
from hf_dgm.training.optimus.job_report import pick_reconstructions, report, verdict_lines
from hf_dgm.training.optimus.trainer import OptimusTrainer, OptimusTrainingArguments
from optimus_tiny import SENTENCES, build_parts
from tolerances import assert_fp32_close

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("parts"), "llama")  # SmolLM2 is a Llama: q_proj / v_proj


def _model(parts):
    torch.manual_seed(0)
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]), latent_size=8)


def _args(out, **kwargs):
    defaults = dict(
        output_dir=str(out), max_steps=4, per_device_train_batch_size=4, learning_rate=1e-2, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, seed=7, data_seed=7, disable_tqdm=True, beta=1.0,
        kl_threshold=0.0, beta_schedule_steps=4, dataloader_num_workers=0,
    )
    defaults.update(kwargs)
    return OptimusTrainingArguments(**defaults)


def _trainer(model, args, callbacks=()):
    data = tokenize_sentences(Dataset.from_dict({"text": SENTENCES * 3}), model.processor, max_length=16)
    return OptimusTrainer(model=model, args=args, train_dataset=data.remove_columns(["text"]),
                          data_collator=OptimusDataCollator.from_processor(model.processor), callbacks=list(callbacks))


def _eval_batch(model):
    return model.processor(SENTENCES[:4], return_tensors="pt")


class _Snapshot(TrainerCallback):
    def __init__(self):
        self.states = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.states.append({n: p.detach().clone() for n, p in model.named_parameters()})


def test_lora_trains_only_adapters_heads_and_encoder_then_merges(parts, tmp_path):
    model = _model(parts)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    snap = _Snapshot()
    trainer = _trainer(model, _args(tmp_path, decoder_training="lora", lora_rank=4), [snap])
    assert trainer.parameter_counts["adapter"] > 0
    trainer.train()
    during = snap.states[-1]
    lora = [n for n in during if "lora_" in n]
    assert lora and all(".self_attn.q_proj." in n or ".self_attn.v_proj." in n for n in lora)
    base = {n: t for n, t in during.items() if n.startswith("decoder.") and "lora_" not in n}
    for name, value in base.items():  # every base decoder weight as loaded (peft names them ...base_layer.weight)
        assert torch.equal(value, start[name.replace(".base_layer", "")]), name
    assert any(not torch.equal(during[n], torch.zeros_like(during[n])) for n in lora if "lora_B" in n)
    assert any(not torch.equal(during[n], start[n]) for n in during if n.startswith("posterior."))
    assert any(not torch.equal(during[n], start[n]) for n in during if n.startswith("encoder."))
    # merged at the end: a plain decoder again, changed exactly in the adapted layers
    assert not has_decoder_lora(model)
    after = dict(model.named_parameters())
    assert set(after) == set(start)
    for name, value in after.items():
        if name.startswith("decoder."):
            adapted = ".q_proj." in name or ".v_proj." in name
            assert torch.equal(value.detach(), start[name]) != adapted, name
    assert all(p.requires_grad for p in model.parameters())


def test_merged_lora_model_saves_and_loads_with_the_same_outputs(parts, tmp_path):
    model = _model(parts)
    configure_trainable_parts(model, "lora", lora_rank=4, lora_target_modules="q_proj,v_proj,gate_proj")
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.5)  # a non-identity adapter
    model.eval()
    batch = _eval_batch(model)
    with torch.no_grad():
        before = model(**batch).logits
    assert merge_decoder_lora(model) == 6  # 2 layers x 3 targets
    with torch.no_grad():
        merged = model(**batch).logits
    assert_fp32_close(merged, before)
    model.save_pretrained(tmp_path / "saved")
    loaded = OptimusForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        reloaded = loaded(**batch).logits
    assert_fp32_close(reloaded, before)
    assert not any("lora" in k or "base_layer" in k for k in loaded.state_dict())


def test_frozen_decoder_and_encoder_leave_them_as_loaded(parts, tmp_path):
    model = _model(parts)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _trainer(model, _args(tmp_path, decoder_training="frozen", encoder_training="frozen"))
    assert trainer.parameter_counts["trainable"] == sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(OptimusTrainer.LATENT_HEADS))
    trainer.train()
    for name, param in model.named_parameters():
        moved = not torch.equal(param.detach(), start[name])
        if name.startswith(("decoder.", "encoder.")):
            assert not moved, name
    assert any(not torch.equal(p.detach(), start[n]) for n, p in model.named_parameters() if n.startswith("posterior."))


@pytest.mark.parametrize("kwargs, message", [
    (dict(decoder_training="adapter"), "decoder_training"),
    (dict(encoder_training="lora"), "encoder_training"),
    (dict(decoder_training="lora", decoder_freeze_steps=2), "decoder_freeze_steps"),
    (dict(lora_rank=0), "lora_rank"),
    (dict(collapse_min_active_units=-1), "collapse_min_active_units"),
    (dict(collapse_mi_threshold=-0.5), "collapse_mi_threshold"),
    (dict(time_estimate_steps=-1), "time_estimate_steps"),
])
def test_bad_training_modes_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _args(tmp_path, **kwargs)


def test_lora_names_no_layer_is_a_clear_error(parts):
    with pytest.raises(ValueError, match="lora_target_modules"):
        configure_trainable_parts(_model(parts), "lora", lora_target_modules="no_such_proj")


def test_collapse_watch_flags_beta_positive_windows_and_writes_latent_health(parts, tmp_path):
    # thresholds no tiny model can meet: every β > 0 window breaches, the β = 0 ones never do
    trainer = _trainer(_model(parts), _args(tmp_path / "a", max_steps=6, beta_schedule_steps=4,
                                            collapse_mi_threshold=50.0, collapse_min_active_units=9))
    trainer.train()
    health = json.loads((tmp_path / "a" / "latent_health.json").read_text())
    windows = health["windows"]
    assert [w["step"] for w in windows] == [1, 2, 3, 4, 5, 6]
    assert [w["breach"] for w in windows] == [w["beta"] > 0 for w in windows]
    assert health["summary"]["collapsed_at_end"] and health["summary"]["breaches"] == [w["step"] for w in windows if w["beta"] > 0]
    flagged = [r["step"] for r in trainer.state.log_history if r.get("collapse_warning")]
    assert flagged == health["summary"]["breaches"]
    # watch off: the same run records the windows and flags nothing
    quiet = _trainer(_model(parts), _args(tmp_path / "b", max_steps=6, beta_schedule_steps=4))
    quiet.train()
    summary = quiet.collapse_summary()
    assert summary["breaches"] == [] and not summary["collapsed_at_end"]
    assert summary["min_mutual_information"] == min(w["mutual_information"] for w in windows if w["beta"] > 0)


def test_time_estimate_after_timed_steps(parts, tmp_path):
    trainer = _trainer(_model(parts), _args(tmp_path, max_steps=6, time_estimate_steps=2, time_estimate_extra_steps=100))
    trainer.train()
    estimate = trainer.time_estimate.estimate
    assert estimate["timed_steps"] == 2 and estimate["seconds_per_step"] > 0
    # 3 training steps left after the timed ones, plus 100 step-equivalents of later work
    assert estimate["job_minutes_left"] == pytest.approx(estimate["seconds_per_step"] * 103 / 60, abs=0.01)
    assert estimate["training_minutes_left"] == pytest.approx(estimate["seconds_per_step"] * 3 / 60, abs=0.01)
    assert trainer.time_estimate.job_minutes_left > 0  # the ETA the bar showed at the last step: the later work
    # the average step's target tokens come from the training data's `length` column (BOS … EOS): (mean − 1) × batch
    lengths = list(trainer.train_dataset["length"])
    assert trainer.time_estimate.tokens_per_step == pytest.approx(
        (sum(lengths) / len(lengths) - 1) * trainer.args.per_device_train_batch_size)
    # and the steps after the warm-up were counted in the same unit: the model's target tokens
    assert trainer.time_estimate._tokens > 0
    assert estimate["timed_seconds_per_step"] > 0


def _run_fake_steps(monkeypatch, clock: list[float], tokens: list[int] | None, tokens_per_step: float | None):
    """Drive a TimeEstimateCallback (2 timed steps, 60 step-equivalents after training, 10 steps) with a fake clock:
    step k ends at clock[k - 1] and, with `tokens`, its batch held tokens[k - 1] decoder tokens."""
    from types import SimpleNamespace

    from hf_dgm.training.optimus import trainer as trainer_module

    ticks = iter(clock)
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: next(ticks))
    bar = SimpleNamespace(postfix=None)
    bar.set_postfix_str = lambda text, refresh: setattr(bar, "postfix", text)
    callback = trainer_module.TimeEstimateCallback(steps=2, extra_steps=60, tokens_per_step=tokens_per_step)
    callback.bar_owner = SimpleNamespace(training_bar=bar)
    state = SimpleNamespace(global_step=0, max_steps=10, is_world_process_zero=True)
    history = []
    for step in range(1, len(clock) + 1):
        if tokens is not None:
            callback.count_tokens(tokens[step - 1], completed_steps=step - 1)
        state.global_step = step
        callback.on_step_end(None, state, None)
        history.append((callback.job_minutes_left, bar.postfix))
    return callback, history


def test_progress_bar_eta_follows_the_mean_step_time(monkeypatch):
    """Without token counts: the logged estimate from the timed steps, then the bar's ETA from the mean step time
    since the warm-up."""
    callback, history = _run_fake_steps(monkeypatch, [100.0, 102.0, 104.0, 110.0, 116.0], None, None)
    # after steps 2-3 at 2 s each: 7 training steps + 60 step-equivalents of later work left
    assert callback.estimate["seconds_per_step"] == callback.estimate["timed_seconds_per_step"] == pytest.approx(2.0)
    assert callback.estimate["job_minutes_left"] == pytest.approx(2.0 * 67 / 60, abs=0.01)
    assert history[2][1] == f"job ETA ~{2.0 * 67 / 60:.1f} min"
    # steps 4-5 took 6 s each: the mean since the warm-up is 16 s / 4 steps = 4 s; 65 step-equivalents left
    assert callback.estimate["seconds_per_step"] == pytest.approx(2.0)  # the logged first estimate stays
    assert callback.job_minutes_left == pytest.approx(4.0 * 65 / 60)
    assert history[-1][1] == f"job ETA ~{4.0 * 65 / 60:.1f} min"


def test_time_estimate_scales_the_long_first_batches_to_the_mean_length(monkeypatch):
    """Length-grouped runs start with their longest batches: at 0.1 s per token, two 20-token steps (2 s each) say an
    average 10-token step takes 1 s, not 2; the later 5-token steps (0.5 s) keep the estimate on 0.1 s per token."""
    callback, history = _run_fake_steps(monkeypatch, [100.0, 102.0, 104.0, 104.5, 105.0], [20, 20, 20, 5, 5], 10.0)
    assert callback.estimate["timed_seconds_per_step"] == pytest.approx(2.0)
    assert callback.estimate["seconds_per_step"] == pytest.approx(1.0)
    assert callback.estimate["job_minutes_left"] == pytest.approx(1.0 * 67 / 60, abs=0.01)
    assert callback.estimate["training_minutes_left"] == pytest.approx(1.0 * 7 / 60, abs=0.01)
    assert callback.job_minutes_left == pytest.approx(1.0 * 65 / 60)  # 5 s for 50 tokens: still 0.1 s per token
    assert history[-1][1] == f"job ETA ~{65 / 60:.1f} min"


def test_reconstruction_picks_follow_the_fixed_rule():
    sentences = ["a b c d", "e f g h", "i j k l", "m n o p", "q r s t"]
    recs = ["a b c d", "x y z w", "i j k l", "m n o x", "x y z w"]  # BLEU: 100, 0, 100, ~60, 0
    picks = pick_reconstructions(sentences, recs)
    bleus = sorted(p["bleu"] for p in [*picks])
    assert picks[1]["index"] == 0 and picks[1]["bleu"] == pytest.approx(100)
    # sorted by (BLEU, index): 1 (0), 4 (0), 3, 0 (100), 2 (100) -> the lower median is the third: sentence 3
    assert picks[0]["index"] == 3 and 0 < picks[0]["bleu"] < 100 and bleus[0] < 100


def test_verdict_lines_compare_with_the_targets():
    metrics = {"eval_reconstruction_bleu": 21.0, "eval_interpolation_endpoint_bleu": 25.0,
               "eval_interpolation_distinct": 4.5, "eval_active_units": 32, "eval_ppl_ratio_to_plain_decoder": 1.3,
               "eval_reconstruction_distinct": 60, "eval_num_sentences": 64}
    picks = [{"index": 5, "input": "a", "reconstruction": "b", "bleu": 20.0}, {"index": 0, "input": "c", "reconstruction": "c", "bleu": 100.0}]
    path = {"texts": ["c", "d", "e", "f", "g"]}
    ok = {"collapsed_at_end": False, "breaches": [], "min_mutual_information": 3.1, "min_active_units_seen": 30,
          "mi_threshold": 1.0, "min_active_units": 8}
    lines = verdict_lines(metrics, ok, picks, path)
    assert len(lines) == 5 and lines[0].startswith("VERDICT: MEETS") and "1.30×" in lines[0]
    assert "no collapse" in lines[1] and "60 distinct reconstructions of 64" in lines[1]
    assert '"a" → "b"' in lines[2] and "#0" in lines[3] and lines[4].count("→") == 4
    collapsed = dict(ok, collapsed_at_end=True, breaches=[150, 155], min_mutual_information=0.2)
    # the decoder-side collapse: healthy posteriors, but the decoder writes 7 sentences for 64 inputs
    lines = verdict_lines(dict(metrics, eval_reconstruction_distinct=7), ok, picks, path)
    assert "no collapse" in lines[1] and "DECODER IGNORES z: only 7 distinct reconstructions of 64 (fewer than 8)" in lines[1]
    assert "IGNORES" not in verdict_lines(dict(metrics, eval_reconstruction_distinct=8), ok, picks, path)[1]
    # the last training window recovered, the evaluation sentences' posteriors did not (the old default at seed 42)
    dipped = dict(ok, breaches=[140, 195], min_mutual_information=-0.28)
    lines = verdict_lines(dict(metrics, eval_mutual_information=0.85, eval_active_units=29), dipped, picks, path)
    assert lines[1].startswith("POSTERIOR COLLAPSE on the evaluation sentences (MI 0.85 nats, 29 active units")
    assert "recovered" in verdict_lines(dict(metrics, eval_mutual_information=2.5), dipped, picks, path)[1]
    # a damaged language model: the IW perplexity far above the plain decoder's
    lines = verdict_lines(dict(metrics, eval_ppl_ratio_to_plain_decoder=9.29), ok, picks, path)
    assert lines[1].endswith("; LANGUAGE MODEL DAMAGED: IW PPL 9.29× the plain decoder's (above 4×).")
    assert "DAMAGED" not in verdict_lines(dict(metrics, eval_ppl_ratio_to_plain_decoder=2.6), ok, picks, path)[1]
    lines = verdict_lines(dict(metrics, eval_reconstruction_bleu=2.0), collapsed, picks, path)
    assert lines[0].startswith("VERDICT: MISSES") and "reconstruction BLEU 2 < 20 ✗" in lines[0]
    assert lines[1].startswith("POSTERIOR COLLAPSE") and "[150, 155]" in lines[1]


def test_report_opens_samples_with_the_verdict_from_the_saved_folder(parts, tmp_path):
    from hf_dgm.training.optimus.evaluation import reconstruction_scores

    out = tmp_path / "run"
    model = _model(parts)
    trainer = _trainer(model, _args(out, decoder_training="lora", lora_rank=4, collapse_mi_threshold=1.0))
    trainer.train()
    model.save_pretrained(out)
    (out / "samples.md").write_text("# Samples\n\n## Figures\n")
    (out / "metrics.json").write_text(json.dumps({"eval_reconstruction_bleu": 1.0}) + "\n")
    sentences = SENTENCES[:6]
    metrics = {"eval_reconstruction_bleu": 1.0, "eval_num_sentences": 6}
    lines = report(out, metrics, sentences, max_length=16)
    assert len(lines) == 5
    samples = (out / "samples.md").read_text().splitlines()
    assert samples[:3] == ["# Samples", "", "## Verdict"] and samples[4:9] == [f"{i}. {l}" for i, l in enumerate(lines, 1)]
    assert "## Figures" in samples
    written = json.loads((out / "metrics.json").read_text())
    assert written["verdict"]["lines"] == lines and written["verdict"]["meets_targets"] is False
    # the reloaded (merged, saved) model decodes exactly as the trained one
    expected = reconstruction_scores(model.eval(), model.processor, sentences, max_length=16)
    assert metrics["eval_reloaded_reconstruction_bleu"] == pytest.approx(expected["bleu"])
    assert metrics["eval_reconstruction_distinct"] == len(set(expected["reconstructions"]))


def test_main_job_flags_and_estimate_inputs():
    from hf_dgm.training.optimus.main_job import after_training_steps, build_parser

    args = build_parser().parse_args([])
    assert args.collapse_mi_threshold == 1.0 and args.collapse_min_active_units == 8
    assert args.max_length == 40 and args.posterior_mean_batch_norm == 1.0 and args.kl_threshold == 1.0
    # the default decoder: LoRA r16 on every linear layer at 10x (benchmarks/optimus_main_job_avenues.md, third pass)
    assert (args.decoder_training, args.lora_target_modules, args.lora_rank, args.lora_lr_multiplier) == ("lora", "all-linear", 16, 10.0)
    assert args.encoder_training == "full"
    assert build_parser().parse_args(["--posterior_mean_batch_norm", "none"]).posterior_mean_batch_norm is None
    assert build_parser().parse_args(["--posterior_mean_batch_norm", "0.5"]).posterior_mean_batch_norm == 0.5
    assert args.warmup_steps == 0
    for bad in ("0", "-1", "inf", "nan", "big"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--posterior_mean_batch_norm", bad])
    # the plain decoder (the same adapters: 0.85 of a step each) + evaluation at 64 sentences, K = 20 (85 full steps)
    assert after_training_steps(args) == pytest.approx(0.85 * 200 + 85 / 0.75)
    assert after_training_steps(build_parser().parse_args(["--no_baseline"])) == pytest.approx(85 / 0.75)
    full = build_parser().parse_args(["--decoder_training", "full"])
    assert after_training_steps(full) == pytest.approx(0.85 * 200 + 85)


def test_lora_adapters_and_heads_get_their_own_learning_rates(parts, tmp_path):
    model = _model(parts)
    trainer = _trainer(model, _args(tmp_path, decoder_training="lora", lora_rank=4, learning_rate=1e-4,
                                    latent_lr_multiplier=10.0, lora_lr_multiplier=5.0))
    optimizer = trainer.create_optimizer()
    kind = {id(p): ("head" if n.startswith(OptimusTrainer.LATENT_HEADS) else "lora" if "lora_" in n else "other")
            for n, p in model.named_parameters() if p.requires_grad}
    expected = {"head": 1e-3, "lora": 5e-4, "other": 1e-4}
    seen = set()
    for group in optimizer.param_groups:
        kinds = {kind[id(p)] for p in group["params"]}
        assert len(kinds) == 1
        seen |= kinds
        assert group["lr"] == pytest.approx(expected[kinds.pop()])
    assert seen == {"head", "lora", "other"}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(kind)  # frozen decoder weights left out


def test_main_job_takes_other_sentence_files(tmp_path):
    """--train_file / --eval_file / --dataset_name replace SNLI (the Yelp VAE under optimus_cara); partial sets refuse."""
    import pytest

    from hf_dgm.training.optimus.main_job import build_parser, sentence_source

    parser = build_parser()
    default = sentence_source(parser.parse_args([]))
    assert default["dataset_name"] == "SNLI" and default["dataset_id"] == "stanfordnlp/snli"
    args = parser.parse_args(["--train_file", "a.txt", "--eval_file", "b.txt", "--dataset_name", "Yelp"])
    assert sentence_source(args) == {"train_file": "a.txt", "eval_file": "b.txt", "source": "a.txt",
                                     "dataset_name": "Yelp", "dataset_id": None}
    with pytest.raises(SystemExit, match="go together"):
        sentence_source(parser.parse_args(["--train_file", "a.txt"]))


def test_plain_decoder_baseline_trains_the_same_lora_adapters(parts):
    """Under --decoder_training lora the plain-decoder baseline trains LoRA adapters with the same rank, targets and
    rate as Optimus's decoder, then merges them: a plain model again, whose weights moved only in the targeted layers."""
    from transformers import AutoModelForCausalLM

    from hf_dgm.training.optimus.baseline import finetune_plain_decoder
    from hf_dgm.training.optimus.main_job import baseline_lora, build_parser

    assert baseline_lora(build_parser().parse_args(["--decoder_training", "full"])) is None
    assert baseline_lora(build_parser().parse_args([])) == {"rank": 16, "alpha": 32.0, "target_modules": "all-linear",
                                                           "lr_multiplier": 10.0}  # the default
    lora = baseline_lora(build_parser().parse_args(["--lora_rank", "4", "--lora_target_modules", "q_proj,v_proj"]))
    assert lora == {"rank": 4, "alpha": 32.0, "target_modules": "q_proj,v_proj", "lr_multiplier": 10.0}
    model = _model(parts)
    decoder = AutoModelForCausalLM.from_pretrained(str(parts[1]))
    before = {n: p.detach().clone() for n, p in decoder.named_parameters()}
    finetune_plain_decoder(decoder, model.processor, SENTENCES, max_steps=3, batch_size=4, learning_rate=1e-3,
                           max_length=16, progress=False, lora=lora)
    assert not any(type(m).__module__.startswith("peft.") for m in decoder.modules())
    after = dict(decoder.named_parameters())
    assert after.keys() == before.keys()
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in moved), moved


def test_build_arguments_passes_the_warmup_and_the_posterior_batch_norm(tmp_path):
    from hf_dgm.training.optimus.main_job import build_arguments, build_parser

    source = {"train_file": "t.txt", "eval_file": "e.txt", "dataset_name": "SNLI", "dataset_id": "stanfordnlp/snli"}
    args = build_parser().parse_args(["--output_dir", str(tmp_path), "--warmup_steps", "20"])
    model_args, _, training_args = build_arguments(args, source)
    assert training_args.warmup_steps == 20 and training_args.lr_scheduler_type.value == "linear"
    assert model_args.posterior_mean_batch_norm == 1.0
    args = build_parser().parse_args(["--output_dir", str(tmp_path), "--warmup_steps", "20", "--lr_scheduler_type",
                                      "constant", "--posterior_mean_batch_norm", "none"])
    model_args, _, training_args = build_arguments(args, source)
    assert training_args.lr_scheduler_type.value == "constant_with_warmup"  # plain "constant" would skip the warmup
    assert model_args.posterior_mean_batch_norm is None


def test_recipe_records_which_parts_trained_and_the_adapters(tmp_path):
    """recipe.yaml (and so the card's recipe block and its 'Decoder training' bullet) says how the decoder trained."""
    from hf_dgm.training.optimus.run import _recipe_training_args

    lora = _recipe_training_args(_args(tmp_path, decoder_training="lora", lora_rank=4, lora_target_modules="all-linear",
                                       lora_lr_multiplier=10.0))
    assert (lora["decoder_training"], lora["encoder_training"]) == ("lora", "full")
    assert (lora["lora_rank"], lora["lora_target_modules"], lora["lora_lr_multiplier"]) == (4, "all-linear", 10.0)
    full = _recipe_training_args(_args(tmp_path, decoder_training="full"))
    assert full["decoder_training"] == "full" and not any(key.startswith("lora_") for key in full)
