"""The classifier losses of TAC-GAN (Gong, Xu, Li, Zhang, Batmanghelich, "Twin Auxiliary Classifiers GAN",
NeurIPS 2019) and of its AC-GAN baseline, as pure functions of the heads' logits.

An AC-GAN discriminator carries a classifier head `C` on its pooled features; TAC-GAN adds a second, "twin" head
`C_mi` on the same features. With `y_real` the classes of the real images, `y_fake` the classes the fakes were
generated from and `λ` the classifier weight (`FQBigGANConfig.classifier_weight`):

| term                     | minimised by   | loss                                              |
|--------------------------|----------------|---------------------------------------------------|
| classifier on real       | D (trunk + C)  | `λ · CE(C(x_real), y_real)`                       |
| twin classifier on fake  | D (trunk + C_mi) | `λ · CE(C_mi(G(z, y_fake)), y_fake)`            |
| generator                | G              | `λ · (CE(C(G(z, y)), y) − CE(C_mi(G(z, y)), y))` |

`CE` is the softmax cross-entropy averaged over the batch. AC-GAN is the same without the twin head (its G loss is
`λ · CE(C(fake), y)`). Minimising `CE(C(fake), y)` alone pushes G towards samples its classifier finds easy
(it lowers the conditional entropy of the fakes' classes given the images), which biases AC-GAN's class-conditional
distributions towards the classes' cores; the twin head, trained on the *fakes*, estimates that entropy term and G
subtracts it (the paper's analysis). The adversarial terms (BigGAN's hinge) are unchanged and added by the caller.

Shapes: logits `(B, num_classes)`, labels `(B,)` class ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


CLASSIFIER_LOSS_TYPES = ("ac", "tac")


@dataclass
class ClassifierLosses:
    """Classifier terms of one step.

    Args:
        loss (`torch.FloatTensor` of shape `()`): The weighted sum the stepped network minimises.
        classifier_loss (`torch.FloatTensor` of shape `()`): Unweighted `CE(C(·), y)` (real images in a D step, fakes
            in a G step).
        twin_classifier_loss (`torch.FloatTensor` of shape `()` or `None`): Unweighted `CE(C_mi(fake), y_fake)`
            (`None` for AC-GAN).
    """

    loss: torch.Tensor
    classifier_loss: torch.Tensor
    twin_classifier_loss: torch.Tensor | None = None


def _check(loss_type: str, logits: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    if loss_type not in CLASSIFIER_LOSS_TYPES:
        raise ValueError(f"`loss_type` must be one of {CLASSIFIER_LOSS_TYPES}, got {loss_type!r}")
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"`{name}` must be (B, num_classes) logits with (B,) labels, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )


def classifier_discriminator_loss(
    class_logits_real: torch.Tensor,
    labels_real: torch.LongTensor,
    twin_logits_fake: torch.Tensor | None,
    labels_fake: torch.LongTensor | None,
    weight: float = 1.0,
    loss_type: str = "tac",
) -> ClassifierLosses:
    """D's classifier terms: `weight · (CE(C(x_real), y_real) + CE(C_mi(fake), y_fake))` for TAC-GAN,
    `weight · CE(C(x_real), y_real)` for AC-GAN (`twin_logits_fake` and `labels_fake` unused, may be `None`).

    Args:
        class_logits_real (`torch.FloatTensor` of shape `(B, K)`): Head `C` on the real images.
        labels_real (`torch.LongTensor` of shape `(B,)`): Their classes.
        twin_logits_fake (`torch.FloatTensor` of shape `(B', K)`): Head `C_mi` on the fakes (TAC).
        labels_fake (`torch.LongTensor` of shape `(B',)`): The classes the fakes were generated from (TAC).
        weight (`float`): `λ`. loss_type (`str`): `"tac"` or `"ac"`.
    """
    _check(loss_type, class_logits_real, labels_real, "class_logits_real")
    classifier_loss = F.cross_entropy(class_logits_real, labels_real)
    if loss_type == "ac":
        return ClassifierLosses(loss=weight * classifier_loss, classifier_loss=classifier_loss)
    if twin_logits_fake is None or labels_fake is None:
        raise ValueError("TAC's discriminator loss needs `twin_logits_fake` and `labels_fake`")
    _check(loss_type, twin_logits_fake, labels_fake, "twin_logits_fake")
    twin_loss = F.cross_entropy(twin_logits_fake, labels_fake)
    return ClassifierLosses(
        loss=weight * (classifier_loss + twin_loss), classifier_loss=classifier_loss, twin_classifier_loss=twin_loss
    )


def classifier_generator_loss(
    class_logits_fake: torch.Tensor,
    twin_logits_fake: torch.Tensor | None,
    labels_fake: torch.LongTensor,
    weight: float = 1.0,
    loss_type: str = "tac",
) -> ClassifierLosses:
    """G's classifier terms: `weight · (CE(C(fake), y) − CE(C_mi(fake), y))` for TAC-GAN, `weight · CE(C(fake), y)`
    for AC-GAN (`twin_logits_fake` unused, may be `None`).

    Args:
        class_logits_fake (`torch.FloatTensor` of shape `(B, K)`): Head `C` on the fakes.
        twin_logits_fake (`torch.FloatTensor` of shape `(B, K)`): Head `C_mi` on the same fakes (TAC).
        labels_fake (`torch.LongTensor` of shape `(B,)`): The classes they were generated from.
        weight (`float`): `λ`. loss_type (`str`): `"tac"` or `"ac"`.
    """
    _check(loss_type, class_logits_fake, labels_fake, "class_logits_fake")
    classifier_loss = F.cross_entropy(class_logits_fake, labels_fake)
    if loss_type == "ac":
        return ClassifierLosses(loss=weight * classifier_loss, classifier_loss=classifier_loss)
    if twin_logits_fake is None:
        raise ValueError("TAC's generator loss needs `twin_logits_fake`")
    _check(loss_type, twin_logits_fake, labels_fake, "twin_logits_fake")
    twin_loss = F.cross_entropy(twin_logits_fake, labels_fake)
    return ClassifierLosses(
        loss=weight * (classifier_loss - twin_loss), classifier_loss=classifier_loss, twin_classifier_loss=twin_loss
    )
