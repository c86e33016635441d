"""Convert the released PREVALENT pretrained checkpoint (e.g. `checkpoint-12864/`) into an hf-dgm folder.

The original (weituo12321/PREVALENT, PREVALENT_R2R `r2r_src/vilmodel.py`, pytorch-transformers 1.2) saves the
pretraining model `DicAddActionPreTrain` with `save_pretrained`: `config.json` (a BertConfig plus `la_layers`,
`vl_layers`, `img_feature_dim`, `action_space`, ...) and `pytorch_model.bin` with the keys

* `bert.embeddings.{word,position,token_type}_embeddings.weight`, `bert.embeddings.LayerNorm.*` — BERT embeddings;
* `bert.lalayer.N.{attention.self.{query,key,value},attention.output.{dense,LayerNorm},intermediate.dense,
  output.{dense,LayerNorm}}.*` — the language-only BERT layers (`DicModel`; `VicModel` names them
  `bert.encoder.layer.N.*`, also accepted);
* `bert.addlayer.N.{visual_attention.att.{query,key,value}, visual_attention.output.{dense,LayerNorm},
  lang_self_att.*, lang_inter.dense, lang_output.*, visn_self_att.*, visn_inter.dense, visn_output.*}` — the
  cross-modal layers (`LXRTXLayer`; `visual_attention` is the one cross-attention module used in both directions);
* `bert.vision_encoder.{visn_fc,visn_layer_norm}.*`, `bert.pooler.dense.*`;
* `mlmhead.predictions.{transform.dense,transform.LayerNorm,decoder,bias}` (decoder tied to the word embeddings) and
  `next_action.linear.*` (action prediction; its LogSoftmax has no weights).

Old TensorFlow-style LayerNorm names (`gamma`/`beta`) are accepted. Keys of other pretraining heads some variants
carry (`is_match`, `order`, ...) are reported and dropped.

Usage:
    python -m hf_dgm.convert prevalent --checkpoint checkpoint-12864 --out prevalent-converted \
        [--angle_feature_size 128] [--num_attention_heads 12 (only without config.json)] [--tokenizer DIR]

Weights are read with `torch.load(weights_only=True)` (no pickled code runs) and written as safetensors.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch


logger = logging.getLogger(__name__)

WEIGHTS_NAMES = ("pytorch_model.bin", "model.safetensors")

_LAYER_PARTS = (
    ("attention.self.", "attention.self."),
    ("attention.output.", "attention.output."),
    ("intermediate.dense.", "intermediate.dense."),
    ("output.", "output."),
)
_CROSS_PARTS = (
    ("visual_attention.att.", "cross_attention.self."),
    ("visual_attention.output.", "cross_attention.output."),
    ("lang_self_att.self.", "language_self_attention.self."),
    ("lang_self_att.output.", "language_self_attention.output."),
    ("lang_inter.dense.", "language_intermediate.dense."),
    ("lang_output.", "language_output."),
    ("visn_self_att.self.", "vision_self_attention.self."),
    ("visn_self_att.output.", "vision_self_attention.output."),
    ("visn_inter.dense.", "vision_intermediate.dense."),
    ("visn_output.", "vision_output."),
)
_FIXED = {
    "bert.vision_encoder.visn_fc.weight": "prevalent.vision_encoder.projection.weight",
    "bert.vision_encoder.visn_fc.bias": "prevalent.vision_encoder.projection.bias",
    "bert.vision_encoder.visn_layer_norm.weight": "prevalent.vision_encoder.layer_norm.weight",
    "bert.vision_encoder.visn_layer_norm.bias": "prevalent.vision_encoder.layer_norm.bias",
    "bert.pooler.dense.weight": "prevalent.pooler.dense.weight",
    "bert.pooler.dense.bias": "prevalent.pooler.dense.bias",
    "mlmhead.predictions.transform.dense.weight": "lm_head.transform_dense.weight",
    "mlmhead.predictions.transform.dense.bias": "lm_head.transform_dense.bias",
    "mlmhead.predictions.transform.LayerNorm.weight": "lm_head.transform_layer_norm.weight",
    "mlmhead.predictions.transform.LayerNorm.bias": "lm_head.transform_layer_norm.bias",
    "mlmhead.predictions.bias": "lm_head.bias",
    "next_action.linear.weight": "action_head.weight",
    "next_action.linear.bias": "action_head.bias",
}
# tied to the word embeddings in both the original and the converted model
_TIED = {"mlmhead.predictions.decoder.weight"}
_LANG_LAYER = re.compile(r"^bert\.(?:lalayer|encoder\.layer)\.(\d+)\.(.+)$")
_CROSS_LAYER = re.compile(r"^bert\.addlayer\.(\d+)\.(.+)$")


# ------------------------------------------------------------------------------------------------------ loading
def load_original(checkpoint: str | Path) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """(config dict or None, state dict) from a checkpoint folder (config.json + weights) or a weights file."""
    path = Path(checkpoint)
    config = None
    if path.is_dir():
        if (path / "config.json").is_file():
            with open(path / "config.json", encoding="utf-8") as f:
                config = json.load(f)
        for name in WEIGHTS_NAMES:
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ValueError(f"{checkpoint} holds none of {WEIGHTS_NAMES}")
    elif not path.is_file():
        raise ValueError(f"{checkpoint} is neither a checkpoint folder nor a weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state_dict = load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for bad headers and short files
            raise ValueError(
                f"--checkpoint: {path} is not a readable safetensors file ({type(err).__name__}: {err}); it is "
                "truncated or corrupted (expected the original Prevalent weights: pytorch_model.bin or safetensors)"
            ) from None
    else:
        from ...convert import load_state_dict_weights_only

        state_dict = load_state_dict_weights_only(path, "--checkpoint")
    if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        found = type(state_dict).__name__
        if isinstance(state_dict, dict):
            key, value = next((k, v) for k, v in state_dict.items() if not isinstance(v, torch.Tensor))
            found = f"a dict whose {key!r} is a {type(value).__name__}"
        raise ValueError(
            f"--checkpoint: {path} holds {found}; expected a flat state dict (parameter name -> tensor) of the "
            "original Prevalent model"
        )
    # `module.` from DataParallel, old LayerNorm names
    fixed = {}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        fixed[key] = value
    return config, fixed


# ------------------------------------------------------------------------------------------------------ mapping
def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Original keys → hf-dgm `PrevalentForPreTraining` keys. Returns (converted, dropped original keys)."""
    if not any(k.startswith("bert.") for k in state_dict):
        state_dict = {("bert." + k if not k.startswith(("mlmhead.", "next_action.")) else k): v for k, v in state_dict.items()}
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        if key in _TIED or key.endswith("position_ids"):
            continue
        if key in _FIXED:
            out[_FIXED[key]] = value
            continue
        if key.startswith("bert.embeddings."):
            out["prevalent." + key[len("bert."):]] = value
            continue
        m = _LANG_LAYER.match(key)
        if m:
            index, rest = m.groups()
            for old, new in _LAYER_PARTS:
                if rest.startswith(old):
                    out[f"prevalent.language_layers.{index}.{new}{rest[len(old):]}"] = value
                    break
            else:
                dropped.append(key)
            continue
        m = _CROSS_LAYER.match(key)
        if m:
            index, rest = m.groups()
            for old, new in _CROSS_PARTS:
                if rest.startswith(old):
                    out[f"prevalent.cross_modal_layers.{index}.{new}{rest[len(old):]}"] = value
                    break
            else:
                dropped.append(key)
            continue
        dropped.append(key)
    return out, dropped


