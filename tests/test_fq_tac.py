"""FQ-TAC-GAN: TAC-GAN's classifier losses (Gong et al., NeurIPS 2019) against hand-computed values, and the TAC
heads and steps of FQ-BigGAN (with and without FQ)."""

from __future__ import annotations

import math

import pytest
import torch

from hf_dgm.training.fq_biggan.tac import classifier_discriminator_loss, classifier_generator_loss


LN2, LN3 = math.log(2.0), math.log(3.0)
# Hand-computed cross-entropies (softmax over the row, −log p of the label):
#   [ln 3, 0, 0], label 0: p = 3 / (3 + 1 + 1) = 0.6               -> −ln 0.6
#   [0, 0, 0],    label 2: p = 1/3                                 -> ln 3
#   [0, ln 2, 0], label 1: p = 2 / (1 + 2 + 1) = 0.5               -> ln 2
#   [ln 2, ln 2, 0], label 2: p = 1 / (2 + 2 + 1) = 0.2            -> ln 5
REAL_LOGITS = torch.tensor([[LN3, 0.0, 0.0], [0.0, 0.0, 0.0]])
REAL_LABELS = torch.tensor([0, 2])
CE_REAL = (-math.log(0.6) + LN3) / 2
TWIN_LOGITS = torch.tensor([[0.0, LN2, 0.0], [LN2, LN2, 0.0]])
FAKE_LABELS = torch.tensor([1, 2])
CE_TWIN = (LN2 + math.log(5.0)) / 2


def test_tac_discriminator_loss_by_hand():
    out = classifier_discriminator_loss(REAL_LOGITS, REAL_LABELS, TWIN_LOGITS, FAKE_LABELS, weight=0.5)
    assert out.classifier_loss.item() == pytest.approx(CE_REAL, rel=1e-6)
    assert out.twin_classifier_loss.item() == pytest.approx(CE_TWIN, rel=1e-6)
    assert out.loss.item() == pytest.approx(0.5 * (CE_REAL + CE_TWIN), rel=1e-6)


def test_tac_generator_loss_by_hand():
    # G step: the same fakes through both heads; C's logits here are REAL_LOGITS read as logits of fakes of classes 1, 2
    out = classifier_generator_loss(REAL_LOGITS, TWIN_LOGITS, FAKE_LABELS, weight=2.0)
    ce_class = (-math.log(0.2) + LN3) / 2  # [ln 3, 0, 0] label 1: p = 1/5; [0, 0, 0] label 2: p = 1/3
    assert out.classifier_loss.item() == pytest.approx(ce_class, rel=1e-6)
    assert out.twin_classifier_loss.item() == pytest.approx(CE_TWIN, rel=1e-6)
    assert out.loss.item() == pytest.approx(2.0 * (ce_class - CE_TWIN), rel=1e-6)


def test_ac_losses_ignore_the_twin_head_and_inputs_are_checked():
    d = classifier_discriminator_loss(REAL_LOGITS, REAL_LABELS, None, None, weight=3.0, loss_type="ac")
    assert d.twin_classifier_loss is None and d.loss.item() == pytest.approx(3.0 * CE_REAL, rel=1e-6)
    g = classifier_generator_loss(REAL_LOGITS, None, REAL_LABELS, loss_type="ac")
    assert g.loss.item() == pytest.approx(CE_REAL, rel=1e-6)
    with pytest.raises(ValueError, match="loss_type"):
        classifier_generator_loss(REAL_LOGITS, TWIN_LOGITS, REAL_LABELS, loss_type="projection")
    with pytest.raises(ValueError, match="needs `twin_logits_fake`"):
        classifier_discriminator_loss(REAL_LOGITS, REAL_LABELS, None, None)
    with pytest.raises(ValueError, match=r"\(B, num_classes\)"):
        classifier_generator_loss(REAL_LOGITS[0], TWIN_LOGITS, REAL_LABELS)


def test_generator_gradient_pushes_the_two_heads_apart():
    """G lowers C's cross-entropy and raises C_mi's: the gradient of G's loss w.r.t. C's logits is
    λ(softmax − onehot)/B and w.r.t. C_mi's logits its negative (hand formula, not autograd of the same function)."""
    class_logits = REAL_LOGITS.clone().requires_grad_(True)
    twin_logits = TWIN_LOGITS.clone().requires_grad_(True)
    classifier_generator_loss(class_logits, twin_logits, FAKE_LABELS, weight=2.0).loss.backward()
    onehot = torch.eye(3)[FAKE_LABELS]
    expected_class = 2.0 * (torch.tensor([[0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3]]) - onehot) / 2
    expected_twin = -2.0 * (torch.tensor([[0.25, 0.5, 0.25], [0.4, 0.4, 0.2]]) - onehot) / 2
    torch.testing.assert_close(class_logits.grad, expected_class)
    torch.testing.assert_close(twin_logits.grad, expected_twin)


# ------------------------------------------------------------------------------------------------ FQ-BigGAN with TAC
import copy  # noqa: E402
from pathlib import Path  # noqa: E402

