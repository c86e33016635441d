"""Evaluation of class-conditional image GANs that needs no pretrained network: does a sample show its class?

[`class_conditional_accuracy`] fits a multinomial logistic regression (scikit-learn) on the real images' pixels,
checks it on held-out real images, then labels generated images and counts how often the label is the class the
image was generated for. On small data sets (scikit-learn's 8×8 digits) this is a direct, offline test that a
conditional generator draws the right class; it says nothing about diversity (FID/KID measure that).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_features(images: torch.Tensor | np.ndarray) -> np.ndarray:
    array = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    if array.ndim < 2:
        raise ValueError(f"images must be (N, ...) arrays, got shape {array.shape}")
    return array.reshape(array.shape[0], -1)


def _as_labels(labels, count: int, name: str) -> np.ndarray:
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.shape != (count,):
        raise ValueError(f"`{name}` must hold one class id per image ({count}), got shape {array.shape}")
    return array.astype(np.int64)


def class_conditional_accuracy(
    real_images: torch.Tensor | np.ndarray,
    real_labels: torch.Tensor | np.ndarray,
    generated_images: torch.Tensor | np.ndarray,
    generated_labels: torch.Tensor | np.ndarray,
    held_out_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
) -> dict[str, float | int | list[float]]:
    """Fit a pixel-space logistic regression on real images and score generated ones against their classes.

    Args:
        real_images / generated_images: `(N, C, H, W)` (or any `(N, ...)`) images in the same value range.
        real_labels / generated_labels: `(N,)` class ids; `generated_labels` are the classes the images were
            generated for.
        held_out_fraction: share of the real images (stratified, `seed`) kept out of fitting to measure the
            classifier itself.
        max_iter: L-BFGS iterations of the logistic regression.

    Returns:
        `classifier_accuracy_generated` (fraction of generated images labelled with their class),
        `classifier_accuracy_generated_per_class` (one value per class id 0..K-1; -1 for a class with no generated
        images), `classifier_accuracy_real_held_out`
        (the classifier on held-out real images: the ceiling to compare with), and the counts.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    real_x = _as_features(real_images)
    real_y = _as_labels(real_labels, real_x.shape[0], "real_labels")
    fake_x = _as_features(generated_images)
    fake_y = _as_labels(generated_labels, fake_x.shape[0], "generated_labels")
    if real_x.shape[1] != fake_x.shape[1]:
        raise ValueError(
            f"real and generated images differ in size: {real_x.shape[1]} vs {fake_x.shape[1]} values per image"
        )
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"`held_out_fraction` must be in (0, 1), got {held_out_fraction}")
    classes = np.unique(real_y)
    if len(classes) < 2:
        raise ValueError(f"need real images of at least 2 classes, got {classes.tolist()}")
    unknown = sorted(set(np.unique(fake_y).tolist()) - set(classes.tolist()))
    if unknown:
        raise ValueError(f"generated classes {unknown} have no real images to fit the classifier on")
    fit_x, held_x, fit_y, held_y = train_test_split(
        real_x, real_y, test_size=held_out_fraction, random_state=seed, stratify=real_y
    )
    classifier = LogisticRegression(max_iter=max_iter)
    classifier.fit(fit_x, fit_y)
    predicted = classifier.predict(fake_x)
    correct = predicted == fake_y
    per_class = [float(correct[fake_y == c].mean()) if (fake_y == c).any() else -1.0 for c in range(int(classes.max()) + 1)]
    return {
        "classifier_accuracy_generated": float(correct.mean()),
        "classifier_accuracy_generated_per_class": per_class,
        "classifier_accuracy_real_held_out": float(classifier.score(held_x, held_y)),
        "num_classifier_generated": int(fake_x.shape[0]),
        "num_classifier_real_fit": int(fit_x.shape[0]),
        "num_classifier_real_held_out": int(held_x.shape[0]),
    }


__all__ = ["class_conditional_accuracy"]