def _count(state_dict: dict[str, torch.Tensor], pattern: re.Pattern) -> int:
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    if indices and indices != set(range(max(indices) + 1)):
        raise ValueError(f"layer indices {sorted(indices)} are not contiguous from 0")
    return len(indices)


def build_config(
    original: dict[str, Any] | None,
    state_dict: dict[str, torch.Tensor],
    angle_feature_size: int,
    num_attention_heads: int | None = None,
):
    """
    A `PrevalentConfig` from the original config (when present) checked against the weights' shapes. The number of
    attention heads is not visible in the weights: without config.json it must be given.
    """
    from ...models.prevalent import PrevalentConfig

    original = dict(original or {})
    sd = state_dict if any(k.startswith("bert.") for k in state_dict) else {"bert." + k: v for k, v in state_dict.items()}
    try:
        vocab_size, hidden_size = sd["bert.embeddings.word_embeddings.weight"].shape
        img_dim = sd["bert.vision_encoder.visn_fc.weight"].shape[1]
    except KeyError as err:
        raise ValueError(f"the checkpoint lacks {err.args[0]!r}: not a PREVALENT DicModel/VicModel checkpoint") from None
    la_layers = _count(sd, _LANG_LAYER)
    vl_layers = _count(sd, _CROSS_LAYER)
    if img_dim < angle_feature_size:
        raise ValueError(f"the vision encoder takes {img_dim} features, fewer than angle_feature_size={angle_feature_size}")
    intermediate = None
    for key, value in sd.items():
        if key.endswith("intermediate.dense.weight") or key.endswith("_inter.dense.weight"):
            intermediate = value.shape[0]
            break
    action_weight = sd.get("next_action.linear.weight")
    heads = num_attention_heads or original.get("num_attention_heads")
    if heads is None:
        raise ValueError("no config.json: pass --num_attention_heads (12 for the released bert-base-sized checkpoint)")
    for name, expected, found in (
        ("hidden_size", original.get("hidden_size"), hidden_size),
        ("vocab_size", original.get("vocab_size"), vocab_size),
        ("la_layers", original.get("la_layers"), la_layers),
        ("vl_layers", original.get("vl_layers"), vl_layers),
        ("img_feature_dim", original.get("img_feature_dim"), img_dim),
        ("intermediate_size", original.get("intermediate_size"), intermediate),
    ):
        if expected is not None and found is not None and expected != found:
            raise ValueError(f"config.json says {name}={expected} but the weights have {found}")
    return PrevalentConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_attention_heads=heads,
        intermediate_size=intermediate or original.get("intermediate_size", 4 * hidden_size),
        hidden_act=original.get("hidden_act", "gelu"),
        hidden_dropout_prob=original.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=original.get("attention_probs_dropout_prob", 0.1),
        max_position_embeddings=sd["bert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=sd["bert.embeddings.token_type_embeddings.weight"].shape[0],
        initializer_range=original.get("initializer_range", 0.02),
        layer_norm_eps=original.get("layer_norm_eps", 1e-12),
        la_layers=la_layers,
        vl_layers=vl_layers,
        vision_feature_size=img_dim - angle_feature_size,
        angle_feature_size=angle_feature_size,
        action_space=action_weight.shape[0] if action_weight is not None else original.get("action_space", 37),
    )


