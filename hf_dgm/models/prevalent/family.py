"""The Prevalent family's registry entry (see `hf_dgm.registry`): the pretrained encoder with its pretraining heads.
The R2R agent has its own model type and entry (`family_navigation.py`)."""

from __future__ import annotations

from ...registry import FamilySpec
from .configuration_prevalent import PrevalentConfig
from .modeling_prevalent import PrevalentForPreTraining, PrevalentModel


FAMILY = FamilySpec(
    model_type="prevalent",
    package="hf_dgm.models.prevalent",
    description="Prevalent: a vision-language BERT pretrained on image-text-action triplets for navigation (Hao et al., CVPR 2020)",
    config_class=PrevalentConfig,
    auto_models={"AutoModel": PrevalentModel, "AutoModelForPreTraining": PrevalentForPreTraining},
    converter="hf_dgm.convert.prevalent",
    trainer="hf_dgm.training.prevalent_pretrain",
)
