"""FQ-BigGAN: BigGAN (Brock et al., 2019; layers as BigGAN-PyTorch) with feature quantization in the discriminator
(Zhao et al., "Feature Quantization Improves GAN Training", ICML 2020).

Classes:

- [`FQBigGANForImageGeneration`]: the trainable GAN. Holds `generator`, `generator_ema` (an independent EMA copy,
  saved with the model and used for inference) and `discriminator`. `forward(z, labels)` generates; the D and G
  training steps (losses) are training code, `hf_dgm.training.fq_biggan.loss.FQBigGANSteps` (this module stays free
  of it: it is shipped as remote code).
- [`FQBigGANGeneratorModel`]: generator-only inference model. `FQBigGANGeneratorModel.from_pretrained(dir)` on a
  folder saved by [`FQBigGANForImageGeneration`] loads only the `generator_ema.*` weights (the generator and
  discriminator weights are skipped, never materialised).
- Building blocks (`nn.Module`s): [`FQBigGANGenerator`], [`FQBigGANDiscriminator`], spectral-norm layers with
  BigGAN-PyTorch's power iteration, conditional batch norm, SAGAN self-attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from ...modules.checkpointing import CheckpointableBlock
from ...modules.feature_quantizer import FeatureQuantizer
from ...modules.gan_ema import copy_weights, ema_decay_at_step, update_ema
from ...modules.spectral_norm import SNConv2d, SNEmbedding, SNLinear, SpectralNormMixin
from ...modules.truncation import _check_truncation, sample_truncated_normal
from ...modules.validation import check_pretrained_folder
from ...pipelines.image_output import check_output_type, per_image, postprocess_images, prepare_generator
from .configuration_fq_biggan import FQBigGANConfig


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class FQBigGANDiscriminatorOutput(ModelOutput):
    r"""
    Output of [`FQBigGANDiscriminator`].

    Args:
        logits (`torch.FloatTensor` of shape `(B,)`): Unbounded realness scores (with the projection term when
            `config.loss_type == "projection"`).
        quantization_loss (`torch.FloatTensor` of shape `(B,)`, *optional*): Per-sample commitment loss summed over
            the quantized layers (`None` with `use_fq=False`).
        fq_perplexity (`torch.FloatTensor` of shape `()`, *optional*): Code perplexity, mean over quantized layers.
        fq_usage (`torch.FloatTensor` of shape `()`, *optional*): Fraction of dictionary entries used in the batch,
            mean over quantized layers.
        class_logits (`torch.FloatTensor` of shape `(B, num_classes)`, *optional*): The auxiliary classifier's
            logits (`loss_type` `"ac"` or `"tac"`).
        twin_class_logits (`torch.FloatTensor` of shape `(B, num_classes)`, *optional*): The twin classifier's
            logits (`loss_type="tac"`).
    """

    logits: torch.FloatTensor | None = None
    quantization_loss: torch.FloatTensor | None = None
    fq_perplexity: torch.FloatTensor | None = None
    fq_usage: torch.FloatTensor | None = None
    class_logits: torch.FloatTensor | None = None
    twin_class_logits: torch.FloatTensor | None = None


@dataclass
class FQBigGANGenerationOutput(ModelOutput):
    r"""
    Output of [`FQBigGANGeneratorModel.forward`] and of `generate(..., return_dict=True)`.

    Args:
        images (`torch.FloatTensor` of shape `(B, C, H, W)`): Images in [-1, 1] (or, from `generate`, as its
            `output_type` asked: a list of PIL images, or a tensor / array in [0, 1]).
        class_labels (`torch.LongTensor` of shape `(B,)`, *optional*): The class of each image (conditional models;
            from `generate`, including classes drawn at random).
    """

    images: torch.FloatTensor | None = None
    class_labels: torch.LongTensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Spectral normalisation: BigGAN-PyTorch's formulation, shared in hf_dgm.modules.spectral_norm. The FQ-BigGAN names
# stay as aliases (they are the classes' public names in this family).
# ----------------------------------------------------------------------------------------------------------------
FQBigGANSNConv2d = SNConv2d
FQBigGANSNLinear = SNLinear
FQBigGANSNEmbedding = SNEmbedding


def _sn_conv(config: FQBigGANConfig, scheme: str, in_ch: int, out_ch: int, kernel_size: int = 3, bias: bool = True):
    layer = FQBigGANSNConv2d(
        in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias, iterations=config.sn_iterations, eps=config.sn_eps
    )
    layer.init_scheme = scheme
    return layer


def _sn_linear(config: FQBigGANConfig, scheme: str, in_features: int, out_features: int, bias: bool = True):
    layer = FQBigGANSNLinear(in_features, out_features, bias=bias, iterations=config.sn_iterations, eps=config.sn_eps)
    layer.init_scheme = scheme
    return layer


# ----------------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------------
class FQBigGANSelfAttention(CheckpointableBlock):
    """SAGAN non-local block as in BigGAN-PyTorch: 1×1 spectral-norm convs `theta` (query, C/8), `phi` (key, C/8,
    2×2 max-pooled), `g` (value, C/2, max-pooled), `o` (output, back to C), and a gain `gamma` initialised at 0:
    `x + gamma · o(attention(x))`."""

    def __init__(self, config: FQBigGANConfig, channels: int, scheme: str):
        super().__init__()
        if channels < 8:
            raise ValueError(f"self-attention needs at least 8 channels, got {channels}")
        self.channels = channels
        self.theta = _sn_conv(config, scheme, channels, channels // 8, 1, bias=False)
        self.phi = _sn_conv(config, scheme, channels, channels // 8, 1, bias=False)
        self.g = _sn_conv(config, scheme, channels, channels // 2, 1, bias=False)
        self.o = _sn_conv(config, scheme, channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = hidden_states.shape
        query = self.theta(hidden_states).reshape(batch, channels // 8, height * width)
        key = F.max_pool2d(self.phi(hidden_states), 2).reshape(batch, channels // 8, height * width // 4)
        value = F.max_pool2d(self.g(hidden_states), 2).reshape(batch, channels // 2, height * width // 4)
        attention = F.softmax(query.transpose(1, 2) @ key, dim=-1)  # (B, HW, HW/4)
        attended = (value @ attention.transpose(1, 2)).reshape(batch, channels // 2, height, width)
        return hidden_states + self.gamma * self.o(attended)


class FQBigGANConditionalBatchNorm2d(nn.Module):
    r"""
    Batch norm without affine parameters followed by a per-sample gain and bias (BigGAN's `ccbn`):
    `BN(x) · (1 + scale(c)) + shift(c)`.

    `condition` decides what `c` is:

    - `"linear"`: a vector (shared class embedding, optionally concatenated with a chunk of z); `scale`/`shift` are
      spectral-norm linear maps without bias.
    - `"embedding"`: class ids; `scale`/`shift` are per-class embedding tables.
    - `"none"`: no condition (unconditional model without hierarchical z); learned `weight` (init 1) and `bias`
      (init 0) as a plain affine batch norm.

    Running statistics (`running_mean`, `running_var`, momentum 0.1) are used in eval mode.
    """

    def __init__(
        self,
        config: FQBigGANConfig,
        num_features: int,
        condition: str,
        condition_dim: int = 0,
        num_classes: int = 0,
    ):
        super().__init__()
        self.num_features = num_features
        self.condition = condition
        self.eps = config.bn_eps
        if condition == "linear":
            self.scale = _sn_linear(config, config.generator_init, condition_dim, num_features, bias=False)
            self.shift = _sn_linear(config, config.generator_init, condition_dim, num_features, bias=False)
        elif condition == "embedding":
            self.scale = nn.Embedding(num_classes, num_features)
            self.shift = nn.Embedding(num_classes, num_features)
            self.scale.init_scheme = self.shift.init_scheme = config.generator_init
        elif condition == "none":
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            raise ValueError(f"unknown condition {condition!r}")
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, hidden_states: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        normalized = F.batch_norm(
            hidden_states, self.running_mean, self.running_var, None, None, self.training, 0.1, self.eps
        )
        if self.condition == "none":
            return normalized * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        batch = hidden_states.shape[0]
        gain = (1 + self.scale(condition)).view(batch, -1, 1, 1)
        bias = self.shift(condition).view(batch, -1, 1, 1)
        return normalized * gain + bias


class FQBigGANGeneratorBlock(CheckpointableBlock):
    """Up-sampling residual block: `conv2(relu(bn2(conv1(up(relu(bn1(x)))))) + conv_shortcut(up(x))`, 2× nearest."""

    def __init__(self, config: FQBigGANConfig, in_channels: int, out_channels: int, condition: str, condition_dim: int):
        super().__init__()
        scheme = config.generator_init
        self.bn1 = FQBigGANConditionalBatchNorm2d(config, in_channels, condition, condition_dim, config.num_classes)
        self.conv1 = _sn_conv(config, scheme, in_channels, out_channels)
        self.bn2 = FQBigGANConditionalBatchNorm2d(config, out_channels, condition, condition_dim, config.num_classes)
        self.conv2 = _sn_conv(config, scheme, out_channels, out_channels)
        self.conv_shortcut = _sn_conv(config, scheme, in_channels, out_channels, 1)

    def forward(self, hidden_states: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        residual = F.interpolate(F.relu(self.bn1(hidden_states, condition)), scale_factor=2)
        residual = self.conv1(residual)
        residual = self.conv2(F.relu(self.bn2(residual, condition)))
        shortcut = self.conv_shortcut(F.interpolate(hidden_states, scale_factor=2))
        return residual + shortcut


class FQBigGANDiscriminatorBlock(CheckpointableBlock):
    """Residual D block (BigGAN `DBlock`): pre-activation (all but the first), two 3×3 convs (hidden width = output
    width when `discriminator_wide`), optional 2×2 average pooling, learnable 1×1 shortcut when the shape changes."""

    def __init__(self, config: FQBigGANConfig, in_channels: int, out_channels: int, preactivation: bool, downsample: bool):
        super().__init__()
        scheme = config.discriminator_init
        hidden = out_channels if config.discriminator_wide else in_channels
        self.preactivation = preactivation
        self.downsample = downsample
        self.conv1 = _sn_conv(config, scheme, in_channels, hidden)
        self.conv2 = _sn_conv(config, scheme, hidden, out_channels)
        self.learnable_shortcut = in_channels != out_channels or downsample
        self.conv_shortcut = _sn_conv(config, scheme, in_channels, out_channels, 1) if self.learnable_shortcut else None

    def _shortcut(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            if self.conv_shortcut is not None:
                hidden_states = self.conv_shortcut(hidden_states)
            if self.downsample:
                hidden_states = F.avg_pool2d(hidden_states, 2)
        else:
            if self.downsample:
                hidden_states = F.avg_pool2d(hidden_states, 2)
            if self.conv_shortcut is not None:
                hidden_states = self.conv_shortcut(hidden_states)
        return hidden_states

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = F.relu(hidden_states) if self.preactivation else hidden_states
        residual = self.conv2(F.relu(self.conv1(residual)))
        if self.downsample:
            residual = F.avg_pool2d(residual, 2)
        return residual + self._shortcut(hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# Generator and discriminator
# ----------------------------------------------------------------------------------------------------------------
class FQBigGANGenerator(nn.Module):
    r"""
    BigGAN generator. `z` (and the class) → linear → `bottom_width²` map → up-sampling residual blocks with
    conditional batch norm (+ self-attention at `generator_attention` resolutions) → BN-ReLU-conv → tanh.

    With `shared_embedding`, one class embedding (`class_embedding`, size `shared_dim`) feeds every conditional batch
    norm; with `hierarchical_z`, z is split into `num_blocks + 1` chunks: the first feeds the input linear layer, chunk
    i+1 is concatenated with the class embedding to condition block i.
    """

    def __init__(self, config: FQBigGANConfig):
        super().__init__()
        self.config = config
        scheme = config.generator_init
        channels = [config.generator_ch * m for m in config.generator_multipliers]
        self.dim_z = config.dim_z
        self.num_slots = config.num_generator_blocks + 1 if config.hierarchical_z else 1
        self.z_chunk_size = config.z_chunk_size
        conditional = config.num_classes > 0

        self.class_embedding = None
        if conditional and config.shared_embedding:
            self.class_embedding = nn.Embedding(config.num_classes, config.shared_dim)
            self.class_embedding.init_scheme = scheme
        if conditional and config.shared_embedding:
            condition, condition_dim = "linear", config.shared_dim + self.z_chunk_size
        elif conditional:
            condition, condition_dim = "embedding", 0
        elif config.hierarchical_z:
            condition, condition_dim = "linear", self.z_chunk_size
        else:
            condition, condition_dim = "none", 0
        self.condition = condition

        self.z_projection = _sn_linear(
            config, scheme, config.dim_z // self.num_slots, channels[0] * config.bottom_width**2
        )
        self.blocks = nn.ModuleList(
            FQBigGANGeneratorBlock(config, channels[i], channels[i + 1], condition, condition_dim)
            for i in range(config.num_generator_blocks)
        )
        resolutions = config.generator_resolutions()
        self.attentions = nn.ModuleDict(
            {
                str(i): FQBigGANSelfAttention(config, channels[i + 1], scheme)
                for i in range(config.num_generator_blocks)
                if resolutions[i] in config.generator_attention
            }
        )
        self.output_bn = nn.BatchNorm2d(channels[-1], eps=config.bn_eps, momentum=0.1)
        self.output_conv = _sn_conv(config, scheme, channels[-1], config.num_channels)

    def embed_labels(self, labels: torch.LongTensor | None) -> torch.Tensor | None:
        """What the conditional batch norms receive from the class: the shared embedding `(B, shared_dim)`, the
        class ids (per-layer tables), or `None` (unconditional)."""
        if self.config.num_classes == 0:
            return None
        if labels is None:
            raise ValueError("this generator is class-conditional: pass `labels`")
        return self.class_embedding(labels) if self.class_embedding is not None else labels

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.LongTensor | None = None,
        class_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""
        Args:
            z (`torch.FloatTensor` of shape `(B, dim_z)`): Latents.
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): Classes (conditional models).
            class_embeddings (`torch.FloatTensor` of shape `(B, shared_dim)`, *optional*): Use instead of `labels`
                to condition on arbitrary points of the shared embedding space (e.g. class interpolation).

        Returns:
            `torch.FloatTensor` of shape `(B, C, resolution, resolution)` in [-1, 1].
        """
        if z.dim() != 2 or z.shape[1] != self.dim_z:
            raise ValueError(f"`z` must have shape (B, {self.dim_z}), got {tuple(z.shape)}")
        if class_embeddings is not None:
            if self.class_embedding is None:
                raise ValueError("`class_embeddings` needs a model with `shared_embedding=True`")
            condition = class_embeddings
        else:
            condition = self.embed_labels(labels)

        if self.num_slots > 1:
            chunks = torch.split(z, self.z_chunk_size, dim=1)
            z = chunks[0]
            conditions = [
                torch.cat([condition, chunk], dim=1) if condition is not None else chunk for chunk in chunks[1:]
            ]
        else:
            conditions = [condition] * len(self.blocks)

        width = self.config.bottom_width
        hidden_states = self.z_projection(z).view(z.shape[0], -1, width, width)
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, conditions[index])
            if str(index) in self.attentions:
                hidden_states = self.attentions[str(index)](hidden_states)
        return torch.tanh(self.output_conv(F.relu(self.output_bn(hidden_states))))


