"""Configuration of FQ-BigGAN: BigGAN (Brock et al., 2019, as BigGAN-PyTorch) with feature quantization in the
discriminator (Zhao et al., ICML 2020)."""

from __future__ import annotations

from typing import Any

from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import check_float, finite_config

from ...modules.feature_quantizer import FeatureQuantizerConfigMixin, validate_feature_quantizer_config


INIT_SCHEMES = ("ortho", "N02", "xavier")

# How D uses the classes: BigGAN's projection term, or classifier heads (AC-GAN; TAC-GAN with the twin head).
LOSS_TYPES = ("projection", "ac", "tac")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

# BigGAN-PyTorch architecture tables (`G_arch` / `D_arch`), as channel multipliers of `ch`.
# Generator: block i maps ch*G[i] -> ch*G[i+1] channels and doubles the resolution (from `bottom_width`).
# Discriminator: block i maps (3 if i == 0 else ch*D[i-1]) -> ch*D[i] channels, halving the resolution if downsample[i].
_GENERATOR_MULTIPLIERS = {
    32: [4, 4, 4, 4],
    64: [16, 16, 8, 4, 2],
    128: [16, 16, 8, 4, 2, 1],
    256: [16, 16, 8, 8, 4, 2, 1],
    512: [16, 16, 8, 8, 4, 2, 1, 1],
}
_DISCRIMINATOR_MULTIPLIERS = {
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
}
_DISCRIMINATOR_DOWNSAMPLE = {
    32: [True, True, False, False],
    64: [True, True, True, True, False],
    128: [True, True, True, True, True, False],
    256: [True, True, True, True, True, True, False],
}

# Per-setup values from the original launch scripts (FQ-GAN `FQ-BigGAN/scripts/launch_*.sh`). Note: one revision
# of `launch_C10.sh` (commit a4cf3f1) sets `--dict_size 6 --dict_decay 0.9` for CIFAR-10 (the CIFAR-100 values)
# instead of 2^10 / 0.8 used here; override `fq_num_embeddings=64,
# fq_decay=0.9` to reproduce that run.
_CIFAR = dict(
    resolution=32,
    generator_ch=64,
    discriminator_ch=64,
    dim_z=128,
    shared_embedding=False,
    hierarchical_z=False,
    generator_attention=[],
    discriminator_attention=[],
    generator_init="N02",
    discriminator_init="N02",
    sn_eps=1e-8,
    adam_eps=1e-8,
    generator_lr=2e-4,
    discriminator_lr=2e-4,
    discriminator_steps=4,
    batch_size=64,
    ema_start=1000,
    fq_layers=[0, 1, 2, 3],
)
_IMAGENET = dict(
    generator_ch=64,
    discriminator_ch=64,
    dim_z=120,
    shared_embedding=True,
    shared_dim=128,
    hierarchical_z=True,
    generator_init="ortho",
    discriminator_init="ortho",
    sn_eps=1e-6,
    adam_eps=1e-6,
    generator_lr=1e-4,
    discriminator_lr=4e-4,
    discriminator_steps=1,
    ema_start=20000,
    num_classes=1000,
)
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": dict(
        _CIFAR,
        num_classes=10,
        class_names=list(CIFAR10_CLASSES),
        fq_num_embeddings=2**10,
        fq_decay=0.8,
        fq_commitment=1.0,
    ),
    "cifar100": dict(
        _CIFAR,
        num_classes=100,
        class_names=list(CIFAR100_CLASSES),
        fq_num_embeddings=2**6,
        fq_decay=0.9,
        fq_commitment=10.0,
    ),
    "imagenet64": dict(
        _IMAGENET,
        resolution=64,
        generator_attention=[32],
        discriminator_attention=[32],
        batch_size=512,
        fq_layers=[2],
        fq_num_embeddings=2**10,
        fq_decay=0.7,
        fq_commitment=0.5,
    ),
    "imagenet128": dict(
        _IMAGENET,
        resolution=128,
        generator_attention=[64],
        discriminator_attention=[64],
        batch_size=1024,
        fq_layers=[0, 1, 2, 3],
        fq_num_embeddings=2**10,
        fq_decay=0.8,
        fq_commitment=15.0,
    ),
    # Not an original setup: a few-thousand-parameter model for tests and CPU smoke runs (16x16, ch=8).
    "tiny": dict(
        resolution=16,
        generator_ch=8,
        discriminator_ch=8,
        dim_z=16,
        generator_multipliers=[4, 4, 4],
        discriminator_multipliers=[4, 4, 4],
        discriminator_downsample=[True, False, False],
        num_classes=10,
        generator_attention=[],
        discriminator_attention=[],
        generator_init="N02",
        discriminator_init="N02",
        fq_layers=[0, 1],
        fq_num_embeddings=16,
        fq_decay=0.8,
        fq_commitment=1.0,
        batch_size=16,
        discriminator_steps=1,
        ema_start=0,
    ),
}


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")


