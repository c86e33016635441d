"""Publishing hf-dgm models to the Hugging Face Hub: flat remote code, model cards, validation, atomic upload.

`publish_model(run_dir, "ORG/name")` is the entry point; `hf-dgm publish` (`hf_dgm.commands.publish`) is its command line.
"""

from .cards import ModelCardError, build_card, read_run
from .publish import (
    DEFAULT_MAX_SHARD_SIZE,
    PreparedRepo,
    PublishError,
    PublishResult,
    prepare_repo_folder,
    publish_model,
)
from .remote_code import RemoteCodeError, assemble_remote_code
from .validation import ValidationError, ValidationReport

__all__ = [
    "publish_model",
    "prepare_repo_folder",
    "PublishError",
    "PublishResult",
    "PreparedRepo",
    "DEFAULT_MAX_SHARD_SIZE",
    "build_card",
    "read_run",
    "ModelCardError",
    "assemble_remote_code",
    "RemoteCodeError",
    "ValidationError",
    "ValidationReport",
]
