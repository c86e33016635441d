from .configuration_optimus_dialog import OptimusDialogConfig
from .modeling_optimus_dialog import OptimusDialogOutput, OptimusDialogPreTrainedModel, OptimusForDialogResponse
from .pipeline_optimus_dialog import DialogResponsePipeline

__all__ = [
    "DialogResponsePipeline",
    "OptimusDialogConfig",
    "OptimusDialogOutput",
    "OptimusDialogPreTrainedModel",
    "OptimusForDialogResponse",
]
