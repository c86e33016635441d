"""Configuration of FQ-StyleGAN: StyleGAN2 (Karras et al., CVPR 2020; the PyTorch formulation of StyleGAN2-ADA) with
feature quantization in the discriminator (Zhao et al., ICML 2020)."""

from __future__ import annotations

import math
from typing import Any

from ...modules.feature_quantizer import FeatureQuantizerConfigMixin, validate_feature_quantizer_config
from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import finite_config


NOISE_MODES = ("random", "const", "none")

# FQ-StyleGAN's `D_stylegan2_quant` (`res_dictsz_mapping`): dictionary size K of the quantizer placed after the D
# block that reads a feature map of this resolution (the original keys it by log2 of that resolution).
FQ_NUM_EMBEDDINGS_BY_RESOLUTION = {
    1024: 2**6, 512: 2**6, 256: 2**6, 128: 2**6, 64: 2**7, 32: 2**7, 16: 2**7, 8: 2**7,
}  # fmt: skip

# StyleGAN2 config-e as FQ-StyleGAN trained it (its `run_training.py` on top of StyleGAN2's): `fmap_base = 8 << 10`
# in the TF code, i.e. 32768 / 2 = 16384 channel base in the ADA formulation (channels at resolution r =
# min(channel_base / r, channel_max)); skip G, resnet D; R1 γ = 100 (config-e); lr 0.002, Adam betas (0, 0.99),
# eps 1e-8; minibatch 32; minibatch-stddev group 4; G-EMA half-life 10k images; style mixing 0.9; path length
# weight 2 (decay 0.01, batch shrink 2); lazy regularisation every 16 D / 4 G steps; mirror augmentation; FQ after
# the 32² and 16² D blocks, decay 0.8, commitment 0.25 (the project's DESIGN.md, FQ-GAN table).
_CONFIG_E = dict(
    resolution=1024,
    channel_base=16384,
    channel_max=512,
    mapping_layers=8,
    conv_clamp=None,
    mbstd_group_size=4,
    r1_gamma=100.0,
    learning_rate=0.002,
    batch_size=32,
    ema_kimg=10.0,
    ema_rampup=None,
    use_fq=True,
    fq_decay=0.8,
    fq_commitment=0.25,
)

# StyleGAN2-ADA (`NVlabs/stylegan2-ada-pytorch`, `train.py` `cfg_specs`): channel_base = fmaps · 32768, channel_max
# 512, conv_clamp 256 (its mixed-precision setting; it clamps in fp32 too), mapping depth `map`, minibatch `mb`,
# mbstd group `mbstd`, lr `lrate`, R1 γ `gamma`, EMA half-life `ema` kimg. No quantizer (plain StyleGAN2).
_ADA_COMMON = dict(channel_max=512, conv_clamp=256.0, mapping_layers=8, ema_rampup=None, use_fq=False)

PRESETS: dict[str, dict[str, Any]] = {
    "config-e": _CONFIG_E,
    "paper256": dict(
        _ADA_COMMON, resolution=256, channel_base=16384, batch_size=64, mbstd_group_size=8, learning_rate=0.0025,
        r1_gamma=1.0, ema_kimg=20.0,
    ),
    "stylegan2": dict(
        _ADA_COMMON, resolution=1024, channel_base=32768, batch_size=32, mbstd_group_size=4, learning_rate=0.002,
        r1_gamma=10.0, ema_kimg=10.0,
    ),
    # Not an original setup: a small network for tests and CPU runs (32×32, ≤ 32 channels, 2 mapping layers).
    "tiny": dict(
        resolution=32,
        z_dim=32,
        w_dim=32,
        mapping_layers=2,
        channel_base=512,
        channel_max=32,
        mbstd_group_size=4,
        r1_gamma=1.0,
        learning_rate=0.002,
        batch_size=16,
        ema_kimg=0.5,
        use_fq=True,
        fq_decay=0.8,
        fq_commitment=0.25,
        fq_num_embeddings=16,
    ),
}


