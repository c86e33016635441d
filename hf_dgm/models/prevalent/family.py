"""The Prevalent family's registry entry (see `hf_dgm.registry`): the pretrained encoder with its pretraining heads.
The R2R agent has its own model type and entry (`family_navigation.py`).

The pretrained checkpoint has no pipeline (it is a starting point for fine-tuning, not a task model): its Hub entry
publishes `PrevalentForPreTraining` (`model_auto_class`), its probe drives the model's forward directly, and the
repo's `handler.py` serves that forward.
"""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec
from .configuration_prevalent import PrevalentConfig
from .modeling_prevalent import PrevalentForPreTraining, PrevalentModel


def _endpoint_request(config) -> dict:
    """A request for the forward: four token ids (BERT uncased `[CLS]`=101 and `[SEP]`=102 around two word pieces,
    taken modulo the vocabulary size) and two all-zero view rows of the config's feature width."""
    width = config.vision_feature_size + config.angle_feature_size
    ids = [i % config.vocab_size for i in (101, 2000, 2001, 102)]
    return {
        "inputs": {
            "input_ids": [ids],
            "attention_mask": [[1] * len(ids)],
            "vision_features": [[[0.0] * width, [0.0] * width]],
        }
    }


FAMILY = FamilySpec(
    model_type="prevalent",
    package="hf_dgm.models.prevalent",
    description="Prevalent: a vision-language BERT pretrained on image-text-action triplets for navigation (Hao et al., CVPR 2020)",
    config_class=PrevalentConfig,
    auto_models={"AutoModel": PrevalentModel, "AutoModelForPreTraining": PrevalentForPreTraining},
    hub=HubEntry(
        card_template="prevalent.md.j2",
        pipeline_tag="feature-extraction",
        probe="hf_dgm.models.prevalent.probe_prevalent:prevalent_probe",
        probe_task=None,
        model_auto_class="AutoModelForPreTraining",
        task_type="vision-and-language-navigation",
        task_name="Prevalent pretraining (masked LM and action prediction on R2R triplets)",
        tags=("prevalent", "vision-and-language-navigation", "r2r", "pretraining", "custom_code", "hf-dgm"),
        license="apache-2.0",
        metrics={
            # eval_* keys of pretrain_metrics.json (hf_dgm.training.prevalent.pretrain; the card reader drops "eval_"), held-out val_seen
            "masked_lm_loss": MetricSpec("loss", "Masked-LM cross-entropy on held-out R2R val_seen triplets", False),
            "action_loss": MetricSpec("loss", "Action-prediction cross-entropy on held-out R2R val_seen triplets", False),
            "action_accuracy": MetricSpec("accuracy", "Action-prediction accuracy on held-out R2R val_seen triplets", True),
        },
        endpoint_request=_endpoint_request,
        config_summary=(
            "hidden_size", "num_attention_heads", "la_layers", "vl_layers", "vision_feature_size", "angle_feature_size",
            "action_space",
        ),
    ),
    converter="hf_dgm.models.prevalent.convert_prevalent",
    trainer="hf_dgm.training.prevalent.pretrain",
)
