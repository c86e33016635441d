"""The FQ-U-GAT-IT family's registry entry (see `hf_dgm.registry`)."""

from __future__ import annotations

import base64
import io

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_fq_ugatit import FQUGATITConfig
from .modeling_fq_ugatit import FQUGATITModel
from .pipeline_fq_ugatit import HUB_TASK_ALIASES, TASK, FQUGATITImageToImagePipeline


def _endpoint_request(config) -> dict:
    """A request body for `handler.py`: one 32×32 colour-gradient PNG as base64, translated A→B."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, 32, dtype=np.float32)
    pixels = np.stack([ramp[None, :].repeat(32, 0), ramp[:, None].repeat(32, 1), 255 - ramp[None, :].repeat(32, 0)], -1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.round().astype(np.uint8)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"inputs": image, "parameters": {"task": TASK, "direction": "A2B"}}


FAMILY = FamilySpec(
    model_type="fq_ugatit",
    package="hf_dgm.models.fq_ugatit",
    description="FQ-U-GAT-IT: unpaired image-to-image translation with CAM attention, AdaLIN and feature "
    "quantization in the global discriminators (Zhao et al., ICML 2020; Kim et al., ICLR 2020)",
    config_class=FQUGATITConfig,
    # both generators and the four discriminators (what training and publishing load); FQUGATITGeneratorModel
    # (generators only) shares the config class: load it with FQUGATITGeneratorModel.from_pretrained.
    auto_models={"AutoModel": FQUGATITModel},
    # `image-translation` locally (transformers reserves `image-to-image`); a published repo's custom_pipelines
    # lists `image-to-image` too, which pipeline(..., trust_remote_code=True) accepts
    pipelines=(PipelineTask(TASK, FQUGATITImageToImagePipeline, type="image", hub_aliases=HUB_TASK_ALIASES),),
    hub=HubEntry(
        card_template="fq_ugatit.md.j2",
        pipeline_tag="image-to-image",  # the Hub's task tag (a Hub name, not a transformers pipeline task)
        probe="hf_dgm.models.fq_ugatit.probe_fq_ugatit:fq_ugatit_probe",
        probe_task=TASK,
        task_type="image-to-image",
        task_name="Unpaired image-to-image translation",
        tags=("fq-gan", "u-gat-it", "gan", "feature-quantization", "image-to-image", "unpaired-translation",
              "custom_code", "hf-dgm"),  # fmt: skip
        license="mit",
        metrics={
            # keys written by hf_dgm.training.fq_ugatit.gan_run.evaluate_kid
            "kid_A2B": MetricSpec("KID", "KID (A→B)", False),
            "kid_B2A": MetricSpec("KID", "KID (B→A)", False),
        },
        endpoint_request=_endpoint_request,
        config_summary=(
            "image_size", "light", "ngf", "n_res_blocks", "ndf", "global_discriminator_layers",
            "local_discriminator_layers", "norm_variance", "spectral_norm_order", "use_fq", "fq_mode", "fq_layers",
            "fq_num_embeddings", "fq_decay", "fq_commitment", "fq_zero_debias", "fq_update_in_generator_step",
        ),  # fmt: skip
    ),
    converter="hf_dgm.models.fq_ugatit.convert_ugatit",
    trainer="hf_dgm.training.fq_ugatit.gan_run",
    gan_steps="hf_dgm.training.fq_ugatit.loss:FQUGATITSteps",
    demo="hf_dgm.models.fq_ugatit.demo_fq_ugatit",
)
