"""The optimus_dialog family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from ..optimus.processing_optimus import OptimusProcessor
from .configuration_optimus_dialog import OptimusDialogConfig
from .modeling_optimus_dialog import OptimusForDialogResponse
from .pipeline_optimus_dialog import DialogResponsePipeline


FAMILY = FamilySpec(
    model_type="optimus_dialog",
    package="hf_dgm.models.optimus_dialog",
    description="Optimus dialog response generation, SpaceFusion style (Li et al., EMNLP 2020; Gao et al., NAACL 2019)",
    config_class=OptimusDialogConfig,
    auto_models={"AutoModel": OptimusForDialogResponse},
    processor_class=OptimusProcessor,
    pipelines=(PipelineTask("dialog-response", DialogResponsePipeline, type="text"),),
    hub=HubEntry(
        card_template="optimus_dialog.md.j2",
        pipeline_tag="text-generation",
        probe="hf_dgm.models.optimus_dialog.probe_optimus_dialog:probe",
        probe_task="dialog-response",
        task_type="text-generation",
        task_name="Dialog response generation",
        extra_code_modules=(),
        required_subfolders=("decoder_tokenizer",),
        tags=("optimus", "spacefusion", "dialog", "response-generation", "vae", "latent-space", "text-generation",
              "custom_code", "hf-dgm"),
        license="apache-2.0",
        metrics={
            "bleu_recall": MetricSpec("bleu", "BLEU recall: best of the sampled responses, sentence BLEU-3 (method7 smoothing)", True),
            "bleu_precision": MetricSpec("bleu", "BLEU precision: mean over the sampled responses, sentence BLEU-3 (method7 smoothing)", True),
            "bleu_f1": MetricSpec("bleu", "BLEU F1 of the precision and recall above", True),
            "intra_distinct_1": MetricSpec("distinct", "Intra distinct-1 (within each response, mean)", True),
            "intra_distinct_2": MetricSpec("distinct", "Intra distinct-2 (within each response, mean)", True),
            "inter_distinct_1": MetricSpec("distinct", "Inter distinct-1 (across a context's responses)", True),
            "inter_distinct_2": MetricSpec("distinct", "Inter distinct-2 (across a context's responses)", True),
            "average_length": MetricSpec("length", "Mean response length (words)", None),
            "reconstruction_nll": MetricSpec("nll", "Response NLL from the context's posterior mean (nats/response)", False),
        },
        endpoint_request={
            "inputs": ["hi , how are you ?", "fine , thanks . and you ?"],
            "parameters": {"task": "dialog-response", "num_responses": 3, "max_new_tokens": 20, "seed": 0},
        },
        config_summary=(
            "num_s2s_layers", "fusion_weight", "fusion_push", "push_weight", "interpolation_noise_std",
            "max_context_length", "optimus.latent_size", "optimus.latent_injection", "optimus.pooling",
            "optimus.encoder.model_type", "optimus.encoder.num_hidden_layers", "optimus.decoder.model_type",
            "optimus.decoder.num_hidden_layers", "optimus.decoder.vocab_size",
        ),
    ),
    evaluator="hf_dgm.training.optimus_dialog.evaluate_cli",
    trainer="hf_dgm.training.optimus_dialog.run",
)
