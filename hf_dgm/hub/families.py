"""The family table: everything the publisher needs to know about one model family, in one entry.

Code files, Auto classes and pipeline tasks are NOT listed here: they come from what `import hf_dgm` registered
(`AutoConfig`/`AutoModel*` registrations and `PIPELINE_REGISTRY` tasks whose class lives in the family's package),
so the package keeps one source of truth. An entry adds what only publishing needs: extra code files the Auto
classes do not reach, the card template and metadata, how metric keys read in a model index, and which probe
proves a published repo.

Adding a family = one `HubFamily(...)` in `FAMILIES` (plus its card template and probe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class MetricSpec:
    """How a metric key of the run's metrics JSON appears in the card's model index."""

    type: str  # model-index metric type (Hub metric id where one exists)
    name: str  # human-readable name
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class HubFamily:
    model_type: str
    package: str  # module holding the family, e.g. "hf_dgm.models.optimus"
    card_template: str  # file name in model_cards/
    pipeline_tag: str  # Hub task shown on the model page
    probe: str  # function name in hf_dgm/hub/probes.py
    probe_task: str | Callable[[Any], str]  # pipeline task the probe drives (or a function of the config)
    task_type: str  # model-index `task.type`
    task_name: str  # model-index `task.name`
    extra_code_modules: tuple[str, ...] = ()  # module names in the family package the Auto classes do not import
    # modules outside the family package whose registered pipeline tasks serve this family (shared pipelines)
    pipeline_modules: tuple[str, ...] = ()
    required_subfolders: tuple[str, ...] = ()  # folders the saved model must contain (e.g. second tokenizer)
    tags: tuple[str, ...] = ()
    license: str = "apache-2.0"
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    card_variables: dict[str, Any] = field(default_factory=dict)  # static template variables
    # dotted config attributes worth a line in the card's "Configuration" table
    config_summary: tuple[str, ...] = ()
    # an Inference Endpoints request body for handler.py (or a function of the config); shown on the card and
    # sent to the handler during validation
    endpoint_request: dict[str, Any] | Callable[[Any], dict[str, Any]] = field(default_factory=dict)

    def task_for(self, config: Any) -> str:
        """The pipeline task the probe drives for this config."""
        return self.probe_task(config) if callable(self.probe_task) else self.probe_task

    def request_for(self, config: Any) -> dict[str, Any]:
        return self.endpoint_request(config) if callable(self.endpoint_request) else dict(self.endpoint_request)

    def owns_pipeline(self, module: str) -> bool:
        return module.startswith(self.package + ".") or module in self.pipeline_modules


OPTIMUS = HubFamily(
    model_type="optimus",
    package="hf_dgm.models.optimus",
    card_template="optimus.md.j2",
    pipeline_tag="text-generation",
    probe="optimus_probe",
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
        # Optimus trainer; perplexities are per subword token incl. <BOS>/<EOS> (DESIGN.md, Optimus "Evaluation")
        "ppl_per_token": MetricSpec("perplexity", "Perplexity per subword token (IW, 100 samples)", False),
        "ppl": MetricSpec("perplexity", "Perplexity per subword token (IW, 100 samples)", False),
        "perplexity": MetricSpec("perplexity", "Perplexity per subword token (IW, 100 samples)", False),
        "ppl_per_word": MetricSpec("perplexity", "Perplexity per word (IW, 100 samples)", False),
        "elbo_ppl_per_token": MetricSpec("perplexity", "Perplexity per subword token from the ELBO (upper bound)", False),
        "iw_nll": MetricSpec("nll", "Negative log-likelihood, importance-weighted (nats/sentence)", False),
        "nll": MetricSpec("nll", "Negative log-likelihood, importance-weighted (nats/sentence)", False),
        "neg_elbo": MetricSpec("elbo", "-ELBO (nats/sentence)", False),
        "elbo": MetricSpec("elbo", "-ELBO (nats/sentence)", False),
        "kl": MetricSpec("kl", "KL(q(z|x) || p(z)), un-thresholded (nats/sentence)", None),
        "reconstruction_nll": MetricSpec("nll", "Reconstruction NLL -log p(x|z) (nats/sentence)", False),
        "mutual_information": MetricSpec("mutual_information", "Mutual information I(x; z) (nats)", True),
        "mi": MetricSpec("mutual_information", "Mutual information I(x; z) (nats)", True),
        "active_units": MetricSpec("active_units", "Active units (Var_x[mu(x)] >= 0.01)", True),
        "au": MetricSpec("active_units", "Active units (Var_x[mu(x)] >= 0.01)", True),
        "reconstruction_bleu": MetricSpec("bleu", "Reconstruction BLEU (greedy decoding of the posterior mean)", True),
        "bleu": MetricSpec("bleu", "Reconstruction BLEU (greedy decoding of the posterior mean)", True),
        "reconstruction_exact_match": MetricSpec("exact_match", "Exact reconstructions (fraction)", True),
        "exact_match": MetricSpec("exact_match", "Exact reconstructions (fraction)", True),
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
)


FQ_BIGGAN = HubFamily(
    model_type="fq_biggan",
    package="hf_dgm.models.fq_biggan",
    card_template="fq_biggan.md.j2",
    pipeline_tag="unconditional-image-generation",  # the Hub has no class-conditional task: tag below
    probe="fq_biggan_probe",
    probe_task=lambda config: (
        "class-conditional-image-generation" if getattr(config, "num_classes", 0) else "unconditional-image-generation"
    ),
    task_type="unconditional-image-generation",
    task_name="Class-conditional image generation",
    pipeline_modules=("hf_dgm.pipelines.image_generation",),
    tags=("fq-gan", "biggan", "gan", "feature-quantization", "class-conditional", "image-generation", "custom_code",
          "hf-dgm"),
    license="mit",
    metrics={
        # keys written by hf_dgm.metrics (fid, inception_score, kid) and the FQ-BigGAN quantizer
        "fid": MetricSpec("FID", "FID", False),
        "inception_score_mean": MetricSpec("inception_score", "Inception Score", True),
        "inception_score": MetricSpec("inception_score", "Inception Score", True),
        "is": MetricSpec("inception_score", "Inception Score", True),
        "kid_mean": MetricSpec("KID", "KID", False),
        "kid": MetricSpec("KID", "KID", False),
    },
    endpoint_request=lambda config: (
        {"inputs": [0, 1], "parameters": {"task": "class-conditional-image-generation", "num_images": 2, "seed": 0}}
        if getattr(config, "num_classes", 0)
        else {"parameters": {"task": "unconditional-image-generation", "num_images": 4, "seed": 0}}
    ),
    config_summary=(
        "resolution", "num_classes", "dim_z", "hierarchical_z", "shared_embedding", "generator_ch",
        "discriminator_ch", "generator_attention", "discriminator_attention", "use_fq", "fq_mode", "fq_layers",
        "fq_num_embeddings", "fq_decay", "fq_commitment",
    ),
)


FAMILIES: dict[str, HubFamily] = {family.model_type: family for family in (OPTIMUS, FQ_BIGGAN)}


def family_for_model_type(model_type: str) -> HubFamily:
    if model_type not in FAMILIES:
        raise ValueError(
            f"no Hub publishing support for model_type {model_type!r}; supported: {sorted(FAMILIES)} "
            "(add an entry to hf_dgm.hub.families.FAMILIES)"
        )
    return FAMILIES[model_type]


__all__ = ["HubFamily", "MetricSpec", "FAMILIES", "OPTIMUS", "FQ_BIGGAN", "family_for_model_type"]
