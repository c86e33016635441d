"""FQ-StyleGAN: a StyleGAN2 generator and a residual StyleGAN2 discriminator with feature quantizers, in plain
PyTorch (no custom CUDA ops).

Shapes: B = batch, `num_ws = config.num_ws`, R = `config.resolution`.

- Mapping network: z `(B, z_dim)` → w `(B, num_ws, w_dim)` (one w broadcast to every layer; truncation towards the
  running average `w_avg`).
- Synthesis network: w `(B, num_ws, w_dim)` → images `(B, num_channels, R, R)` in about [-1, 1] (not clamped).
- Discriminator: images `(B, num_channels, R, R)` → logits `(B,)`, plus the feature quantizers' losses.

The layers follow the StyleGAN2-ADA PyTorch formulation (equalised learning rate by run-time gains; modulated
convolution with demodulation computed as one grouped convolution; FIR resampling with the semantics of its
`upfirdn2d` reference implementation), so converted ADA weights reproduce ADA's images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from ...modules.checkpointing import CheckpointableBlock
from ...modules.feature_quantizer import FeatureQuantizer
from ...modules.gan_ema import copy_weights, ema_decay_from_half_life, update_ema
from ...modules.truncation import truncate_w
from ...pipelines.image_output import check_output_type, per_image, postprocess_images, prepare_generator
from .configuration_fq_stylegan import NOISE_MODES, FQStyleGANConfig
from .ops_fq_stylegan import bias_act as _bias_act
from .ops_fq_stylegan import downsample2d, fir_filter, upfirdn2d, upsample2d


_LRELU_GAIN = math.sqrt(2.0)


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class FQStyleGANDiscriminatorOutput(ModelOutput):
    r"""
    Output of [`FQStyleGANDiscriminator`].

    Args:
        logits (`torch.FloatTensor` of shape `(B,)`): Realness scores (before the logistic).
        quantization_loss (`torch.FloatTensor` of shape `(B,)`, *optional*): Per-sample sum over the quantizers of
            their commitment losses (`None` without FQ).
        fq_perplexity (`torch.FloatTensor` of shape `()`, *optional*): Mean over quantizers of the code perplexity.
        fq_usage (`torch.FloatTensor` of shape `()`, *optional*): Mean over quantizers of the fraction of entries used.
    """

    logits: torch.FloatTensor | None = None
    quantization_loss: torch.FloatTensor | None = None
    fq_perplexity: torch.FloatTensor | None = None
    fq_usage: torch.FloatTensor | None = None


@dataclass
class FQStyleGANGenerationOutput(ModelOutput):
    r"""
    Output of the generator (and of `generate(..., return_dict=True)`).

    Args:
        images (`torch.FloatTensor` of shape `(B, num_channels, R, R)`): Images, about [-1, 1] (not clamped);
            from `generate`, as its `output_type` asked (`"pt"` / `"np"`: in [0, 1]; `"pil"`: a list of PIL images).
        ws (`torch.FloatTensor` of shape `(B, num_ws, w_dim)`): The w vectors that made them.
    """

    images: torch.FloatTensor | None = None
    ws: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------
class FQStyleGANLinear(nn.Module):
    r"""
    Fully connected layer with equalised learning rate: `y = act(x · (W · g)ᵀ + b · m) · gain`, `g = m / √in`, with
    the learning-rate multiplier m (0.01 in the mapping network). The stored `weight` starts `N(0, 1/m²)`, the stored
    `bias` at `bias_init` (scaled by m at run time, as StyleGAN2-ADA stores them).

    Shapes: `(B, in_features)` → `(B, out_features)`.
    """

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0):  # fmt: skip
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.lr_multiplier = lr_multiplier
        self.bias_init = bias_init
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(hidden_states.dtype) * self.weight_gain
        bias = self.bias.to(hidden_states.dtype) * self.lr_multiplier
        if self.activation == "linear":
            return torch.addmm(bias.unsqueeze(0), hidden_states, weight.t())
        return _bias_act(hidden_states @ weight.t(), bias, self.activation, _LRELU_GAIN, None)


class FQStyleGANConv2d(nn.Module):
    r"""
    Discriminator convolution with equalised learning rate (weight gain `1/√(in·k²)`), optional FIR downsampling by
    2 (filter, then stride-2 convolution) and bias + activation (`lrelu` with gain √2, or linear), optional clamp.

    Shapes: `(B, in, H, W)` → `(B, out, H, W)` (or `H/2, W/2` with `down=2`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None):  # fmt: skip
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation = activation
        self.down = down
        self.resample_taps = tuple(resample_filter)
        self.conv_clamp = conv_clamp
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = _LRELU_GAIN if activation == "lrelu" else 1.0

    def forward(self, hidden_states: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        weight = self.weight.to(hidden_states.dtype) * self.weight_gain
        padding = self.kernel_size // 2
        if self.down > 1:
            f = fir_filter(self.resample_taps, hidden_states.device, hidden_states.dtype)
            taps = f.shape[0]
            if self.kernel_size == 1:
                pad0 = (taps - self.down + 1) // 2
                pad1 = (taps - self.down) // 2
                hidden_states = upfirdn2d(hidden_states, f, down=self.down, padding=(pad0, pad1, pad0, pad1))
                hidden_states = F.conv2d(hidden_states, weight)
            else:
                pad0 = padding + (taps - self.down + 1) // 2
                pad1 = padding + (taps - self.down) // 2
                hidden_states = upfirdn2d(hidden_states, f, padding=(pad0, pad1, pad0, pad1))
                hidden_states = F.conv2d(hidden_states, weight, stride=self.down)
        else:
            hidden_states = F.conv2d(hidden_states, weight, padding=padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return _bias_act(hidden_states, self.bias, self.activation, self.act_gain * gain, clamp)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    up: int = 1,
    demodulate: bool = True,
    resample_filter: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""
    StyleGAN2's modulated convolution, one grouped convolution for the whole batch.

    Per sample b: `w'_b[o, i] = weight[o, i] · styles[b, i]`; with `demodulate`, `w''_b[o] = w'_b[o] /
    √(Σ_{i,kh,kw} w'_b[o]² + 1e-8)`; then `y_b = conv(x_b, w''_b)` with "same" padding. With `up=2`, the
    convolution is transposed (stride 2) and followed by the FIR filter `resample_filter` (gain 4), giving twice the
    resolution.

    Args:
        x (`torch.FloatTensor` of shape `(B, in, H, W)`): Input.
        weight (`torch.FloatTensor` of shape `(out, in, k, k)`): Shared weight.
        styles (`torch.FloatTensor` of shape `(B, in)`): Per-sample input-channel scales.
        up (`int`): 1 or 2.
        demodulate (`bool`): Normalise every output filter of every sample to unit L2 norm.
        resample_filter (`torch.FloatTensor` of shape `(k_f, k_f)`): FIR filter (needed for `up=2`).

    Returns:
        `(B, out, H·up, W·up)`.
    """
    batch, in_channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_channels, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.reshape(batch, out_channels, 1, 1, 1)
    x = x.reshape(1, batch * in_channels, height, width)
    if up == 1:
        w = w.reshape(batch * out_channels, in_channels, kh, kw)
        x = F.conv2d(x, w, padding=kh // 2, groups=batch)
    else:
        # transposed convolution: weights (B·in, out, k, k), grouped by sample
        w = w.transpose(1, 2).reshape(batch * in_channels, out_channels, kh, kw)
        x = F.conv_transpose2d(x, w, stride=up, groups=batch)
        taps = resample_filter.shape[0]
        pad0 = (kw // 2) + (taps + up - 1) // 2 - (kw - 1)
        pad1 = (kw // 2) + (taps - up) // 2 - (kw - up)
        x = upfirdn2d(x, resample_filter, padding=(pad0, pad1, pad0, pad1), gain=up * up)
    return x.reshape(batch, out_channels, *x.shape[2:])


class FQStyleGANMappingNetwork(nn.Module):
    r"""
    z → w: normalise z to unit second moment, `mapping_layers` fully connected layers (lrelu, learning-rate
    multiplier 0.01), broadcast to `num_ws` copies. Tracks `w_avg` `(w_dim,)`, the running mean of w (updated when
    asked, with decay `w_avg_beta`), the centre of the truncation trick.
    """

    def __init__(self, config: FQStyleGANConfig):
        super().__init__()
        self.z_dim = config.z_dim
        self.w_dim = config.w_dim
        self.num_ws = config.num_ws
        self.w_avg_beta = config.w_avg_beta
        features = [config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(
            FQStyleGANLinear(features[i], features[i + 1], activation="lrelu",
                             lr_multiplier=config.mapping_lr_multiplier)  # fmt: skip
            for i in range(config.mapping_layers)
        )
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool | None = None,
    ) -> torch.Tensor:
        r"""
        Args:
            z (`torch.FloatTensor` of shape `(B, z_dim)`): Latents.
            truncation_psi (`float`, defaults to 1): `w ← w_avg + ψ·(w − w_avg)`; 1 = no truncation, 0 = the average.
            truncation_cutoff (`int`, *optional*): Truncate only the first `truncation_cutoff` of the `num_ws` w's
                (the coarse layers); all by default.
            update_w_avg (`bool`, *optional*): Move `w_avg` towards the batch mean of w. Default: in training mode,
                on every call, as StyleGAN2-ADA's `MappingNetwork` (its D step's and regularisation passes' generator
                runs included); the style-mixing call passes `False` (ADA's `skip_w_avg_update=True`).

        Returns:
            `torch.FloatTensor` of shape `(B, num_ws, w_dim)`.
        """
        x = z.to(self.w_avg.dtype)  # float32 unless the model was cast (StyleGAN2-ADA: float32)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for layer in self.layers:
            x = layer(x)
        if update_w_avg is None:
            update_w_avg = self.training
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate_w(ws, self.w_avg, truncation_psi, truncation_cutoff)


class FQStyleGANSynthesisLayer(nn.Module):
    r"""
    Modulated 3×3 convolution (optionally upsampling ×2) + per-pixel noise + bias + lrelu (gain √2), optional clamp.
    The style is an affine map of w (bias initialised to 1). Noise: `noise_const` `(R, R)` (fixed, `noise_mode=
    "const"`) or fresh N(0, 1) (`"random"`), scaled by the learned scalar `noise_strength`; none with `"none"`.

    Shapes: `(B, in, R/up, R/up)`, w `(B, w_dim)` → `(B, out, R, R)`.
    """

    def __init__(self, config: FQStyleGANConfig, in_channels: int, out_channels: int, resolution: int, up: int = 1):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.conv_clamp = config.conv_clamp
        self.resample_taps = tuple(config.resample_filter)
        self.affine = FQStyleGANLinear(config.w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.noise_strength = nn.Parameter(torch.empty(()))
        self.register_buffer("noise_const", torch.empty(resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        styles = self.affine(w)
        f = fir_filter(self.resample_taps, x.device, x.dtype) if self.up > 1 else None
        x = modulated_conv2d(x, self.weight.to(x.dtype), styles, up=self.up, demodulate=True, resample_filter=f)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, generator=generator,
                                device=generator.device if generator is not None else x.device, dtype=x.dtype)  # fmt: skip
            x = x + noise.to(x.device) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return _bias_act(x, self.bias, "lrelu", _LRELU_GAIN, self.conv_clamp)


class FQStyleGANToRGB(nn.Module):
    r"""
    Modulated 1×1 convolution to RGB, without demodulation (style scaled by `1/√in`) + bias, optional clamp.

    Shapes: `(B, in, R, R)`, w `(B, w_dim)` → `(B, num_channels, R, R)`.
    """

    def __init__(self, config: FQStyleGANConfig, in_channels: int):
        super().__init__()
        self.conv_clamp = config.conv_clamp
        self.affine = FQStyleGANLinear(config.w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(config.num_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(config.num_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight.to(x.dtype), styles, demodulate=False)
        return _bias_act(x, self.bias, "linear", 1.0, self.conv_clamp)


class FQStyleGANSynthesisBlock(CheckpointableBlock):
    r"""
    One resolution of the skip generator: (learned constant at 4²) or upsampling conv, conv, toRGB; the running
    image is FIR-upsampled and the block's RGB added to it.

    Uses 2 w's (1 at 4²) plus the next one for its toRGB.
    """

    def __init__(self, config: FQStyleGANConfig, in_channels: int, out_channels: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.in_channels = in_channels
        self.resample_taps = tuple(config.resample_filter)
        if in_channels == 0:
            self.const = nn.Parameter(torch.empty(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = FQStyleGANSynthesisLayer(config, in_channels, out_channels, resolution, up=2)
        self.conv1 = FQStyleGANSynthesisLayer(config, out_channels, out_channels, resolution)
        self.torgb = FQStyleGANToRGB(config, out_channels)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "random", generator: torch.Generator | None = None):
        """x `(B, in, R/2, R/2)` or None, img `(B, C, R/2, R/2)` or None, ws `(B, num_conv + 1, w_dim)` →
        x `(B, out, R, R)`, img `(B, C, R, R)`."""
        if self.const is not None:
            x = self.const.to(ws.dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, generator)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)
            x = self.conv1(x, ws[:, 1], noise_mode, generator)
        if img is not None:
            img = upsample2d(img, fir_filter(self.resample_taps, img.device, img.dtype))
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else img + y
        return x, img


class FQStyleGANSynthesisNetwork(nn.Module):
    r"""w `(B, num_ws, w_dim)` → images `(B, num_channels, R, R)`: one block per resolution 4, 8, …, R."""

    def __init__(self, config: FQStyleGANConfig):
        super().__init__()
        self.num_ws = config.num_ws
        blocks = []
        for log2 in range(2, config.log2_resolution + 1):
            res = 2**log2
            in_channels = config.channels_at(res // 2) if res > 4 else 0
            blocks.append(FQStyleGANSynthesisBlock(config, in_channels, config.channels_at(res), res))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"`noise_mode` must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.dim() != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"`ws` must have shape (B, {self.num_ws}, w_dim), got {tuple(ws.shape)}")
        x = img = None
        index = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, index : index + block.num_conv + 1], noise_mode, generator)
            index += block.num_conv
        return img


class FQStyleGANGenerator(nn.Module):
    r"""StyleGAN2 generator: `mapping` (z → w) then `synthesis` (w → images)."""

    def __init__(self, config: FQStyleGANConfig):
        super().__init__()
        self.mapping = FQStyleGANMappingNetwork(config)
        self.synthesis = FQStyleGANSynthesisNetwork(config)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "random", generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """z `(B, z_dim)` → images `(B, num_channels, R, R)`."""
        ws = self.mapping(z, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, generator=generator)


# ----------------------------------------------------------------------------------------------------------------
# Discriminator
# ----------------------------------------------------------------------------------------------------------------
class FQStyleGANDiscriminatorBlock(CheckpointableBlock):
    r"""
    Residual D block: (fromRGB 1×1 for the first block), conv 3×3, conv 3×3 with FIR downsampling ×2, plus a 1×1
    downsampling skip without bias; the two branches are summed with weights √½ each.

    Shapes: `(B, tmp, R, R)` (or the image for the first block) → `(B, out, R/2, R/2)`.
    """

    def __init__(self, config: FQStyleGANConfig, in_channels: int, tmp_channels: int, out_channels: int):
        super().__init__()
        taps, clamp = config.resample_filter, config.conv_clamp
        self.fromrgb = (
            FQStyleGANConv2d(config.num_channels, tmp_channels, 1, activation="lrelu", conv_clamp=clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = FQStyleGANConv2d(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=clamp)
        self.conv1 = FQStyleGANConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                      resample_filter=taps, conv_clamp=clamp)  # fmt: skip
        self.skip = FQStyleGANConv2d(tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


def minibatch_stddev(x: torch.Tensor, group_size: int, num_channels: int = 1) -> torch.Tensor:
    r"""
    Append `num_channels` feature maps holding the standard deviation of the features over groups of
    `min(group_size, B)` samples (sample n is in group `n mod (B / G)`), averaged over channels (split in
    `num_channels` parts) and positions. `(B, C, H, W)` → `(B, C + num_channels, H, W)`; B must be divisible by G.
    """
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    if batch % group:
        raise ValueError(f"the batch ({batch}) must be divisible by the minibatch-stddev group size ({group})")
    y = x.reshape(group, -1, num_channels, channels // num_channels, height, width)
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt()
    y = y.mean(dim=[2, 3, 4]).reshape(-1, num_channels, 1, 1)
    y = y.repeat(group, 1, height, width)
    return torch.cat([x, y], dim=1)


class FQStyleGANDiscriminatorEpilogue(nn.Module):
    r"""4² head: minibatch stddev, conv 3×3, fully connected (lrelu), fully connected to one logit.
    `(B, C, 4, 4)` → `(B,)`."""

    def __init__(self, config: FQStyleGANConfig):
        super().__init__()
        channels = config.channels_at(4)
        self.group_size = config.mbstd_group_size
        self.num_channels = config.mbstd_num_channels
        self.conv = FQStyleGANConv2d(channels + self.num_channels, channels, 3, activation="lrelu",
                                     conv_clamp=config.conv_clamp)  # fmt: skip
        self.fc = FQStyleGANLinear(channels * 16, channels, activation="lrelu")
        self.out = FQStyleGANLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_channels > 0 and self.group_size > 0:
            x = minibatch_stddev(x, self.group_size, self.num_channels)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x).squeeze(1)


class FQStyleGANDiscriminator(nn.Module):
    r"""
    Residual StyleGAN2 discriminator: one block per resolution R, R/2, …, 8, then the 4² epilogue. With
    `config.use_fq`, the output of each block in `config.fq_layers` goes through
    a [`FeatureQuantizer`] (`quantizers[str(j)]` for block j in `config.fq_layers`, dim = that block's output
    channels; by default the blocks that read 32² and 16²).
    """

    def __init__(self, config: FQStyleGANConfig):
        super().__init__()
        self.resolutions = config.discriminator_resolutions
        blocks = []
        for res in self.resolutions:
            in_channels = config.channels_at(res) if res < config.resolution else 0
            blocks.append(FQStyleGANDiscriminatorBlock(config, in_channels, config.channels_at(res),
                                                       config.channels_at(res // 2)))  # fmt: skip
        self.blocks = nn.ModuleList(blocks)
        self.quantizers = nn.ModuleDict()
        if config.use_fq:
            for j in config.fq_layers:
                dim = config.channels_at(self.resolutions[j] // 2)
                self.quantizers[str(j)] = FeatureQuantizer.from_config(config, dim, layer=j)
        self.epilogue = FQStyleGANDiscriminatorEpilogue(config)

    def forward(self, images: torch.Tensor, update_dictionary: bool = False) -> FQStyleGANDiscriminatorOutput:
        r"""
        Args:
            images (`torch.FloatTensor` of shape `(B, num_channels, R, R)`): Images in [-1, 1].
            update_dictionary (`bool`): Let the quantizers update their dictionaries (training mode only; the
                D step on real and fake images).

        Returns:
            [`FQStyleGANDiscriminatorOutput`].
        """
        x = images
        losses, perplexities, usages = [], [], []
        for j, block in enumerate(self.blocks):
            x = block(x)
            key = str(j)
            if key in self.quantizers:
                quantized = self.quantizers[key](x, update_dictionary=update_dictionary)
                x = quantized.output
                losses.append(quantized.per_sample_loss)
                perplexities.append(quantized.perplexity)
                usages.append(quantized.usage)
        logits = self.epilogue(x)
        if not losses:
            return FQStyleGANDiscriminatorOutput(logits=logits)
        return FQStyleGANDiscriminatorOutput(
            logits=logits,
            quantization_loss=torch.stack(losses).sum(dim=0),
            fq_perplexity=torch.stack(perplexities).mean(),
            fq_usage=torch.stack(usages).mean(),
        )


# ----------------------------------------------------------------------------------------------------------------
# Pretrained models
# ----------------------------------------------------------------------------------------------------------------
class FQStyleGANTrainingState(nn.Module):
    """Running statistics of training saved with the model (so resuming continues them): `pl_mean` `()`, the
    running mean path length ā; `images_seen` `()` (float64), real images shown to D steps, for the G-EMA ramp-up."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pl_mean", torch.zeros(()))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.float64))


