from .configuration_optimus_cara import OptimusCaraConfig
from .modeling_optimus_cara import OptimusCaraOutput, OptimusCaraPreTrainedModel, OptimusForLabelConditionalGeneration
from .pipeline_optimus_cara import LabelConditionalGenerationPipeline

__all__ = [
    "LabelConditionalGenerationPipeline",
    "OptimusCaraConfig",
    "OptimusCaraOutput",
    "OptimusCaraPreTrainedModel",
    "OptimusForLabelConditionalGeneration",
]
