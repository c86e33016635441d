"""Configuration of Optimus-CARA: label-conditional sentence generation in the latent space of an Optimus VAE."""

from __future__ import annotations

from typing import Any

from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import check_float, check_int
from ..optimus.configuration_optimus import OptimusConfig


VARIANT = "cara-latent-conditional-gan"


class OptimusCaraConfig(HubCompatibleConfig):
    r"""
    Configuration of [`OptimusForLabelConditionalGeneration`]: an Optimus sentence VAE (nested [`OptimusConfig`])
    plus conditional modules living in its latent space, after the conditional adversarially regularised
    autoencoder (CARA) of Optimus' label-conditional generation (`run_lm_vae_label_ctrl_gen.py`, `modules/cara.py`).

    Variant implemented (`variant = "cara-latent-conditional-gan"`): the VAE is kept **frozen** and the latent
    modules are trained on the encoder's posterior means μ(x) of labelled sentences —

    * a conditional latent generator G(ε, y) = MLP([ε; e_G(y)]) mapping noise and a label embedding to a latent;
    * a conditional latent discriminator D(z, y) (an MLP with a projection term ⟨e_D(y), h(z)⟩) telling the
      encoder's μ(x) of sentences with label y from G(ε, y): G is adversarially matched to the per-label
      aggregate posterior;
    * a latent classifier C(z) trained on μ(x); G is also trained to make C(G(ε, y)) = y (auxiliary classifier).

    Differences from the original CARA: there the encoder/decoder are fine-tuned, the label embedding is added to
    z for reconstruction (z is pushed to be label-free by an adversarial latent classifier) and the generator is
    unconditional, the label entering only through the embedding. Fine-tuning the decoder to read a label embedding
    is not affordable on a CPU; with a frozen decoder the label has to be carried by z itself, so G is conditional
    and the classifier is cooperative rather than adversarial. The original's observation-space classifier (a
    convolution over decoder embeddings) is replaced at evaluation by an external judge trained on real sentences.

    Args:
        optimus (`OptimusConfig` or `dict`): the VAE's config.
        noise_size (`int`, *optional*): dimension of ε (defaults to the latent size).
        hidden_size (`int`, defaults to 256): width of the generator, discriminator and classifier MLPs.
        num_hidden_layers (`int`, defaults to 2): hidden layers of each MLP.
        label_embedding_size (`int`, defaults to 32): size of the generator's label embedding e_G.
        classifier_weight (`float`, defaults to 1.0): weight of the auxiliary classification loss of G.
        variant (`str`): the variant implemented (informational; only the default exists).
        id2label / label2id / num_labels: the labels (transformers' own config fields); at least 2.
    """

    model_type = "optimus_cara"
    sub_configs = {"optimus": OptimusConfig}

    def __init__(
        self,
        optimus: OptimusConfig | dict | None = None,
        noise_size: int | None = None,
        hidden_size: int = 256,
        num_hidden_layers: int = 2,
        label_embedding_size: int = 32,
        classifier_weight: float = 1.0,
        variant: str = VARIANT,
        **kwargs: Any,
    ):
        if optimus is None:
            optimus = OptimusConfig()
        elif isinstance(optimus, dict):
            optimus = OptimusConfig(**{k: v for k, v in optimus.items() if k != "model_type"})
        elif getattr(optimus, "model_type", None) != OptimusConfig.model_type:
            raise ValueError(f"`optimus` must be an OptimusConfig or its dict; got {type(optimus).__name__}")
        self.optimus = optimus
        latent = optimus.latent_size
        self.noise_size = check_int(latent if noise_size is None else noise_size, "noise_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.num_hidden_layers = check_int(num_hidden_layers, "num_hidden_layers", minimum=1)
        self.label_embedding_size = check_int(label_embedding_size, "label_embedding_size", minimum=1)
        self.classifier_weight = float(check_float(classifier_weight, "classifier_weight", minimum=0.0))
        if variant != VARIANT:
            raise ValueError(f"`variant` must be {VARIANT!r} (the only one implemented); got {variant!r}")
        self.variant = variant
        kwargs.setdefault("num_labels", 2)
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        if self.num_labels < 2:
            raise ValueError(f"label-conditional generation needs at least 2 labels; got num_labels={self.num_labels}")

    @property
    def latent_size(self) -> int:
        return self.optimus.latent_size

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None):
        return self.optimus.get_text_config(decoder=decoder, encoder=encoder)


__all__ = ["OptimusCaraConfig", "VARIANT"]
