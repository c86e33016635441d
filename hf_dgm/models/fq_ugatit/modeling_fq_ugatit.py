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
from torch.nn.utils import parametrize
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from ...modules.checkpointing import CheckpointableBlock
from ...modules.feature_quantizer import FeatureQuantizer
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


# The four discriminators in the port's order and naming: G/L = global/local, A/B = the domain it judges.
DISCRIMINATOR_KEYS = ("global_a", "local_a", "global_b", "local_b")


# ----------------------------------------------------------------------------------------------------------------
# Normalisation
# ----------------------------------------------------------------------------------------------------------------
def instance_layer_norms(
    hidden_states: torch.Tensor, eps: float, variance: str = "unbiased"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Instance- and layer-normalised copies of `hidden_states` `(B, F, H, W)` (no affine part), each `(B, F, H, W)`.

    The means are over (H, W) and (F, H, W). The variances (see `FQUGATITConfig.norm_variance`):

    - `"unbiased"`: unbiased variance over (H, W) and over (F, H, W), as UGATIT-pytorch since commit f7a4b59;
    - `"nested_unbiased"`: the port's earlier nested form, `var_W(var_H(x))` and `var_W(var_H(var_F(x)))` (each
      unbiased);
    - `"moments"`: biased variance over (H, W) and (F, H, W), as the TensorFlow originals.
    """
    in_mean = hidden_states.mean(dim=(2, 3), keepdim=True)
    ln_mean = hidden_states.mean(dim=(1, 2, 3), keepdim=True)
    if variance == "unbiased":
        in_var = hidden_states.var(dim=(2, 3), keepdim=True)
        ln_var = hidden_states.var(dim=(1, 2, 3), keepdim=True)
    elif variance == "nested_unbiased":
        in_var = hidden_states.var(dim=2, keepdim=True).var(dim=3, keepdim=True)
        ln_var = hidden_states.var(dim=1, keepdim=True).var(dim=2, keepdim=True).var(dim=3, keepdim=True)
    elif variance == "moments":
        in_var = hidden_states.var(dim=(2, 3), keepdim=True, unbiased=False)
        ln_var = hidden_states.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
    else:
        raise ValueError(f"unknown variance mode {variance!r}")
    out_in = (hidden_states - in_mean) / torch.sqrt(in_var + eps)
    out_ln = (hidden_states - ln_mean) / torch.sqrt(ln_var + eps)
    return out_in, out_ln


class FQUGATITAdaLIN(nn.Module):
    r"""Adaptive layer-instance normalisation: `(ρ·IN(x) + (1−ρ)·LN(x))·γ + β` with a learnable per-channel ρ
    `(1, F, 1, 1)` (initialised to 0.9, clipped to [0, 1] after every G step) and γ, β `(B, F)` from the generator's
    MLP."""

    def __init__(self, num_features: int, eps: float = 1e-5, variance: str = "unbiased"):
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

    def __init__(self, num_features: int, eps: float = 1e-5, variance: str = "unbiased"):
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
class FQUGATITResnetBlock(CheckpointableBlock):
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


class FQUGATITAdaLINBlock(CheckpointableBlock):
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


class FQUGATITUpsampleBlock(CheckpointableBlock):
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
class FQUGATITSpectralNorm(nn.Module):
    r"""
    Spectral normalisation as a `torch.nn.utils.parametrize` parametrization of a weight `(out, ...)`, viewed as the
    matrix W `(out, in)` (`in` = product of the other dimensions).

    Buffers `_u` `(out,)` and `_v` `(in,)` (the state-dict keys of `torch.nn.utils.parametrizations.spectral_norm`:
    `<module>.parametrizations.weight.0._u` / `._v`, next to `.original`). Each training-mode access of the weight
    runs one power iteration in place, without gradient, in the order `order`:

    - `"v_then_u"`: `v ← normalize(Wᵀu)`, `u ← normalize(Wv)`, the order of `torch.nn.utils.spectral_norm` (the hook
      API that UGATIT-pytorch uses), so a training step equals the port's;
    - `"u_then_v"`: `u ← normalize(Wv)`, `v ← normalize(Wᵀu)`, the order of
      `torch.nn.utils.parametrizations.spectral_norm` (what hf-dgm used before).

    The weight is `W / σ` with `σ = uᵀ W v` (copies of the vectors, so the gradient reaches W through σ, not through
    the iteration). Eval mode runs no iteration and uses the stored vectors: both orders give the same outputs there.
    (`hf_dgm.modules.spectral_norm` is BigGAN's formulation — it stores `u` only and iterates in eval mode too — so it
    cannot reproduce the port.)
    """

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12, order: str = "v_then_u"):
        super().__init__()
        if order not in ("v_then_u", "u_then_v"):
            raise ValueError(f"spectral norm `order` must be 'v_then_u' or 'u_then_v', got {order!r}")
        if weight.dim() < 2:
            raise ValueError(f"spectral norm needs a weight of 2 or more dimensions, got shape {tuple(weight.shape)}")
        self.eps = float(eps)
        self.order = order
        matrix = weight.detach().flatten(1)
        # Same draws as torch's parametrization (u then v from the global RNG), then the same 15 warm-up iterations.
        u = matrix.new_empty(matrix.shape[0]).normal_(0, 1)
        v = matrix.new_empty(matrix.shape[1]).normal_(0, 1)
        self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
        self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
        self._power_iteration(matrix, 15)

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor, iterations: int) -> None:
        for _ in range(iterations):
            if self.order == "v_then_u":
                self._v = F.normalize(torch.mv(matrix.t(), self._u), dim=0, eps=self.eps, out=self._v)
                self._u = F.normalize(torch.mv(matrix, self._v), dim=0, eps=self.eps, out=self._u)
            else:
                self._u = F.normalize(torch.mv(matrix, self._v), dim=0, eps=self.eps, out=self._u)
                self._v = F.normalize(torch.mv(matrix.t(), self._u), dim=0, eps=self.eps, out=self._v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self._power_iteration(matrix, 1)
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, torch.mv(matrix, v))
        return weight / sigma

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Assigning `module.weight = W` stores W itself as the raw weight (as torch's parametrization)."""
        return value


