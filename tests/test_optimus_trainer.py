"""OptimusTrainer: the cyclical β schedule, λ, VAE logging, gradient accumulation, and resume after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from datasets import Dataset
from transformers import TrainerCallback

import hf_dgm  # noqa: F401
from hf_dgm import OptimusForConditionalGeneration
from hf_dgm.training.optimus.data import OptimusDataCollator, load_sentences, tokenize_sentences
from hf_dgm.training.optimus.run import parse_args
from hf_dgm.training.recipes import RecipeError
from hf_dgm.training.optimus.trainer import (
    OptimusTrainer,
    OptimusTrainingArguments,
    cyclical_beta,
    original_schedule_length,
)
from optimus_tiny import DATA_DIR, SENTENCES, build_parts
from tolerances import assert_fp32_close

REPO = Path(__file__).resolve().parents[1]


def test_cyclical_beta_matches_the_paper_schedule():
    # one cycle over 100 steps: 50 at zero, 25 rising, 25 at beta
    betas = [cyclical_beta(s, 100, 1.0, 1, 0.25, 0.5) for s in range(100)]
    assert betas[:50] == [0.0] * 50
    assert betas[50] == 0.0 and betas[62] == pytest.approx(0.48) and betas[74] == pytest.approx(0.96)
    assert betas[75:] == [1.0] * 25
    # ten cycles (pretraining): the pattern repeats every 10 steps, maximum beta 0.5
    ten = [cyclical_beta(s, 100, 0.5, 10, 0.25, 0.5) for s in range(100)]
    assert ten[:10] == ten[40:50] == ten[90:100]
    assert ten[5] == 0.0 and ten[6] == pytest.approx(0.2) and ten[8] == ten[9] == 0.5


# Values of the original's `frange_cycle_zero_linear` (ChunyuanLI/Optimus f3190fe, code/examples/big_ae/utils.py),
# computed with that function by benchmarks/parity/optimus.py and pinned here (CI has no copy of the original).
ORIGINAL_1003_10_CYCLES = {  # n_iter 1003, beta 1, 10 cycles, ratio_increase 0.25, ratio_zero 0.5: period 100.3
    0: 0.0, 50: 0.0, 51: 0.0, 75: 0.9571286141575271, 76: 0.9970089730807574, 99: 1.0, 100: 0.0, 150: 0.0,
    151: 0.0, 175: 0.9571286141575271, 176: 0.9970089730807574, 200: 0.0, 250: 0.0, 251: 0.0, 300: 0.0, 350: 0.0,
    351: 0.0, 376: 0.9970089730807574, 400: 1.0, 401: 0.0, 451: 0.0, 452: 0.0, 1002: 1.0,
}  # fmt: skip
ORIGINAL_37_STEPS = {  # n_iter 37, beta 1, 1 cycle, ratio_increase 0.25, ratio_zero 0.5
    17: 0.0, 18: 0.0, 19: 0.0, 20: 0.10810810810810811, 21: 0.21621621621621623, 22: 0.32432432432432434,
    23: 0.43243243243243246, 24: 0.5405405405405406, 25: 0.6486486486486487, 26: 0.7567567567567568,
    27: 0.8648648648648649, 28: 0.972972972972973, 29: 1.0,
}  # fmt: skip
# (n_iter, beta, n_cycles, ratio_increase, ratio_zero) -> (#steps at 0, #steps at beta, sum of the schedule)
ORIGINAL_SUMMARIES = {
    (1003, 1.0, 10, 0.25, 0.5): (520, 233, 362.6111665004985),
    (1003, 0.5, 3, 0.25, 0.5): (507, 247, 186.06031904287136),
    (100, 1.0, 7, 0.3, 0.4): (49, 23, 39.333333333333336),
}


def test_cyclical_beta_equals_the_originals_frange_cycle_zero_linear_where_cycles_are_not_whole_steps():
    # a cycle starts at int(c * period) (step 100, 200, 300, 401 here), not one step later
    assert {s: cyclical_beta(s, 1003, 1.0, 10, 0.25, 0.5) for s in ORIGINAL_1003_10_CYCLES} == ORIGINAL_1003_10_CYCLES
    # the ramp starts at 0 on the first step after the zero phase, not from the fractional position
    assert {s: cyclical_beta(s, 37, 1.0, 1, 0.25, 0.5) for s in ORIGINAL_37_STEPS} == ORIGINAL_37_STEPS
    for (n_iter, beta, cycles, increase, zero), (zeros, tops, total) in ORIGINAL_SUMMARIES.items():
        schedule = [cyclical_beta(s, n_iter, beta, cycles, increase, zero) for s in range(n_iter)]
        assert (schedule.count(0.0), schedule.count(beta)) == (zeros, tops)
        assert_fp32_close(sum(schedule), total)
    assert cyclical_beta(1003, 1003, 0.5, 10, 0.25, 0.5) == 0.5  # past the end: the plateau


def test_original_schedule_length_covers_whole_epochs():
    # run_lm_vae_training.py: epochs = max_steps // (batches // accumulation) + 1; n_iter = epochs * batches
    assert original_schedule_length(6, max_steps=8) == 12
    assert original_schedule_length(6, max_steps=12) == 18  # an epoch boundary still adds one epoch, as there
    assert original_schedule_length(10, max_steps=7, gradient_accumulation_steps=2) == 20
    assert original_schedule_length(6, num_train_epochs=2) == 12
    assert original_schedule_length(6, num_train_epochs=1.5) == 9  # fractional: the batches the run takes
    args = OptimusTrainingArguments(output_dir="unused", max_steps=8)
    assert args.beta_schedule_length(6) == 12 and args.beta_schedule_length(None) == 8
    assert OptimusTrainingArguments(output_dir="unused", max_steps=8, beta_schedule_steps=8).beta_schedule_length(6) == 8
    with pytest.raises(ValueError, match="beta_schedule_steps"):
        OptimusTrainingArguments(output_dir="unused", beta_schedule_steps=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta": -1.0}, "beta"),
        ({"beta_n_cycles": 0}, "beta_n_cycles"),
        ({"beta_ratio_zero": 0.8, "beta_ratio_increase": 0.5}, "<= 1"),
        ({"kl_threshold": -0.5}, "kl_threshold"),
    ],
)
def test_training_arguments_validate(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        OptimusTrainingArguments(output_dir=str(tmp_path), **kwargs)


def test_paper_defaults(tmp_path):
    args = OptimusTrainingArguments(output_dir=str(tmp_path))
    assert (args.beta, args.kl_threshold, args.beta_n_cycles, args.beta_ratio_zero, args.beta_ratio_increase) == (1.0, 0.5, 1, 0.5, 0.25)
    assert (args.learning_rate, args.adam_epsilon, args.weight_decay, args.max_grad_norm) == (5e-5, 1e-8, 0.0, 1.0)
    assert args.optim == "adamw_torch_fused"  # same AdamW, one fused kernel (the speed-up of bench_optimus_step.py)


# ------------------------------------------------------------------ training runs on a tiny model


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("parts"), "gpt2")


def _model(parts):
    torch.manual_seed(0)
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]), latent_size=8)


def _dataset(processor):
    data = Dataset.from_dict({"text": SENTENCES * 3})
    return tokenize_sentences(data, processor, max_length=16).remove_columns(["text"])


def _args(out, **kwargs):
    defaults = dict(
        output_dir=str(out), max_steps=6, per_device_train_batch_size=4, learning_rate=1e-3, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, seed=7, data_seed=7, disable_tqdm=True,
        beta=1.0, kl_threshold=0.1, dataloader_num_workers=0,
    )
    defaults.update(kwargs)
    return OptimusTrainingArguments(**defaults)


def _train(parts, args, callbacks=(), resume=None):
    model = _model(parts)
    trainer = OptimusTrainer(
        model=model, args=args, train_dataset=_dataset(model.processor),
        data_collator=OptimusDataCollator.from_processor(model.processor), callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_trainer_logs_vae_statistics_and_follows_the_schedule(parts, tmp_path):
    trainer = _train(parts, _args(tmp_path, max_steps=8))
    logs = [row for row in trainer.state.log_history if "rec_loss" in row]
    assert len(logs) == 8
    for row in logs:
        for key in ("loss", "rec_loss", "kl", "kl_thresholded", "beta", "active_units", "mutual_information"):
            assert key in row, key
        assert 0 <= row["active_units"] <= 8
    # 24 sentences in batches of 4: 6 batches per epoch; under max_steps 8 the original's schedule spans 2 whole
    # epochs (12 batches), so the run stops a third of the way up the ramp. The beta logged at optimizer step s
    # (1-based in the log) is the schedule's value at batch s - 1.
    expected = [cyclical_beta(s, 12, 1.0, 1, 0.25, 0.5) for s in range(8)]
    assert [row["beta"] for row in logs] == pytest.approx(expected, abs=1e-4)
    assert expected == [0.0] * 7 + [1 / 3]


def test_schedule_is_indexed_by_batch_under_gradient_accumulation(parts, tmp_path):
    """As the original's loop, β advances per batch (micro-batch), over a schedule of whole epochs of batches."""
    seen = []

    class Spy(OptimusTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                seen.append(self.schedule_position())
            return super().compute_loss(model, inputs, *args, **kwargs)

    model = _model(parts)
    # 6 batches of 4 per epoch, 2 per optimizer step: 3 updates per epoch; max_steps 4 -> (4 // 3 + 1) epochs of 6
    args = _args(tmp_path, max_steps=4, gradient_accumulation_steps=2, logging_steps=10)
    Spy(model=model, args=args, train_dataset=_dataset(model.processor),
        data_collator=OptimusDataCollator.from_processor(model.processor)).train()
    assert seen == [(index, 12) for index in range(8)]


def test_gradient_accumulation(parts, tmp_path):
    trainer = _train(parts, _args(tmp_path, max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=2))
    logs = [row for row in trainer.state.log_history if "rec_loss" in row]
    assert trainer.state.global_step == 3 and len(logs) == 3
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in logs)


