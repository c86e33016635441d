"""The Prevalent speaker family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_prevalent_speaker import PrevalentSpeakerConfig
from .modeling_prevalent_speaker import PrevalentSpeakerModel
from .pipeline_prevalent_speaker import VLNInstructionPipeline


# a two-move geometry-only trajectory in the pipeline's compact form (view indices, taken candidates' angles)
ENDPOINT_TRAJECTORY = {"view_indices": [12, 13, 15], "action_angles": [[0.52, -0.02], [1.05, 0.01]]}


FAMILY = FamilySpec(
    model_type="prevalent_speaker",
    package="hf_dgm.models.prevalent_speaker",
    description="Prevalent speaker: the R2R-EnvDrop speaker that writes navigation instructions for paths (Tan et al. 2019)",
    config_class=PrevalentSpeakerConfig,
    auto_models={"AutoModel": PrevalentSpeakerModel},
    pipelines=(PipelineTask("vln-instruction", VLNInstructionPipeline, type="multimodal"),),
    hub=HubEntry(
        card_template="prevalent_speaker.md.j2",
        pipeline_tag="text-generation",
        probe="hf_dgm.models.prevalent_speaker.probe_prevalent_speaker:prevalent_speaker_probe",
        probe_task="vln-instruction",
        task_type="text-generation",
        task_name="Navigation instruction generation (R2R speaker)",
        tags=("prevalent", "vision-and-language-navigation", "r2r", "speaker", "instruction-generation", "custom_code",
              "hf-dgm"),
        license="apache-2.0",
        metrics={
            # keys written by hf_dgm.training.prevalent_speaker.run (metrics.json)
            "val_seen_bleu": MetricSpec("bleu", "BLEU-4 on R2R val_seen (sacrebleu, lowercased, one generation per path)", True),
            "eval_loss": MetricSpec("loss", "Teacher-forced token cross-entropy on R2R val_seen", False),
        },
        endpoint_request={"inputs": ENDPOINT_TRAJECTORY, "parameters": {"task": "vln-instruction", "max_length": 20}},
        config_summary=(
            "feature_size", "angle_feat_size", "hidden_size", "embedding_size", "bidirectional", "dropout",
            "feature_dropout", "max_instruction_length", "output_vocab_size",
        ),
    ),
    trainer="hf_dgm.training.prevalent_speaker.run",
    demo="hf_dgm.models.prevalent.demo_prevalent",
)
