"""FQ-U-GAT-IT: U-GAT-IT (Kim et al., ICLR 2020) with feature quantization in the global discriminators (Zhao et
al., ICML 2020), in PyTorch.

The networks follow the layer order, padding and widths of the PyTorch port `znxlwm/UGATIT-pytorch` (so its
checkpoints convert exactly, see `hf_dgm.convert.ugatit`); the quantizers sit where the TensorFlow FQ-U-GAT-IT puts
them (after the activations of layers 1–3 of each global discriminator, one dictionary set per domain).

Shapes below use B = batch, C = `config.num_channels`, S = `config.image_size`, F = `4·ngf` (generator bottleneck).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrizations
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from ...modules.feature_quantizer import FeatureQuantizer
from ...modules.gan_losses import least_squares_discriminator_loss, least_squares_generator_loss
from .configuration_fq_ugatit import FQUGATITConfig


DIRECTIONS = ("A2B", "B2A")


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class FQUGATITGeneratorOutput(ModelOutput):
    r"""
    Output of one generator ([`FQUGATITGenerator`]) or of a translation.

    Args:
        images (`torch.FloatTensor` of shape `(B, C, S, S)`): Translated images in [-1, 1].
        cam_logits (`torch.FloatTensor` of shape `(B, 2)`): CAM logits (global-average-pooled, global-max-pooled) of
            the auxiliary classifier "is the input from the source domain of this generator".
        heatmap (`torch.FloatTensor` of shape `(B, 1, S/4, S/4)`): Channel sum of the attention-weighted bottleneck
            features (the CAM heat map the original visualises), unnormalised.
    """

    images: torch.FloatTensor | None = None
    cam_logits: torch.FloatTensor | None = None
    heatmap: torch.FloatTensor | None = None


@dataclass
class FQUGATITDiscriminatorOutput(ModelOutput):
    r"""
    Output of one discriminator ([`FQUGATITDiscriminator`]).

    Args:
        logits (`torch.FloatTensor` of shape `(B, 1, h, w)`): Patch logits (h = w = S/2^(n−2) − 2 for `n` layers).
        cam_logits (`torch.FloatTensor` of shape `(B, 2)`): CAM logits (average-pooled, max-pooled).
        heatmap (`torch.FloatTensor` of shape `(B, 1, h+2, w+2)`): CAM heat map.
        quantization_loss (`torch.FloatTensor` of shape `()`): Sum of the commitment losses of its quantizers (0
            without quantizers).
        fq_perplexity (`torch.FloatTensor` of shape `(n_fq,)`, *optional*): Perplexity of each quantizer.
        fq_usage (`torch.FloatTensor` of shape `(n_fq,)`, *optional*): Fraction of dictionary entries in use.
    """

    logits: torch.FloatTensor | None = None
    cam_logits: torch.FloatTensor | None = None
    heatmap: torch.FloatTensor | None = None
    quantization_loss: torch.FloatTensor | None = None
    fq_perplexity: torch.FloatTensor | None = None
    fq_usage: torch.FloatTensor | None = None


@dataclass
class FQUGATITDiscriminatorStepOutput(ModelOutput):
    r"""
    Output of `FQUGATITModel(mode="discriminator")`.

    Args:
        loss (`torch.FloatTensor` of shape `()`): What the discriminators minimise: `d_adv_loss + quantization_loss`.
        d_adv_loss (`torch.FloatTensor` of shape `()`): `adv_weight` × the least-squares losses (outputs and CAM
            logits, real → 1, fake → 0) of the four discriminators.
        d_loss_a / d_loss_b (`torch.FloatTensor` of shape `()`): The adversarial part of domain A's / B's
            discriminators.
        d_loss_real / d_loss_fake (`torch.FloatTensor` of shape `()`): Adversarial terms on real and fake images.
        quantization_loss (`torch.FloatTensor` of shape `()`): FQ commitment losses of both global discriminators on
            real and fake images.
        fq_perplexity / fq_usage (`torch.FloatTensor` of shape `()`): Mean perplexity / usage over the quantizers.
    """

    loss: torch.FloatTensor | None = None
    d_adv_loss: torch.FloatTensor | None = None
    d_loss_a: torch.FloatTensor | None = None
    d_loss_b: torch.FloatTensor | None = None
    d_loss_real: torch.FloatTensor | None = None
    d_loss_fake: torch.FloatTensor | None = None
    quantization_loss: torch.FloatTensor | None = None
    fq_perplexity: torch.FloatTensor | None = None
    fq_usage: torch.FloatTensor | None = None


@dataclass
class FQUGATITGeneratorStepOutput(ModelOutput):
    r"""
    Output of `FQUGATITModel(mode="generator")`.

    Args:
        loss (`torch.FloatTensor` of shape `()`): What the generators minimise: `adv_weight·g_adv_loss +
            cycle_weight·cycle_loss + identity_weight·identity_loss + cam_weight·cam_loss + quantization_loss`.
        g_adv_loss (`torch.FloatTensor` of shape `()`): Least-squares losses (fake → 1) of the outputs and CAM logits
            of the four discriminators on the translations.
        cycle_loss (`torch.FloatTensor` of shape `()`): L1(A→B→A, A) + L1(B→A→B, B).
        identity_loss (`torch.FloatTensor` of shape `()`): L1(B→A(A), A) + L1(A→B(B), B).
        cam_loss (`torch.FloatTensor` of shape `()`): Binary cross-entropy of the generators' CAM logits (1 for inputs
            of the generator's source domain, 0 for inputs of its target domain), summed over both generators.
        quantization_loss (`torch.FloatTensor` of shape `()`): FQ commitment losses of the global discriminators on
            the translations.
        fake_a / fake_b (`torch.FloatTensor` of shape `(B, C, S, S)`): B→A and A→B translations (detached).
    """

    loss: torch.FloatTensor | None = None
    g_adv_loss: torch.FloatTensor | None = None
    cycle_loss: torch.FloatTensor | None = None
    identity_loss: torch.FloatTensor | None = None
    cam_loss: torch.FloatTensor | None = None
    quantization_loss: torch.FloatTensor | None = None
    fake_a: torch.FloatTensor | None = None
    fake_b: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------------
def instance_layer_norms(
    hidden_states: torch.Tensor, eps: float, variance: str = "moments"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Instance- and layer-normalised copies of `hidden_states` `(B, F, H, W)` (no affine part).

    `variance="moments"`: biased variance over (H, W) and over (F, H, W). `variance="ugatit_pytorch"`: the nested
    unbiased variances the PyTorch port computes (see [`FQUGATITConfig`]).
    """
    if variance == "moments":
        in_mean = hidden_states.mean(dim=(2, 3), keepdim=True)
        in_var = hidden_states.var(dim=(2, 3), keepdim=True, unbiased=False)
        ln_mean = hidden_states.mean(dim=(1, 2, 3), keepdim=True)
        ln_var = hidden_states.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    elif variance == "ugatit_pytorch":
        in_mean = hidden_states.mean(dim=(2, 3), keepdim=True)
        in_var = hidden_states.var(dim=2, keepdim=True).var(dim=3, keepdim=True)
        ln_mean = hidden_states.mean(dim=(1, 2, 3), keepdim=True)
        ln_var = hidden_states.var(dim=1, keepdim=True).var(dim=2, keepdim=True).var(dim=3, keepdim=True)
    else:
        raise ValueError(f"unknown variance mode {variance!r}")
    out_in = (hidden_states - in_mean) / torch.sqrt(in_var + eps)
    out_ln = (hidden_states - ln_mean) / torch.sqrt(ln_var + eps)
    return out_in, out_ln


