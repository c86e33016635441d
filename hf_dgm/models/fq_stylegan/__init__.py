"""FQ-StyleGAN (Zhao et al., ICML 2020): StyleGAN2 with feature quantization in the discriminator."""

from .configuration_fq_stylegan import FQ_NUM_EMBEDDINGS_BY_RESOLUTION, NOISE_MODES, PRESETS, FQStyleGANConfig
from .modeling_fq_stylegan import (
    FQStyleGANDiscriminator,
    FQStyleGANDiscriminatorOutput,
    FQStyleGANForImageGeneration,
    FQStyleGANGenerationOutput,
    FQStyleGANGenerator,
    FQStyleGANGeneratorModel,
    FQStyleGANMappingNetwork,
    FQStyleGANPreTrainedModel,
    FQStyleGANSynthesisNetwork,
)

__all__ = [
    "FQ_NUM_EMBEDDINGS_BY_RESOLUTION",
    "NOISE_MODES",
    "PRESETS",
    "FQStyleGANConfig",
    "FQStyleGANDiscriminator",
    "FQStyleGANDiscriminatorOutput",
    "FQStyleGANForImageGeneration",
    "FQStyleGANGenerationOutput",
    "FQStyleGANGenerator",
    "FQStyleGANGeneratorModel",
    "FQStyleGANMappingNetwork",
    "FQStyleGANPreTrainedModel",
    "FQStyleGANSynthesisNetwork",
]
