"""FQ-BigGAN (Zhao et al., ICML 2020): BigGAN with feature quantization in the discriminator."""

from .configuration_fq_biggan import CIFAR10_CLASSES, CIFAR100_CLASSES, PRESETS, FQBigGANConfig
from .modeling_fq_biggan import (
    FQBigGANDiscriminator,
    FQBigGANDiscriminatorOutput,
    FQBigGANForImageGeneration,
    FQBigGANGenerationOutput,
    FQBigGANGenerator,
    FQBigGANGeneratorModel,
    FQBigGANPreTrainedModel,
    sample_truncated_normal,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "PRESETS",
    "FQBigGANConfig",
    "FQBigGANDiscriminator",
    "FQBigGANDiscriminatorOutput",
    "FQBigGANForImageGeneration",
    "FQBigGANGenerationOutput",
    "FQBigGANGenerator",
    "FQBigGANGeneratorModel",
    "FQBigGANPreTrainedModel",
    "sample_truncated_normal",
]