class _KillAt(TrainerCallback):
    """Stops training right after step `step` was checkpointed, as if the job had been killed there."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_after_kill_continues_schedule_and_data_order(parts, tmp_path):
    full = _train(parts, _args(tmp_path / "full", save_strategy="steps", save_steps=3))
    _train(parts, _args(tmp_path / "killed", save_strategy="steps", save_steps=3), callbacks=[_KillAt(3)])
    checkpoint = tmp_path / "killed" / "checkpoint-3"
    assert checkpoint.is_dir()
    resumed = _train(parts, _args(tmp_path / "killed", save_strategy="steps", save_steps=3), resume=str(checkpoint))
    rows = lambda t: {r["step"]: r for r in t.state.log_history if "rec_loss" in r}  # noqa: E731
    full_rows, resumed_rows = rows(full), rows(resumed)
    assert sorted(resumed_rows) == [1, 2, 3, 4, 5, 6]  # steps 1-3 come back from the checkpoint's state
    for step in (4, 5, 6):
        assert resumed_rows[step]["beta"] == full_rows[step]["beta"]
        # same data order and RNG: the very same losses as the uninterrupted run
        assert resumed_rows[step]["loss"] == pytest.approx(full_rows[step]["loss"], rel=1e-4)
        assert resumed_rows[step]["rec_loss"] == pytest.approx(full_rows[step]["rec_loss"], rel=1e-4)


# ------------------------------------------------------------------ data and recipes


def test_collator_pads_both_sides(parts):
    model = _model(parts)
    data = _dataset(model.processor)
    batch = OptimusDataCollator.from_processor(model.processor)([data[0], data[1]])
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["decoder_input_ids"].shape == batch["decoder_attention_mask"].shape
    lengths = batch["decoder_attention_mask"].sum(-1).tolist()
    assert lengths == [data[0]["length"], data[1]["length"]]
    dec_tok = model.processor.decoder_tokenizer
    assert batch["decoder_input_ids"][0, 0] == dec_tok.bos_token_id
    assert batch["decoder_input_ids"][0, lengths[0] - 1] == dec_tok.eos_token_id


def test_load_sentences_from_text_file_filters(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("a short one .\n\n" + " ".join(["w"] * 70) + "\nanother sentence here .\n")
    data = load_sentences(train_file=str(path), max_words=64)
    assert data["text"] == ["a short one .", "another sentence here ."]
    with pytest.raises(ValueError, match="exactly one"):
        load_sentences()
    with pytest.raises(ValueError, match="does not exist"):
        load_sentences(train_file=str(tmp_path / "missing.txt"))


def test_recipes_parse_and_carry_the_paper_values():
    # the Optimus VAE's recipes (optimus_cara_*, optimus_dialog_* and optimus_low_resource_* are other commands')
    other = ("optimus_cara_", "optimus_dialog_", "optimus_low_resource_")
    recipes = sorted(r for r in (REPO / "training" / "recipes").glob("optimus_*.yaml") if not r.name.startswith(other))
    assert len(recipes) >= 6
    for recipe in recipes:
        # (--use_cpu: the pretraining recipes ask for bf16, which this CPU-only machine offers only on the CPU)
        model_args, data_args, args = parse_args(["--recipe", str(recipe), "--output_dir", "/tmp/x", "--use_cpu", "true"])
        assert args.beta_ratio_zero == 0.5 and args.beta_ratio_increase == 0.25
        if "pretrain" in recipe.name:
            assert args.beta_n_cycles == 10 and args.kl_threshold == 1.0
        elif recipe.name == "optimus_snli_cpu.yaml":  # the main job's own (λ 1.0): test_cpu_recipe_mirrors_the_main_job_defaults
            assert args.beta_n_cycles == 1 and args.kl_threshold == 1.0 and args.beta == 1.0
        else:
            assert args.beta_n_cycles == 1 and args.kl_threshold == 0.5 and args.beta == 1.0
    # flags after the recipe override it
    _, data_args, args = parse_args(["--recipe", str(REPO / "training/recipes/optimus_finetune_ptb.yaml"), "--output_dir", "/tmp/x", "--kl_threshold", "0.05"])
    assert args.kl_threshold == 0.05 and data_args.dataset == "ptb-text-only/ptb_text_only"
    # dashed flags are aliases of the underscore spelling
    _, _, args = parse_args(["--recipe", str(REPO / "training/recipes/optimus_finetune_ptb.yaml"), "--output_dir", "/tmp/x", "--kl-threshold", "0.07"])
    assert args.kl_threshold == 0.07


def test_cpu_recipe_mirrors_the_main_job_defaults():
    """`optimus_snli_cpu.yaml` is documented as the main job minus its baseline: the two must not drift apart."""
    from hf_dgm.training.optimus.main_job import build_parser, train_sentence_count

    job = build_parser().parse_args([])
    model_args, data_args, args = parse_args(
        ["--recipe", str(REPO / "training/recipes/optimus_snli_cpu.yaml"), "--output_dir", "/tmp/x"]
    )
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (job.max_steps, job.batch_size, job.learning_rate)
    assert (args.lr_scheduler_type, args.kl_threshold) == (job.lr_scheduler_type, job.kl_threshold)
    assert data_args.max_train_examples == train_sentence_count(job) == job.max_steps * job.batch_size // 2
    assert (data_args.max_eval_examples, data_args.num_importance_samples) == (job.eval_sentences, job.num_importance_samples)
    assert (args.decoder_word_dropout, args.decoder_word_dropout_kl_phase) == (job.word_dropout, job.word_dropout_kl_phase)
    assert (args.latent_lr_multiplier, args.decoder_freeze_steps) == (job.latent_lr_multiplier, job.decoder_freeze_steps)
    assert (args.beta_ratio_zero, args.beta_ratio_increase) == (job.beta_ratio_zero, job.beta_ratio_increase)
    assert args.beta_schedule_steps == job.max_steps  # the schedule spans the job's steps, as main_job passes it
    assert (model_args.latent_injection, model_args.pooling) == (job.latent_injection, job.pooling)
    assert model_args.posterior_mean_batch_norm == job.posterior_mean_batch_norm == 1.0
    assert (args.decoder_training, args.encoder_training) == (job.decoder_training, job.encoder_training) == ("lora", "full")
    assert (args.lora_rank, args.lora_alpha, args.lora_target_modules, args.lora_lr_multiplier) == \
        (job.lora_rank, job.lora_alpha, job.lora_target_modules, job.lora_lr_multiplier)


def test_recipe_dict_values_relative_paths_and_unknown_keys(tmp_path):
    (tmp_path / "recipes").mkdir()
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text(
        "train_file: ../data/train.txt\nlr_scheduler_type: cosine_with_min_lr\n"
        "lr_scheduler_kwargs: {min_lr: 1.0e-6}\nuse_cpu: true\nreport_to: none\n"
    )
    _, data_args, args = parse_args(["--recipe", str(recipe), "--output_dir", str(tmp_path / "out")])
    assert args.lr_scheduler_kwargs == {"min_lr": 1e-6}
    assert data_args.train_file == str(tmp_path / "data" / "train.txt")  # relative to the recipe's folder
    assert args.recipe_path == str(recipe)
    recipe.write_text("latent_sise: 8\nbeta_typo: 1\n")
    with pytest.raises(RecipeError, match=r"\['beta_typo', 'latent_sise'\]"):
        parse_args(["--recipe", str(recipe), "--output_dir", str(tmp_path / "out")])
    recipe.write_text("latent_size: 8\n")
    with pytest.raises(RecipeError, match="--not_a_flag"):
        parse_args(["--recipe", str(recipe), "--output_dir", str(tmp_path / "out"), "--not_a_flag", "1"])


# ------------------------------------------------------------------ the training script end to end


def _write_tiny_recipe(tmp_path, parts, train_file):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"encoder: {parts[0]}\ndecoder: {parts[1]}\nlatent_size: 8\nlatent_injection: both\n"
        f"train_file: {train_file}\neval_file: {train_file}\nmax_eval_examples: 6\nnum_importance_samples: 3\n"
        "max_length: 16\nmax_steps: 4\nper_device_train_batch_size: 4\nlearning_rate: 1.0e-3\nlogging_steps: 1\n"
        "save_strategy: 'no'\nreport_to: none\nuse_cpu: true\n"
    )
    return recipe


def test_train_script_writes_the_run_folder(parts, tmp_path):
    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(SENTENCES * 2) + "\n")
    recipe = _write_tiny_recipe(tmp_path, parts, train_file)
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(REPO / "training" / "train_optimus.py"), "--recipe", str(recipe), "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.safetensors", "config.json", "metrics.json", "README.md", "samples.md", "training_curves.png",
                 "latent_space.png", "recipe.yaml", "training_args.json", "run_metadata.json"):
        assert (out / name).exists(), name
    assert not list(out.glob("*.bin"))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("eval_iw_nll", "eval_ppl_per_token", "eval_kl", "eval_mutual_information", "eval_active_units",
                "eval_interpolation_endpoint_bleu", "eval_interpolation_distinct"):
        assert key in metrics, key
    samples = (out / "samples.md").read_text()
    for heading in ("## Figures", "## Reconstructions", "## Interpolations", "## Analogy", "## Sentences from the prior"):
        assert heading in samples, heading
    assert "K = 3 samples" in samples and "(not importance-weighted)" in samples and "| 0.50 |" in samples
    loaded = OptimusForConditionalGeneration.from_pretrained(out)
    assert loaded.processor is not None and loaded.config.latent_injection == "both"


def test_run_with_a_plain_decoder_baseline_reports_the_ppl_ratio(parts, tmp_path):
    """The main job's comparison: the extra evaluation's plain-decoder PPL lands in metrics.json and samples.md with
    the ratio of the two, computed in the same run."""
    from hf_dgm.training.optimus.run import train_and_evaluate

    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(SENTENCES * 2) + "\n")
    recipe = _write_tiny_recipe(tmp_path, parts, train_file)
    model_args, data_args, training_args = parse_args(["--recipe", str(recipe), "--output_dir", str(tmp_path / "run"), "--disable_tqdm", "true"])
    seen = {}

    def baseline(train_sentences, eval_sentences):
        seen.update(train=train_sentences, eval=eval_sentences)
        return {"plain_decoder_ppl_per_token": 10.0}

    metrics = train_and_evaluate(model_args, data_args, training_args, extra_evaluation=baseline)
    assert len(seen["eval"]) == 6 and set(seen["train"]) <= set(SENTENCES)
    assert metrics["eval_ppl_ratio_to_plain_decoder"] == pytest.approx(metrics["eval_ppl_per_token"] / 10.0)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["eval_ppl_ratio_to_plain_decoder"] == pytest.approx(metrics["eval_ppl_ratio_to_plain_decoder"])
    samples = (tmp_path / "run" / "samples.md").read_text()
    assert "| plain decoder per-token perplexity | 10 |" in samples
    assert f"| IW per-token perplexity / plain decoder's | {metrics['eval_ppl_ratio_to_plain_decoder']:.4g} |" in samples


def test_reconstruction_curve_records_bleu_during_training_without_changing_it(parts, tmp_path):
    """`reconstruction_curve_steps`: BLEU of the evaluation sentences every N steps and at the last, the last point
    equal to the final evaluation's BLEU; the decoding leaves training untouched (same final weights as without)."""
    from hf_dgm.training.optimus.run import train_and_evaluate

    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(SENTENCES * 2) + "\n")
    recipe = _write_tiny_recipe(tmp_path, parts, train_file)
    runs = {}
    for every in (0, 3):
        out = tmp_path / f"run_{every}"
        args = parse_args(["--recipe", str(recipe), "--output_dir", str(out), "--disable_tqdm", "true",
                           "--reconstruction_curve_steps", str(every), "--seed", "3"])
        runs[every] = (train_and_evaluate(*args), out)
    metrics, out = runs[3]
    points = json.loads((out / "reconstruction_curve.json").read_text())
    assert [p["step"] for p in points] == [3, 4]  # every 3 steps, and the last (max_steps 4)
    assert points[-1]["reconstruction_bleu"] == pytest.approx(metrics["eval_reconstruction_bleu"], abs=0.01)
    assert 0 <= points[0]["train_seconds"] <= points[1]["train_seconds"]
    assert all(p["beta"] is not None and 0 <= p["beta"] <= 1 for p in points)
    assert (out / "reconstruction_curve.png").stat().st_size > 0
    assert "## Reconstruction BLEU during training" in (out / "samples.md").read_text()
    assert not (runs[0][1] / "reconstruction_curve.json").exists()
    with_curve = load_file(out / "model.safetensors")
    without = load_file(runs[0][1] / "model.safetensors")
    assert with_curve.keys() == without.keys()
    for name in with_curve:
        torch.testing.assert_close(with_curve[name], without[name], rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="reconstruction_curve_steps"):
        _args(tmp_path, reconstruction_curve_steps=-1)


