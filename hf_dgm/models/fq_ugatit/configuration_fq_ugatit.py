"""Configuration of FQ-U-GAT-IT: U-GAT-IT (Kim et al., ICLR 2020) with feature quantization in the global
discriminators (Zhao et al., ICML 2020)."""

from __future__ import annotations

import logging
from typing import Any

from ...modules.feature_quantizer import FeatureQuantizerConfigMixin, validate_feature_quantizer_config
from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import finite_config


logger = logging.getLogger(__name__)

# AdaLIN/ILN variance conventions (see `FQUGATITConfig.norm_variance`).
NORM_VARIANCES = ("unbiased", "nested_unbiased", "moments")
# Value written by hf-dgm before the port's current variance became the default: it meant the nested form.
LEGACY_NORM_VARIANCES = {"ugatit_pytorch": "nested_unbiased"}
SPECTRAL_NORM_ORDERS = ("v_then_u", "u_then_v")


@finite_config
class FQUGATITConfig(FeatureQuantizerConfigMixin, HubCompatibleConfig):
    r"""
    Configuration of [`FQUGATITModel`] (both generators and all four discriminators) and
    [`FQUGATITGeneratorModel`] (both generators only).

    Domain A and domain B are unpaired image sets; `generator_a2b` maps A to B, `generator_b2a` maps B to A. Each
    domain has a global discriminator (`global_discriminator_layers` layers, receptive field the whole 256 px image)
    and a local one (`local_discriminator_layers` layers, 70 px patches). The defaults are the full U-GAT-IT model of
    the paper at 256 px with the FQ-GAN quantizers (`../shared/DESIGN.md`: global discriminators only, layers 1–3,
    K = 2^6, 2^7, 2^7, decay 0.85, commitment 2.0).

    Args:
        num_channels (`int`, defaults to 3): Channels of the images of both domains.
        image_size (`int`, defaults to 256): Square resolution the networks are built for. The generator's γ/β MLP of
            the full (non-`light`) model has an input of `(image_size/4)² · 4·ngf` features, so it only accepts this
            size; the `light` model accepts any multiple of 4.
        ngf (`int`, defaults to 64): Base width of the generators (`ch` in the original).
        n_res_blocks (`int`, defaults to 4): Residual blocks in the encoder and AdaLIN blocks in the decoder.
        light (`bool`, defaults to `False`): U-GAT-IT-light: average-pool the attention features before the γ/β MLP.
        ndf (`int`, defaults to 64): Base width of the discriminators.
        global_discriminator_layers (`int`, defaults to 7): `n_layers` of the global discriminators (≥ 3): `n − 2`
            stride-2 convolutions, one stride-1 convolution, then the CAM block and the output convolution.
        local_discriminator_layers (`int`, defaults to 5): `n_layers` of the local discriminators.
        norm_eps (`float`, defaults to 1e-5): ε of the instance/layer norms.
        norm_variance (`str`, defaults to `"unbiased"`): How AdaLIN/ILN compute their variances.
            `"unbiased"`: the unbiased variance over (H, W) for the instance statistics and over (F, H, W) for the
            layer statistics (`torch.var(x, dim=[2, 3])`, `torch.var(x, dim=[1, 2, 3])`), what the PyTorch port
            znxlwm/UGATIT-pytorch computes since commit f7a4b59 (2019-08-27); the default and what the converter sets.
            `"nested_unbiased"`: the port's earlier form, an unbiased variance along H then the unbiased variance of
            that along W (`torch.var(torch.var(x, 2), 3)`; likewise nested over F, H, W for the layer statistics),
            only for checkpoints trained with the port before f7a4b59 (`--norm_variance nested_unbiased` in the
            converter). `"moments"`: the biased variance, as the TensorFlow originals (`tf.nn.moments`). The value
            `"ugatit_pytorch"` written by earlier hf-dgm versions is read as `"nested_unbiased"` (what it computed),
            with a warning: such a folder converted from a post-f7a4b59 checkpoint should be converted again.
        leaky_relu_slope (`float`, defaults to 0.2): Negative slope of the discriminators' LeakyReLUs.
        spectral_norm_eps (`float`, defaults to 1e-12): ε of the spectral normalisation (torch's default).
        spectral_norm_order (`str`, defaults to `"v_then_u"`): Order of the one power iteration each training-mode
            forward of a spectral-normalised layer runs. `"v_then_u"`: `v ← normalize(Wᵀu)`, then `u ← normalize(Wv)`,
            as `torch.nn.utils.spectral_norm` (the hook API the port uses), so training steps equal the port's.
            `"u_then_v"`: `u` first, as `torch.nn.utils.parametrizations.spectral_norm`; what hf-dgm trained with
            before this option existed, kept to reproduce those runs. Both normalise by `uᵀ W v` with the stored
            vectors; in eval mode (no iteration) they give identical outputs.
        The zoo's FQ fields are declared once by `FeatureQuantizerConfigMixin` (`FQ_CONFIG_DOCSTRING`); U-GAT-IT's
            defaults: quantizers in the global discriminators at `fq_layers=[1, 2, 3]` (layer 0 is the first
            convolution; layer `i` has `ndf·2^i` channels) with `fq_num_embeddings=[64, 128, 128]`, `fq_decay=0.85`,
            `fq_commitment=2.0`, `fq_zero_debias=True` (FQ-U-GAT-IT's TensorFlow `assign_moving_average`; FQ folders
            saved before this field existed load with it and fresh accumulators: set `False` to resume them as
            trained) and `fq_update_in_generator_step=True` (FQ-U-GAT-IT's G run evaluates the fakes' quantizer
            losses and with them the EMA assignments; `False` was hf-dgm's earlier behaviour).
        adv_weight (`float`, defaults to 1.0): Weight of the least-squares adversarial losses (outputs and CAM logits
            of the four discriminators).
        cycle_weight (`float`, defaults to 10.0): Weight of the L1 cycle loss.
        identity_weight (`float`, defaults to 10.0): Weight of the L1 identity loss.
        cam_weight (`float`, defaults to 1000.0): Weight of the generators' CAM loss (binary cross-entropy: source
            domain images 1, target domain images 0).
        rho_clip (`list[float]`, defaults to `[0.0, 1.0]`): Range ρ of AdaLIN/ILN is clipped to after every G step.
        generator_lr / discriminator_lr (`float`, defaults to 1e-4): Adam learning rates.
        generator_betas / discriminator_betas (`list[float]`, defaults to `[0.5, 0.999]`): Adam betas.
        generator_weight_decay / discriminator_weight_decay (`float`, defaults to 1e-4): Adam weight decay (L2 added
            to the gradient, as `torch.optim.Adam`) of each network, every parameter included (as the port).
        adam_eps (`float`, defaults to 1e-8): Adam ε.
        discriminator_steps (`int`, defaults to 1): D steps per G step.
        initializer_range (`float`, defaults to 0.02): Not used by the original's torch-default init; kept for the
            transformers API.
    """

    model_type = "fq_ugatit"
    fq_defaults = {
        "fq_layers": [1, 2, 3], "fq_num_embeddings": [64, 128, 128], "fq_decay": 0.85, "fq_commitment": 2.0,
        "fq_zero_debias": True,
    }  # fmt: skip

    def __init__(
        self,
        num_channels: int = 3,
        image_size: int = 256,
        ngf: int = 64,
        n_res_blocks: int = 4,
        light: bool = False,
        ndf: int = 64,
        global_discriminator_layers: int = 7,
        local_discriminator_layers: int = 5,
        norm_eps: float = 1e-5,
        norm_variance: str = "unbiased",
        leaky_relu_slope: float = 0.2,
        spectral_norm_eps: float = 1e-12,
        spectral_norm_order: str = "v_then_u",
        adv_weight: float = 1.0,
        cycle_weight: float = 10.0,
        identity_weight: float = 10.0,
        cam_weight: float = 1000.0,
        rho_clip: list[float] | tuple[float, float] = (0.0, 1.0),
        generator_lr: float = 1e-4,
        discriminator_lr: float = 1e-4,
        generator_betas: list[float] | tuple[float, float] = (0.5, 0.999),
        discriminator_betas: list[float] | tuple[float, float] = (0.5, 0.999),
        generator_weight_decay: float = 1e-4,
        discriminator_weight_decay: float = 1e-4,
        adam_eps: float = 1e-8,
        discriminator_steps: int = 1,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ):
        for name, value, low in (
            ("num_channels", num_channels, 1),
            ("image_size", image_size, 4),
            ("ngf", ngf, 1),
            ("n_res_blocks", n_res_blocks, 0),
            ("ndf", ndf, 1),
            ("global_discriminator_layers", global_discriminator_layers, 3),
            ("local_discriminator_layers", local_discriminator_layers, 3),
            ("discriminator_steps", discriminator_steps, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}")
        if image_size % 4:
            raise ValueError(f"`image_size` must be a multiple of 4 (two stride-2 stages), got {image_size}")
        if norm_variance in LEGACY_NORM_VARIANCES:
            logger.warning(
                "norm_variance=%r (an earlier hf-dgm name) is read as %r: the nested variance of UGATIT-pytorch before "
                "commit f7a4b59. Checkpoints of the port trained since then use norm_variance='unbiased': convert "
                "them again with `python -m hf_dgm.convert ugatit`.",
                norm_variance,
                LEGACY_NORM_VARIANCES[norm_variance],
            )
            norm_variance = LEGACY_NORM_VARIANCES[norm_variance]
        if norm_variance not in NORM_VARIANCES:
            raise ValueError(f"`norm_variance` must be one of {NORM_VARIANCES}, got {norm_variance!r}")
        if spectral_norm_order not in SPECTRAL_NORM_ORDERS:
            raise ValueError(
                f"`spectral_norm_order` must be one of {SPECTRAL_NORM_ORDERS}, got {spectral_norm_order!r}"
            )
        for name, value in (
            ("adv_weight", adv_weight),
            ("cycle_weight", cycle_weight),
            ("identity_weight", identity_weight),
            ("cam_weight", cam_weight),
            ("generator_weight_decay", generator_weight_decay),
            ("discriminator_weight_decay", discriminator_weight_decay),
        ):
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0, got {value}")
        rho_clip = [float(v) for v in rho_clip]
        if len(rho_clip) != 2 or not rho_clip[0] < rho_clip[1]:
            raise ValueError(f"`rho_clip` must be [min, max] with min < max, got {rho_clip}")

        self.num_channels = num_channels
        self.image_size = image_size
        self.ngf = ngf
        self.n_res_blocks = n_res_blocks
        self.light = bool(light)
        self.ndf = ndf
        self.global_discriminator_layers = global_discriminator_layers
        self.local_discriminator_layers = local_discriminator_layers
        self.norm_eps = float(norm_eps)
        self.norm_variance = norm_variance
        self.leaky_relu_slope = float(leaky_relu_slope)
        self.spectral_norm_eps = float(spectral_norm_eps)
        self.spectral_norm_order = spectral_norm_order
        self.adv_weight = float(adv_weight)
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.cam_weight = float(cam_weight)
        self.rho_clip = rho_clip
        self.generator_lr = float(generator_lr)
        self.discriminator_lr = float(discriminator_lr)
        self.generator_betas = [float(b) for b in generator_betas]
        self.discriminator_betas = [float(b) for b in discriminator_betas]
        self.generator_weight_decay = float(generator_weight_decay)
        self.discriminator_weight_decay = float(discriminator_weight_decay)
        self.adam_eps = float(adam_eps)
        self.discriminator_steps = discriminator_steps
        self.initializer_range = initializer_range
        super().__init__(**kwargs)  # the FQ fields: FeatureQuantizerConfigMixin
        self.fq_layers = [int(i) for i in self.fq_layers] if self.fq_layers is not None else []
        if isinstance(self.fq_num_embeddings, list):
            self.fq_num_embeddings = [int(k) for k in self.fq_num_embeddings]
        for name in ("fq_decay", "fq_commitment", "fq_eps"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("fq_zero_debias", "fq_update_in_generator_step"):
            setattr(self, name, bool(getattr(self, name)))
        # Layers 0 .. n-3 are the stride-2 convolutions, n-2 the stride-1 one (see FQUGATITDiscriminator).
        validate_feature_quantizer_config(self, num_layers=global_discriminator_layers - 1)

    @property
    def generator_bottleneck_channels(self) -> int:
        """Channels of the generators' bottleneck (`4·ngf`)."""
        return 4 * self.ngf

    def discriminator_channels(self, n_layers: int) -> list[int]:
        """Output channels of layers `0 … n_layers−2` of a discriminator (`ndf·2^i`)."""
        return [self.ndf * 2**i for i in range(n_layers - 1)]


__all__ = ["FQUGATITConfig"]