def _check_psi(truncation_psi) -> float:
    if isinstance(truncation_psi, bool) or not isinstance(truncation_psi, (int, float)) or not math.isfinite(
        truncation_psi
    ):
        raise ValueError(f"`truncation_psi` must be a finite number (1 = no truncation), got {truncation_psi!r}")
    return float(truncation_psi)


def _check_noise_mode(noise_mode) -> str:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"`noise_mode` must be one of {NOISE_MODES}, got {noise_mode!r}")
    return noise_mode


class FQStyleGANPreTrainedModel(PreTrainedModel):
    config_class = FQStyleGANConfig
    base_model_prefix = "fq_stylegan"
    # kept whole on one device by `device_map`: the synthesis blocks (running image + skip), the residual D blocks,
    # the mapping network and D epilogue (small MLP / minibatch-std head) and the quantizers
    _no_split_modules = [
        "FQStyleGANSynthesisBlock", "FQStyleGANDiscriminatorBlock", "FQStyleGANMappingNetwork",
        "FQStyleGANDiscriminatorEpilogue", "FeatureQuantizer",
    ]  # fmt: skip
    main_input_name = "z"
    # `gradient_checkpointing_enable()` checkpoints the synthesis and D blocks; the noise drawn from a `generator`
    # is drawn again identically on recompute (see hf_dgm.modules.checkpointing)
    supports_gradient_checkpointing = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """StyleGAN2-ADA init: weights `N(0, 1)` (`N(0, 1/m²)` in layers with learning-rate multiplier m), biases at
        `bias_init` (1 for the style affines, else 0), the 4² constant and the fixed noise maps `N(0, 1)`, noise
        strengths 0, `w_avg` 0; quantizer dictionaries `N(0, 1)` (the original's)."""
        if isinstance(module, FQStyleGANLinear):
            hf_init.normal_(module.weight, mean=0.0, std=1.0 / module.lr_multiplier)
            hf_init.constant_(module.bias, module.bias_init)
        elif isinstance(module, FQStyleGANConv2d):
            hf_init.normal_(module.weight)
            if module.bias is not None:
                hf_init.zeros_(module.bias)
        elif isinstance(module, (FQStyleGANSynthesisLayer, FQStyleGANToRGB)):
            hf_init.normal_(module.weight)
            hf_init.zeros_(module.bias)
            if isinstance(module, FQStyleGANSynthesisLayer):
                hf_init.zeros_(module.noise_strength)
                hf_init.normal_(module.noise_const)
        elif isinstance(module, FQStyleGANSynthesisBlock):
            if module.const is not None:
                hf_init.normal_(module.const)
        elif isinstance(module, FQStyleGANMappingNetwork):
            hf_init.zeros_(module.w_avg)
        elif isinstance(module, FQStyleGANTrainingState):
            hf_init.zeros_(module.pl_mean)
            hf_init.zeros_(module.images_seen)
        elif isinstance(module, FeatureQuantizer):
            module.init_dictionary()

    def _sample_z(self, batch_size: int, generator: torch.Generator | None) -> torch.Tensor:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
        device = generator.device if generator is not None else self.device
        z = torch.randn(batch_size, self.config.z_dim, generator=generator, device=device)
        return z.to(self.device)

    def _check_z(self, z) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.config.z_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"`z` must be a (B, {self.config.z_dim}) tensor, got {shape}")
        return z.to(self.device)

    def _check_ws(self, ws) -> torch.Tensor:
        config = self.config
        if not isinstance(ws, torch.Tensor):
            raise ValueError(f"`ws` must be a tensor, got {type(ws).__name__}")
        if ws.dim() == 2 and ws.shape[1] == config.w_dim:  # one w per image: broadcast to every layer
            ws = ws.unsqueeze(1).repeat(1, config.num_ws, 1)
        if ws.dim() != 3 or ws.shape[1:] != (config.num_ws, config.w_dim):
            raise ValueError(
                f"`ws` must have shape (B, {config.num_ws}, {config.w_dim}) or (B, {config.w_dim}), got {tuple(ws.shape)}"
            )
        return ws.to(self.device)

    def _inference_generator(self, use_ema: bool) -> FQStyleGANGenerator:
        if use_ema:
            return self.generator_ema
        if not hasattr(self, "generator"):
            raise ValueError(f"{type(self).__name__} holds only the EMA generator; use FQStyleGANForImageGeneration")
        return self.generator

    # -- latent-space API --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                use_ema: bool = True) -> torch.Tensor:  # fmt: skip
        r"""
        Map latents to w space.

        Args:
            z (`torch.FloatTensor` of shape `(B, z_dim)`): Latents (N(0, 1)).
            truncation_psi (`float`, defaults to 1): Truncation `w ← w_avg + ψ·(w − w_avg)` (1 = none, 0 = `w_avg`,
                the mean image; 0.5–0.7 trade variety for fidelity).
            truncation_cutoff (`int`, *optional*): Truncate only the first `truncation_cutoff` w's (coarse layers).
            use_ema (`bool`, defaults to `True`): Use the EMA generator (the one to sample from).

        Returns:
            `torch.FloatTensor` of shape `(B, num_ws, w_dim)`: identical copies of one w per image unless
            truncated with a cutoff. Feed to [`~FQStyleGANPreTrainedModel.synthesis`].

        Style mixing: take the first k rows of one image's `ws` and the rest of another's
        ([`~FQStyleGANPreTrainedModel.mix_styles`]): k small = the coarse layers (pose, shape) of the first.
        Interpolation: interpolate w's linearly ([`~FQStyleGANPreTrainedModel.interpolate_ws`]).
        """
        truncation_psi = _check_psi(truncation_psi)
        if truncation_cutoff is not None and (
            isinstance(truncation_cutoff, bool) or not isinstance(truncation_cutoff, int) or truncation_cutoff < 0
        ):
            raise ValueError(f"`truncation_cutoff` must be a non-negative int or None, got {truncation_cutoff!r}")
        network = self._inference_generator(use_ema)
        return network.mapping(self._check_z(z), truncation_psi, truncation_cutoff, update_w_avg=False)

    @torch.no_grad()
    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None,
                  use_ema: bool = True) -> torch.Tensor:  # fmt: skip
        r"""
        Render w's to images (eval, no gradient).

        Args:
            ws (`torch.FloatTensor` of shape `(B, num_ws, w_dim)` or `(B, w_dim)`): Styles (a single w per image is
                broadcast to every layer).
            noise_mode (`str`, defaults to `"const"`): `"const"` (the stored noise maps: deterministic), `"random"`
                (fresh noise, from `generator`) or `"none"`.
            generator (`torch.Generator`, *optional*): Randomness of `"random"` noise.

        Returns:
            `torch.FloatTensor` of shape `(B, num_channels, R, R)`, about [-1, 1] (not clamped).
        """
        _check_noise_mode(noise_mode)
        network = self._inference_generator(use_ema)
        return network.synthesis(self._check_ws(ws), noise_mode=noise_mode, generator=generator)

    @staticmethod
    def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, cutoff: int) -> torch.Tensor:
        """Style mixing: `ws_a[:, :cutoff]` followed by `ws_b[:, cutoff:]` (both `(B, num_ws, w_dim)`)."""
        if ws_a.shape != ws_b.shape or ws_a.dim() != 3:
            raise ValueError(f"`ws_a` and `ws_b` must be (B, num_ws, w_dim) of one shape, got {tuple(ws_a.shape)} "
                             f"and {tuple(ws_b.shape)}")  # fmt: skip
        if isinstance(cutoff, bool) or not isinstance(cutoff, int) or not 0 <= cutoff <= ws_a.shape[1]:
            raise ValueError(f"`cutoff` must be an int in [0, {ws_a.shape[1]}], got {cutoff!r}")
        return torch.cat([ws_a[:, :cutoff], ws_b[:, cutoff:]], dim=1)

    @staticmethod
    def interpolate_ws(ws_a: torch.Tensor, ws_b: torch.Tensor, steps: int) -> torch.Tensor:
        """Linear interpolation in w space: `steps` points from `ws_a` to `ws_b` (both `(B, ...)`) →
        `(steps, B, ...)`."""
        if ws_a.shape != ws_b.shape:
            raise ValueError(f"shapes differ: {tuple(ws_a.shape)} vs {tuple(ws_b.shape)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"`steps` must be an int >= 2, got {steps!r}")
        t = torch.linspace(0, 1, steps, device=ws_a.device, dtype=ws_a.dtype).reshape(-1, *[1] * ws_a.dim())
        return ws_a.unsqueeze(0).lerp(ws_b.unsqueeze(0), t)

    @torch.no_grad()
    def generate(
        self,
        batch_size: int | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        generator: torch.Generator | list[torch.Generator] | None = None,
        z: torch.Tensor | None = None,
        use_ema: bool = True,
        labels=None,
        truncation=None,
        num_images: int | None = None,
        output_type: str | None = None,
        return_dict: bool = False,
    ):
        r"""
        Sample images (eval mode, no gradient).

        Args:
            batch_size (`int`): Number of images (z drawn from N(0, 1) with `generator`), unless `z` is given.
            truncation_psi (`float`, defaults to 1): w-space truncation (see [`~FQStyleGANPreTrainedModel.mapping`]).
            truncation_cutoff (`int`, *optional*): Truncate only the first w's.
            noise_mode (`str`, defaults to `"const"`): `"const"`, `"random"` or `"none"`.
            generator (`torch.Generator` or a list of them, *optional*): Source of z and of random noise
                (reproducible samples). A list holds one generator per image (as diffusers): image i's z and noise
                come from `generator[i]` alone, so it does not depend on the batch.
            z (`torch.FloatTensor` of shape `(B, z_dim)`, *optional*): Latents to use.
            use_ema (`bool`, defaults to `True`): Sample from the EMA generator.
            labels: Must be `None` (the model is unconditional).
            truncation: Alias of `truncation_psi` (the name the shared GAN pipelines and the trainer's sample grids
                use); `None` means no truncation.
            num_images (`int`, *optional*): Alias of `batch_size` (the pipelines' name).
            output_type (`str`, *optional*): None (default): the raw tensor, about [-1, 1]; `"pt"`: a tensor clamped
                to [0, 1]; `"np"`: a `(B, H, W, C)` float32 array in [0, 1]; `"pil"`: a list of PIL images.
            return_dict (`bool`, defaults to `False`): Return [`FQStyleGANGenerationOutput`] (`.images`) instead of
                the images alone.

        Returns:
            The images (`torch.FloatTensor` of shape `(B, num_channels, R, R)`, about [-1, 1], not clamped, by
            default), or [`FQStyleGANGenerationOutput`] with `return_dict=True`.
        """
        if labels is not None:
            raise ValueError("FQ-StyleGAN is unconditional: `labels` must be None")
        if num_images is not None:
            if batch_size is not None and batch_size != num_images:
                raise ValueError(f"`num_images` ({num_images}) and `batch_size` ({batch_size}) disagree: pass one")
            batch_size = num_images
        output_type = check_output_type(output_type, allow_none=True)
        if truncation is not None:
            truncation_psi = truncation
        truncation_psi = _check_psi(truncation_psi)
        _check_noise_mode(noise_mode)
        generator = prepare_generator(generator)
        if z is None:
            if batch_size is None and isinstance(generator, list):
                batch_size = len(generator)
            if batch_size is None:
                raise ValueError("pass `batch_size` or `z`")
            if isinstance(generator, list) and len(generator) != batch_size:
                raise ValueError(f"`generator` is a list of {len(generator)} generators for {batch_size} images")
            z = per_image(generator, batch_size, lambda n, g: self._sample_z(n, g))
        z = self._check_z(z)
        network = self._inference_generator(use_ema)
        was_training = network.training
        network.eval()
        try:
            ws = network.mapping(z, truncation_psi, truncation_cutoff)
            if isinstance(generator, list) and noise_mode == "random":  # each image's noise from its generator
                if len(generator) != ws.shape[0]:
                    raise ValueError(f"`generator` is a list of {len(generator)} generators for {ws.shape[0]} images")
                images = torch.cat([network.synthesis(ws[i : i + 1], noise_mode=noise_mode, generator=g)
                                    for i, g in enumerate(generator)])  # fmt: skip
            else:
                images = network.synthesis(ws, noise_mode=noise_mode,
                                           generator=None if isinstance(generator, list) else generator)  # fmt: skip
        finally:
            network.train(was_training)
        images = postprocess_images(images, output_type)
        return FQStyleGANGenerationOutput(images=images, ws=ws) if return_dict else images


class FQStyleGANForImageGeneration(FQStyleGANPreTrainedModel):
    r"""
    FQ-StyleGAN for training and sampling: `generator` (trained), `generator_ema` (an independent EMA copy, saved
    with the model and used for sampling by default), `discriminator` (residual D with feature quantizers when
    `config.use_fq`) and `training_state` (path-length mean, images seen).

    Sampling: [`~FQStyleGANPreTrainedModel.generate`], [`~FQStyleGANPreTrainedModel.mapping`] (z → w, truncation),
    [`~FQStyleGANPreTrainedModel.synthesis`] (w → images), [`~FQStyleGANPreTrainedModel.mix_styles`],
    [`~FQStyleGANPreTrainedModel.interpolate_ws`].

    `forward(z)` runs the trained generator; `discriminator(images)` scores. The training steps (StyleGAN2's losses,
    R1, path length, the FQ terms; as StyleGAN2-ADA's `training/loss.py`) are training code:
    `hf_dgm.training.fq_stylegan.loss.FQStyleGANSteps`.

    - [`~FQStyleGANForImageGeneration.update_generator_ema`]: decay from the half-life `ema_kimg · 1000` images.

    Optimiser defaults read by the trainer (`generator_lr`, `discriminator_lr`, `generator_betas`,
    `discriminator_betas`, `adam_eps`) are the config's `learning_rate` and `adam_betas` corrected for lazy
    regularisation as StyleGAN2 does: with `c = interval / (interval + 1)`, lr · c and betas ** c.
    """

    def __init__(self, config: FQStyleGANConfig):
        super().__init__(config)
        self.generator = FQStyleGANGenerator(config)
        self.generator_ema = FQStyleGANGenerator(config)
        self.generator_ema.requires_grad_(False)
        self.discriminator = FQStyleGANDiscriminator(config)
        self.training_state = FQStyleGANTrainingState()
        self.post_init()
        self.copy_generator_to_ema()
        self._ema_images = 0

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.generator_ema.requires_grad_(False)  # loading re-creates the parameters with requires_grad=True
        return loaded

    @torch.no_grad()
    def copy_generator_to_ema(self) -> None:
        """`generator_ema ← generator` (parameters and buffers)."""
        copy_weights(self.generator_ema, self.generator)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the G optimiser trains (`generator` only)."""
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the D optimiser trains (the FQ dictionaries are buffers, updated by EMA in D steps)."""
        return self.discriminator.parameters()

    def count_generator_images(self, images: int) -> None:
        """Count the images of a G training step (over all processes); `update_generator_ema` without `batch_size`
        derives its decay from the images counted since the last update."""
        self._ema_images += int(images)

    @torch.no_grad()
    def update_generator_ema(self, decay: float | None = None, step: int | None = None, batch_size: int | None = None,
                             images_seen: int | None = None) -> float:  # fmt: skip
        """`generator_ema ← d·generator_ema + (1 − d)·generator` over the parameters; the buffers (`w_avg`, the
        fixed noise maps) are copied, as StyleGAN2-ADA does. With `decay=None`, `d = 0.5 ** (batch_size /
        (ema_kimg · 1000))` (`hf_dgm.modules.gan_ema.ema_decay_from_half_life`), the half-life capped at `ema_rampup ·
        images_seen` when `config.ema_rampup` is set. `batch_size` is the images per G update over all processes
        (GANTrainer passes it, and `images_seen`); without it, the images of the G steps since the last update are
        counted here. Returns `d`."""
        config = self.config
        if decay is None:
            images = int(batch_size) if batch_size is not None else max(int(self._ema_images), 1)
            seen = int(images_seen) if images_seen is not None else int(self.training_state.images_seen)
            decay = ema_decay_from_half_life(
                images, config.ema_kimg * 1000, images_seen=seen, rampup=config.ema_rampup
            ) if config.ema_kimg > 0 else 0.0  # fmt: skip
        self._ema_images = 0
        update_ema(self.generator_ema, self.generator, decay)
        for target, source in zip(self.generator_ema.buffers(), self.generator.buffers()):
            target.copy_(source)
        return decay

    def sample_images(self, num_images: int, generator: torch.Generator | None = None, use_ema: bool = True,
                      truncation: float | None = None) -> torch.Tensor:  # fmt: skip
        """Sample grid for the trainer: `num_images` images `(N, C, R, R)` with `noise_mode="const"`; `truncation`
        is ψ (None = 1, no truncation)."""
        return self.generate(batch_size=num_images, truncation_psi=1.0 if truncation is None else truncation,
                             noise_mode="const", generator=generator, use_ema=use_ema)  # fmt: skip

    def forward(
        self,
        z: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
    ) -> FQStyleGANGenerationOutput:
        r"""
        Run the trained (non-EMA) generator on `z`, with gradients (sampling: [`~FQStyleGANPreTrainedModel.generate`]).

        Args:
            z (`torch.FloatTensor` of shape `(B, z_dim)`): Latents.
            truncation_psi (`float`, defaults to 1), noise_mode (`str`, defaults to `"random"`), generator: as in
                [`~FQStyleGANPreTrainedModel.generate`].

        Returns:
            [`FQStyleGANGenerationOutput`] with `images` `(B, num_channels, R, R)` and `ws`.
        """
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"`generator` must be a torch.Generator or None, got {type(generator).__name__}")
        z = self._check_z(z)
        ws = self.generator.mapping(z, _check_psi(truncation_psi))
        images = self.generator.synthesis(ws, noise_mode=_check_noise_mode(noise_mode), generator=generator)
        return FQStyleGANGenerationOutput(images=images, ws=ws)


