"""Optimus-CARA: config, label-conditional latent modules, save/load round trip, the pipeline, training on latents,
and the evaluation figures — on a tiny Optimus."""

from __future__ import annotations

import json

import pytest
import torch

import hf_dgm  # noqa: F401  (registrations)
from hf_dgm import OptimusForConditionalGeneration
from hf_dgm.models.optimus_cara import (
    LabelConditionalGenerationPipeline,
    OptimusCaraConfig,
    OptimusForLabelConditionalGeneration,
)
from optimus_tiny import build_parts
from tolerances import assert_fp32_close

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def optimus_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optimus-cara")
    enc_dir, dec_dir = build_parts(tmp)
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    model.save_pretrained(tmp / "optimus")
    return tmp / "optimus"


@pytest.fixture()
def model(optimus_dir):
    torch.manual_seed(0)
    return OptimusForLabelConditionalGeneration.from_optimus_pretrained(optimus_dir, id2label=LABELS, hidden_size=32).eval()


def test_config_validates_and_round_trips(optimus_dir):
    optimus_config = OptimusForConditionalGeneration.from_pretrained(optimus_dir).config
    config = OptimusCaraConfig(optimus=optimus_config, id2label=dict(enumerate(LABELS)), hidden_size=16)
    assert config.noise_size == 8 and config.latent_size == 8 and config.num_labels == 2
    again = OptimusCaraConfig.from_dict(config.to_dict())
    assert again.optimus.latent_size == 8 and again.optimus.decoder.model_type == "gpt2"
    assert again.id2label == {0: "negative", 1: "positive"} and again.variant == config.variant
    with pytest.raises(ValueError, match="at least 2 labels"):
        OptimusCaraConfig(optimus=optimus_config, num_labels=1)
    with pytest.raises(ValueError, match="hidden_size"):
        OptimusCaraConfig(optimus=optimus_config, hidden_size=0)
    with pytest.raises(ValueError, match="variant"):
        OptimusCaraConfig(optimus=optimus_config, variant="other")


def test_wrapping_keeps_the_optimus_weights(model, optimus_dir):
    plain = OptimusForConditionalGeneration.from_pretrained(optimus_dir)
    wrapped = model.optimus.state_dict()
    for name, tensor in plain.state_dict().items():
        assert torch.equal(wrapped[name], tensor), name
    assert model.optimus.decoder.config._attn_implementation is not None


def test_latent_modules_shapes_labels_and_errors(model):
    noise = model.sample_noise(3, torch.Generator().manual_seed(0))
    out = model(labels=["positive", 0, 1], latents=torch.randn(3, 8), noise=noise)
    assert out.generated_latents.shape == (3, 8) and out.fake_scores.shape == (3,)
    assert out.fake_class_logits.shape == (3, 2) and out.real_scores.shape == (3,) and out.real_class_logits.shape == (3, 2)
    # the label changes the latent for the same noise
    a = model.generate_latents([0], noise=noise[:1])
    b = model.generate_latents([1], noise=noise[:1])
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="unknown label"):
        model.label_ids("neutral")
    with pytest.raises(ValueError, match="label"):
        model.label_ids(2)
    with pytest.raises(ValueError, match="rows"):
        model.generate_latents([0, 1], noise=noise)
    with pytest.raises(ValueError, match="do not pass `latents`"):
        model.generate([0], latents=torch.zeros(1, 8))


def test_latent_statistics_standardise(model):
    latents = torch.randn(100, 8) * 3 + 5
    model.set_latent_statistics(latents)
    standard = model.standardize(latents)
    assert standard.mean(0).abs().max() < 1e-5 and (standard.std(0) - 1).abs().max() < 1e-5
    assert_fp32_close(model.unstandardize(standard), latents)


def test_save_load_round_trip_and_generation(model, tmp_path):
    model.set_latent_statistics(torch.randn(50, 8) * 2 + 1)
    model.save_pretrained(tmp_path / "cara")
    from transformers import AutoModel

    loaded = AutoModel.from_pretrained(tmp_path / "cara").eval()
    assert type(loaded) is OptimusForLabelConditionalGeneration and loaded.processor is not None
    assert (tmp_path / "cara" / "decoder_tokenizer").is_dir()
    noise = model.sample_noise(2, torch.Generator().manual_seed(1))
    a, b = model(labels=[0, 1], noise=noise), loaded(labels=[0, 1], noise=noise)
    for key in ("generated_latents", "fake_scores", "fake_class_logits"):
        assert_fp32_close(getattr(a, key), getattr(b, key))
    kwargs = {"min_new_tokens": 4, "max_new_tokens": 4}
    ids = model.generate(LABELS, num_return_sequences=2, generator=torch.Generator().manual_seed(0), **kwargs)
    again = loaded.generate(LABELS, num_return_sequences=2, generator=torch.Generator().manual_seed(0), **kwargs)
    assert ids.shape == (4, 5) and torch.equal(ids, again)