from tolerances import assert_fp32_close  # noqa: E402

from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration  # noqa: E402
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


def tac_model(loss_type: str = "tac", use_fq: bool = True, **overrides) -> FQBigGANForImageGeneration:
    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset("tiny", loss_type=loss_type, use_fq=use_fq, **overrides)
    return FQBigGANForImageGeneration(config)


def real_batch(config, size: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(size, config.num_channels, config.resolution, config.resolution, generator=g) * 2 - 1
    return {"pixel_values": pixels, "labels": torch.randint(0, config.num_classes, (size,), generator=g)}


def test_heads_replace_the_projection_term():
    projection, ac, tac = tac_model("projection"), tac_model("ac"), tac_model("tac")
    width = tac.discriminator.output_linear.in_features
    assert projection.discriminator.class_embedding is not None and projection.discriminator.classifier is None
    assert ac.discriminator.class_embedding is None and ac.discriminator.twin_classifier is None
    assert tac.discriminator.class_embedding is None
    for head in (ac.discriminator.classifier, tac.discriminator.classifier, tac.discriminator.twin_classifier):
        assert (head.in_features, head.out_features) == (width, tac.config.num_classes)
        assert hasattr(head, "weight_u")  # spectral-normalised, as D's other linear layers
    batch = real_batch(tac.config)
    out = tac.discriminator(batch["pixel_values"])  # no labels needed: the heads predict them
    assert out.logits.shape == (6,) and out.class_logits.shape == out.twin_class_logits.shape == (6, 10)
    assert ac.discriminator(batch["pixel_values"]).twin_class_logits is None
    assert projection.discriminator(batch["pixel_values"], batch["labels"]).class_logits is None


def test_config_checks_and_old_configs_load_as_projection(tmp_path):
    with pytest.raises(ValueError, match="loss_type"):
        FQBigGANConfig.from_preset("tiny", loss_type="twin")
    with pytest.raises(ValueError, match="num_classes > 0"):
        FQBigGANConfig.from_preset("tiny", loss_type="tac", num_classes=0)
    with pytest.raises(ValueError, match="classifier_weight"):
        FQBigGANConfig.from_preset("tiny", loss_type="tac", classifier_weight=-1.0)
    saved = FQBigGANConfig.from_preset("tiny").to_dict()
    for key in ("loss_type", "classifier_weight"):  # a config.json written before TAC existed
        saved.pop(key)
    old = FQBigGANConfig.from_dict(saved)
    assert old.loss_type == "projection" and old.classifier_weight == 1.0


@pytest.mark.parametrize("use_fq", [True, False])
def test_tac_discriminator_step_trains_each_head_on_its_own_images(use_fq):
    """D's loss adds λ·CE(C(real), y_real) + λ·CE(C_mi(fake), y_fake): the twin head's gradient comes from the fakes'
    CE only (it does not change with the real labels), the classifier's from the reals' CE only."""
    model = tac_model(use_fq=use_fq, classifier_weight=0.5)
    batch = real_batch(model.config)
    fixed = dict(generator_labels=torch.tensor([0, 1, 2, 3, 4, 5]), z=torch.randn(6, model.config.dim_z))

    def head_grads(labels, generator_labels):
        copy_ = copy.deepcopy(model)  # the same weights, dictionaries and spectral-norm vectors every time
        out = FQBigGANSteps(copy_).discriminator_step(
            {**batch, "labels": labels}, generator_labels=generator_labels, z=fixed["z"]
        )
        out.loss.backward()
        terms = out.terms
        expected = terms["d_loss_real"] + terms["d_loss_fake"] + terms["quantization_loss"]
        expected = expected + 0.5 * (terms["classifier_loss"] + terms["twin_classifier_loss"])
        assert_fp32_close(out.loss, expected)
        assert all(torch.isfinite(p.grad).all() for p in copy_.discriminator.parameters() if p.grad is not None)
        assert all(p.grad is None for p in copy_.generator.parameters())  # the fakes are made without G's graph
        d = copy_.discriminator
        return d.classifier.weight.grad.clone(), d.twin_classifier.weight.grad.clone()

    other_labels = (batch["labels"] + 3) % 10
    classifier, twin = head_grads(batch["labels"], fixed["generator_labels"])
    assert classifier.abs().sum() > 0 and twin.abs().sum() > 0
    classifier_b, twin_b = head_grads(other_labels, fixed["generator_labels"])
    torch.testing.assert_close(twin_b, twin, rtol=0, atol=0)  # real labels do not reach the twin head
    assert not torch.allclose(classifier_b, classifier)
    classifier_c, twin_c = head_grads(batch["labels"], (fixed["generator_labels"] + 3) % 10)
    assert not torch.allclose(twin_c, twin)  # the fakes' classes do
    assert torch.isfinite(twin_c).all() and torch.isfinite(classifier_c).all()


@pytest.mark.parametrize("use_fq", [True, False])
def test_tac_generator_step_subtracts_the_twin_term(use_fq):
    model = tac_model(use_fq=use_fq, classifier_weight=2.0)
    z, classes = torch.randn(4, model.config.dim_z), torch.tensor([0, 1, 2, 3])
    out = FQBigGANSteps(copy.deepcopy(model)).generator_step(generator_labels=classes, z=z)
    terms = out.terms
    expected = terms["g_loss"] + terms["quantization_loss"]
    expected = expected + 2.0 * (terms["classifier_loss"] - terms["twin_classifier_loss"])
    assert_fp32_close(out.loss, expected)
    assert 0.0 <= terms["classifier_accuracy_fake"] <= 1.0
    out.loss.backward()
    # a twin head equal to the classifier cancels the classifier reward exactly: G's loss is the hinge + FQ alone
    with torch.no_grad():
        twin, classifier = model.discriminator.twin_classifier, model.discriminator.classifier
        for name in ("weight", "bias", "weight_u", "weight_sigma"):
            getattr(twin, name).copy_(getattr(classifier, name))
    cancelled = FQBigGANSteps(model).generator_step(generator_labels=classes, z=z)
    assert cancelled.terms["classifier_loss"] > 0
    torch.testing.assert_close(cancelled.terms["classifier_loss"], cancelled.terms["twin_classifier_loss"])
    assert_fp32_close(cancelled.loss, cancelled.terms["g_loss"] + cancelled.terms["quantization_loss"])
    cancelled.loss.backward()
    grads = [p.grad for p in model.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_projection_steps_are_unchanged_by_the_new_fields():
    """The default loss_type adds no term: D and G losses are BigGAN's hinge + FQ, bit for bit."""
    model = tac_model("projection")
    batch = real_batch(model.config)
    d = FQBigGANSteps(copy.deepcopy(model)).discriminator_step(batch, z=torch.zeros(6, model.config.dim_z))
    assert "classifier_loss" not in d.terms
    assert torch.equal(d.loss, d.terms["d_loss_real"] + d.terms["d_loss_fake"] + d.terms["quantization_loss"])


def test_tac_model_save_load_round_trip(tmp_path):
    model = tac_model(classifier_weight=0.25)
    steps = FQBigGANSteps(model)
    batch = real_batch(model.config)
    for _ in range(2):  # move the heads away from their init
        steps.discriminator_step(batch).loss.backward()
        with torch.no_grad():
            for p in model.discriminator.parameters():
                if p.grad is not None:
                    p -= 0.01 * p.grad
        model.zero_grad()
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin"))
    loaded = FQBigGANForImageGeneration.from_pretrained(tmp_path)
    assert loaded.config.loss_type == "tac" and loaded.config.classifier_weight == 0.25
    model.eval(), loaded.eval()
    with torch.no_grad():
        a, b = model.discriminator(batch["pixel_values"]), loaded.discriminator(batch["pixel_values"])
    assert_fp32_close(b.class_logits, a.class_logits)
    assert_fp32_close(b.twin_class_logits, a.twin_class_logits)
    assert_fp32_close(b.logits, a.logits)


def test_tac_recipes_parse():
    from hf_dgm.training.gan_run import parse_args

    for name, preset in (("fq_tac_biggan_cifar100", "cifar100"), ("fq_tac_biggan_imagenet64", "imagenet64"),
                         ("fq_tac_biggan_digits_cpu", "tiny")):  # fmt: skip
        _, arguments, _, _ = parse_args(
            ["--recipe", str(REPO / "training/recipes" / f"{name}.yaml"), "--output_dir", "unused", "--use_cpu", "true"]
        )
        model_args = arguments["ModelArguments"]
        assert model_args.preset == preset
        config = FQBigGANConfig.from_preset(model_args.preset, **model_args.config_overrides)
        assert config.loss_type == "tac" and config.classifier_weight == 1.0 and config.use_fq
    # the digits recipe differs from the projection digits recipe only in the objective
    import yaml

    tac = yaml.safe_load((REPO / "training/recipes/fq_tac_biggan_digits_cpu.yaml").read_text())
    plain = yaml.safe_load((REPO / "training/recipes/fq_biggan_digits_cpu.yaml").read_text())
    for key in ("loss_type", "classifier_weight"):
        tac["config_overrides"].pop(key)
    assert tac == plain


@pytest.mark.parametrize("loss_type", ["tac", "projection"])
def test_card_names_the_discriminator_objective(tmp_path, loss_type):
    from huggingface_hub import ModelCard
    from test_model_cards import _run

    from hf_dgm.hub import build_card, read_run
    from hf_dgm.registry import get_family

    config = FQBigGANConfig.from_preset("tiny", loss_type=loss_type)
    run = _run(tmp_path, {"fid": 55.5}, {"dataset": "CIFAR-10", "dataset_id": "uoft-cs/cifar10", "eval_split": "train"})
    text = ModelCard(str(build_card(get_family("fq_biggan").hub, config, read_run(run), "hf-dgm-tests/fq-tac"))).text
    assert ("twin classifier" in text) == (loss_type == "tac")
    assert ("projection discriminator" in text) == (loss_type == "projection")
