"""The FQ-StyleGAN family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

from ...pipelines.image_generation import UnconditionalImageGenerationPipeline
from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_fq_stylegan import FQStyleGANConfig
from .modeling_fq_stylegan import FQStyleGANForImageGeneration


FAMILY = FamilySpec(
    model_type="fq_stylegan",
    package="hf_dgm.models.fq_stylegan",
    description="FQ-StyleGAN: StyleGAN2 with feature quantization in the discriminator (Zhao et al., ICML 2020)",
    config_class=FQStyleGANConfig,
    # the full GAN (generator, EMA generator, discriminator): what training, conversion and publishing load.
    # FQStyleGANGeneratorModel (EMA generator only) shares the config class; load it with its own from_pretrained.
    auto_models={"AutoModel": FQStyleGANForImageGeneration, "AutoModelForPreTraining": FQStyleGANForImageGeneration},
    pipelines=(PipelineTask("unconditional-image-generation", UnconditionalImageGenerationPipeline),),
    hub=HubEntry(
        card_template="fq_stylegan.md.j2",
        pipeline_tag="unconditional-image-generation",
        probe="hf_dgm.models.fq_stylegan.probe_fq_stylegan:fq_stylegan_probe",
        probe_task="unconditional-image-generation",
        task_type="unconditional-image-generation",
        task_name="Unconditional image generation",
        pipeline_modules=("hf_dgm.pipelines.image_generation",),
        tags=("fq-gan", "stylegan2", "gan", "feature-quantization", "image-generation", "custom_code", "hf-dgm"),
        license="mit",
        metrics={
            "fid": MetricSpec("FID", "FID", False),
            "kid_mean": MetricSpec("KID", "KID", False),
            "kid": MetricSpec("KID", "KID", False),
        },
        endpoint_request={
            "parameters": {"task": "unconditional-image-generation", "num_images": 4, "truncation_psi": 0.7,
                           "noise_mode": "const", "seed": 0}  # fmt: skip
        },
        config_summary=(
            "resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "conv_clamp",
            "mbstd_group_size", "use_fq", "fq_mode", "fq_layers", "fq_num_embeddings", "fq_decay", "fq_commitment",
            "r1_gamma", "style_mixing_prob", "ema_kimg",
        ),
    ),
    converter="hf_dgm.models.fq_stylegan.convert_stylegan2_ada",
    trainer="hf_dgm.training.fq_stylegan.gan_run",
    gan_steps="hf_dgm.training.fq_stylegan.loss:FQStyleGANSteps",
    demo="hf_dgm.models.fq_stylegan.demo_fq_stylegan",
)