class FQUGATITAdaLIN(nn.Module):
    r"""Adaptive layer-instance normalisation: `(ρ·IN(x) + (1−ρ)·LN(x))·γ + β` with a learnable per-channel ρ
    `(1, F, 1, 1)` (initialised to 0.9, clipped to [0, 1] after every G step) and γ, β `(B, F)` from the generator's
    MLP."""

    def __init__(self, num_features: int, eps: float = 1e-5, variance: str = "moments"):
        super().__init__()
        self.eps = eps
        self.variance = variance
        self.rho = nn.Parameter(torch.full((1, num_features, 1, 1), 0.9))

    def forward(self, hidden_states: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out_in, out_ln = instance_layer_norms(hidden_states, self.eps, self.variance)
        out = self.rho * out_in + (1.0 - self.rho) * out_ln
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


class FQUGATITILN(nn.Module):
    r"""Layer-instance normalisation with learnable ρ (init 0), γ (init 1) and β (init 0), each `(1, F, 1, 1)`: the
    norm of the generators' upsampling stages."""

    def __init__(self, num_features: int, eps: float = 1e-5, variance: str = "moments"):
        super().__init__()
        self.eps = eps
        self.variance = variance
        self.rho = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out_in, out_ln = instance_layer_norms(hidden_states, self.eps, self.variance)
        out = self.rho * out_in + (1.0 - self.rho) * out_ln
        return out * self.gamma + self.beta


# ----------------------------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------------------------
class FQUGATITResnetBlock(nn.Module):
    """Encoder residual block: reflect-pad, 3×3 conv, IN, ReLU, reflect-pad, 3×3 conv, IN, plus the input."""

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, bias=False)
        self.norm1 = nn.InstanceNorm2d(channels, eps=eps)
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=False)
        self.norm2 = nn.InstanceNorm2d(channels, eps=eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(F.pad(hidden_states, (1, 1, 1, 1), mode="reflect"))))
        out = self.norm2(self.conv2(F.pad(out, (1, 1, 1, 1), mode="reflect")))
        return hidden_states + out


