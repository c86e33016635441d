"""The Optimus family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_optimus import OptimusConfig
from .modeling_optimus import OptimusForConditionalGeneration
from .pipelines_optimus import (
    SentenceAnalogyPipeline,
    SentenceInterpolationPipeline,
    SentenceLatentPipeline,
    SentenceReconstructionPipeline,
)
from .processing_optimus import OptimusProcessor


FAMILY = FamilySpec(
    model_type="optimus",
    package="hf_dgm.models.optimus",
    description="Optimus: a sentence VAE with a BERT encoder and a GPT-2 decoder (Li et al., EMNLP 2020)",
    config_class=OptimusConfig,
    auto_models={"AutoModel": OptimusForConditionalGeneration, "AutoModelForPreTraining": OptimusForConditionalGeneration},
    processor_class=OptimusProcessor,
    pipelines=(
        PipelineTask("sentence-interpolation", SentenceInterpolationPipeline, type="text"),
        PipelineTask("sentence-analogy", SentenceAnalogyPipeline, type="text"),
        PipelineTask("sentence-reconstruction", SentenceReconstructionPipeline, type="text"),
        PipelineTask("sentence-latent", SentenceLatentPipeline, type="text"),
    ),
    hub=HubEntry(
        card_template="optimus.md.j2",
        pipeline_tag="text-generation",
        probe="hf_dgm.models.optimus.probe_optimus:optimus_probe",
        probe_task="sentence-interpolation",
        task_type="text-generation",
        task_name="Sentence VAE language modelling",
        extra_code_modules=("processing_optimus",),
        required_subfolders=("decoder_tokenizer",),
        tags=("optimus", "vae", "variational-autoencoder", "sentence-vae", "latent-space", "text-generation",
              "custom_code", "hf-dgm"),
        license="apache-2.0",
        metrics={
            # keys written by hf_dgm.metrics (iw_nll, mutual_information, active_units, reconstruction_bleu) and the
            # Optimus trainer; perplexities are per subword token incl. <BOS>/<EOS>
            "ppl_per_token": MetricSpec("perplexity", "Perplexity per subword token (importance-weighted)", False),
            "ppl": MetricSpec("perplexity", "Perplexity per subword token (importance-weighted)", False),
            "perplexity": MetricSpec("perplexity", "Perplexity per subword token (importance-weighted)", False),
            "ppl_per_word": MetricSpec("perplexity", "Perplexity per word (importance-weighted)", False),
            "elbo_ppl_per_token": MetricSpec("perplexity", "Perplexity per subword token from the ELBO (upper bound)", False),
            "iw_nll": MetricSpec("nll", "Negative log-likelihood, importance-weighted (nats/sentence)", False),
            "nll": MetricSpec("nll", "Negative log-likelihood, importance-weighted (nats/sentence)", False),
            "neg_elbo": MetricSpec("elbo", "-ELBO (nats/sentence)", False),
            "elbo": MetricSpec("elbo", "-ELBO (nats/sentence)", False),
            "kl": MetricSpec("kl", "KL(q(z|x) || p(z)), un-thresholded (nats/sentence)", None),
            "reconstruction_nll": MetricSpec("nll", "Reconstruction NLL -log p(x|z), mean over posterior samples, not importance-weighted (nats/sentence)", False),
            "mutual_information": MetricSpec("mutual_information", "Mutual information I(x; z) (nats)", True),
            "mi": MetricSpec("mutual_information", "Mutual information I(x; z) (nats)", True),
            "active_units": MetricSpec("active_units", "Active units (Var_x[mu(x)] >= 0.01)", True),
            "au": MetricSpec("active_units", "Active units (Var_x[mu(x)] >= 0.01)", True),
            "reconstruction_bleu": MetricSpec("bleu", "Reconstruction BLEU (greedy decoding of the posterior mean)", True),
            "bleu": MetricSpec("bleu", "Reconstruction BLEU (greedy decoding of the posterior mean)", True),
            "reconstruction_exact_match": MetricSpec("exact_match", "Exact reconstructions (fraction)", True),
            "exact_match": MetricSpec("exact_match", "Exact reconstructions (fraction)", True),
            "interpolation_endpoint_bleu": MetricSpec("bleu", "Interpolation endpoints: sentence BLEU of the alpha=0/1 decodes vs their sources", True),
            "interpolation_distinct": MetricSpec("distinct", "Distinct sentences per interpolation path (mean over pairs)", True),
            "plain_decoder_ppl_per_token": MetricSpec("perplexity", "Plain decoder fine-tuned on the same budget: perplexity per subword token (exact)", None),
            "plain_decoder_nll": MetricSpec("nll", "Plain decoder fine-tuned on the same budget: exact NLL (nats/sentence)", None),
            "ppl_ratio_to_plain_decoder": MetricSpec("ratio", "Perplexity ratio, Optimus (IW) / plain decoder", False),
            "loss": MetricSpec("loss", "Objective (rec + beta * thresholded KL) (nats/sentence)", False),
        },
        endpoint_request={
            "inputs": ["a man is playing a guitar .", "two dogs run through the snow ."],
            "parameters": {"task": "sentence-interpolation", "num_steps": 5, "max_new_tokens": 20},
        },
        config_summary=(
            "latent_size", "latent_injection", "pooling", "beta", "kl_threshold", "kl_threshold_mode",
            "encoder.model_type", "encoder.hidden_size", "encoder.num_hidden_layers",
            "decoder.model_type", "decoder.hidden_size", "decoder.num_hidden_layers", "decoder.vocab_size",
        ),
    ),
    converter="hf_dgm.models.optimus.convert_optimus",
    evaluator="hf_dgm.training.optimus.evaluate_cli",
    trainer="hf_dgm.training.optimus.run",
    demo="hf_dgm.models.optimus.demo_optimus",
)
