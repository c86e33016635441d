"""How much of a composed Optimus trains: the decoder in full, as low-rank adapters (LoRA, `peft`), or frozen; the
encoder in full or frozen. The latent heads (`posterior`, `latent_to_memory`, `latent_to_embedding`) always train.

LoRA adapters are injected into the decoder module in place (`peft.inject_adapter_in_model`: the decoder stays the
same `PreTrainedModel`, its targeted linear layers become `peft` LoRA layers), so the Optimus forward, generation and
the latent memory slot are unchanged. [`merge_decoder_lora`] folds each adapter into its base weight
(W ← W + (α/r)·B·A) and puts the plain linear layer back: the merged model saves, loads and publishes as a full
Optimus with no `peft` at load time.
"""

from __future__ import annotations

import torch
from torch import nn

DECODER_TRAINING = ("full", "lora", "frozen")
ENCODER_TRAINING = ("full", "frozen")


def _require_peft():
    try:
        import peft  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "decoder_training='lora' needs `peft`: pip install 'hf-dgm[main-job]' (or `pip install peft`)"
        ) from err


def add_decoder_lora(model, rank: int = 16, alpha: float = 32.0, target_modules: str | list[str] = "q_proj,v_proj",
                     dropout: float = 0.0) -> int:
    """
    Inject LoRA adapters of rank `rank` (scale `alpha / rank`) into the linear layers of `model.get_decoder()` named by
    `target_modules` (comma-separated names such as `q_proj,v_proj`, or `all-linear`), freeze every other decoder
    weight, and return the number of adapter parameters. The adapters start as the identity (B = 0).
    """
    return add_lora(model.get_decoder(), rank, alpha, target_modules, dropout)


def add_lora(decoder: nn.Module, rank: int = 16, alpha: float = 32.0, target_modules: str | list[str] = "q_proj,v_proj",
             dropout: float = 0.0) -> int:
    """[`add_decoder_lora`] on a causal LM itself (the main job's plain-decoder baseline trains the same adapters)."""
    _require_peft()
    from peft import LoraConfig, inject_adapter_in_model

    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"`lora_rank` must be a positive int; got {rank!r}")
    if isinstance(target_modules, str):
        target_modules = target_modules if target_modules == "all-linear" else [t.strip() for t in target_modules.split(",") if t.strip()]
    if not target_modules:
        raise ValueError("`lora_target_modules` names no module")
    for param in decoder.parameters():
        param.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
    try:
        inject_adapter_in_model(config, decoder)
    except ValueError as err:
        raise ValueError(f"LoRA found no decoder layer named by `lora_target_modules` {target_modules!r}: {err}") from None
    count = 0
    for name, param in decoder.named_parameters():
        is_adapter = "lora_" in name
        param.requires_grad_(is_adapter)
        count += param.numel() if is_adapter else 0
    if count == 0:
        raise ValueError(f"LoRA added no parameter for `lora_target_modules` {target_modules!r}")
    return count


def has_decoder_lora(model) -> bool:
    """Whether `model`'s decoder holds `peft` LoRA layers."""
    return any(type(m).__module__.startswith("peft.") for m in model.get_decoder().modules())


@torch.no_grad()
def merge_decoder_lora(model) -> int:
    """Fold every LoRA adapter of `model`'s decoder into its base weight and put the plain layer back; every decoder
    weight is trainable again afterwards. Returns the number of merged layers (0: nothing to merge)."""
    return merge_lora(model.get_decoder())


@torch.no_grad()
def merge_lora(decoder: nn.Module) -> int:
    """[`merge_decoder_lora`] on a causal LM itself."""
    merged = 0
    for name, module in list(decoder.named_modules()):
        if not hasattr(module, "get_base_layer") or not hasattr(module, "merge") or not hasattr(module, "lora_A"):
            continue
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = decoder.get_submodule(parent_name) if parent_name else decoder
        setattr(parent, child, module.get_base_layer())
        merged += 1
    if merged:
        for param in decoder.parameters():
            param.requires_grad_(True)
        # peft marks the module as adapted; the merged decoder is a plain model again
        if "peft_config" in vars(decoder):
            del decoder.peft_config
    return merged


def configure_trainable_parts(model, decoder_training: str = "full", encoder_training: str = "full",
                              lora_rank: int = 16, lora_alpha: float = 32.0,
                              lora_target_modules: str = "q_proj,v_proj", lora_dropout: float = 0.0) -> dict[str, int]:
    """
    Set which parts of `model` (an `OptimusForConditionalGeneration`) train: `decoder_training` in
    `full | lora | frozen`, `encoder_training` in `full | frozen`; the latent heads always train. Returns the counts
    `{"trainable": n, "total": n, "adapter": n}` of parameters (adapters included in both).
    """
    if decoder_training not in DECODER_TRAINING:
        raise ValueError(f"`decoder_training` must be one of {DECODER_TRAINING}; got {decoder_training!r}")
    if encoder_training not in ENCODER_TRAINING:
        raise ValueError(f"`encoder_training` must be one of {ENCODER_TRAINING}; got {encoder_training!r}")
    adapter = 0
    if decoder_training == "lora":
        adapter = add_decoder_lora(model, lora_rank, lora_alpha, lora_target_modules, lora_dropout)
    elif decoder_training == "frozen":
        _freeze(model.get_decoder())
    if encoder_training == "frozen":
        _freeze(model.get_encoder())
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params),
            "adapter": adapter}


def _freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)
        param.grad = None


__all__ = ["DECODER_TRAINING", "ENCODER_TRAINING", "add_decoder_lora", "add_lora", "configure_trainable_parts",
           "has_decoder_lora", "merge_decoder_lora", "merge_lora"]