class FQUGATITAdaLINBlock(nn.Module):
    """Decoder residual block: as the encoder block with AdaLIN (shared γ, β) instead of IN."""

    def __init__(self, channels: int, eps: float, variance: str):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, bias=False)
        self.norm1 = FQUGATITAdaLIN(channels, eps, variance)
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=False)
        self.norm2 = FQUGATITAdaLIN(channels, eps, variance)

    def forward(self, hidden_states: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(F.pad(hidden_states, (1, 1, 1, 1), mode="reflect")), gamma, beta))
        out = self.norm2(self.conv2(F.pad(out, (1, 1, 1, 1), mode="reflect")), gamma, beta)
        return hidden_states + out


class FQUGATITUpsampleBlock(nn.Module):
    """Nearest ×2 upsampling, reflect-pad, 3×3 conv (halving the channels), ILN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, eps: float, variance: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, bias=False)
        self.norm = FQUGATITILN(out_channels, eps, variance)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(hidden_states, scale_factor=2, mode="nearest")
        return F.relu(self.norm(self.conv(F.pad(out, (1, 1, 1, 1), mode="reflect"))))


class FQUGATITGenerator(nn.Module):
    r"""
    U-GAT-IT ResNet generator for one direction.

    Encoder: 7×7 conv (ngf, IN, ReLU), two stride-2 3×3 convs (2·ngf, 4·ngf; IN, ReLU), `n_res_blocks` residual
    blocks — features `(B, F, S/4, S/4)`. Attention (CAM): logits of two bias-free linear classifiers on the
    global-average- and global-max-pooled features; the features are re-weighted by each classifier's weights,
    concatenated `(B, 2F, ·, ·)`, fused by a 1×1 conv + ReLU; the heat map is their channel sum. γ, β `(B, F)` come
    from a two-layer MLP on the flattened features (`light`: on their spatial average). Decoder: `n_res_blocks`
    AdaLIN residual blocks, two ×2 upsampling stages with ILN, a 7×7 conv and tanh.
    """

    def __init__(self, config: FQUGATITConfig):
        super().__init__()
        ngf, eps, var = config.ngf, config.norm_eps, config.norm_variance
        features = 4 * ngf
        self.light = config.light
        self.image_size = config.image_size
        self.stem = nn.Conv2d(config.num_channels, ngf, 7, bias=False)
        self.stem_norm = nn.InstanceNorm2d(ngf, eps=eps)
        self.down_convs = nn.ModuleList([nn.Conv2d(ngf, 2 * ngf, 3, stride=2, bias=False),
                                         nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, bias=False)])  # fmt: skip
        self.down_norms = nn.ModuleList([nn.InstanceNorm2d(2 * ngf, eps=eps), nn.InstanceNorm2d(4 * ngf, eps=eps)])
        self.encoder_blocks = nn.ModuleList([FQUGATITResnetBlock(features, eps) for _ in range(config.n_res_blocks)])
        self.gap_fc = nn.Linear(features, 1, bias=False)
        self.gmp_fc = nn.Linear(features, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * features, features, 1, bias=True)
        mlp_in = features if config.light else (config.image_size // 4) ** 2 * features
        self.mlp_fc1 = nn.Linear(mlp_in, features, bias=False)
        self.mlp_fc2 = nn.Linear(features, features, bias=False)
        self.gamma_fc = nn.Linear(features, features, bias=False)
        self.beta_fc = nn.Linear(features, features, bias=False)
        self.decoder_blocks = nn.ModuleList(
            [FQUGATITAdaLINBlock(features, eps, var) for _ in range(config.n_res_blocks)]
        )
        self.up_blocks = nn.ModuleList(
            [FQUGATITUpsampleBlock(4 * ngf, 2 * ngf, eps, var), FQUGATITUpsampleBlock(2 * ngf, ngf, eps, var)]
        )
        self.output_conv = nn.Conv2d(ngf, config.num_channels, 7, bias=False)

    def forward(self, pixel_values: torch.Tensor) -> FQUGATITGeneratorOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): Images in [-1, 1]. `H = W = image_size` for the
                full model; any `H, W` divisible by 4 for the `light` model.

        Returns:
            [`FQUGATITGeneratorOutput`].
        """
        if pixel_values.dim() != 4:
            raise ValueError(f"expected (B, C, H, W) pixel values, got shape {tuple(pixel_values.shape)}")
        height, width = pixel_values.shape[-2:]
        if height % 4 or width % 4:
            raise ValueError(f"image height and width must be multiples of 4, got {height}×{width}")
        if not self.light and (height, width) != (self.image_size, self.image_size):
            raise ValueError(
                f"the full (non-light) U-GAT-IT generator only takes {self.image_size}×{self.image_size} images "
                f"(its γ/β MLP reads the flattened feature map), got {height}×{width}"
            )
        x = F.relu(self.stem_norm(self.stem(F.pad(pixel_values, (3, 3, 3, 3), mode="reflect"))))
        for conv, norm in zip(self.down_convs, self.down_norms):
            x = F.relu(norm(conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        for block in self.encoder_blocks:
            x = block(x)

        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        x_gap = x * self.gap_fc.weight[:, :, None, None]
        x_gmp = x * self.gmp_fc.weight[:, :, None, None]
        cam_logits = torch.cat([gap_logit, gmp_logit], dim=1)
        x = F.relu(self.conv1x1(torch.cat([x_gap, x_gmp], dim=1)))
        heatmap = x.sum(dim=1, keepdim=True)

        mlp_in = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.light else x.flatten(1)
        hidden = F.relu(self.mlp_fc2(F.relu(self.mlp_fc1(mlp_in))))
        gamma, beta = self.gamma_fc(hidden), self.beta_fc(hidden)

        for block in self.decoder_blocks:
            x = block(x, gamma, beta)
        for block in self.up_blocks:
            x = block(x)
        images = torch.tanh(self.output_conv(F.pad(x, (3, 3, 3, 3), mode="reflect")))
        return FQUGATITGeneratorOutput(images=images, cam_logits=cam_logits, heatmap=heatmap)

    def rho_parameters(self) -> Iterator[nn.Parameter]:
        """The ρ of every AdaLIN and ILN."""
        for module in self.modules():
            if isinstance(module, (FQUGATITAdaLIN, FQUGATITILN)):
                yield module.rho


# ----------------------------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------------------------
def _sn(module: nn.Module, eps: float) -> nn.Module:
    """torch's spectral normalisation (one power iteration per training forward), as the PyTorch port."""
    return parametrizations.spectral_norm(module, eps=eps)


def _raw_weight(module: nn.Module) -> torch.Tensor:
    """The un-normalised weight of a spectral-normalised module (the port re-weights the CAM features with it)."""
    return module.parametrizations.weight.original


class FQUGATITDiscriminator(nn.Module):
    r"""
    U-GAT-IT PatchGAN discriminator with `n_layers` layers (global: 7, local: 5 at 256 px) and CAM.

    Layers `0 … n−3`: reflect-pad 1, spectral-normalised 4×4 stride-2 conv (`ndf·2^i` channels), LeakyReLU(0.2);
    layer `n−2`: the same with stride 1. CAM block as in the generator (the spectral-normalised classifiers give the
    logits; their raw weights re-weight the features, as the port), a 1×1 conv + LeakyReLU, then a spectral-normalised
    4×4 conv to one channel. With `quantized=True` (the global discriminators) and `config.use_fq`, the activations of
    the layers `config.fq_layers` go through a [`FeatureQuantizer`] each (built by `FeatureQuantizer.from_config`);
    in `"loss_only"` mode they pass unchanged and the quantizers add their commitment losses.
    """

    def __init__(self, config: FQUGATITConfig, n_layers: int, quantized: bool = False):
        super().__init__()
        eps = config.spectral_norm_eps
        self.slope = config.leaky_relu_slope
        channels = config.discriminator_channels(n_layers)
        convs = []
        in_ch = config.num_channels
        for i, out_ch in enumerate(channels):
            stride = 1 if i == len(channels) - 1 else 2
            convs.append(_sn(nn.Conv2d(in_ch, out_ch, 4, stride=stride, bias=True), eps))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        features = channels[-1]
        self.gap_fc = _sn(nn.Linear(features, 1, bias=False), eps)
        self.gmp_fc = _sn(nn.Linear(features, 1, bias=False), eps)
        self.conv1x1 = nn.Conv2d(2 * features, features, 1, bias=True)
        self.output_conv = _sn(nn.Conv2d(features, 1, 4, bias=False), eps)
        self.fq_layers = list(config.fq_layers) if quantized and config.use_fq else []
        self.quantizers = nn.ModuleDict(
            {str(layer): FeatureQuantizer.from_config(config, channels[layer], layer=layer) for layer in self.fq_layers}
        )

    def forward(self, pixel_values: torch.Tensor, update_dictionary: bool = False) -> FQUGATITDiscriminatorOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): Real or translated images in [-1, 1].
            update_dictionary (`bool`, defaults to `False`): Let the quantizers update their dictionaries (training
                mode only).

        Returns:
            [`FQUGATITDiscriminatorOutput`].
        """
        x = pixel_values
        fq_loss = pixel_values.new_zeros(())
        perplexities, usages = [], []
        for i, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(F.pad(x, (1, 1, 1, 1), mode="reflect")), self.slope)
            key = str(i)
            if key in self.quantizers:
                q = self.quantizers[key](x, update_dictionary=update_dictionary)
                x = q.output
                fq_loss = fq_loss + q.loss
                perplexities.append(q.perplexity)
                usages.append(q.usage)
        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        x_gap = x * _raw_weight(self.gap_fc)[:, :, None, None]
        x_gmp = x * _raw_weight(self.gmp_fc)[:, :, None, None]
        cam_logits = torch.cat([gap_logit, gmp_logit], dim=1)
        x = F.leaky_relu(self.conv1x1(torch.cat([x_gap, x_gmp], dim=1)), self.slope)
        heatmap = x.sum(dim=1, keepdim=True)
        logits = self.output_conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        return FQUGATITDiscriminatorOutput(
            logits=logits,
            cam_logits=cam_logits,
            heatmap=heatmap,
            quantization_loss=fq_loss,
            fq_perplexity=torch.stack(perplexities) if perplexities else None,
            fq_usage=torch.stack(usages) if usages else None,
        )


# ----------------------------------------------------------------------------------------------------------------
# Pretrained models
# ----------------------------------------------------------------------------------------------------------------
class FQUGATITPreTrainedModel(PreTrainedModel):
    config_class = FQUGATITConfig
    base_model_prefix = "fq_ugatit"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """torch's default init (as the PyTorch port, which sets none): Kaiming-uniform(a=√5) weights and
        U(±1/√fan_in) biases for every conv/linear (on the raw weight of spectral-normalised ones); ρ 0.9 (AdaLIN) / 0
        (ILN), ILN γ = 1, β = 0; quantizer dictionaries N(0, 1)."""
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            weight = _raw_weight(module) if parametrizations_present(module) else module.weight
            hf_init.kaiming_uniform_(weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                hf_init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, FQUGATITAdaLIN):
            hf_init.constant_(module.rho, 0.9)
        elif isinstance(module, FQUGATITILN):
            hf_init.zeros_(module.rho)
            hf_init.ones_(module.gamma)
            hf_init.zeros_(module.beta)
        elif isinstance(module, FeatureQuantizer):
            module.init_dictionary()

    def _check_direction(self, direction: str) -> str:
        if direction not in DIRECTIONS:
            raise ValueError(f"`direction` must be one of {DIRECTIONS}, got {direction!r}")
        return direction

    def translate(self, pixel_values: torch.Tensor, direction: str = "A2B") -> FQUGATITGeneratorOutput:
        r"""Translate `pixel_values` `(B, C, S, S)` in [-1, 1] from domain A to B (`"A2B"`) or B to A (`"B2A"`).

        Returns [`FQUGATITGeneratorOutput`] (images, CAM logits, heat map)."""
        generator = self.generator_a2b if self._check_direction(direction) == "A2B" else self.generator_b2a
        return generator(pixel_values)

    @torch.no_grad()
    def clip_rho(self) -> None:
        """Clip every ρ of both generators to `config.rho_clip` (the port's `RhoClipper`, after each G step)."""
        low, high = self.config.rho_clip
        for generator in (self.generator_a2b, self.generator_b2a):
            for rho in generator.rho_parameters():
                rho.clamp_(low, high)


def jet_heatmap(heatmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """CAM heat maps `(B, 1, h, w)` -> RGB images `(B, 3, *size)` in [-1, 1]: min–max normalised per image, bilinear
    upsampling, jet colour map (blue low, red high)."""
    heat = F.interpolate(heatmap.float(), size=size, mode="bilinear", align_corners=False)
    low = heat.amin(dim=(1, 2, 3), keepdim=True)
    high = heat.amax(dim=(1, 2, 3), keepdim=True)
    heat = (heat - low) / (high - low).clamp_min(1e-12)
    centres = torch.tensor([3.0, 2.0, 1.0], device=heat.device).view(1, 3, 1, 1)
    rgb = (1.5 - (4.0 * heat - centres).abs()).clamp(0.0, 1.0)
    return rgb * 2.0 - 1.0


def parametrizations_present(module: nn.Module) -> bool:
    return hasattr(module, "parametrizations") and "weight" in module.parametrizations


class FQUGATITGeneratorModel(FQUGATITPreTrainedModel):
    r"""
    Both generators of FQ-U-GAT-IT (`generator_a2b`, `generator_b2a`) and no discriminators: what inference needs.
    Loads from a full [`FQUGATITModel`] checkpoint (the discriminator weights are skipped).
    """

    _keys_to_ignore_on_load_unexpected = [r"^discriminator_"]

    def __init__(self, config: FQUGATITConfig):
        super().__init__(config)
        self.generator_a2b = FQUGATITGenerator(config)
        self.generator_b2a = FQUGATITGenerator(config)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, direction: str = "A2B") -> FQUGATITGeneratorOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, S, S)`): Images in [-1, 1].
            direction (`str`, defaults to `"A2B"`): `"A2B"` or `"B2A"`.

        Returns:
            [`FQUGATITGeneratorOutput`].
        """
        return self.translate(pixel_values, direction)


class FQUGATITModel(FQUGATITPreTrainedModel):
    r"""
    FQ-U-GAT-IT for training and translation: `generator_a2b`, `generator_b2a`, and four discriminators
    `discriminator_global_a`, `discriminator_local_a` (judge domain A images), `discriminator_global_b`,
    `discriminator_local_b`. With `config.use_fq`, the two global discriminators carry the feature quantizers.

    One `forward` per optimisation step, selected by `mode` (so a DDP-wrapped model syncs the right gradients):

    - `mode="discriminator"`: D step on a pair of unpaired batches. Translates both without gradient to the
      generators, scores real and translated images with the four discriminators, updates the dictionaries (training
      mode only). Returns [`FQUGATITDiscriminatorStepOutput`].
    - `mode="generator"`: G step. Translations, cycles and identities of both batches, scored by the
      discriminators (dictionaries untouched). Returns [`FQUGATITGeneratorStepOutput`].
    - `mode="translate"`: `translate(pixel_values, direction)`.
    """

    def __init__(self, config: FQUGATITConfig):
        super().__init__(config)
        self.generator_a2b = FQUGATITGenerator(config)
        self.generator_b2a = FQUGATITGenerator(config)
        self.discriminator_global_a = FQUGATITDiscriminator(config, config.global_discriminator_layers, quantized=True)
        self.discriminator_global_b = FQUGATITDiscriminator(config, config.global_discriminator_layers, quantized=True)
        self.discriminator_local_a = FQUGATITDiscriminator(config, config.local_discriminator_layers)
        self.discriminator_local_b = FQUGATITDiscriminator(config, config.local_discriminator_layers)
        self.post_init()

    # -- optimiser helpers -------------------------------------------------------------------------------------------
    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of both generators (the G optimiser)."""
        yield from self.generator_a2b.parameters()
        yield from self.generator_b2a.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the four discriminators (the D optimiser; the dictionaries are buffers)."""
        for d in self._discriminators():
            yield from d.parameters()

    def _discriminators(self) -> tuple[FQUGATITDiscriminator, ...]:
        return (
            self.discriminator_global_a,
            self.discriminator_local_a,
            self.discriminator_global_b,
            self.discriminator_local_b,
        )

    def _check_pair(self, pixel_values_a, pixel_values_b) -> None:
        for name, value in (("pixel_values_a", pixel_values_a), ("pixel_values_b", pixel_values_b)):
            if not isinstance(value, torch.Tensor) or value.dim() != 4:
                raise ValueError(f"`{name}` must be a (B, C, H, W) tensor, got {type(value).__name__}")
            if value.shape[1] != self.config.num_channels:
                raise ValueError(f"`{name}` has {value.shape[1]} channels, expected {self.config.num_channels}")

    @torch.no_grad()
    def after_generator_step(self, step: int | None = None) -> None:
        """GANTrainer hook after every G optimizer step: clip ρ to `config.rho_clip`."""
        self.clip_rho()

    @torch.no_grad()
    def sample_images(
        self, num_images: int, generator: torch.Generator | None = None, batch: dict | None = None
    ) -> torch.Tensor:
        """Translation grid rows for `num_images` real pairs of `batch` (`pixel_values_a`, `pixel_values_b`): per row
        `[A, A→B, CAM(A→B), B, B→A, CAM(B→A)]`, `(6·n, C, S, S)` in [-1, 1] (CAM maps coloured with the jet map).
        Deterministic: `generator` is not used."""
        if batch is None or "pixel_values_a" not in batch or "pixel_values_b" not in batch:
            raise ValueError("sample_images needs `batch` with real `pixel_values_a` and `pixel_values_b`")
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            real_a = batch["pixel_values_a"][:num_images].to(device)
            real_b = batch["pixel_values_b"][:num_images].to(device)
            a2b = self.generator_a2b(real_a)
            b2a = self.generator_b2a(real_b)
            size = tuple(real_a.shape[-2:])
            columns = [
                real_a, a2b.images, jet_heatmap(a2b.heatmap, size), real_b, b2a.images, jet_heatmap(b2a.heatmap, size)
            ]  # fmt: skip
            if real_a.shape[1] == 1:  # grey images: show the colour maps' luminance-free RGB as grey replicas
                columns = [c if c.shape[1] == 1 else c.mean(dim=1, keepdim=True) for c in columns]
            return torch.stack(columns, dim=1).flatten(0, 1)
        finally:
            self.train(was_training)

    def sample_grid_columns(self, num_images: int) -> int:
        """Six columns per translation-grid row (see `sample_images`)."""
        return 6

    # -- steps -------------------------------------------------------------------------------------------------------
    def discriminator_step(
        self, pixel_values_a: torch.Tensor, pixel_values_b: torch.Tensor
    ) -> FQUGATITDiscriminatorStepOutput:
        """See the class docstring (`mode="discriminator"`)."""
        self._check_pair(pixel_values_a, pixel_values_b)
        with torch.no_grad():
            fake_b = self.generator_a2b(pixel_values_a).images
            fake_a = self.generator_b2a(pixel_values_b).images
        adv, real_terms, fake_terms, fq_loss, ppl, usage = {}, [], [], [], [], []
        for domain, real, fake in (("a", pixel_values_a, fake_a), ("b", pixel_values_b, fake_b)):
            total = real.new_zeros(())
            for kind in ("global", "local"):
                disc = getattr(self, f"discriminator_{kind}_{domain}")
                r = disc(real, update_dictionary=True)
                f = disc(fake, update_dictionary=True)
                out_real, out_fake = least_squares_discriminator_loss(r.logits, f.logits)
                cam_real, cam_fake = least_squares_discriminator_loss(r.cam_logits, f.cam_logits)
                real_term, fake_term = out_real + cam_real, out_fake + cam_fake
                real_terms.append(real_term)
                fake_terms.append(fake_term)
                total = total + real_term + fake_term
                if r.fq_perplexity is not None:
                    fq_loss += [r.quantization_loss, f.quantization_loss]
                    ppl += [r.fq_perplexity.mean(), f.fq_perplexity.mean()]
                    usage += [r.fq_usage.mean(), f.fq_usage.mean()]
            adv[domain] = self.config.adv_weight * total
        d_adv = adv["a"] + adv["b"]
        quantization_loss = torch.stack(fq_loss).sum() if fq_loss else d_adv.new_zeros(())
        return FQUGATITDiscriminatorStepOutput(
            loss=d_adv + quantization_loss,
            d_adv_loss=d_adv.detach(),
            d_loss_a=adv["a"].detach(),
            d_loss_b=adv["b"].detach(),
            d_loss_real=self.config.adv_weight * torch.stack(real_terms).sum().detach(),
            d_loss_fake=self.config.adv_weight * torch.stack(fake_terms).sum().detach(),
            quantization_loss=quantization_loss.detach(),
            fq_perplexity=torch.stack(ppl).mean().detach() if ppl else None,
            fq_usage=torch.stack(usage).mean().detach() if usage else None,
        )

    def generator_step(self, pixel_values_a: torch.Tensor, pixel_values_b: torch.Tensor) -> FQUGATITGeneratorStepOutput:
        """See the class docstring (`mode="generator"`)."""
        self._check_pair(pixel_values_a, pixel_values_b)
        cfg = self.config
        a2b = self.generator_a2b(pixel_values_a)
        b2a = self.generator_b2a(pixel_values_b)
        a2b2a = self.generator_b2a(a2b.images).images
        b2a2b = self.generator_a2b(b2a.images).images
        a2a = self.generator_b2a(pixel_values_a)
        b2b = self.generator_a2b(pixel_values_b)

        adv_terms, fq_terms = [], []
        for domain, fake in (("a", b2a.images), ("b", a2b.images)):
            for kind in ("global", "local"):
                out = getattr(self, f"discriminator_{kind}_{domain}")(fake, update_dictionary=False)
                adv_terms += [least_squares_generator_loss(out.logits), least_squares_generator_loss(out.cam_logits)]
                if out.fq_perplexity is not None:
                    fq_terms.append(out.quantization_loss)
        g_adv = torch.stack(adv_terms).sum()
        cycle = F.l1_loss(a2b2a, pixel_values_a) + F.l1_loss(b2a2b, pixel_values_b)
        identity = F.l1_loss(a2a.images, pixel_values_a) + F.l1_loss(b2b.images, pixel_values_b)
        # Each generator's classifier: inputs of its source domain -> 1, of its target domain -> 0.
        cam = (
            F.binary_cross_entropy_with_logits(b2a.cam_logits, torch.ones_like(b2a.cam_logits))
            + F.binary_cross_entropy_with_logits(a2a.cam_logits, torch.zeros_like(a2a.cam_logits))
            + F.binary_cross_entropy_with_logits(a2b.cam_logits, torch.ones_like(a2b.cam_logits))
            + F.binary_cross_entropy_with_logits(b2b.cam_logits, torch.zeros_like(b2b.cam_logits))
        )
        quantization_loss = torch.stack(fq_terms).sum() if fq_terms else g_adv.new_zeros(())
        loss = (
            cfg.adv_weight * g_adv
            + cfg.cycle_weight * cycle
            + cfg.identity_weight * identity
            + cfg.cam_weight * cam
            + quantization_loss
        )
        return FQUGATITGeneratorStepOutput(
            loss=loss,
            g_adv_loss=g_adv.detach(),
            cycle_loss=cycle.detach(),
            identity_loss=identity.detach(),
            cam_loss=cam.detach(),
            quantization_loss=quantization_loss.detach(),
            fake_a=b2a.images.detach(),
            fake_b=a2b.images.detach(),
        )

    def forward(
        self,
        mode: str = "translate",
        pixel_values_a: torch.Tensor | None = None,
        pixel_values_b: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        direction: str = "A2B",
        **kwargs,
    ):
        r"""
        Args:
            mode (`str`, defaults to `"translate"`): `"discriminator"`, `"generator"` or `"translate"`.
            pixel_values_a (`torch.FloatTensor` of shape `(B, C, S, S)`): Domain-A batch (training modes).
            pixel_values_b (`torch.FloatTensor` of shape `(B', C, S, S)`): Domain-B batch (training modes).
            pixel_values (`torch.FloatTensor` of shape `(B, C, S, S)`): Images to translate (`mode="translate"`).
            direction (`str`, defaults to `"A2B"`): Translation direction (`mode="translate"`).
        """
        if mode == "discriminator":
            return self.discriminator_step(pixel_values_a, pixel_values_b)
        if mode == "generator":
            return self.generator_step(pixel_values_a, pixel_values_b)
        if mode == "translate":
            if pixel_values is None:
                raise ValueError("mode='translate' needs `pixel_values`")
            return self.translate(pixel_values, direction)
        raise ValueError(f"`mode` must be 'discriminator', 'generator' or 'translate', got {mode!r}")


__all__ = [
    "DIRECTIONS",
    "FQUGATITAdaLIN",
    "FQUGATITDiscriminator",
    "FQUGATITDiscriminatorOutput",
    "FQUGATITDiscriminatorStepOutput",
    "FQUGATITGenerator",
    "FQUGATITGeneratorModel",
    "FQUGATITGeneratorOutput",
    "FQUGATITGeneratorStepOutput",
    "FQUGATITILN",
    "FQUGATITModel",
    "FQUGATITPreTrainedModel",
    "instance_layer_norms",
    "jet_heatmap",
]