@finite_config
class FQBigGANConfig(FeatureQuantizerConfigMixin, HubCompatibleConfig):
    r"""
    Configuration of [`FQBigGANForImageGeneration`] (BigGAN generator + projection discriminator with feature
    quantizers). Use [`FQBigGANConfig.from_preset`] for the original setups: `"cifar10"`, `"cifar100"` (32×32),
    `"imagenet64"`, `"imagenet128"`, plus `"tiny"` (16×16, ch=8) for tests.

    Architecture (BigGAN-PyTorch names in brackets):
        resolution (`int`, defaults to 32): Output size (square). Must equal `bottom_width · 2**num_generator_blocks`.
        num_channels (`int`, defaults to 3): Image channels: 3 (RGB) or 1 (greyscale); G's output conv and D's first
            block use it.
        generator_ch / discriminator_ch (`int`, defaults to 64): Channel width multipliers [`G_ch`, `D_ch`].
        generator_multipliers (`list[int]`, *optional*): Channels of G as multiples of `generator_ch`, one more than
            the number of G blocks (block i: `ch·m[i] → ch·m[i+1]`, ×2 upsampling). Defaults to BigGAN's table for
            `resolution` (32, 64, 128, 256, 512).
        discriminator_multipliers (`list[int]`, *optional*): Output channels of each D block as multiples of
            `discriminator_ch`. Defaults to BigGAN's table (32, 64, 128, 256).
        discriminator_downsample (`list[bool]`, *optional*): Whether D block i halves the resolution (2×2 average
            pooling). Defaults to BigGAN's table.
        bottom_width (`int`, defaults to 4): Spatial size of G's first feature map.
        dim_z (`int`, defaults to 128): Latent size. With `hierarchical_z` it must divide evenly into
            `num_generator_blocks + 1` chunks [`dim_z`, `hier`].
        hierarchical_z (`bool`, defaults to `False`): Split z into one chunk for the input linear layer and one per G
            block, concatenated with the class embedding to condition that block's batch norms [`hier`].
        shared_embedding (`bool`, defaults to `False`): One class embedding of size `shared_dim`, shared by all
            conditional batch norms through (spectral-normalised) linear maps [`G_shared`]; otherwise each batch norm
            has its own gain/bias embedding tables.
        shared_dim (`int`, *optional*): Size of the shared embedding; defaults to `dim_z` [`shared_dim`].
        num_classes (`int`, defaults to 10): Number of classes; 0 (or `None`) for an unconditional model (no class
            embeddings, no projection term in D).
        class_names (`list[str]`, *optional*): Names of the classes, stored as `id2label`/`label2id`.
        generator_attention / discriminator_attention (`list[int]`, defaults to `[]`): Resolutions after whose
            blocks a self-attention layer is inserted [`G_attn`, `D_attn`, '0' = none]. D resolutions are the
            actual output sizes of the blocks.
        discriminator_wide (`bool`, defaults to `True`): BigGAN's wide D blocks (hidden = output channels) [`D_wide`].
        generator_init / discriminator_init (`str`, defaults to `"ortho"`): `"ortho"`, `"N02"` (N(0, 0.02)) or
            `"xavier"` init of every conv/linear/embedding weight [`G_init`, `D_init`].
        bn_eps (`float`, defaults to 1e-5), sn_eps (`float`, defaults to 1e-8): Epsilons of batch and spectral norm.
        sn_iterations (`int`, defaults to 1): Power iterations per forward [`num_G_SV_itrs`, `num_D_SV_itrs`].

    Class conditioning of D (TAC-GAN, Gong et al., NeurIPS 2019: FQ-TAC-GAN):
        loss_type (`str`, defaults to `"projection"`): `"projection"`: BigGAN's projection discriminator (D's output
            `linear(h) + <embed(y), h>`). `"tac"`: TAC-GAN's objective: an unconditional D output `linear(h)` plus
            two spectral-normalised linear heads on the pooled features `h`, the auxiliary classifier `classifier`
            (trained on real images) and the twin classifier `twin_classifier` (trained on fakes); G is rewarded for
            fakes `classifier` recognises and penalised for those `twin_classifier` recognises. `"ac"`: AC-GAN
            (the `classifier` head only). `"ac"`/`"tac"` need `num_classes > 0`; the losses are in
            `hf_dgm.training.fq_biggan.tac`.
        classifier_weight (`float`, defaults to 1.0): `λ`, the weight of the classifier terms in D's and G's
            losses (TAC-GAN's `AC_weight`); unused with `"projection"`.

    Feature quantization (FQ-GAN: `--discrete_layer`, `--dict_size`, `--dict_decay`, `--commitment`):
        The zoo's FQ fields (`use_fq`, `fq_layers`, `fq_num_embeddings`, `fq_decay`, `fq_commitment`, `fq_mode`,
        `fq_eps`, `fq_dictionary_init`, `fq_zero_debias`, `fq_update_in_generator_step`), declared once by
        `hf_dgm.modules.feature_quantizer.FeatureQuantizerConfigMixin` and documented by its `FQ_CONFIG_DOCSTRING`.
        FQ-BigGAN's defaults are those of `FQ_CONFIG_DEFAULTS` (the original PyTorch `vq_layer.Quantize`: K = 1024,
        decay 0.8, commitment 1.0, plain EMA) with `fq_layers=[0, 1, 2, 3]` (indices of the D blocks whose output
        is quantized; stored sorted).
        fq_update_in_generator_step (`bool`, defaults to `True`): The G step updates the dictionaries a second time,
            from the fakes, as the original does: its D stays in training mode during the G step
            (`train.py` sets `D.train()` once per iteration, `train_fns.py` calls `GD(z_, y_, train_G=True)`, and
            `vq_layer.Quantize.forward` updates whenever `self.training`). `False` (not in the original; our earlier
            default) updates them in D steps only, so the dictionary tracks D's features of its own batches (real
            and fake, 1:1) rather than getting one extra fake-only update per G step; it is kept as an option for
            that reason, but it does not reproduce the released code's dictionaries.

    Training defaults (read by the trainer; they do not change the model):
        generator_lr / discriminator_lr (`float`), generator_betas / discriminator_betas (`(float, float)`),
        adam_eps (`float`), discriminator_steps (`int`, D steps per G step), batch_size (`int`, effective batch),
        ema_start (`int`, G-EMA is a plain copy before this step) and ema_decay (`float`, defaults to 0.9999).
    """

    model_type = "fq_biggan"
    fq_defaults = {"fq_layers": [0, 1, 2, 3]}

    def __init__(
        self,
        resolution: int = 32,
        num_channels: int = 3,
        generator_ch: int = 64,
        discriminator_ch: int = 64,
        generator_multipliers: list[int] | None = None,
        discriminator_multipliers: list[int] | None = None,
        discriminator_downsample: list[bool] | None = None,
        bottom_width: int = 4,
        dim_z: int = 128,
        hierarchical_z: bool = False,
        shared_embedding: bool = False,
        shared_dim: int | None = None,
        num_classes: int | None = 10,
        class_names: list[str] | None = None,
        generator_attention: list[int] | None = None,
        discriminator_attention: list[int] | None = None,
        discriminator_wide: bool = True,
        generator_init: str = "ortho",
        discriminator_init: str = "ortho",
        bn_eps: float = 1e-5,
        sn_eps: float = 1e-8,
        sn_iterations: int = 1,
        generator_lr: float = 2e-4,
        discriminator_lr: float = 2e-4,
        generator_betas: tuple[float, float] | list[float] = (0.0, 0.999),
        discriminator_betas: tuple[float, float] | list[float] = (0.0, 0.999),
        adam_eps: float = 1e-8,
        discriminator_steps: int = 4,
        batch_size: int = 64,
        ema_start: int = 1000,
        ema_decay: float = 0.9999,
        loss_type: str = "projection",
        classifier_weight: float = 1.0,
        **kwargs,
    ):
        self.resolution = resolution
        self.num_channels = num_channels
        self.generator_ch = generator_ch
        self.discriminator_ch = discriminator_ch
        self.bottom_width = bottom_width
        self.generator_multipliers = (
            list(generator_multipliers)
            if generator_multipliers is not None
            else list(_GENERATOR_MULTIPLIERS.get(resolution, []))
        )
        self.discriminator_multipliers = (
            list(discriminator_multipliers)
            if discriminator_multipliers is not None
            else list(_DISCRIMINATOR_MULTIPLIERS.get(resolution, []))
        )
        self.discriminator_downsample = (
            [bool(d) for d in discriminator_downsample]
            if discriminator_downsample is not None
            else list(_DISCRIMINATOR_DOWNSAMPLE.get(resolution, []))
        )
        self.dim_z = dim_z
        self.hierarchical_z = bool(hierarchical_z)
        self.shared_embedding = bool(shared_embedding)
        self.shared_dim = shared_dim if shared_dim else dim_z
        self.num_classes = int(num_classes or 0)
        self.generator_attention = [int(r) for r in (generator_attention or [])]
        self.discriminator_attention = [int(r) for r in (discriminator_attention or [])]
        self.discriminator_wide = bool(discriminator_wide)
        self.generator_init = generator_init
        self.discriminator_init = discriminator_init
        self.bn_eps = bn_eps
        self.sn_eps = sn_eps
        self.sn_iterations = sn_iterations
        self.generator_lr = generator_lr
        self.discriminator_lr = discriminator_lr
        self.generator_betas = [float(b) for b in generator_betas]
        self.discriminator_betas = [float(b) for b in discriminator_betas]
        self.adam_eps = adam_eps
        self.discriminator_steps = discriminator_steps
        self.batch_size = batch_size
        self.ema_start = ema_start
        self.ema_decay = ema_decay
        self.loss_type = loss_type
        self.classifier_weight = classifier_weight

        if class_names is not None:
            class_names = [str(name) for name in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"`class_names` has {len(class_names)} names but `num_classes` is {self.num_classes}"
                )
            if len(set(class_names)) != len(class_names):
                raise ValueError("`class_names` must be unique")
            kwargs["id2label"] = {i: name for i, name in enumerate(class_names)}
        elif "id2label" not in kwargs:
            kwargs["id2label"] = {i: f"class_{i}" for i in range(self.num_classes)}
        super().__init__(**kwargs)  # the FQ fields: FeatureQuantizerConfigMixin
        self.fq_layers = sorted(int(i) for i in self.fq_layers)
        self.validate_architecture()

    # ------------------------------------------------------------------------------------------------------------
    @property
    def num_generator_blocks(self) -> int:
        return len(self.generator_multipliers) - 1

    @property
    def num_discriminator_blocks(self) -> int:
        return len(self.discriminator_multipliers)

    @property
    def z_chunk_size(self) -> int:
        """Size of each chunk of z with `hierarchical_z` (0 otherwise)."""
        return self.dim_z // (self.num_generator_blocks + 1) if self.hierarchical_z else 0

    @property
    def class_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_classes)] if self.num_classes else []

    def discriminator_resolutions(self) -> list[int]:
        """Spatial size of the output of every D block."""
        sizes, size = [], self.resolution
        for down in self.discriminator_downsample:
            size = size // 2 if down else size
            sizes.append(size)
        return sizes

    def generator_resolutions(self) -> list[int]:
        """Spatial size of the output of every G block."""
        return [self.bottom_width * 2 ** (i + 1) for i in range(self.num_generator_blocks)]

    def validate_architecture(self) -> None:
        """Raise `ValueError` naming the first inconsistent value."""
        for name in ("resolution", "generator_ch", "discriminator_ch", "bottom_width", "dim_z", "shared_dim",
                     "sn_iterations", "discriminator_steps", "batch_size"):  # fmt: skip
            _check_positive_int(name, getattr(self, name))
        if self.num_channels not in (1, 3):
            raise ValueError(f"`num_channels` must be 1 (greyscale) or 3 (RGB), got {self.num_channels!r}")
        if self.num_classes < 0:
            raise ValueError(f"`num_classes` must be >= 0 (0 = unconditional), got {self.num_classes}")
        if not self.generator_multipliers or not self.discriminator_multipliers:
            raise ValueError(
                f"No BigGAN architecture table for resolution {self.resolution} (tables: G {sorted(_GENERATOR_MULTIPLIERS)}, "
                f"D {sorted(_DISCRIMINATOR_MULTIPLIERS)}); pass `generator_multipliers`, `discriminator_multipliers` "
                "and `discriminator_downsample` explicitly"
            )
        if len(self.generator_multipliers) < 2:
            raise ValueError("`generator_multipliers` needs at least 2 entries (input channels + one block)")
        for name in ("generator_multipliers", "discriminator_multipliers"):
            for m in getattr(self, name):
                _check_positive_int(f"{name}[...]", m)
        expected = self.bottom_width * 2**self.num_generator_blocks
        if expected != self.resolution:
            raise ValueError(
                f"`resolution` ({self.resolution}) must equal bottom_width·2**num_generator_blocks = "
                f"{self.bottom_width}·2**{self.num_generator_blocks} = {expected}"
            )
        if len(self.discriminator_downsample) != self.num_discriminator_blocks:
            raise ValueError(
                f"`discriminator_downsample` has {len(self.discriminator_downsample)} entries, expected one per D block "
                f"({self.num_discriminator_blocks})"
            )
        if min(self.discriminator_resolutions()) < 1 or self.resolution % 2 ** sum(self.discriminator_downsample):
            raise ValueError(
                f"resolution {self.resolution} cannot be halved {sum(self.discriminator_downsample)} times by D"
            )
        for name, resolutions, valid in (
            ("generator_attention", self.generator_attention, self.generator_resolutions()),
            ("discriminator_attention", self.discriminator_attention, self.discriminator_resolutions()),
        ):
            wrong = [r for r in resolutions if r not in valid]
            if wrong:
                raise ValueError(f"`{name}` resolutions {wrong} match no block output (block resolutions: {valid})")
        for name, scheme in (("generator_init", self.generator_init), ("discriminator_init", self.discriminator_init)):
            if scheme not in INIT_SCHEMES:
                raise ValueError(f"`{name}` must be one of {INIT_SCHEMES}, got {scheme!r}")
        if self.hierarchical_z:
            slots = self.num_generator_blocks + 1
            if self.dim_z % slots:
                raise ValueError(
                    f"`hierarchical_z` splits z into {slots} equal chunks (1 + one per G block): `dim_z` "
                    f"({self.dim_z}) must be a multiple of {slots}"
                )
            if self.num_classes and not self.shared_embedding:
                raise ValueError("`hierarchical_z` with classes needs `shared_embedding=True` (as BigGAN-PyTorch)")
        for name in ("bn_eps", "sn_eps", "fq_decay", "fq_commitment", "fq_eps", "generator_lr", "discriminator_lr",
                     "adam_eps", "ema_decay", "classifier_weight"):  # NaN passes every comparison below: finite numbers only
            check_float(getattr(self, name), name)
        for name in ("generator_betas", "discriminator_betas"):
            for b in getattr(self, name):
                check_float(b, name)
        if self.bn_eps <= 0 or self.sn_eps <= 0:
            raise ValueError(f"`bn_eps` and `sn_eps` must be > 0, got {self.bn_eps} and {self.sn_eps}")
        validate_feature_quantizer_config(self, num_layers=self.num_discriminator_blocks)
        self._validate_loss_type()
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"`ema_decay` must be in [0, 1], got {self.ema_decay}")
        if isinstance(self.ema_start, bool) or not isinstance(self.ema_start, int) or self.ema_start < 0:
            raise ValueError(f"`ema_start` must be an int >= 0, got {self.ema_start!r}")
        for name in ("generator_betas", "discriminator_betas"):
            betas = getattr(self, name)
            if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
                raise ValueError(f"`{name}` must be two floats in [0, 1), got {betas}")
        for name in ("generator_lr", "discriminator_lr", "adam_eps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")

    def _validate_loss_type(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"`loss_type` must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if self.loss_type != "projection" and self.num_classes == 0:
            raise ValueError(f"`loss_type={self.loss_type!r}` trains class heads: it needs `num_classes > 0`")
        if self.classifier_weight < 0:
            raise ValueError(f"`classifier_weight` must be >= 0, got {self.classifier_weight}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "FQBigGANConfig":
        """Config of an original setup (`"cifar10"`, `"cifar100"`, `"imagenet64"`, `"imagenet128"`) or `"tiny"`;
        keyword arguments override single values (e.g. `use_fq=False` for the BigGAN baseline)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown FQ-BigGAN preset {name!r}; available: {sorted(PRESETS)}")
        values = dict(PRESETS[name])
        values.update(overrides)
        if "num_classes" in overrides and "class_names" not in overrides:
            values.pop("class_names", None)
        return cls(**values)


__all__ = ["FQBigGANConfig", "PRESETS", "CIFAR10_CLASSES", "CIFAR100_CLASSES", "LOSS_TYPES"]
