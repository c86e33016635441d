from .configuration_prevalent import PrevalentConfig, PrevalentNavigationConfig
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
    "PrevalentNavigationConfig",
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
