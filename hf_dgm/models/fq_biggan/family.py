"""The FQ-BigGAN family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...pipelines.image_generation import (
    ClassConditionalImageGenerationPipeline,
    UnconditionalImageGenerationPipeline,
)
from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_fq_biggan import FQBigGANConfig
from .modeling_fq_biggan import FQBigGANForImageGeneration


FAMILY = FamilySpec(
    model_type="fq_biggan",
    package="hf_dgm.models.fq_biggan",
    description="FQ-BigGAN: BigGAN with feature quantization in the discriminator (Zhao et al., ICML 2020)",
    config_class=FQBigGANConfig,
    # the full GAN (generator, discriminator, EMA generator): what training and publishing load.
    # FQBigGANGeneratorModel (EMA generator only) shares the config class, so it cannot take a second Auto slot
    # keyed by the same config; load it with FQBigGANGeneratorModel.from_pretrained.
    auto_models={"AutoModel": FQBigGANForImageGeneration, "AutoModelForPreTraining": FQBigGANForImageGeneration},
    pipelines=(
        PipelineTask("class-conditional-image-generation", ClassConditionalImageGenerationPipeline),
        PipelineTask("unconditional-image-generation", UnconditionalImageGenerationPipeline),
    ),
    hub=HubEntry(
        card_template="fq_biggan.md.j2",
        pipeline_tag="unconditional-image-generation",  # the Hub has no class-conditional task: tag below
        probe="hf_dgm.models.fq_biggan.probe_fq_biggan:fq_biggan_probe",
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
    ),
    converter="hf_dgm.models.fq_biggan.convert_fq_biggan",
    trainer="hf_dgm.training.fq_biggan.gan_run",
    gan_steps="hf_dgm.training.fq_biggan.loss:FQBigGANSteps",
    demo="hf_dgm.models.fq_biggan.demo_fq_biggan",
)