class FQBigGANDiscriminator(nn.Module):
    r"""
    BigGAN projection discriminator with feature quantizers. Residual down-sampling blocks; after each block listed in
    `fq_layers`, a [`FeatureQuantizer`] (before that block's self-attention, as the original); global sum pooling of
    ReLU features `h`; output `linear(h) + <class_embedding(y), h>`.

    With `config.loss_type` `"tac"` (TAC-GAN) or `"ac"` (AC-GAN) there is no projection term (no `class_embedding`):
    the output is `linear(h)`, and the spectral-normalised linear heads `classifier` (and, for TAC, `twin_classifier`)
    map `h` to `num_classes` logits.
    """

    def __init__(self, config: FQBigGANConfig):
        super().__init__()
        self.config = config
        scheme = config.discriminator_init
        out_channels = [config.discriminator_ch * m for m in config.discriminator_multipliers]
        in_channels = [config.num_channels] + out_channels[:-1]
        self.blocks = nn.ModuleList(
            FQBigGANDiscriminatorBlock(
                config, in_channels[i], out_channels[i], preactivation=i > 0, downsample=config.discriminator_downsample[i]
            )
            for i in range(config.num_discriminator_blocks)
        )
        self.quantizers = nn.ModuleDict()
        if config.use_fq:
            for i in config.fq_layers:
                self.quantizers[str(i)] = FeatureQuantizer.from_config(config, out_channels[i], layer=i)
        resolutions = config.discriminator_resolutions()
        self.attentions = nn.ModuleDict(
            {
                str(i): FQBigGANSelfAttention(config, out_channels[i], scheme)
                for i in range(config.num_discriminator_blocks)
                if resolutions[i] in config.discriminator_attention
            }
        )
        self.output_linear = _sn_linear(config, scheme, out_channels[-1], 1)
        self.class_embedding = self.classifier = self.twin_classifier = None
        loss_type = config.loss_type
        if config.num_classes > 0 and loss_type == "projection":
            self.class_embedding = FQBigGANSNEmbedding(
                config.num_classes, out_channels[-1], iterations=config.sn_iterations, eps=config.sn_eps
            )
            self.class_embedding.init_scheme = scheme
        if loss_type in ("ac", "tac"):
            self.classifier = _sn_linear(config, scheme, out_channels[-1], config.num_classes)
        if loss_type == "tac":
            self.twin_classifier = _sn_linear(config, scheme, out_channels[-1], config.num_classes)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.LongTensor | None = None,
        update_dictionary: bool = False,
    ) -> FQBigGANDiscriminatorOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): Images in [-1, 1].
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): Classes (required by projection models; unused
                by `"ac"` / `"tac"` models, whose heads predict them).
            update_dictionary (`bool`, defaults to `False`): Let the quantizers update their dictionaries (only has an
                effect in training mode).
        """
        hidden_states = pixel_values
        losses, perplexities, usages = [], [], []
        for index, block in enumerate(self.blocks):
            hidden_states = block(hidden_states)
            key = str(index)
            if key in self.quantizers:
                quantized = self.quantizers[key](hidden_states, update_dictionary=update_dictionary)
                hidden_states = quantized.output
                losses.append(quantized.per_sample_loss)
                perplexities.append(quantized.perplexity)
                usages.append(quantized.usage)
            if key in self.attentions:
                hidden_states = self.attentions[key](hidden_states)

        features = torch.sum(F.relu(hidden_states), dim=(2, 3))
        logits = self.output_linear(features).squeeze(1)
        if self.class_embedding is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass `labels`")
            logits = logits + torch.sum(self.class_embedding(labels) * features, dim=1)
        return FQBigGANDiscriminatorOutput(
            logits=logits,
            quantization_loss=torch.stack(losses).sum(0) if losses else None,
            fq_perplexity=torch.stack(perplexities).mean() if perplexities else None,
            fq_usage=torch.stack(usages).mean() if usages else None,
            class_logits=self.classifier(features) if self.classifier is not None else None,
            twin_class_logits=self.twin_classifier(features) if self.twin_classifier is not None else None,
        )


# ----------------------------------------------------------------------------------------------------------------
# Sampling helpers
# ----------------------------------------------------------------------------------------------------------------
def _as_labels(labels, num_classes: int, device) -> torch.LongTensor:
    try:
        raw = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"`labels` must be class ids (ints), got {labels!r}: {err}") from None
    if raw.dtype.is_floating_point or raw.dtype.is_complex or raw.dtype == torch.bool:
        # casting would silently turn 1.7 into class 1
        raise ValueError(f"`labels` must be integer class ids (torch.long), got dtype {raw.dtype}: {raw.tolist()}")
    labels = raw.to(dtype=torch.long, device=device)
    if labels.dim() == 0:
        labels = labels.unsqueeze(0)
    if labels.dim() != 1:
        raise ValueError(f"`labels` must be a 1-D sequence of class ids, got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"class ids must be in [0, {num_classes}), got {labels.tolist()}")
    return labels


@torch.no_grad()
def _generate(
    network: FQBigGANGenerator,
    config: FQBigGANConfig,
    labels,
    truncation: float | None,
    generator,
    batch_size: int | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.LongTensor | None]:
    """Images `(B, C, H, W)` in [-1, 1] and their classes (None for unconditional models). `generator`: None, a
    `torch.Generator` or a list of them, one per image (image i then depends only on `generator[i]`)."""
    generator = prepare_generator(generator)
    if isinstance(generator, list) and labels is None and batch_size is None:
        batch_size = len(generator)
    if config.num_classes:
        if labels is None:
            if batch_size is None:
                raise ValueError("pass `labels` (class ids) or `batch_size` (random classes)")
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")

            def draw_labels(n, g):
                source = g.device if g is not None else device
                return torch.randint(0, config.num_classes, (n,), generator=g, device=source).to(device)

            if isinstance(generator, list):  # one generator per image: each draws its class, then its z
                if len(generator) != batch_size:
                    raise ValueError(f"`generator` is a list of {len(generator)} generators for {batch_size} images")
                per = [(draw_labels(1, g), sample_truncated_normal((1, config.dim_z), truncation, generator=g,
                                                                   device=device)) for g in generator]  # fmt: skip
                labels = torch.cat([p[0] for p in per])
                z = torch.cat([p[1] for p in per])
                return _run_generator(network, z, labels), labels
            labels = draw_labels(batch_size, generator)
        labels = _as_labels(labels, config.num_classes, device)
        if batch_size is not None and batch_size != labels.shape[0]:
            raise ValueError(f"`batch_size` ({batch_size}) disagrees with the number of labels ({labels.shape[0]})")
        batch_size = labels.shape[0]
    else:
        if labels is not None:
            raise ValueError("this model is unconditional (num_classes=0): pass `batch_size`, not `labels`")
        if batch_size is None:
            raise ValueError("pass `batch_size` to sample from an unconditional model")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    z = per_image(generator, batch_size,
                  lambda n, g: sample_truncated_normal((n, config.dim_z), truncation, generator=g, device=device))  # fmt: skip
    return _run_generator(network, z, labels), labels


def _run_generator(network: FQBigGANGenerator, z: torch.Tensor, labels) -> torch.Tensor:
    was_training = network.training
    network.eval()
    try:
        return network(z, labels)
    finally:
        network.train(was_training)


def _merge_num_images(batch_size, num_images):
    if num_images is not None and batch_size is not None and num_images != batch_size:
        raise ValueError(f"`num_images` ({num_images}) and `batch_size` ({batch_size}) disagree: pass one of them")
    return batch_size if num_images is None else num_images


def _generation_result(images, labels, output_type, return_dict):
    images = postprocess_images(images, check_output_type(output_type, allow_none=True))
    if return_dict:
        return FQBigGANGenerationOutput(images=images, class_labels=labels)
    return images


# ----------------------------------------------------------------------------------------------------------------
# Pretrained models
# ----------------------------------------------------------------------------------------------------------------
class FQBigGANPreTrainedModel(PreTrainedModel):
    config_class = FQBigGANConfig
    base_model_prefix = "fq_biggan"
    main_input_name = "pixel_values"
    # `gradient_checkpointing_enable()` checkpoints the G/D residual blocks and the self-attention layers; their
    # spectral-norm and batch-norm state updates happen once (see hf_dgm.modules.checkpointing)
    supports_gradient_checkpointing = True
    # kept whole on one device by `device_map`: residual blocks (shortcut + branch), attention (x + γ·o(attn)), the
    # quantizers (their dictionary is read and updated in one call)
    _no_split_modules = ["FQBigGANGeneratorBlock", "FQBigGANDiscriminatorBlock", "FQBigGANSelfAttention", "FeatureQuantizer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, after checking a local folder (config, readable safetensors)."""
        check_pretrained_folder(pretrained_model_name_or_path, FQBigGANConfig.model_type,
                                config_given=kwargs.get("config") is not None)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BigGAN-PyTorch init: every conv/linear/embedding weight by its network's scheme (`ortho`, `N02`,
        `xavier`), biases as torch's default, spectral-norm `u ~ N(0, 1)`, batch norms at identity, attention gain 0,
        quantizer dictionaries `N(0, 1)` (the original `Quantize`)."""
        scheme = getattr(module, "init_scheme", None)
        if scheme is not None:
            if scheme == "ortho":
                hf_init.orthogonal_(module.weight)
            elif scheme == "N02":
                hf_init.normal_(module.weight, mean=0.0, std=0.02)
            else:
                hf_init.xavier_uniform_(module.weight)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                hf_init.uniform_(bias, -bound, bound)
            if isinstance(module, SpectralNormMixin):
                hf_init.normal_(module.weight_u)
                hf_init.ones_(module.weight_sigma)
        elif isinstance(module, FQBigGANConditionalBatchNorm2d):
            hf_init.zeros_(module.running_mean)
            hf_init.ones_(module.running_var)
            if module.condition == "none":
                hf_init.ones_(module.weight)
                hf_init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            hf_init.ones_(module.weight)
            hf_init.zeros_(module.bias)
            hf_init.zeros_(module.running_mean)
            hf_init.ones_(module.running_var)
            hf_init.zeros_(module.num_batches_tracked)
        elif isinstance(module, FQBigGANSelfAttention):
            hf_init.zeros_(module.gamma)
        elif isinstance(module, FeatureQuantizer):
            module.init_dictionary()

    def _check_generation_inputs(self, truncation) -> None:
        _check_truncation(truncation)


class FQBigGANForImageGeneration(FQBigGANPreTrainedModel):
    r"""
    FQ-BigGAN for training and sampling: `generator`, `generator_ema` (independent EMA copy of the generator — no
    shared storage — saved with the model and used by [`~FQBigGANForImageGeneration.generate`]) and `discriminator`
    (projection D with feature quantizers after the blocks in `config.fq_layers`).

    `forward(z, labels)` generates; `discriminator(images, labels)` scores. The training steps (hinge losses, FQ
    terms, the dictionary updates of each step) are `hf_dgm.training.fq_biggan.loss.FQBigGANSteps`:

    - D step: fakes without gradient to G, D on `[fake; real]`, FQ dictionaries updated from it;
    - G step: fakes scored by D; by default (`config.fq_update_in_generator_step=True`) the dictionaries update a
      second time, from the fakes, as FQ-GAN's `train_fns.py`.

    Parity with FQ-GAN's FQ-BigGAN (`benchmarks/parity/fq_biggan.py`): from identical weights and batch, a D step
    and a G step agree with `train_fns.GAN_training_function` in every logit, loss term, gradient, spectral-norm
    vector, batch-norm statistic and dictionary buffer (see that script for the figures).
    """

    def __init__(self, config: FQBigGANConfig):
        super().__init__(config)
        self.generator = FQBigGANGenerator(config)
        self.generator_ema = FQBigGANGenerator(config)
        self.generator_ema.requires_grad_(False)
        self.discriminator = FQBigGANDiscriminator(config)
        self.post_init()
        self._copy_generator_to_ema()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        if isinstance(model, tuple):  # output_loading_info=True
            model[0].generator_ema.requires_grad_(False)
        else:
            model.generator_ema.requires_grad_(False)  # loading re-creates the parameters with requires_grad=True
        return model

    def _copy_generator_to_ema(self) -> None:
        copy_weights(self.generator_ema, self.generator)

    # -- optimiser helpers -------------------------------------------------------------------------------------------
    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the G optimiser trains (`generator` only; the EMA copy is never optimised)."""
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the D optimiser trains (the FQ dictionaries are buffers, updated by EMA in D steps)."""
        return self.discriminator.parameters()

    @torch.no_grad()
    def update_generator_ema(self, decay: float | None = None, step: int | None = None) -> float:
        """`generator_ema ← d·generator_ema + (1−d)·generator` over all parameters and floating buffers (batch-norm
        and spectral-norm statistics included, as BigGAN-PyTorch's `ema`); integer buffers are copied.

        `d = 0` (a plain copy) when `step < config.ema_start`, else `decay` (defaults to `config.ema_decay`).
        Returns the decay used."""
        decay = ema_decay_at_step(step, self.config.ema_decay if decay is None else decay, self.config.ema_start)
        return update_ema(self.generator_ema, self.generator, decay)

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.LongTensor | None = None,
        use_ema: bool = True,
        return_dict: bool | None = None,
    ) -> FQBigGANGenerationOutput:
        r"""
        Generate from given latents (with gradient; see [`~FQBigGANForImageGeneration.generate`] for sampling).

        Args:
            z (`torch.FloatTensor` of shape `(B, dim_z)`): Latents.
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): Classes (conditional models).
            use_ema (`bool`, defaults to `True`): Use `generator_ema` (else the trained `generator`).

        Returns:
            [`FQBigGANGenerationOutput`] with `images` `(B, C, H, W)` in [-1, 1] and `class_labels`.
        """
        network = self.generator_ema if use_ema else self.generator
        return FQBigGANGenerationOutput(images=network(z, labels), class_labels=labels)

    # -- inference ---------------------------------------------------------------------------------------------------
    def generate(
        self,
        labels: torch.LongTensor | Sequence[int] | None = None,
        truncation: float | None = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        use_ema: bool = True,
        batch_size: int | None = None,
        num_images: int | None = None,
        output_type: str | None = None,
        return_dict: bool = False,
    ):
        r"""
        Sample images (in eval mode, without gradient).

        Args:
            labels (`torch.LongTensor` or list of `int`, *optional*): One class id per image (conditional models).
                If omitted, `batch_size` classes are drawn uniformly (with `generator`).
            truncation (`float` or `None`, defaults to 1.0): z is drawn from N(0, 1) truncated to
                `[-truncation, truncation]` (BigGAN's truncation trick: smaller = higher fidelity, less variety);
                `None` disables truncation (plain N(0, 1), the training distribution).
            generator (`torch.Generator` or a list of them, *optional*): Source of randomness, for reproducible
                samples. A list holds one generator per image (as diffusers): image i's class (when drawn) and z come
                from `generator[i]` alone, so it does not depend on the batch.
            use_ema (`bool`, defaults to `True`): Sample from `generator_ema` (else from `generator`).
            batch_size (`int`, *optional*): Number of images for unconditional models / random classes.
            num_images (`int`, *optional*): Alias of `batch_size` (the pipelines' name).
            output_type (`str`, *optional*): None (default): the raw `(B, C, H, W)` tensor in [-1, 1]; `"pt"`: a
                tensor in [0, 1]; `"np"`: a `(B, H, W, C)` float32 array in [0, 1]; `"pil"`: a list of PIL images.
            return_dict (`bool`, defaults to `False`): Return [`FQBigGANGenerationOutput`] (`.images`,
                `.class_labels`) instead of the images alone.

        Returns:
            The images (`torch.FloatTensor` of shape `(B, C, resolution, resolution)` in [-1, 1] by default), or
            [`FQBigGANGenerationOutput`] with `return_dict=True`.
        """
        self._check_generation_inputs(truncation)
        batch_size = _merge_num_images(batch_size, num_images)
        network = self.generator_ema if use_ema else self.generator
        images, labels = _generate(network, self.config, labels, truncation, generator, batch_size, self.device)
        return _generation_result(images, labels, output_type, return_dict)

    @torch.no_grad()
    def sample_images(
        self,
        num_images: int,
        generator: torch.Generator | None = None,
        truncation: float | None = None,
        use_ema: bool = True,
    ) -> torch.FloatTensor:
        """The training sample grid (`GANTrainer` protocol): image i of class `i % num_classes` (one class per grid
        column, see [`~FQBigGANForImageGeneration.sample_grid_columns`]), z from `generator`; `(N, C, H, W)` in
        [-1, 1]."""
        if self.config.num_classes == 0:
            return self.generate(truncation=truncation, generator=generator, use_ema=use_ema, batch_size=num_images)
        labels = torch.arange(num_images) % self.config.num_classes
        return self.generate(labels.to(self.device), truncation=truncation, generator=generator, use_ema=use_ema)

    def sample_grid_columns(self, num_images: int) -> int:
        """Grid width: one column per class up to 16 classes, else a square grid."""
        if 0 < self.config.num_classes <= 16:
            return self.config.num_classes
        return int(math.ceil(math.sqrt(num_images)))


class FQBigGANGeneratorModel(FQBigGANPreTrainedModel):
    r"""
    Generator-only FQ-BigGAN for inference: just the EMA generator. Loading a folder saved by
    [`FQBigGANForImageGeneration`] reads only its `generator_ema.*` weights (the `generator.*` and `discriminator.*`
    entries are skipped), so sampling does not pay for D or the raw generator. Saving this model writes only
    `generator_ema.*`, which [`FQBigGANForImageGeneration`] can load back (G and D then start from scratch).
    """

    _keys_to_ignore_on_load_unexpected = [r"^generator\.", r"^discriminator\."]

    def __init__(self, config: FQBigGANConfig):
        super().__init__(config)
        self.generator_ema = FQBigGANGenerator(config)
        self.post_init()

    def forward(self, z: torch.Tensor, labels: torch.LongTensor | None = None, return_dict: bool | None = None):
        r"""
        Args:
            z (`torch.FloatTensor` of shape `(B, dim_z)`): Latents.
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): Classes (conditional models).

        Returns:
            [`FQBigGANGenerationOutput`] with `images` `(B, C, H, W)` in [-1, 1].
        """
        return FQBigGANGenerationOutput(images=self.generator_ema(z, labels))

    def generate(
        self,
        labels: torch.LongTensor | Sequence[int] | None = None,
        truncation: float | None = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        use_ema: bool = True,
        batch_size: int | None = None,
        num_images: int | None = None,
        output_type: str | None = None,
        return_dict: bool = False,
    ):
        """Same as [`FQBigGANForImageGeneration.generate`]; `use_ema=False` is not available (no raw generator)."""
        if not use_ema:
            raise ValueError("FQBigGANGeneratorModel holds only the EMA generator; use FQBigGANForImageGeneration")
        self._check_generation_inputs(truncation)
        batch_size = _merge_num_images(batch_size, num_images)
        images, labels = _generate(self.generator_ema, self.config, labels, truncation, generator, batch_size,
                                   self.device)  # fmt: skip
        return _generation_result(images, labels, output_type, return_dict)


__all__ = [
    "FQBigGANDiscriminator",
    "FQBigGANDiscriminatorOutput",
    "FQBigGANForImageGeneration",
    "FQBigGANGenerationOutput",
    "FQBigGANGenerator",
    "FQBigGANGeneratorModel",
    "FQBigGANPreTrainedModel",
    "sample_truncated_normal",
]
