"""The offline evaluation of class-conditional GANs: classifier accuracy on generated images, dictionary usage."""

import pytest
import torch

from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from hf_dgm.training.fq_biggan.gan_run import dictionary_usage
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps
from hf_dgm.training.gan_evaluation import class_conditional_accuracy


def _patterns(num_per_class: int, seed: int):
    """3 classes of 1×4×4 images: a bright row 0, column 0 or the diagonal, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    templates = torch.full((3, 1, 4, 4), -1.0)
    templates[0, 0, 0, :] = 1.0
    templates[1, 0, :, 0] = 1.0
    templates[2, 0].fill_diagonal_(1.0)
    labels = torch.arange(3).repeat_interleave(num_per_class)
    images = templates[labels] + 0.3 * torch.randn(len(labels), 1, 4, 4, generator=generator)
    return images, labels


def test_class_conditional_accuracy_scores_right_and_wrong_classes():
    real, real_labels = _patterns(20, seed=0)
    fake, fake_labels = _patterns(10, seed=1)
    right = class_conditional_accuracy(real, real_labels, fake, fake_labels)
    assert right["classifier_accuracy_real_held_out"] == 1.0 and right["num_classifier_real_held_out"] == 12
    assert right["classifier_accuracy_generated"] == 1.0 and right["num_classifier_generated"] == 30
    assert right["classifier_accuracy_generated_per_class"] == [1.0, 1.0, 1.0]
    # images of class c claimed to be of class c+1: the classifier disagrees with every one of them
    wrong = class_conditional_accuracy(real, real_labels, fake, (fake_labels + 1) % 3)
    assert wrong["classifier_accuracy_generated"] == 0.0
    # one class drawn as another: that class scores 0, the others 1
    mixed = fake.clone()
    mixed[fake_labels == 2] = fake[fake_labels == 0]
    result = class_conditional_accuracy(real, real_labels, mixed, fake_labels)
    assert result["classifier_accuracy_generated_per_class"] == [1.0, 1.0, 0.0]
    assert result["classifier_accuracy_generated"] == pytest.approx(2 / 3)


def test_class_conditional_accuracy_errors():
    real, labels = _patterns(5, seed=0)
    with pytest.raises(ValueError, match="differ in size"):
        class_conditional_accuracy(real, labels, torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one class id per image"):
        class_conditional_accuracy(real, labels, real[:2], torch.tensor([0]))
    with pytest.raises(ValueError, match=r"generated classes \[7\]"):
        class_conditional_accuracy(real, labels, real[:1], torch.tensor([7]))


def test_dictionary_usage_counts_entries_of_each_quantized_layer():
    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset("tiny", num_channels=1, fq_num_embeddings=8, fq_dictionary_init="data")
    model = FQBigGANForImageGeneration(config)
    images, labels = torch.rand(6, 1, 16, 16) * 2 - 1, torch.arange(6) % 10
    model.train()
    FQBigGANSteps(model).discriminator_step({"pixel_values": images, "labels": labels})  # the first update fills them
    usage = dictionary_usage(model, [(images, labels), (images[:2], labels[:2])])
    assert usage["num_fq_dictionary_entries"] == 8
    for layer in config.fq_layers:
        used, perplexity = usage[f"fq_used_entries_layer{layer}"], usage[f"fq_perplexity_layer{layer}"]
        assert 1 <= used <= 8 and 1.0 <= perplexity <= used + 1e-6
    unquantized = FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", use_fq=False))
    assert dictionary_usage(unquantized, [(images, labels)]) == {}
