from .configuration_optimus import OptimusConfig
from .modeling_optimus import (
    LatentMemoryCache,
    OptimusEncoderOutput,
    OptimusForConditionalGeneration,
    OptimusInterpolationOutput,
    OptimusOutput,
    OptimusPreTrainedModel,
)
from .processing_optimus import OptimusProcessor

__all__ = [
    "LatentMemoryCache",
    "OptimusConfig",
    "OptimusEncoderOutput",
    "OptimusForConditionalGeneration",
    "OptimusInterpolationOutput",
    "OptimusOutput",
    "OptimusPreTrainedModel",
    "OptimusProcessor",
]