@pytest.mark.slow
def test_two_process_ddp_run(parts, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo DDP) trains and writes the run folder once."""
    train_file = tmp_path / "train.txt"
    train_file.write_text("\n".join(SENTENCES * 4) + "\n")
    recipe = _write_tiny_recipe(tmp_path, parts, train_file)
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "training" / "train_optimus.py"),
        "--recipe", str(recipe), "--output_dir", str(out), "--ddp_find_unused_parameters", "true",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "model.safetensors").exists() and (out / "metrics.json").exists()


@pytest.mark.skipif(not (DATA_DIR / "snli" / "train.txt").exists(), reason="needs ../shared/data/snli")
def test_shared_snli_sentences_load():
    data = load_sentences(train_file=str(DATA_DIR / "snli" / "train.txt"))
    assert len(data) > 3000 and all(isinstance(t, str) and t for t in data["text"][:50])


def test_latent_lr_multiplier_gives_the_heads_their_own_learning_rate(parts, tmp_path):
    trainer = _train(parts, _args(tmp_path, max_steps=1, learning_rate=1e-4, latent_lr_multiplier=10.0, lr_scheduler_type="constant"))
    heads = {id(p) for n, p in trainer.model.named_parameters() if n.startswith(OptimusTrainer.LATENT_HEADS)}
    assert heads
    for group in trainer.optimizer.param_groups:
        in_heads = {id(p) in heads for p in group["params"]}
        assert len(in_heads) == 1
        assert group["lr"] == pytest.approx(1e-3 if in_heads.pop() else 1e-4)
        assert group.get("fused") is True
    with pytest.raises(ValueError, match="latent_lr_multiplier"):
        OptimusTrainingArguments(output_dir=str(tmp_path), latent_lr_multiplier=0.0)


def test_trainer_gradient_checkpointing_keeps_the_memory_slot(parts, tmp_path):
    trainer = _train(parts, _args(tmp_path, max_steps=1, gradient_checkpointing=True))
    decoder = trainer.model.decoder
    assert decoder.transformer.h[0].gradient_checkpointing and decoder.transformer.h[0]._can_checkpoint_with_cache
    assert not decoder.transformer.gradient_checkpointing  # GPT2Model would otherwise drop the cache itself


def test_build_model_with_a_seed_is_reproducible(parts):
    from hf_dgm.training.optimus.run import OptimusModelArguments, build_model

    args = OptimusModelArguments(encoder=str(parts[0]), decoder=str(parts[1]), latent_size=8, latent_injection="both")
    first = build_model(args, seed=7)
    torch.randn(100)  # the global RNG moves between the two builds, as it does between two processes
    second = build_model(args, seed=7)
    for name in ("posterior.weight", "latent_to_memory.weight", "latent_to_embedding.weight"):
        assert torch.equal(first.state_dict()[name], second.state_dict()[name]), name
    other = build_model(args, seed=8)
    assert not torch.equal(first.state_dict()["posterior.weight"], other.state_dict()["posterior.weight"])


ARTICLE = (
    "Anarchism is a political philosophy and movement that is skeptical of all justifications for authority. "
    "It was described by Dr. Smith in the U.S. in 1920! Was it new? Humans lived in societies without formal "
    "hierarchies long before the establishment of states.\n\nEtymology\n"
    "The etymological origin of anarchism is from the Ancient Greek anarkhia. " + "word " * 70 + "ends here."
)


@pytest.mark.parametrize("streaming", [False, True])
def test_article_rows_are_split_into_sentences(tmp_path, streaming, parts):
    from datasets import load_dataset

    from hf_dgm.models.optimus.processing_optimus import OptimusProcessor
    from hf_dgm.training.optimus.data import split_sentences

    assert split_sentences(ARTICLE)[:4] == [
        "Anarchism is a political philosophy and movement that is skeptical of all justifications for authority.",
        "It was described by Dr. Smith in the U.S. in 1920!",
        "Was it new?",
        "Humans lived in societies without formal hierarchies long before the establishment of states.",
    ]
    path = tmp_path / "wiki.jsonl"
    path.write_text(json.dumps({"id": "12", "title": "Anarchism", "text": ARTICLE}) + "\n")
    import hf_dgm.training.optimus.data as data_module

    original = data_module.load_dataset
    data_module.load_dataset = lambda *a, **k: load_dataset("json", data_files=str(path), split="train", streaming=streaming)
    try:
        rows = load_sentences(dataset="wikimedia/wikipedia", dataset_config="20231101.en", streaming=streaming, sentence_split=True)
        # the whole article is one row of >= 64 words: without splitting, nothing survives
        if streaming:
            assert len(list(load_sentences(dataset="wikimedia/wikipedia", dataset_config="20231101.en", streaming=True))) == 0
        else:
            with pytest.raises(ValueError, match="no usable sentence"):
                load_sentences(dataset="wikimedia/wikipedia", dataset_config="20231101.en")
    finally:
        data_module.load_dataset = original
    texts = [r["text"] for r in rows]
    assert texts[:4] == split_sentences(ARTICLE)[:4] and "Etymology" in texts
    assert all(len(t.split()) < 64 for t in texts) and not any(t.startswith("word") for t in texts)
    # ≤ max_length tokens: longer sentences are dropped, not truncated
    processor = OptimusProcessor.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]))
    tokenized = list(tokenize_sentences(rows, processor, max_length=12, drop_longer=True))
    assert tokenized and all(r["length"] <= 12 and len(r["input_ids"]) <= 12 for r in tokenized)
    assert len(tokenized) < len(texts)


def test_decoder_word_dropout_corrupts_inputs_not_targets(parts, tmp_path):
    model = _model(parts)
    args = _args(tmp_path, decoder_word_dropout=0.5)
    trainer = OptimusTrainer(model=model, args=args, train_dataset=_dataset(model.processor),
                             data_collator=OptimusDataCollator.from_processor(model.processor))
    batch = OptimusDataCollator.from_processor(model.processor)([_dataset(model.processor)[i] for i in range(8)])
    torch.manual_seed(0)
    out = trainer._word_dropout(model, batch, args.decoder_word_dropout)
    ids, mask, pad = batch["decoder_input_ids"], batch["decoder_attention_mask"], model.config.decoder_pad_token_id
    assert torch.equal(out["labels"], ids.masked_fill(mask == 0, -100))  # targets stay clean
    dropped = (out["decoder_input_ids"] != ids)
    assert torch.equal(out["decoder_input_ids"][:, 0], ids[:, 0])  # BOS kept
    assert bool((out["decoder_input_ids"][dropped] == pad).all()) and not bool((dropped & (mask == 0)).any())
    rate = dropped.sum().item() / (mask[:, 1:].sum().item())
    assert 0.3 < rate < 0.7
    with pytest.raises(ValueError, match="decoder_word_dropout"):
        OptimusTrainingArguments(output_dir=str(tmp_path), decoder_word_dropout=1.0)


def test_word_dropout_kl_phase_rate_applies_once_beta_is_positive(parts, tmp_path):
    args = _args(tmp_path, decoder_word_dropout=0.75, decoder_word_dropout_kl_phase=0.25)
    assert (args.word_dropout_at(0.0), args.word_dropout_at(0.3), args.word_dropout_at(1.0)) == (0.75, 0.25, 0.25)
    assert _args(tmp_path, decoder_word_dropout=0.5).word_dropout_at(1.0) == 0.5  # None: one rate throughout
    with pytest.raises(ValueError, match="decoder_word_dropout_kl_phase"):
        _args(tmp_path, decoder_word_dropout_kl_phase=1.0)

    seen = []  # (beta, fraction of decoder input tokens replaced) of each training step

    class Spy(OptimusTrainer):
        def _word_dropout(self, model, inputs, rate):
            out = super()._word_dropout(model, inputs, rate)
            body = inputs["decoder_attention_mask"][:, 1:] == 1
            changed = (out["decoder_input_ids"][:, 1:] != inputs["decoder_input_ids"][:, 1:]) & body
            seen.append((self.current_beta(), changed.sum().item() / body.sum().item()))
            return out

    model = _model(parts)
    # 16 steps of the paper's schedule (β = 0 for the first half, a ramp, then 1); dropout 0.9 while β = 0, none after
    args = _args(tmp_path, max_steps=16, decoder_word_dropout=0.9, decoder_word_dropout_kl_phase=0.0)
    Spy(model=model, args=args, train_dataset=_dataset(model.processor),
        data_collator=OptimusDataCollator.from_processor(model.processor)).train()
    from hf_dgm.training.optimus.trainer import cyclical_beta

    # 6 batches per epoch: the schedule spans (16 // 6 + 1) epochs = 18 batches
    zero_steps = sum(cyclical_beta(step, 18, 1.0, 1, 0.25, 0.5) == 0.0 for step in range(16))
    assert 8 <= zero_steps < 16
    assert len(seen) == zero_steps and all(beta == 0.0 for beta, _ in seen)  # rate 0 once β > 0: not even called
    assert sum(fraction for _, fraction in seen) / len(seen) > 0.75


def test_plain_decoder_baseline_trains_and_scores(parts):
    from transformers import AutoModelForCausalLM

    from hf_dgm.models.optimus.processing_optimus import OptimusProcessor
    from hf_dgm.training.optimus.baseline import decoder_perplexity, finetune_plain_decoder

    processor = OptimusProcessor.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]))
    torch.manual_seed(0)
    decoder = AutoModelForCausalLM.from_pretrained(str(parts[1]))
    before = decoder_perplexity(decoder, processor, SENTENCES, max_length=16)
    ids = processor.decoder_token_ids(SENTENCES, max_length=16)
    assert before["num_tokens"] == sum(len(r) for r in ids)  # BOS and EOS counted, as Optimus's PPL
    finetune_plain_decoder(decoder, processor, SENTENCES, max_steps=30, batch_size=4, learning_rate=3e-3, max_length=16, progress=False)
    after = decoder_perplexity(decoder, processor, SENTENCES, max_length=16)
    assert after["ppl_per_token"] < 0.5 * before["ppl_per_token"]


def test_plain_decoder_baseline_follows_the_main_jobs_schedule(parts):
    """`lr_scheduler_type` reaches the baseline's optimizer: the second of 2 steps runs at half the rate under linear
    decay, at the full rate when constant, so the weights part after it (and not after the first step)."""
    from transformers import AutoModelForCausalLM

    from hf_dgm.models.optimus.processing_optimus import OptimusProcessor
    from hf_dgm.training.optimus.baseline import finetune_plain_decoder

    processor = OptimusProcessor.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]))

    def weights_after(steps: int, schedule: str) -> torch.Tensor:
        torch.manual_seed(0)
        decoder = AutoModelForCausalLM.from_pretrained(str(parts[1]))
        finetune_plain_decoder(decoder, processor, SENTENCES, max_steps=steps, batch_size=4, learning_rate=1e-3,
                               max_length=16, progress=False, lr_scheduler_type=schedule)
        return torch.cat([p.detach().flatten() for p in decoder.parameters()])

    assert_fp32_close(weights_after(1, "linear"), weights_after(1, "constant"))  # two instances: not bitwise
    assert not torch.allclose(weights_after(2, "linear"), weights_after(2, "constant"))
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        weights_after(1, "cosine")


def test_plain_decoder_batches_are_length_grouped_epochs_over_every_sentence():
    from hf_dgm.training.optimus.baseline import _length_grouped_batches

    lengths = [3 + (7 * i) % 29 for i in range(200)]
    batches = _length_grouped_batches(lengths, batch_size=8, seed=0)
    epoch = [next(batches) for _ in range(25)]
    assert sorted(i for b in epoch for i in b) == list(range(200))  # one epoch: every sentence once
    again = _length_grouped_batches(lengths, batch_size=8, seed=0)
    assert [next(again) for _ in range(25)] == epoch  # seeded
    assert [next(batches) for _ in range(25)] != epoch  # the next epoch reshuffles

    def padding(bs):  # padded slots of a batch list
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in bs)

    random_batches = [list(range(200))[i : i + 8] for i in range(0, 200, 8)]
    assert padding(epoch) < 0.5 * padding(random_batches)


def test_decoder_freeze_steps_trains_only_the_encoder_and_heads_at_first(parts, tmp_path):
    from transformers import TrainerCallback

    snapshots = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})

    start = {n: p.detach().clone() for n, p in _model(parts).named_parameters()}
    trainer = _train(parts, _args(tmp_path, max_steps=3, decoder_freeze_steps=2, beta=0.0), callbacks=[Snapshot()])
    assert len(snapshots) == 3

    def moved(before, after, prefix):
        return any(not torch.equal(before[n], after[n]) for n in before if n.startswith(prefix))

    for step in (0, 1):  # frozen: the decoder is as loaded, the heads and the encoder learn
        before = start if step == 0 else snapshots[step - 1]
        assert not moved(start, snapshots[step], "decoder.")
        assert moved(before, snapshots[step], "latent_to_memory.") and moved(before, snapshots[step], "posterior.")
        assert moved(before, snapshots[step], "encoder.")
    assert moved(snapshots[1], snapshots[2], "decoder.")  # released at step 3
    assert all(p.requires_grad for p in trainer.model.parameters())
    with pytest.raises(ValueError, match="decoder_freeze_steps"):
        OptimusTrainingArguments(output_dir=str(tmp_path), decoder_freeze_steps=-1)
