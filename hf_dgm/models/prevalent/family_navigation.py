"""The Prevalent R2R agent's registry entry (see `hf_dgm.registry`): `prevalent_navigation`, the `vln-navigation`
pipeline, fine-tuning and val_seen evaluation."""

from __future__ import annotations

from ...registry import FamilySpec, PipelineTask
from .configuration_prevalent import PrevalentNavigationConfig
from .modeling_prevalent import PrevalentForNavigation
from .pipeline_prevalent import VLNNavigationPipeline


FAMILY = FamilySpec(
    model_type="prevalent_navigation",
    package="hf_dgm.models.prevalent",
    description="The R2R-EnvDrop navigation agent on the Prevalent encoder (vln-navigation)",
    config_class=PrevalentNavigationConfig,
    auto_models={"AutoModel": PrevalentForNavigation},
    pipelines=(PipelineTask("vln-navigation", VLNNavigationPipeline),),
    evaluator="hf_dgm.training.prevalent_finetune",
    trainer="hf_dgm.training.prevalent_finetune",
    demo="hf_dgm.demo.prevalent",
)
