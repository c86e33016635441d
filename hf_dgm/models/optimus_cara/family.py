"""The Optimus-CARA family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_optimus_cara import OptimusCaraConfig
from .modeling_optimus_cara import OptimusForLabelConditionalGeneration
from .pipeline_optimus_cara import LabelConditionalGenerationPipeline


FAMILY = FamilySpec(
    model_type="optimus_cara",
    package="hf_dgm.models.optimus_cara",
    description="Optimus-CARA: label-conditional sentence generation in an Optimus latent space (Li et al., EMNLP 2020)",
    config_class=OptimusCaraConfig,
    auto_models={"AutoModel": OptimusForLabelConditionalGeneration},
    pipelines=(PipelineTask("label-conditional-generation", LabelConditionalGenerationPipeline, type="text"),),
    hub=HubEntry(
        card_template="optimus_cara.md.j2",
        pipeline_tag="text-generation",
        probe="hf_dgm.models.optimus_cara.probe_optimus_cara:probe",
        probe_task="label-conditional-generation",
        task_type="text-generation",
        task_name="Label-conditional sentence generation",
        required_subfolders=("decoder_tokenizer",),
        tags=("optimus", "cara", "vae", "latent-space", "conditional-generation", "text-generation", "custom_code",
              "hf-dgm"),
        license="apache-2.0",
        metrics={
            "label_accuracy": MetricSpec("accuracy", "Generated sentences judged to have their requested label", True),
            "judge_accuracy": MetricSpec("accuracy", "Judge classifier accuracy on held-out real sentences", None),
            "latent_classifier_accuracy": MetricSpec("accuracy", "Latent classifier accuracy on held-out posterior means", None),
            "plain_decoder_ppl": MetricSpec("perplexity", "Perplexity of generated sentences under the plain decoder", False),
            "reconstruction_label_accuracy": MetricSpec("accuracy", "Judge accuracy on the VAE's reconstructions of held-out sentences (ceiling)", None),
            "latent_spread_ratio": MetricSpec("spread_ratio", "Per-dimension spread of generated latents over the real posterior means'", None),
            "plain_decoder_ppl_real": MetricSpec("perplexity", "Perplexity of real held-out sentences under the plain decoder (reference)", None),
            "distinct_1": MetricSpec("distinct-1", "Distinct-1 of generated sentences", True),
            "distinct_2": MetricSpec("distinct-2", "Distinct-2 of generated sentences", True),
        },
        endpoint_request={"inputs": [0, 1], "parameters": {"task": "label-conditional-generation",
                                                             "num_return_sequences": 2, "seed": 0,
                                                             "max_new_tokens": 20}},
        config_summary=(
            "variant", "num_labels", "id2label", "noise_size", "hidden_size", "num_hidden_layers",
            "label_embedding_size", "classifier_weight", "optimus.latent_size", "optimus.latent_injection",
            "optimus.encoder.model_type", "optimus.decoder.model_type",
        ),
    ),
    evaluator="hf_dgm.training.optimus_cara.evaluate_cli",
    trainer="hf_dgm.training.optimus_cara.run",
)
