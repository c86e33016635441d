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
