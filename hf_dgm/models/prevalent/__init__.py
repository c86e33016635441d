from .configuration_prevalent import PrevalentConfig
from .modeling_prevalent import (
    PrevalentForNavigation,
    PrevalentForPreTraining,
    PrevalentForPreTrainingOutput,
    PrevalentModel,
    PrevalentModelOutput,
    PrevalentNavigationEncoderOutput,
    PrevalentNavigationOutput,
    PrevalentNavigationStepOutput,
    PrevalentPreTrainedModel,
)

__all__ = [
    "PrevalentConfig",
    "PrevalentForNavigation",
    "PrevalentForPreTraining",
    "PrevalentForPreTrainingOutput",
    "PrevalentModel",
    "PrevalentModelOutput",
    "PrevalentNavigationEncoderOutput",
    "PrevalentNavigationOutput",
    "PrevalentNavigationStepOutput",
    "PrevalentPreTrainedModel",
]
