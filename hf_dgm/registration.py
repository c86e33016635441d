"""Registration of every hf-dgm config, model and pipeline task with transformers.

`import hf_dgm` calls :func:`register_all` once. Each family adds its entries to the tables below; registration
is idempotent, so importing twice (or from several processes) is harmless.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

_DONE = False


def _register_model(model_type: str, config_cls, model_cls, auto_classes=(AutoModel,)) -> None:
    try:
        AutoConfig.register(model_type, config_cls)
    except ValueError:  # already registered (re-import)
        pass
    for auto_cls in auto_classes:
        try:
            auto_cls.register(config_cls, model_cls)
        except ValueError:
            pass


def _register_pipeline(task: str, pipeline_cls, pt_model=AutoModel, default=None, type: str = "multimodal") -> None:
    if task in PIPELINE_REGISTRY.get_supported_tasks() and PIPELINE_REGISTRY.supported_tasks.get(task, {}).get("impl") is pipeline_cls:
        return
    kwargs = {"pipeline_class": pipeline_cls, "pt_model": pt_model, "type": type}
    if default is not None:
        kwargs["default"] = default
    PIPELINE_REGISTRY.register_pipeline(task, **kwargs)


def register_all() -> None:
    """Register every family. Called by `import hf_dgm`."""
    global _DONE
    if _DONE:
        return
    _register_optimus()
    _register_fq_biggan()
    _register_prevalent()
    _DONE = True


def _register_optimus() -> None:
    from .models.optimus import OptimusConfig, OptimusForConditionalGeneration
    from .models.optimus import pipelines_optimus as p

    _register_model("optimus", OptimusConfig, OptimusForConditionalGeneration)
    _register_pipeline("sentence-interpolation", p.SentenceInterpolationPipeline)
    _register_pipeline("sentence-analogy", p.SentenceAnalogyPipeline)
    _register_pipeline("sentence-reconstruction", p.SentenceReconstructionPipeline)
    _register_pipeline("sentence-latent", p.SentenceLatentPipeline)


def _register_fq_biggan() -> None:
    from .models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
    from .pipelines import image_generation as p

    _register_model("fq_biggan", FQBigGANConfig, FQBigGANForImageGeneration)
    _register_pipeline("class-conditional-image-generation", p.ClassConditionalImageGenerationPipeline)
    _register_pipeline("unconditional-image-generation", p.UnconditionalImageGenerationPipeline)


def _register_prevalent() -> None:
    from transformers import AutoModelForPreTraining

    from .models.prevalent import PrevalentConfig, PrevalentForNavigation, PrevalentForPreTraining, PrevalentModel
    from .models.prevalent import PrevalentNavigationConfig

    _register_model("prevalent", PrevalentConfig, PrevalentModel)
    _register_model("prevalent", PrevalentConfig, PrevalentForPreTraining, auto_classes=(AutoModelForPreTraining,))
    _register_model("prevalent_navigation", PrevalentNavigationConfig, PrevalentForNavigation)
    from .models.prevalent.pipeline_prevalent import VLNNavigationPipeline

    _register_pipeline("vln-navigation", VLNNavigationPipeline)