class FQStyleGANGeneratorModel(FQStyleGANPreTrainedModel):
    r"""
    Generator-only FQ-StyleGAN for inference: just the EMA generator. Loading a folder saved by
    [`FQStyleGANForImageGeneration`] reads only its `generator_ema.*` weights (`generator.*` and `discriminator.*`
    are skipped). Saving it writes only `generator_ema.*`.
    """

    _keys_to_ignore_on_load_unexpected = [r"^generator\.", r"^discriminator\."]

    def __init__(self, config: FQStyleGANConfig):
        super().__init__(config)
        self.generator_ema = FQStyleGANGenerator(config)
        self.post_init()

    def forward(self, z: torch.Tensor | None = None, truncation_psi: float = 1.0, noise_mode: str = "const",
                generator: torch.Generator | None = None, return_dict: bool | None = None) -> FQStyleGANGenerationOutput:  # fmt: skip
        r"""
        Args:
            z (`torch.FloatTensor` of shape `(B, z_dim)`): Latents.
            truncation_psi (`float`, defaults to 1), noise_mode (`str`, defaults to `"const"`), generator: as in
                [`~FQStyleGANPreTrainedModel.generate`].

        Returns:
            [`FQStyleGANGenerationOutput`] with `images` `(B, num_channels, R, R)`.
        """
        z = self._check_z(z)
        ws = self.generator_ema.mapping(z, _check_psi(truncation_psi), update_w_avg=False)
        images = self.generator_ema.synthesis(ws, noise_mode=_check_noise_mode(noise_mode), generator=generator)
        return FQStyleGANGenerationOutput(images=images, ws=ws)


__all__ = [
    "FQStyleGANDiscriminator",
    "FQStyleGANDiscriminatorOutput",
    "FQStyleGANForImageGeneration",
    "FQStyleGANGenerationOutput",
    "FQStyleGANGenerator",
    "FQStyleGANGeneratorModel",
    "FQStyleGANMappingNetwork",
    "FQStyleGANPreTrainedModel",
    "FQStyleGANSynthesisNetwork",
    "FQStyleGANTrainingState",
    "downsample2d",
    "fir_filter",
    "minibatch_stddev",
    "modulated_conv2d",
    "upfirdn2d",
    "upsample2d",
]