def convert(checkpoint: str | Path, angle_feature_size: int = 128, num_attention_heads: int | None = None):
    """Load an original checkpoint and return the `PrevalentForPreTraining` (eval mode) and the dropped keys."""
    from ...models.prevalent import PrevalentForPreTraining

    original_config, state_dict = load_original(checkpoint)
    config = build_config(original_config, state_dict, angle_feature_size, num_attention_heads)
    converted, dropped = convert_state_dict(state_dict)
    model = PrevalentForPreTraining(config)
    own = model.state_dict()
    for key, value in converted.items():
        if key not in own:
            raise ValueError(f"converted key {key!r} has no place in PrevalentForPreTraining")
        if own[key].shape != value.shape:
            raise ValueError(f"{key}: checkpoint shape {tuple(value.shape)} != model shape {tuple(own[key].shape)}")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if k != "lm_head.decoder.weight"]
    if any(not k.startswith(("lm_head.", "action_head.")) for k in missing):
        raise ValueError(f"the checkpoint lacks encoder weights: {sorted(missing)[:10]}")
    if missing:
        logger.warning("heads not in the checkpoint (randomly initialised): %s", missing)
    model.tie_weights()
    return model.eval(), dropped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="original folder (config.json + pytorch_model.bin) or weights file")
    parser.add_argument("--out", required=True, help="output folder (safetensors)")
    parser.add_argument("--angle_feature_size", type=int, default=128, help="angle part of img_feature_dim (128 in PREVALENT)")
    parser.add_argument("--num_attention_heads", type=int, default=None, help="needed only without config.json")
    parser.add_argument("--tokenizer", default=None, help="BERT uncased tokenizer folder to save alongside (bert-base-uncased's vocab)")


def run(args: argparse.Namespace) -> int:
    model, dropped = convert(args.checkpoint, args.angle_feature_size, args.num_attention_heads)
    if dropped:
        logger.warning("dropped %d keys of heads hf-dgm does not carry: %s", len(dropped), sorted(dropped)[:20])
    model.save_pretrained(args.out)
    if args.tokenizer:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(args.out)
    print(f"converted {args.checkpoint} -> {args.out} (la_layers={model.config.la_layers}, vl_layers={model.config.vl_layers}, "
          f"vision_feature_size={model.config.vision_feature_size}; {len(dropped)} keys dropped)")
    return 0