def _is_power_of_two(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 4 and value & (value - 1) == 0


LAZY_REGULARIZATION_MODES = ("separate", "folded")


@finite_config
class FQStyleGANConfig(FeatureQuantizerConfigMixin, HubCompatibleConfig):
    r"""
    Configuration of [`FQStyleGANForImageGeneration`]: a StyleGAN2 generator (mapping network, modulated and
    demodulated convolutions, noise inputs, skip outputs) and a residual StyleGAN2 discriminator with minibatch
    standard deviation and feature quantizers. Use [`FQStyleGANConfig.from_preset`] for the original setups:

    - `"config-e"`: StyleGAN2 config-e as FQ-StyleGAN trained it (FQ on);
    - `"paper256"`, `"stylegan2"`: the StyleGAN2-ADA configurations of the same names (plain StyleGAN2, FQ off);
    - `"tiny"`: 32×32 with ≤ 32 channels, for tests and CPU runs.

    The architecture follows the StyleGAN2-ADA PyTorch formulation (equalised learning rate as run-time weight gains,
    so converted ADA weights are copied as they are).

    Architecture:
        resolution (`int`, defaults to 1024): Image size (square), a power of two ≥ 4.
        num_channels (`int`, defaults to 3): Channels of the images (configs saved with the earlier name
            `image_channels` load as before).
        z_dim (`int`, defaults to 512), w_dim (`int`, defaults to 512): Sizes of the latent z and of w.
        mapping_layers (`int`, defaults to 8): Fully connected layers of the mapping network.
        mapping_lr_multiplier (`float`, defaults to 0.01): Learning-rate multiplier of the mapping network.
        w_avg_beta (`float`, defaults to 0.995): Decay of the running average of w (the truncation centre), updated
            in generator training steps.
        channel_base (`int`, defaults to 16384), channel_max (`int`, defaults to 512): Feature maps at resolution r
            are `min(channel_base // r, channel_max)` in G and D.
        conv_clamp (`float`, *optional*): Clamp the outputs of convolutions to ±conv_clamp (StyleGAN2-ADA uses 256;
            the original StyleGAN2 none).
        resample_filter (`list[int]`, defaults to `[1, 3, 3, 1]`): 1-D FIR low-pass taps of the up/downsampling
            (outer product with itself, normalised to sum 1).
        mbstd_group_size (`int`, defaults to 4): Group size of the minibatch standard deviation layer (capped by the
            batch; the batch must be divisible by the group).
        mbstd_num_channels (`int`, defaults to 1): Channels it appends.

    Feature quantization (FQ-StyleGAN `D_stylegan2_quant`: `--discrete_layer`, `--decay`, `--commitment_cost`; the
    zoo's shared FQ fields, see `hf_dgm.modules.feature_quantizer`):
        The zoo's FQ fields are declared once by `FeatureQuantizerConfigMixin` (`FQ_CONFIG_DOCSTRING`). FQ-StyleGAN's
        defaults: `fq_commitment=0.25`, `fq_zero_debias=True` (TF's zero-debiased EMA, as FQ-GAN's TensorFlow
        FQ-StyleGAN), `fq_layers` the D blocks (0 = the block that reads the image, then one per halving) that read
        32² and 16² (where the original quantizes; see `fq_resolutions`), `fq_num_embeddings` the original's
        resolution map (`FQ_NUM_EMBEDDINGS_BY_RESOLUTION`: 64 for blocks reading ≥ 128², 128 below). With
        `fq_update_in_generator_step=True` the G step's D call on the fakes updates the dictionaries, as the original
        (its `G_logistic_ns_pathreg` evaluates D's quantizer loss of the fakes, whose graph carries the EMA update).

    Training defaults (read by the trainer; they do not change the network):
        learning_rate (`float`, defaults to 0.002; G and D), adam_betas (`(0.0, 0.99)`), adam_eps (`1e-8`),
        batch_size (`int`, defaults to 32), r1_gamma (`float`, defaults to 100), r1_interval (`int`, defaults to 16
        D steps), pl_weight (`float`, defaults to 2), pl_interval (`int`, defaults to 4 G steps), pl_decay (`float`,
        defaults to 0.01), pl_batch_shrink (`int`, defaults to 2), style_mixing_prob (`float`, defaults to 0.9),
        ema_kimg (`float`, defaults to 10: G-EMA half-life in thousands of images), ema_rampup (`float`,
        *optional*: half-life ≤ ema_rampup · images seen), mirror (`bool`, defaults to `True`: random horizontal
        flips of the real images).
        lazy_regularization (`str`, defaults to `"separate"`): `"separate"` (StyleGAN2 / StyleGAN2-ADA: R1 and the
            path-length term are their own optimizer steps, the training steps' `discriminator_regularization_step` /
            `generator_regularization_step`, run by `GANTrainer` after the main step when due, with the same
            optimizers, whose lr and betas carry the `interval / (interval + 1)` correction) or `"folded"` (not in
            the originals: added to the main step's loss when due, one optimizer step; cheaper, but Adam then sees a
            different gradient sequence).
    """

    model_type = "fq_stylegan"
    fq_defaults = {"fq_num_embeddings": None, "fq_commitment": 0.25, "fq_zero_debias": True}

    def __init__(
        self,
        resolution: int = 1024,
        num_channels: int = 3,
        z_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        channel_base: int = 16384,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        resample_filter: list[int] | None = None,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        learning_rate: float = 0.002,
        adam_betas: tuple[float, float] | list[float] = (0.0, 0.99),
        adam_eps: float = 1e-8,
        batch_size: int = 32,
        r1_gamma: float = 100.0,
        r1_interval: int = 16,
        pl_weight: float = 2.0,
        pl_interval: int = 4,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        style_mixing_prob: float = 0.9,
        ema_kimg: float = 10.0,
        ema_rampup: float | None = None,
        mirror: bool = True,
        lazy_regularization: str = "separate",
        **kwargs,
    ):
        self.resolution = resolution
        legacy_channels = kwargs.pop("image_channels", None)  # the earlier name of `num_channels`
        self.num_channels = num_channels if legacy_channels is None else legacy_channels
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.mapping_layers = mapping_layers
        self.mapping_lr_multiplier = float(mapping_lr_multiplier)
        self.w_avg_beta = float(w_avg_beta)
        self.channel_base = channel_base
        self.channel_max = channel_max
        self.conv_clamp = float(conv_clamp) if conv_clamp is not None else None
        self.resample_filter = [int(t) for t in (resample_filter if resample_filter is not None else [1, 3, 3, 1])]
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_channels = mbstd_num_channels
        if not _is_power_of_two(resolution):
            raise ValueError(f"`resolution` must be a power of two >= 4, got {resolution!r}")
        self.learning_rate = float(learning_rate)
        self.adam_betas = [float(b) for b in adam_betas]
        self.adam_eps = float(adam_eps)
        self.batch_size = batch_size
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = r1_interval
        self.pl_weight = float(pl_weight)
        self.pl_interval = pl_interval
        self.pl_decay = float(pl_decay)
        self.pl_batch_shrink = pl_batch_shrink
        self.style_mixing_prob = float(style_mixing_prob)
        self.ema_kimg = float(ema_kimg)
        self.ema_rampup = float(ema_rampup) if ema_rampup is not None else None
        self.mirror = bool(mirror)
        if lazy_regularization not in LAZY_REGULARIZATION_MODES:
            raise ValueError(
                f"`lazy_regularization` must be one of {LAZY_REGULARIZATION_MODES}, got {lazy_regularization!r}"
            )
        self.lazy_regularization = lazy_regularization
        super().__init__(**kwargs)  # the FQ fields: FeatureQuantizerConfigMixin
        self._resolve_fq_defaults()
        self.validate_architecture()

    def _resolve_fq_defaults(self) -> None:
        """The original's FQ placement and dictionary sizes where `fq_layers` / `fq_num_embeddings` are None."""
        block_resolutions = [2**i for i in range(int(math.log2(self.resolution)), 2, -1)]
        if self.fq_layers is None:  # the original's placement: after the blocks that read 32² and 16²
            self.fq_layers = [j for j, res in enumerate(block_resolutions) if res in (32, 16)]
        self.fq_layers = sorted(int(j) for j in self.fq_layers)
        if self.fq_num_embeddings is None:
            self.fq_num_embeddings = [
                FQ_NUM_EMBEDDINGS_BY_RESOLUTION.get(block_resolutions[j], 0) if 0 <= j < len(block_resolutions) else 0
                for j in self.fq_layers
            ]
        elif isinstance(self.fq_num_embeddings, list):
            self.fq_num_embeddings = [int(k) for k in self.fq_num_embeddings]
        for name in ("fq_decay", "fq_commitment", "fq_eps"):
            setattr(self, name, float(getattr(self, name)))

    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "FQStyleGANConfig":
        """Config of a named setup (`"config-e"`, `"paper256"`, `"stylegan2"`, `"tiny"`), with `overrides` applied
        (e.g. `resolution=256`, `use_fq=False`)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # -- optimiser defaults read by GANTrainer (StyleGAN2's lazy-regularisation correction) -------------------------
    def _lazy_ratio(self, interval: int, active: bool) -> float:
        return interval / (interval + 1) if active else 1.0

    @property
    def generator_lr(self) -> float:
        return self.learning_rate * self._lazy_ratio(self.pl_interval, self.pl_weight > 0)

    @property
    def discriminator_lr(self) -> float:
        return self.learning_rate * self._lazy_ratio(self.r1_interval, self.r1_gamma > 0)

    @property
    def generator_betas(self) -> list[float]:
        ratio = self._lazy_ratio(self.pl_interval, self.pl_weight > 0)
        return [beta**ratio for beta in self.adam_betas]

    @property
    def discriminator_betas(self) -> list[float]:
        ratio = self._lazy_ratio(self.r1_interval, self.r1_gamma > 0)
        return [beta**ratio for beta in self.adam_betas]

    @property
    def num_classes(self) -> int:
        """0: FQ-StyleGAN is unconditional (the attribute the shared GAN pipelines and run code read)."""
        return 0

    @property
    def discriminator_steps(self) -> int:
        """D steps per G step: 1 (StyleGAN2 alternates)."""
        return 1

    @property
    def log2_resolution(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network consumes: two per block (one for the 4² block), plus the last
        toRGB."""
        return 2 * self.log2_resolution - 2

    def channels_at(self, resolution: int) -> int:
        """Feature maps at `resolution`: `min(channel_base // resolution, channel_max)`."""
        return min(self.channel_base // resolution, self.channel_max)

    @property
    def discriminator_resolutions(self) -> list[int]:
        """Input resolutions of the D blocks, from the image size down to 8 (the 4² epilogue follows)."""
        return [2**i for i in range(self.log2_resolution, 2, -1)]

    @property
    def fq_resolutions(self) -> list[int]:
        """Input resolutions of the quantized D blocks (`[32, 16]` by default: outputs at 16² and 8²)."""
        return [self.discriminator_resolutions[j] for j in self.fq_layers] if self.use_fq else []

    def fq_num_embeddings_at(self, layer: int) -> int:
        """Dictionary size K of the quantizer after D block `layer` (an entry of `fq_layers`)."""
        if isinstance(self.fq_num_embeddings, list):
            return int(self.fq_num_embeddings[self.fq_layers.index(layer)])
        return int(self.fq_num_embeddings)

    def validate_architecture(self) -> None:
        """Raise `ValueError` on inconsistent settings."""
        if not _is_power_of_two(self.resolution):
            raise ValueError(f"`resolution` must be a power of two >= 4, got {self.resolution!r}")
        for name in ("num_channels", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                     "batch_size", "r1_interval", "pl_interval", "pl_batch_shrink"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if self.channel_base // self.resolution < 1:
            raise ValueError(
                f"`channel_base` ({self.channel_base}) must be >= `resolution` ({self.resolution}) so every layer "
                "has at least one channel"
            )
        for name in ("mbstd_group_size", "mbstd_num_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative int, got {value!r}")
        if self.mbstd_num_channels and self.channels_at(4) % self.mbstd_num_channels:
            raise ValueError("`mbstd_num_channels` must divide the channels at 4x4")
        if self.conv_clamp is not None and self.conv_clamp <= 0:
            raise ValueError(f"`conv_clamp` must be > 0 or None, got {self.conv_clamp!r}")
        if not self.resample_filter or sum(self.resample_filter) == 0:
            raise ValueError("`resample_filter` must be a non-empty list of taps with a non-zero sum")
        if not 0.0 <= self.w_avg_beta <= 1.0:
            raise ValueError(f"`w_avg_beta` must be in [0, 1], got {self.w_avg_beta}")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"`style_mixing_prob` must be in [0, 1], got {self.style_mixing_prob}")
        if self.r1_gamma < 0 or self.pl_weight < 0 or self.ema_kimg < 0:
            raise ValueError("`r1_gamma`, `pl_weight` and `ema_kimg` must be >= 0")
        validate_feature_quantizer_config(self, num_layers=len(self.discriminator_resolutions))


__all__ = ["FQ_NUM_EMBEDDINGS_BY_RESOLUTION", "NOISE_MODES", "PRESETS", "FQStyleGANConfig"]