def _sn(module: nn.Module, eps: float, order: str = "v_then_u") -> nn.Module:
    """Spectral-normalise `module.weight` with [`FQUGATITSpectralNorm`] (one power iteration per training forward)."""
    parametrize.register_parametrization(module, "weight", FQUGATITSpectralNorm(module.weight, eps=eps, order=order))
    return module


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
        eps, order = config.spectral_norm_eps, config.spectral_norm_order
        self.slope = config.leaky_relu_slope
        channels = config.discriminator_channels(n_layers)
        convs = []
        in_ch = config.num_channels
        for i, out_ch in enumerate(channels):
            stride = 1 if i == len(channels) - 1 else 2
            convs.append(_sn(nn.Conv2d(in_ch, out_ch, 4, stride=stride, bias=True), eps, order))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        features = channels[-1]
        self.gap_fc = _sn(nn.Linear(features, 1, bias=False), eps, order)
        self.gmp_fc = _sn(nn.Linear(features, 1, bias=False), eps, order)
        self.conv1x1 = nn.Conv2d(2 * features, features, 1, bias=True)
        self.output_conv = _sn(nn.Conv2d(features, 1, 4, bias=False), eps, order)
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
    # `gradient_checkpointing_enable()` checkpoints the generators' residual, AdaLIN and upsampling blocks; the
    # discriminators (a plain conv stack with spectral norm, no repeated block) run as before
    supports_gradient_checkpointing = True
    # kept whole on one device by `device_map`: the residual blocks and the quantizers
    _no_split_modules = ["FQUGATITResnetBlock", "FQUGATITAdaLINBlock", "FQUGATITUpsampleBlock", "FeatureQuantizer"]

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

    `forward(pixel_values, direction)` translates (as [`~FQUGATITPreTrainedModel.translate`]). The training steps
    (least-squares adversarial and CAM terms, cycle, identity, the FQ terms; dictionaries updated in D and, by
    default, G steps) are training code: `hf_dgm.training.fq_ugatit.loss.FQUGATITSteps`.

    Parity with UGATIT-pytorch (`benchmarks/parity/fq_ugatit.py`): with `use_fq=False` and the default
    `norm_variance="unbiased"` and `spectral_norm_order="v_then_u"`, a D step and a G step from the port's weights
    and batch give the port's losses, gradients and spectral-norm vectors to fp32 rounding.
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

    def forward(self, pixel_values: torch.Tensor, direction: str = "A2B") -> FQUGATITGeneratorOutput:
        r"""
        Translate (the training steps are `hf_dgm.training.fq_ugatit.loss.FQUGATITSteps`).

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, S, S)`): Images in [-1, 1].
            direction (`str`, defaults to `"A2B"`): `"A2B"` or `"B2A"`.

        Returns:
            [`FQUGATITGeneratorOutput`].
        """
        return self.translate(pixel_values, direction)


__all__ = [
    "DIRECTIONS",
    "DISCRIMINATOR_KEYS",
    "FQUGATITAdaLIN",
    "FQUGATITDiscriminator",
    "FQUGATITDiscriminatorOutput",
    "FQUGATITGenerator",
    "FQUGATITGeneratorModel",
    "FQUGATITGeneratorOutput",
    "FQUGATITILN",
    "FQUGATITModel",
    "FQUGATITPreTrainedModel",
    "FQUGATITSpectralNorm",
    "instance_layer_norms",
    "jet_heatmap",
]