def test_pipeline_from_a_saved_folder(model, tmp_path):
    from transformers import pipeline

    model.save_pretrained(tmp_path / "cara")
    pipe = pipeline("label-conditional-generation", model=str(tmp_path / "cara"))
    assert isinstance(pipe, LabelConditionalGenerationPipeline)
    out = pipe("positive", num_return_sequences=3, seed=0, min_new_tokens=3, max_new_tokens=3)
    assert [item["label"] for item in out] == ["positive"] * 3 and all(isinstance(item["text"], str) for item in out)
    assert pipe("positive", num_return_sequences=3, seed=0, min_new_tokens=3, max_new_tokens=3) == out
    both = pipe(["negative", 1], seed=0, min_new_tokens=3, max_new_tokens=3, return_tensors=True)
    assert [group[0]["label"] for group in both] == ["negative", "positive"] and both[0][0]["latent"].shape == (8,)
    # the generator is consumed in order: the same generator state gives the same sentences as the model's generate
    direct = model.generate([1], num_return_sequences=3, generator=torch.Generator().manual_seed(0),
                            min_new_tokens=3, max_new_tokens=3)
    assert [item["text"] for item in out] == model.processor.batch_decode(direct)
    sampled = pipe(0, num_return_sequences=2, seed=3, do_sample=True, max_new_tokens=3)
    assert pipe(0, num_return_sequences=2, seed=3, do_sample=True, max_new_tokens=3) == sampled
    with pytest.raises(ValueError, match="unknown label"):
        pipe("neutral")
    with pytest.raises(ValueError, match="max_return_sequences"):
        pipe(0, num_return_sequences=1000)
    with pytest.raises(ValueError, match="not both"):
        pipe(0, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="empty"):
        pipe([])


