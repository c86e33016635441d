"""hf-dgm: deep generative models at scale (Optimus, FQ-GAN incl. FQ-U-GAT-IT, Prevalent) as Hugging Face transformers models.

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
from .models.fq_biggan import (  # noqa: E402
    FQBigGANConfig,
    FQBigGANForImageGeneration,
    FQBigGANGeneratorModel,
)
from .models.fq_ugatit import (  # noqa: E402
    FQUGATITConfig,
    FQUGATITGeneratorModel,
    FQUGATITModel,
)
from .models.fq_ugatit.pipeline_fq_ugatit import (  # noqa: E402
    FQUGATITImageToImagePipeline,
    ImageTranslationPipelineOutput,
)
from .models.fq_stylegan import (  # noqa: E402
    FQStyleGANConfig,
    FQStyleGANForImageGeneration,
    FQStyleGANGeneratorModel,
)
from .modules.feature_quantizer import FeatureQuantizer, FeatureQuantizerOutput  # noqa: E402
from .pipelines.image_generation import (  # noqa: E402
    ClassConditionalImageGenerationPipeline,
    UnconditionalImageGenerationPipeline,
)
from .pipelines.image_output import ImagePipelineOutput  # noqa: E402
from .registry import FamilySpec, HubEntry, MetricSpec, PipelineTask, register_all, register_family  # noqa: E402

register_all()

__all__ = [
    "ClassConditionalImageGenerationPipeline",
    "FQBigGANConfig",
    "FQBigGANForImageGeneration",
    "FQBigGANGeneratorModel",
    "FQUGATITConfig",
    "FQUGATITGeneratorModel",
    "FQUGATITImageToImagePipeline",
    "FQUGATITModel",
    "FQStyleGANConfig",
    "FQStyleGANForImageGeneration",
    "FQStyleGANGeneratorModel",
    "FeatureQuantizer",
    "FeatureQuantizerOutput",
    "ImagePipelineOutput",
    "ImageTranslationPipelineOutput",
    "UnconditionalImageGenerationPipeline",
    "OptimusConfig",
    "OptimusForConditionalGeneration",
    "OptimusOutput",
    "OptimusProcessor",
    "register_all",
    "register_family",
    "FamilySpec",
    "HubEntry",
    "MetricSpec",
    "PipelineTask",
]
