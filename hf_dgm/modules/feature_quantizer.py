"""Feature quantization (FQ) with an exponential-moving-average dictionary, as in FQ-GAN (Zhao et al., ICML 2020).

One module serves every GAN of the zoo (FQ-BigGAN now, FQ-StyleGAN and FQ-U-GAT-IT later). It maps each feature
vector to its nearest dictionary entry (squared L2), learns the dictionary with EMA k-means updates (no gradients,
the entries are buffers) and returns a commitment loss that pulls the features towards their entries.

Layouts accepted by [`FeatureQuantizer.forward`]:

- `(B, C, H, W)`: a convolutional feature map, channels first (what a discriminator block produces). Each of the
  `B·H·W` spatial positions is one vector of size `C`. Indices come back as `(B, H, W)`.
- `(B, N, C)`: a sequence of `N` tokens, channels LAST. Indices come back as `(B, N)`.
- `(B, C)`: one vector per sample. Indices come back as `(B,)`.

Distributed training: when `torch.distributed` is initialised and the dictionary is updated, the per-batch code
counts and per-code feature sums are all-reduced (summed over ranks) before the EMA update, so every rank applies
the same update — the one a single process would apply to the concatenation of all ranks' batches — and the
dictionaries stay identical across ranks. The all-reduce is a collective: every rank must make the same updating
calls (as it does when all ranks run the same D step). The loss, quantized output and indices stay per-rank; the perplexity and
usage reported in an update step are computed from the all-reduced counts (global batch), otherwise per rank.

Configuration: every GAN config of the zoo carries the same FQ fields, declared once by
[`FeatureQuantizerConfigMixin`] (defaults `FQ_CONFIG_DEFAULTS`, documented by `FQ_CONFIG_DOCSTRING`), validated by
[`validate_feature_quantizer_config`]; a model builds each quantizer with [`FeatureQuantizer.from_config`]. The dictionary size has one name, `fq_num_embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from transformers import initialization as hf_init
from transformers.utils import ModelOutput


FQ_MODES = ("loss_only", "straight_through")
DICTIONARY_INITS = ("randn", "data")


# The FQ fields every GAN config of the zoo carries, with their defaults (FQ-GAN's). `fq_num_embeddings` is THE name
# of the dictionary size K: an int (every FQ layer) or a list with one K per entry of `fq_layers`.
FQ_CONFIG_DEFAULTS = {
    "use_fq": True,
    "fq_layers": None,
    "fq_num_embeddings": 1024,
    "fq_decay": 0.8,
    "fq_commitment": 1.0,
    "fq_mode": "loss_only",
    "fq_eps": 1e-5,
    "fq_dictionary_init": "randn",
    "fq_zero_debias": False,
    "fq_update_in_generator_step": True,
}

FQ_CONFIG_DOCSTRING = """
        use_fq (`bool`, defaults to `True`): `False` gives the plain GAN (no quantizer at all).
        fq_layers (`list[int]`): Indices of the layers whose output is quantized (the family defines the indices).
        fq_num_embeddings (`int` or `list[int]`, defaults to 1024): Dictionary size K (FQ-GAN's `2**dict_size`);
            a list gives one K per entry of `fq_layers`.
        fq_decay (`float`, defaults to 0.8): EMA decay of the dictionaries, in [0, 1).
        fq_commitment (`float`, defaults to 1.0): Weight of the commitment loss (>= 0).
        fq_mode (`str`, defaults to `"loss_only"`): `"loss_only"` (the released code: the quantized features are
            discarded, FQ acts through the dictionary and the loss) or `"straight_through"` (the paper: the
            quantized features feed the rest of the network).
        fq_eps (`float`, defaults to 1e-5): Laplace smoothing of the cluster sizes (> 0).
        fq_dictionary_init (`str`, defaults to `"randn"`): `"randn"` (the original: N(0, 1) entries; entries unused
            in the first update are lost for good, see [`FeatureQuantizer`]) or `"data"` (not in the original: the
            first update sets the entries to feature vectors of its batch, so all start in use).
        fq_zero_debias (`bool`): `False` (FQ-GAN's PyTorch FQ-BigGAN, `vq_layer.py`: a plain EMA started from the
            initial buffers) or `True` (FQ-GAN's TensorFlow FQ-StyleGAN and FQ-U-GAT-IT: TF's
            `assign_moving_average` with its default `zero_debias=True`, i.e. an EMA started from zero and divided
            by `1 - decay**t` after `t` updates). Each family's config picks its original's default.
        fq_update_in_generator_step (`bool`, defaults to `True`): The G step updates the dictionaries a second time,
            from the fakes, as the originals do (their D stays in training mode during the G step).
"""


class FeatureQuantizerConfigMixin:
    """The FQ fields of a GAN config, declared once: mix in before `PreTrainedConfig`
    (`class FQXConfig(FeatureQuantizerConfigMixin, PreTrainedConfig)`), let the family's `__init__` pass the `fq_*`
    keywords on to `super().__init__(**kwargs)`, and set the family's defaults in the class attribute `fq_defaults`
    (over `FQ_CONFIG_DEFAULTS`; documented by `FQ_CONFIG_DOCSTRING`). A field left at None takes the family default;
    a family whose default depends on other fields (e.g. FQ-StyleGAN's layers by resolution) fills it in after
    `super().__init__`. Lists are stored as lists (JSON round trip); the family's `__init__` then calls
    [`validate_feature_quantizer_config`]."""

    fq_defaults = {}  # the family's FQ defaults over FQ_CONFIG_DEFAULTS (a class attribute, not a config field)

    def __init__(
        self,
        *,
        use_fq: bool | None = None,
        fq_layers: list[int] | None = None,
        fq_num_embeddings: int | list[int] | None = None,
        fq_decay: float | None = None,
        fq_commitment: float | None = None,
        fq_mode: str | None = None,
        fq_eps: float | None = None,
        fq_dictionary_init: str | None = None,
        fq_zero_debias: bool | None = None,
        fq_update_in_generator_step: bool | None = None,
        **kwargs,
    ):
        given = {
            "use_fq": use_fq, "fq_layers": fq_layers, "fq_num_embeddings": fq_num_embeddings, "fq_decay": fq_decay,
            "fq_commitment": fq_commitment, "fq_mode": fq_mode, "fq_eps": fq_eps,
            "fq_dictionary_init": fq_dictionary_init, "fq_zero_debias": fq_zero_debias,
            "fq_update_in_generator_step": fq_update_in_generator_step,
        }  # fmt: skip
        defaults = {**FQ_CONFIG_DEFAULTS, **type(self).fq_defaults}
        for name, value in given.items():
            value = defaults[name] if value is None else value
            if isinstance(value, (list, tuple)):  # a copy: never the family's default list itself
                value = list(value)
            setattr(self, name, value)
        self.use_fq = bool(self.use_fq)
        super().__init__(**kwargs)


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def validate_feature_quantizer_config(config, num_layers: int | None = None) -> None:
    """Check a config's FQ fields (see `FQ_CONFIG_DEFAULTS`) once, raising `ValueError` that names the field.

    Args:
        config: Any object with the `use_fq`, `fq_layers`, `fq_num_embeddings`, `fq_decay`, `fq_commitment`,
            `fq_mode`, `fq_eps` and `fq_dictionary_init` attributes.
        num_layers (`int`, *optional*): Number of layers a quantizer can follow; `fq_layers` must be distinct
            indices in `[0, num_layers)`. None skips that range check.
    """
    if config.fq_mode not in FQ_MODES:
        raise ValueError(f"`fq_mode` must be one of {FQ_MODES}, got {config.fq_mode!r}")
    if config.fq_dictionary_init not in DICTIONARY_INITS:
        raise ValueError(f"`fq_dictionary_init` must be one of {DICTIONARY_INITS}, got {config.fq_dictionary_init!r}")
    layers = list(config.fq_layers or [])
    if config.use_fq:
        if not layers:
            raise ValueError("`use_fq=True` needs at least one entry in `fq_layers` (or set `use_fq=False`)")
        bad = [i for i in layers if num_layers is not None and not 0 <= i < num_layers]
        if bad or len(set(layers)) != len(layers):
            where = f"in [0, {num_layers})" if num_layers is not None else ""
            raise ValueError(f"`fq_layers` must be distinct layer indices {where}, got {layers}")
    sizes = config.fq_num_embeddings
    if isinstance(sizes, (list, tuple)):
        if not all(_is_positive_int(k) for k in sizes):
            raise ValueError(f"`fq_num_embeddings` entries must be positive ints, got {sizes}")
        if config.use_fq and len(sizes) != len(layers):
            raise ValueError(
                f"`fq_num_embeddings` lists {len(sizes)} dictionary sizes but `fq_layers` has {len(layers)} layers"
            )
    elif not _is_positive_int(sizes):
        raise ValueError(f"`fq_num_embeddings` must be a positive int (or one per FQ layer), got {sizes!r}")
    if not 0.0 <= config.fq_decay < 1.0:
        raise ValueError(f"`fq_decay` must be in [0, 1), got {config.fq_decay}")
    if config.fq_commitment < 0:
        raise ValueError(f"`fq_commitment` must be >= 0, got {config.fq_commitment}")
    if config.fq_eps <= 0:
        raise ValueError(f"`fq_eps` must be > 0, got {config.fq_eps}")
    for name, default in (("fq_zero_debias", False), ("fq_update_in_generator_step", True)):
        value = getattr(config, name, default)
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be a bool, got {value!r}")


def fq_num_embeddings_for(config, layer: int | None = None) -> int:
    """Dictionary size K of FQ layer `layer` (an entry of `config.fq_layers`)."""
    sizes = config.fq_num_embeddings
    if not isinstance(sizes, (list, tuple)):
        return int(sizes)
    layers = list(config.fq_layers)
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not an FQ layer ({layers}); `fq_num_embeddings` is per layer")
    return int(sizes[layers.index(layer)])


@dataclass
class FeatureQuantizerOutput(ModelOutput):
    r"""
    Output of [`FeatureQuantizer`].

    Args:
        output (`torch.FloatTensor`, same shape as the input):
            What the rest of the network should consume: the input itself in `"loss_only"` mode (the released FQ-GAN
            code), the straight-through quantized features in `"straight_through"` mode (the paper's figure).
        quantized (`torch.FloatTensor`, same shape as the input):
            Straight-through quantized features `x + (q - x).detach()`: the values of the nearest entries, the
            gradient of the identity.
        loss (`torch.FloatTensor` of shape `()`):
            Commitment loss `commitment · mean((q.detach() - x)²)`.
        per_sample_loss (`torch.FloatTensor` of shape `(B,)`):
            The same loss averaged per sample (its mean is `loss`); lets a caller split a concatenated real/fake batch.
        perplexity (`torch.FloatTensor` of shape `()`):
            `exp(entropy)` of the average one-hot assignment of this batch: the effective number of entries in use
            (1 … K).
        usage (`torch.FloatTensor` of shape `()`):
            Fraction of the K entries that at least one vector of this batch was assigned to.
        indices (`torch.LongTensor` of shape `(B, H, W)`, `(B, N)` or `(B,)`):
            Index of the nearest entry of every vector.
    """

    output: torch.FloatTensor | None = None
    quantized: torch.FloatTensor | None = None
    loss: torch.FloatTensor | None = None
    per_sample_loss: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None
    usage: torch.FloatTensor | None = None
    indices: torch.LongTensor | None = None


class FeatureQuantizer(nn.Module):
    r"""
    Feature quantizer with an EMA-learned dictionary of `num_embeddings` entries of size `dim`.

    Buffers (saved with the model, never touched by an optimizer):

    - `embed` `(dim, K)`: the dictionary E, one entry per column.
    - `cluster_size` `(K,)`: EMA of the number of vectors assigned to each entry.
    - `embed_avg` `(dim, K)`: EMA of the sum of the vectors assigned to each entry.

    Update (only in training mode AND when asked, see `update_dictionary`), with counts `n_k` and sums `s_k` of this
    batch (all-reduced across ranks under `torch.distributed`):

        cluster_size ← d·cluster_size + (1−d)·n,    embed_avg ← d·embed_avg + (1−d)·s,
        N = Σ_k cluster_size_k,   size_k = (cluster_size_k + ε) / (N + K·ε) · N   (Laplace smoothing),
        embed ← embed_avg / size.

    The nearest entries, the loss and the output are computed with the dictionary as it was *before* the update (as
    the original `vq_layer.Quantize`).

    Two EMA flavours, selected by `zero_debias` (the two FQ-GAN code bases differ here):

    - `zero_debias=False` (FQ-GAN's PyTorch FQ-BigGAN, `vq_layer.Quantize`): the plain EMA above, started from the
      initial buffers (`cluster_size = 0`, `embed_avg = embed`).
    - `zero_debias=True` (FQ-GAN's TensorFlow FQ-StyleGAN and FQ-U-GAT-IT, `moving_averages.assign_moving_average`
      with its default `zero_debias=True`, Kingma & Ba 2015): each EMA keeps a biased accumulator started at ZERO
      and a step count t (buffers `cluster_size_biased`, `embed_avg_biased`, `ema_steps`, present only in this
      mode), and the EMA buffer is set to the bias-corrected value:

          b ← b − (b − v)·(1−d)  (= d·b + (1−d)·v),   t ← t + 1,   cluster_size / embed_avg ← b / (1 − d**t)

      So the first update sets `cluster_size` to the batch counts and `embed_avg` to the batch sums exactly (the
      initial `embed_avg = embed` is ignored, as in TF), and entries no vector picked become 0. The smoothing and
      `embed ← embed_avg / size` then follow as above. In TF each of the two EMAs has its own step counter; they are
      always updated together, so one counter serves both.

    Args:
        dim (`int`): Size C of each feature vector.
        num_embeddings (`int`): Number of dictionary entries K (FQ-GAN uses `2**dict_size`).
        decay (`float`, defaults to 0.8): EMA decay d, in [0, 1).
        commitment (`float`, defaults to 1.0): Weight of the commitment loss (≥ 0).
        eps (`float`, defaults to 1e-5): Laplace smoothing ε (> 0).
        mode (`str`, defaults to `"loss_only"`): `"loss_only"` (the input goes forward unchanged, FQ acts only through
            the dictionary and the commitment loss — the released code) or `"straight_through"` (the quantized
            features go forward with a straight-through gradient — the paper).
        update_dictionary (`bool`, defaults to `True`): Default for the `update_dictionary` argument of `forward`.
            A model that alternates D and G steps passes the argument explicitly (FQ-BigGAN updates in D steps only).
        dictionary_init (`str`, defaults to `"randn"`): `"randn"` keeps the original's `N(0, 1)` dictionary. Note that
            with it every entry that no vector picks in the first update is divided by ≈ε (its smoothed size) and
            moves out of reach for good, so few entries survive when the features are far from `N(0, 1)` (the
            released code behaves the same). `"data"` (not in the original) replaces the dictionary, at the first
            update, by K feature vectors of that batch (sampled from rank 0's batch and broadcast under
            `torch.distributed`), each counted as one prior observation (`cluster_size = 1`), so every entry starts
            in use and the EMA averages entries with their vectors from the first update on. With `zero_debias=True`
            that seeding counts as the first of the t updates (the biased accumulators hold `(1−d)·1` and
            `(1−d)·embed`, t = 1), so the debiased buffers equal it exactly.
        zero_debias (`bool`, defaults to `False`): TF's zero-debiased EMA (see above) instead of the plain one.
    """

    def __init__(
        self,
        dim: int,
        num_embeddings: int,
        decay: float = 0.8,
        commitment: float = 1.0,
        eps: float = 1e-5,
        mode: str = "loss_only",
        update_dictionary: bool = True,
        dictionary_init: str = "randn",
        zero_debias: bool = False,
    ):
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"`dim` must be a positive int, got {dim!r}")
        if not isinstance(num_embeddings, int) or num_embeddings < 1:
            raise ValueError(f"`num_embeddings` must be a positive int, got {num_embeddings!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1), got {decay!r}")
        if commitment < 0:
            raise ValueError(f"`commitment` must be >= 0, got {commitment!r}")
        if eps <= 0:
            raise ValueError(f"`eps` must be > 0, got {eps!r}")
        if mode not in FQ_MODES:
            raise ValueError(f"`mode` must be one of {FQ_MODES}, got {mode!r}")
        if dictionary_init not in DICTIONARY_INITS:
            raise ValueError(f"`dictionary_init` must be one of {DICTIONARY_INITS}, got {dictionary_init!r}")
        self.dim = dim
        self.num_embeddings = num_embeddings
        self.decay = float(decay)
        self.commitment = float(commitment)
        self.eps = float(eps)
        self.mode = mode
        self.update_dictionary = bool(update_dictionary)
        self.dictionary_init = dictionary_init
        if not isinstance(zero_debias, bool):
            raise ValueError(f"`zero_debias` must be a bool, got {zero_debias!r}")
        self.zero_debias = zero_debias

        self.register_buffer("embed", torch.empty(dim, num_embeddings))
        self.register_buffer("cluster_size", torch.zeros(num_embeddings))
        self.register_buffer("embed_avg", torch.empty(dim, num_embeddings))
        if zero_debias:
            # TF's `_zero_debias` state: accumulators started at zero, and the number of updates so far (float64 so
            # the count stays exact however long training runs).
            self.register_buffer("cluster_size_biased", torch.zeros(num_embeddings))
            self.register_buffer("embed_avg_biased", torch.zeros(dim, num_embeddings))
            self.register_buffer("ema_steps", torch.zeros((), dtype=torch.float64))
        self.init_dictionary()

    @classmethod
    def from_config(cls, config, dim: int, layer: int | None = None, update_dictionary: bool = False) -> "FeatureQuantizer":
        """Build the quantizer of one FQ layer from a model config carrying the FQ fields (see
        [`validate_feature_quantizer_config`]): K from `fq_num_embeddings` (the entry of `layer` when it is a
        per-layer list), `fq_decay`, `fq_commitment`, `fq_eps`, `fq_mode`, `fq_dictionary_init`, `fq_zero_debias` (False when the config has no such field).

        Args:
            config: A config with the `fq_*` attributes (already validated by its `__init__`).
            dim (`int`): Channels C of the quantized features.
            layer (`int`, *optional*): The FQ layer (an entry of `config.fq_layers`); needed when
                `fq_num_embeddings` is a list.
            update_dictionary (`bool`, defaults to `False`): Default of `forward`'s `update_dictionary`.
        """
        return cls(
            dim,
            fq_num_embeddings_for(config, layer),
            decay=config.fq_decay,
            commitment=config.fq_commitment,
            eps=config.fq_eps,
            mode=config.fq_mode,
            update_dictionary=update_dictionary,
            dictionary_init=config.fq_dictionary_init,
            zero_debias=getattr(config, "fq_zero_debias", False),
        )

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_embeddings={self.num_embeddings}, decay={self.decay}, "
            f"commitment={self.commitment}, mode={self.mode!r}, dictionary_init={self.dictionary_init!r}, "
            f"zero_debias={self.zero_debias}"
        )

    def _private_generator(self) -> torch.Generator | None:
        """A generator for the dictionary's own random draws, seeded from the global RNG without advancing it.

        The draws of a quantizer (its `N(0, 1)` dictionary, the batch rows picked by `dictionary_init="data"`) must not
        move the global RNG: otherwise every layer built or initialised after it, and every random draw of training
        after the first update, would differ between a model with FQ and the same model without it at one seed, and
        an FQ/no-FQ comparison would compare two initialisations as well. The seed is read from the global RNG inside
        `torch.random.fork_rng` (so the global state is restored) and mixed with the dictionary's shape. `None` on the
        meta device (nothing is drawn there).
        """
        if self.embed.device.type == "meta":
            return None
        with torch.random.fork_rng(devices=[]):
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=self.embed.device)
        generator.manual_seed(seed ^ (self.dim * 1_000_003 + self.num_embeddings))
        return generator

    @torch.no_grad()
    def init_dictionary(self, generator: torch.Generator | None = None) -> None:
        """(Re)initialise the dictionary as the original: `embed ~ N(0, 1)`, `embed_avg = embed`, `cluster_size = 0`
        (and, with `zero_debias`, the biased accumulators and the step count at 0).

        Without `generator` the entries come from [`~FeatureQuantizer._private_generator`]: building or initialising
        a quantizer leaves the global RNG where it was. Uses `transformers.initialization`, so inside
        `PreTrainedModel._init_weights` it leaves buffers that were just loaded from a checkpoint untouched.
        """
        if generator is None:
            generator = self._private_generator()
        hf_init.normal_(self.embed, mean=0.0, std=1.0, generator=generator)
        hf_init.copy_(self.embed_avg, self.embed)
        hf_init.zeros_(self.cluster_size)
        if self.zero_debias:
            hf_init.zeros_(self.cluster_size_biased)
            hf_init.zeros_(self.embed_avg_biased)
            hf_init.zeros_(self.ema_steps)

    # ------------------------------------------------------------------------------------------------------------
    def _to_vectors(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Flatten to `(M, C)`; also return the index shape."""
        if hidden_states.dim() == 4:
            batch, channels, height, width = hidden_states.shape
            if channels != self.dim:
                raise ValueError(
                    f"FeatureQuantizer expects (B, C, H, W) with C = {self.dim}, got shape {tuple(hidden_states.shape)}"
                )
            flat = hidden_states.permute(0, 2, 3, 1).reshape(-1, channels)
            return flat, (batch, height, width)
        if hidden_states.dim() in (2, 3):
            if hidden_states.shape[-1] != self.dim:
                layout = "(B, N, C)" if hidden_states.dim() == 3 else "(B, C)"
                raise ValueError(
                    f"FeatureQuantizer expects {layout} with C = {self.dim} (channels last), got shape "
                    f"{tuple(hidden_states.shape)}"
                )
            return hidden_states.reshape(-1, self.dim), tuple(hidden_states.shape[:-1])
        raise ValueError(
            "FeatureQuantizer accepts (B, C, H, W), (B, N, C) or (B, C) tensors, got "
            f"{hidden_states.dim()} dimensions (shape {tuple(hidden_states.shape)})"
        )

    @staticmethod
    def _from_vectors(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if like.dim() == 4:
            batch, channels, height, width = like.shape
            return flat.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return flat.reshape(like.shape)

    @torch.no_grad()
    def _init_from_data(self, flat: torch.Tensor) -> None:
        """`dictionary_init="data"`: the dictionary becomes K vectors of this batch (with replacement if the batch
        holds fewer), identical on every rank (rank 0's choice is broadcast)."""
        flat = flat.detach().to(self.embed.dtype)
        generator = self._private_generator()  # the global RNG (noise, batches) stays as without FQ
        if flat.shape[0] >= self.num_embeddings:
            chosen = torch.randperm(flat.shape[0], device=flat.device, generator=generator)[: self.num_embeddings]
        else:
            chosen = torch.randint(0, flat.shape[0], (self.num_embeddings,), device=flat.device, generator=generator)
        embed = flat[chosen].t().contiguous()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(embed, src=0)
        # One pseudo-observation per entry keeps `embed_avg / cluster_size = embed` consistent, so the first EMA
        # update averages the entry with its vectors instead of rescaling it.
        self.embed.copy_(embed)
        self.embed_avg.copy_(embed)
        self.cluster_size.fill_(1.0)
        if self.zero_debias:  # the seeding is the first debiased update: b = (1-d)·value, t = 1
            self.cluster_size_biased.fill_(1.0 - self.decay)
            self.embed_avg_biased.copy_(embed * (1.0 - self.decay))
            self.ema_steps.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """EMA update of the dictionary from the vectors `flat` (M, C) assigned to `indices` (M,). Returns the counts
        used (all-reduced under torch.distributed)."""
        flat = flat.detach().to(self.embed.dtype)
        counts = torch.bincount(indices, minlength=self.num_embeddings).to(self.embed.dtype)
        embed_sum = torch.zeros(self.num_embeddings, self.dim, dtype=self.embed.dtype, device=flat.device)
        embed_sum.index_add_(0, indices, flat)
        embed_sum = embed_sum.t()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Every rank must apply the same update: sum the statistics of all ranks' batches first.
            stats = torch.cat([counts.unsqueeze(0), embed_sum], dim=0).contiguous()
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
            counts, embed_sum = stats[0], stats[1:]

        if self.zero_debias:
            # TF `assign_moving_average(..., zero_debias=True)`: biased ← biased − (biased − value)·(1 − d), then the
            # variable ← biased / (1 − d**t) with t counted after this update.
            rate = 1.0 - self.decay
            self.cluster_size_biased.sub_((self.cluster_size_biased - counts) * rate)
            self.embed_avg_biased.sub_((self.embed_avg_biased - embed_sum) * rate)
            self.ema_steps.add_(1.0)
            correction = 1.0 - (1.0 - rate) ** float(self.ema_steps)
            self.cluster_size.copy_(self.cluster_size_biased / correction)
            self.embed_avg.copy_(self.embed_avg_biased / correction)
        else:
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
            self.embed_avg.mul_(self.decay).add_(embed_sum, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_embeddings * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed.unsqueeze(0))
        return counts

    def forward(self, hidden_states: torch.Tensor, update_dictionary: bool | None = None) -> FeatureQuantizerOutput:
        r"""
        Args:
            hidden_states (`torch.FloatTensor` of shape `(B, C, H, W)`, `(B, N, C)` or `(B, C)`):
                Features to quantize (layouts in the module docstring).
            update_dictionary (`bool`, *optional*):
                Whether this call may update the dictionary; defaults to `self.update_dictionary`. The update happens
                only if this is true AND the module is in training mode — never in eval mode.

        Returns:
            [`FeatureQuantizerOutput`].
        """
        flat, index_shape = self._to_vectors(hidden_states)
        if flat.shape[0] == 0:
            raise ValueError("FeatureQuantizer got an empty batch")
        if update_dictionary is None:
            update_dictionary = self.update_dictionary
        update = bool(update_dictionary) and self.training
        if update and self.dictionary_init == "data" and not bool(self.cluster_size.any()):
            self._init_from_data(flat)  # first update of a fresh dictionary
        embed = self.embed
        flat_d = flat.detach().to(embed.dtype)
        distances = (
            flat_d.pow(2).sum(1, keepdim=True) - 2.0 * flat_d @ embed + embed.pow(2).sum(0, keepdim=True)
        )
        indices = distances.argmin(dim=1)
        quantized_flat = F.embedding(indices, embed.t()).to(flat.dtype)

        counts = None
        if update:
            counts = self._ema_update(flat, indices)
        if counts is None:
            counts = torch.bincount(indices, minlength=self.num_embeddings).to(embed.dtype)

        quantized = self._from_vectors(quantized_flat, hidden_states)
        squared_error = (quantized.detach() - hidden_states).pow(2)
        per_sample_loss = self.commitment * squared_error.reshape(squared_error.shape[0], -1).mean(dim=1)
        loss = per_sample_loss.mean()
        straight_through = hidden_states + (quantized - hidden_states).detach()

        with torch.no_grad():
            probs = counts / counts.sum().clamp_min(1.0)
            perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
            usage = (counts > 0).to(embed.dtype).mean()

        output = straight_through if self.mode == "straight_through" else hidden_states
        return FeatureQuantizerOutput(
            output=output,
            quantized=straight_through,
            loss=loss,
            per_sample_loss=per_sample_loss,
            perplexity=perplexity,
            usage=usage,
            indices=indices.reshape(index_shape),
        )


__all__ = [
    "DICTIONARY_INITS",
    "FQ_CONFIG_DEFAULTS",
    "FQ_CONFIG_DOCSTRING",
    "FQ_MODES",
    "FeatureQuantizer",
    "FeatureQuantizerConfigMixin",
    "FeatureQuantizerOutput",
    "fq_num_embeddings_for",
    "validate_feature_quantizer_config",
]