def _two_cluster_latents(n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake posterior means: label 0 around −2·e, label 1 around +2·e (e = all-ones direction), unit noise."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (n,), generator=g)
    centre = (labels.float() * 4 - 2).unsqueeze(1).expand(n, 8)
    return centre + torch.randn(n, 8, generator=g), labels


def test_training_matches_each_label_to_its_cluster(model, tmp_path):
    """The generator learns to put label y's latents on label y's cluster (the CARA claim, in the latent space)."""
    from hf_dgm.training.optimus_cara.trainer import CaraTrainingArguments, train_latent_modules

    latents, labels = _two_cluster_latents()
    frozen = {k: v.clone() for k, v in model.optimus.state_dict().items()}
    args = CaraTrainingArguments(output_dir=str(tmp_path), max_steps=300, batch_size=64, logging_steps=100, seed=0)
    result = train_latent_modules(model, latents, labels, args)
    assert len(result["log_history"]) == 3
    with torch.no_grad():
        generated = {y: model.generate_latents([y] * 500, generator=torch.Generator().manual_seed(y)) for y in (0, 1)}
    projection = {y: generated[y].mean(-1) for y in (0, 1)}  # cluster centres project to −2 and +2
    assert (projection[0] < 0).float().mean() > 0.9 and (projection[1] > 0).float().mean() > 0.9
    assert abs(projection[0].mean() + 2) < 1.0 and abs(projection[1].mean() - 2) < 1.0  # the wrong cluster: 4 away
    assert all(torch.equal(v, frozen[k]) for k, v in model.optimus.state_dict().items())  # the VAE stayed frozen
    held_out, held_labels = _two_cluster_latents(200)
    from hf_dgm.training.optimus_cara.evaluation import latent_classifier_accuracy

    assert latent_classifier_accuracy(model, held_out, held_labels) > 0.95


def test_losses_and_training_arguments():
    from hf_dgm.training.optimus_cara.losses import classifier_loss, discriminator_loss, generator_loss
    from hf_dgm.training.optimus_cara.trainer import CaraTrainingArguments

    confident_real, confident_fake = torch.full((4,), 20.0), torch.full((4,), -20.0)
    assert discriminator_loss(confident_real, confident_fake) < 1e-6
    assert_fp32_close(discriminator_loss(torch.zeros(4), torch.zeros(4)), torch.tensor(2 * 0.6931472))
    labels = torch.tensor([0, 1, 0, 1])
    right = torch.nn.functional.one_hot(labels, 2).float() * 20
    assert generator_loss(confident_real, right, labels, 1.0) < 1e-6
    assert generator_loss(confident_real, -right, labels, 1.0) > 10
    assert generator_loss(confident_real, -right, labels, 0.0) < 1e-6
    assert classifier_loss(right, labels) < 1e-6
    with pytest.raises(ValueError, match="max_steps"):
        CaraTrainingArguments(max_steps=0)


def test_data_and_evaluation_figures(tmp_path):
    from hf_dgm.training.optimus_cara.data import label_files, read_labelled_sentences
    from hf_dgm.training.optimus_cara.evaluation import (
        distinct_n, judge_accuracy, label_accuracy_figures, train_judge,
    )

    good = ["great food and friendly staff", "i love this place", "the best pizza in town", "amazing service",
            "friendly and great", "love the best food"]
    bad = ["terrible food and rude staff", "i hate this place", "the worst pizza in town", "awful service",
           "rude and terrible", "hate the worst food"]
    (tmp_path / "s.train.0").write_text("\n".join(bad) + "\n\n")
    (tmp_path / "s.train.1").write_text("\n".join(good) + "\n")
    files = label_files(tmp_path, "train", prefix="s")
    texts, labels = read_labelled_sentences(files, seed=0)
    assert sorted(texts) == sorted(good + bad) and sum(labels) == 6
    assert len(read_labelled_sentences(files, max_per_label=2)[0]) == 4
    with pytest.raises(ValueError, match="missing"):
        label_files(tmp_path, "dev", prefix="s")
    judge = train_judge(texts, labels)
    assert judge_accuracy(judge, ["terrible rude food", "great friendly food"], [0, 1]) == 1.0
    figures = label_accuracy_figures(judge, ["awful terrible", "best love", "love great"], [0, 1, 0], 2)
    assert figures["label_accuracy_0"] == 0.5 and figures["label_accuracy_1"] == 1.0
    assert abs(figures["label_accuracy"] - 2 / 3) < 1e-9
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == 2 / 3 and distinct_n([""], 2) == 0.0


def test_card_and_family(model, tmp_path):
    from hf_dgm.registry import get_family
    from hf_dgm.training.run_folder import write_run_folder

    family = get_family("optimus_cara")
    assert family.trainer == "hf_dgm.training.optimus_cara.run"
    model.save_pretrained(tmp_path / "run")
    metrics = {"label_accuracy": 0.875, "judge_accuracy": 0.9125, "plain_decoder_ppl": 41.5, "distinct_1": 0.25}
    write_run_folder(tmp_path / "run", metrics=metrics, metadata={"dataset": "Yelp"})
    card = (tmp_path / "run" / "README.md").read_text()
    assert "0.875" in card and "0.9125" in card and "label-conditional-generation" in card
    assert "frozen" in card and "cara-latent-conditional-gan" in card
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["label_accuracy"] == 0.875


def test_recipes_parse_and_need_one_file_per_label():
    from pathlib import Path

    from hf_dgm.training.optimus_cara.run import parse_args

    root = Path(__file__).resolve().parents[1] / "training" / "recipes"
    for name in ("optimus_cara_yelp_cpu.yaml", "optimus_cara_yelp.yaml"):
        model_args, data_args, training_args, eval_args = parse_args(["--recipe", str(root / name)])
        assert data_args.train_files[0].endswith("sentiment.test.0") and data_args.eval_files[1].endswith("sentiment.dev.1")
        assert model_args.label_names == ["negative", "positive"] and training_args.max_steps > 0
    with pytest.raises(ValueError, match="one file per label"):
        parse_args(["--recipe", str(root / "optimus_cara_yelp_cpu.yaml"), "--train_files", "a.txt"])
    with pytest.raises(ValueError, match="optimus_model_name_or_path"):
        parse_args(["--train_files", "a", "b"])


def test_latent_spread_ratio_sees_a_collapsed_generator(model):
    from hf_dgm.training.optimus_cara.evaluation import latent_spread_ratio

    latents, labels = _two_cluster_latents(200)
    model.set_latent_statistics(latents)
    with torch.no_grad():
        for module in model.latent_generator.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
    assert latent_spread_ratio(model, latents, labels) == 0.0  # every G(ε, y) is the same point
