"""hf-dgm: deep generative models at scale (Optimus, FQ-GAN, Prevalent) as Hugging Face transformers models.

Importing this package registers every config and model with the Auto classes and every custom task with
transformers' pipeline registry.
"""

__version__ = "0.1.0"

from .models.optimus import (  # noqa: E402
    OptimusConfig,
    OptimusForConditionalGeneration,
    OptimusOutput,
    OptimusProcessor,
)
from .registration import register_all  # noqa: E402

register_all()

__all__ = [
    "OptimusConfig",
    "OptimusForConditionalGeneration",
    "OptimusOutput",
    "OptimusProcessor",
    "register_all",
]
