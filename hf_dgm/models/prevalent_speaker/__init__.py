from .configuration_prevalent_speaker import PrevalentSpeakerConfig
from .modeling_prevalent_speaker import PrevalentSpeakerModel, PrevalentSpeakerOutput, PrevalentSpeakerPreTrainedModel
from .pipeline_prevalent_speaker import VLNInstructionPipeline


__all__ = [
    "PrevalentSpeakerConfig",
    "PrevalentSpeakerModel",
    "PrevalentSpeakerOutput",
    "PrevalentSpeakerPreTrainedModel",
    "VLNInstructionPipeline",
]
