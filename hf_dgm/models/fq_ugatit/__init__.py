"""FQ-U-GAT-IT (Zhao et al., ICML 2020; U-GAT-IT by Kim et al., ICLR 2020): unpaired image-to-image translation with
attention (CAM), AdaLIN, and feature quantization in the global discriminators."""

from .configuration_fq_ugatit import FQUGATITConfig
from .modeling_fq_ugatit import (
    DIRECTIONS,
    FQUGATITDiscriminator,
    FQUGATITDiscriminatorOutput,
    FQUGATITGenerator,
    FQUGATITGeneratorModel,
    FQUGATITGeneratorOutput,
    FQUGATITModel,
    FQUGATITPreTrainedModel,
)

__all__ = [
    "DIRECTIONS",
    "FQUGATITConfig",
    "FQUGATITDiscriminator",
    "FQUGATITDiscriminatorOutput",
    "FQUGATITGenerator",
    "FQUGATITGeneratorModel",
    "FQUGATITGeneratorOutput",
    "FQUGATITModel",
    "FQUGATITPreTrainedModel",
]
