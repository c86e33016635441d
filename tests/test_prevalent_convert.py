"""The PREVALENT converter: state dicts with the original `DicAddActionPreTrain` key names and shapes, converted, must
give the outputs of a reference forward written here from the original's math (`vilmodel.py`: DicModel, LXRTXLayer,
VisionEncoder; BertOnlyMLMHead; NextActionPrediction)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from hf_dgm.models.prevalent.convert_prevalent import convert, convert_state_dict, load_original

H, HEADS, INTER, VOCAB, POS, LA, VL, IMG, ANGLE, ACTIONS = 32, 4, 48, 50, 20, 2, 2, 24, 8, 7


def _ln(prefix):
    return {prefix + ".weight": 1 + 0.1 * torch.randn(H), prefix + ".bias": 0.1 * torch.randn(H)}


def _lin(prefix, i, o):
    return {prefix + ".weight": torch.randn(o, i) / math.sqrt(i), prefix + ".bias": 0.1 * torch.randn(o)}


def _attention(prefix):
    sd = {}
    for n in ("query", "key", "value"):
        sd.update(_lin(f"{prefix}.self.{n}", H, H))
    sd.update(_lin(f"{prefix}.output.dense", H, H))
    sd.update(_ln(f"{prefix}.output.LayerNorm"))
    return sd


def original_state_dict(gamma_beta: bool = False) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd = {
        "bert.embeddings.word_embeddings.weight": torch.randn(VOCAB, H),
        "bert.embeddings.position_embeddings.weight": torch.randn(POS, H),
        "bert.embeddings.token_type_embeddings.weight": torch.randn(2, H),
    }
    sd.update(_ln("bert.embeddings.LayerNorm"))
    for i in range(LA):
        p = f"bert.lalayer.{i}"
        sd.update(_attention(f"{p}.attention"))
        sd.update(_lin(f"{p}.intermediate.dense", H, INTER))
        sd.update(_lin(f"{p}.output.dense", INTER, H))
        sd.update(_ln(f"{p}.output.LayerNorm"))
    for i in range(VL):
        p = f"bert.addlayer.{i}"
        for n in ("query", "key", "value"):
            sd.update(_lin(f"{p}.visual_attention.att.{n}", H, H))
        sd.update(_lin(f"{p}.visual_attention.output.dense", H, H))
        sd.update(_ln(f"{p}.visual_attention.output.LayerNorm"))
        for s in ("lang", "visn"):
            sd.update(_attention(f"{p}.{s}_self_att"))
            sd.update(_lin(f"{p}.{s}_inter.dense", H, INTER))
            sd.update(_lin(f"{p}.{s}_output.dense", INTER, H))
            sd.update(_ln(f"{p}.{s}_output.LayerNorm"))
    sd.update(_lin("bert.vision_encoder.visn_fc", IMG + ANGLE, H))
    sd.update({"bert.vision_encoder.visn_layer_norm.weight": 1 + 0.1 * torch.randn(H), "bert.vision_encoder.visn_layer_norm.bias": 0.1 * torch.randn(H)})
    sd.update(_lin("bert.pooler.dense", H, H))
    sd.update(_lin("mlmhead.predictions.transform.dense", H, H))
    sd.update(_ln("mlmhead.predictions.transform.LayerNorm"))
    sd["mlmhead.predictions.bias"] = 0.1 * torch.randn(VOCAB)
    sd["mlmhead.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    sd.update(_lin("next_action.linear", H, ACTIONS))
    if gamma_beta:
        sd = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in sd.items()}
    return sd


# ---------------------------------------------------------------------------------------- reference (original math)
def _gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _layer_norm(sd, p, x, eps=1e-12):
    return F.layer_norm(x, (H,), sd[p + ".weight"], sd[p + ".bias"], eps)


def _linear(sd, p, x):
    return x @ sd[p + ".weight"].T + sd[p + ".bias"]


def _scores(sd, p, hidden, context, mask):
    def split(x):
        return x.view(x.shape[0], x.shape[1], HEADS, H // HEADS).permute(0, 2, 1, 3)

    q, k, v = split(_linear(sd, p + ".query", hidden)), split(_linear(sd, p + ".key", context)), split(_linear(sd, p + ".value", context))
    att = q @ k.transpose(-1, -2) / math.sqrt(H // HEADS) + mask
    out = (att.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(hidden.shape[0], hidden.shape[1], H)
    return out


def _self_output(sd, p, x, residual):
    return _layer_norm(sd, p + ".LayerNorm", _linear(sd, p + ".dense", x) + residual)


def _bert_attention(sd, p, x, mask):  # BertAttention
    return _self_output(sd, p + ".output", _scores(sd, p + ".self", x, x, mask), x)


def _ffn(sd, inter, out, x):  # BertIntermediate + BertOutput
    return _self_output(sd, out, _gelu(_linear(sd, inter + ".dense", x)), x)


def reference_forward(sd, input_ids, attention_mask, img_feats):
    """DicModel.forward + the two heads, in eval mode (dropout off), -10000 additive masks as the original."""
    ext = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
    pos = torch.arange(input_ids.shape[1])[None]
    emb = sd["bert.embeddings.word_embeddings.weight"][input_ids] + sd["bert.embeddings.position_embeddings.weight"][pos]
    emb = emb + sd["bert.embeddings.token_type_embeddings.weight"][torch.zeros_like(input_ids)]
    text = _layer_norm(sd, "bert.embeddings.LayerNorm", emb)
    for i in range(LA):
        p = f"bert.lalayer.{i}"
        att = _bert_attention(sd, p + ".attention", text, ext)
        text = _ffn(sd, p + ".intermediate", p + ".output", att)
    img_mask = torch.zeros(img_feats.shape[0], 1, 1, img_feats.shape[1])  # all views attended
    visn = _layer_norm(sd, "bert.vision_encoder.visn_layer_norm", _linear(sd, "bert.vision_encoder.visn_fc", img_feats))
    lang = text
    for i in range(VL):
        p = f"bert.addlayer.{i}"
        # the same visual_attention module both ways
        l_cross = _self_output(sd, p + ".visual_attention.output", _scores(sd, p + ".visual_attention.att", lang, visn, img_mask), lang)
        v_cross = _self_output(sd, p + ".visual_attention.output", _scores(sd, p + ".visual_attention.att", visn, lang, ext), visn)
        l_self = _bert_attention(sd, p + ".lang_self_att", l_cross, ext)
        v_self = _bert_attention(sd, p + ".visn_self_att", v_cross, img_mask)
        lang = _ffn(sd, p + ".lang_inter", p + ".lang_output", l_self)
        visn = _ffn(sd, p + ".visn_inter", p + ".visn_output", v_self)
    pooled = torch.tanh(_linear(sd, "bert.pooler.dense", lang[:, 0]))
    t = _layer_norm(sd, "mlmhead.predictions.transform.LayerNorm", _gelu(_linear(sd, "mlmhead.predictions.transform.dense", lang)))
    mlm = t @ sd["mlmhead.predictions.decoder.weight"].T + sd["mlmhead.predictions.bias"]
    action = F.log_softmax(_linear(sd, "next_action.linear", pooled), -1)
    return lang, pooled, mlm, action


def _write_checkpoint(tmp_path, sd, with_config=True):
    folder = tmp_path / "checkpoint-12864"
    folder.mkdir()
    torch.save(sd, folder / "pytorch_model.bin")
    if with_config:
        config = {
            "vocab_size": VOCAB, "hidden_size": H, "num_attention_heads": HEADS, "intermediate_size": INTER,
            "num_hidden_layers": 12, "hidden_act": "gelu", "max_position_embeddings": POS, "type_vocab_size": 2,
            "layer_norm_eps": 1e-12, "img_feature_dim": IMG + ANGLE, "img_feature_type": "", "la_layers": LA,
            "vl_layers": VL, "update_lang_bert": True, "update_add_layer": True, "action_space": ACTIONS,
        }  # fmt: skip
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("gamma_beta", [False, True])
def test_converted_outputs_match_the_original_math(tmp_path, gamma_beta):
    sd = original_state_dict(gamma_beta)
    folder = _write_checkpoint(tmp_path, sd)
    model, dropped = convert(folder, angle_feature_size=ANGLE)
    assert dropped == []
    assert (model.config.la_layers, model.config.vl_layers, model.config.vision_feature_size) == (LA, VL, IMG)
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 9))
    mask = torch.ones(3, 9)
    mask[1, 6:] = 0
    mask[2, 4:] = 0
    img = torch.randn(3, 5, IMG + ANGLE)
    _, sd_ref = load_original(folder)
    lang, pooled, mlm, action = reference_forward(sd_ref, ids, mask, img)
    with torch.no_grad():
        out = model(ids, mask, vision_features=img)
    real = mask.bool()
    torch.testing.assert_close(out.prediction_logits[real], mlm[real], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.action_logits.log_softmax(-1), action, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(model.prevalent(ids, mask, vision_features=img).pooler_output, pooled, atol=1e-4, rtol=1e-4)


def test_conversion_round_trips_through_save_pretrained(tmp_path):
    from hf_dgm.convert.__main__ import main
    from transformers import AutoModel, AutoModelForPreTraining

    folder = _write_checkpoint(tmp_path, original_state_dict(), with_config=False)  # config inferred from shapes
    out = tmp_path / "converted"
    assert main(["prevalent", "--checkpoint", str(folder / "pytorch_model.bin"), "--out", str(out), "--angle_feature_size", str(ANGLE), "--num_attention_heads", str(HEADS)]) == 0
    assert not list(out.glob("*.bin")) and list(out.glob("*.safetensors"))
    model = AutoModelForPreTraining.from_pretrained(out).eval()
    assert type(model).__name__ == "PrevalentForPreTraining"
    assert model.lm_head.decoder.weight.data_ptr() == model.prevalent.embeddings.word_embeddings.weight.data_ptr()
    ids = torch.randint(1, VOCAB, (2, 6))
    img = torch.randn(2, 4, IMG + ANGLE)
    sd = original_state_dict()
    _, pooled, mlm, _ = reference_forward(sd, ids, torch.ones(2, 6), img)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, vision_features=img).prediction_logits, mlm, atol=1e-4, rtol=1e-4)
        encoder = AutoModel.from_pretrained(out).eval()
        assert type(encoder).__name__ == "PrevalentModel"
        torch.testing.assert_close(encoder(ids, vision_features=img).pooler_output, pooled, atol=1e-4, rtol=1e-4)


def test_unknown_keys_are_reported_and_bad_checkpoints_refused(tmp_path):
    sd = original_state_dict()
    sd["is_match.linear.weight"] = torch.zeros(2, H)
    converted, dropped = convert_state_dict(sd)
    assert dropped == ["is_match.linear.weight"] and "prevalent.cross_modal_layers.1.cross_attention.self.query.weight" in converted
    bad = dict(sd)
    del bad["bert.vision_encoder.visn_fc.weight"]
    folder = _write_checkpoint(tmp_path, bad, with_config=False)
    with pytest.raises(ValueError, match="visn_fc"):
        convert(folder, angle_feature_size=ANGLE)
    with pytest.raises(ValueError, match="num_attention_heads"):
        convert(_write_checkpoint(tmp_path / "b", sd, with_config=False) if (tmp_path / "b").mkdir() is None else None, ANGLE)
    with pytest.raises(ValueError, match="neither"):
        convert(tmp_path / "nowhere")


def test_pretraining_losses_and_gradients_match_the_original_heads_with_minus_one_labels(tmp_path):
    """Pins what benchmarks/parity/prevalent.py established against PREVALENT_R2R's `DicAddActionPreTrain` (every
    stream, loss and gradient equal to fp32 rounding, ≤ 2.5e-6 relative at the released size): the original's loss is
    `CrossEntropyLoss(ignore_index=-1)` on the MLM logits plus the same on the action head's log-probabilities, with
    -1 marking unlabelled tokens and actions; our model takes those labels as they are."""
    from tolerances import assert_fp32_close

    folder = _write_checkpoint(tmp_path, original_state_dict())
    model, _ = convert(folder, angle_feature_size=ANGLE)
    _, loaded = load_original(folder)
    # leaves for the reference's gradients; the MLM decoder is the word-embedding tensor, as in the original
    sd = {k: v.clone().requires_grad_(True) for k, v in loaded.items() if k != "mlmhead.predictions.decoder.weight"}
    sd["mlmhead.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]
    torch.manual_seed(2)
    ids = torch.randint(1, VOCAB, (4, 9))
    mask = torch.ones(4, 9)
    mask[1, 6:] = 0
    mask[3, 3:] = 0
    img = torch.randn(4, 5, IMG + ANGLE)
    labels = torch.full_like(ids, -1)
    labels[:, 1] = ids[:, 1]
    labels[0, 4] = ids[0, 4]
    actions = torch.tensor([2, -1, 6, 0])
    _, _, mlm, action = reference_forward(sd, ids, mask, img)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=-1)
    mask_loss, action_loss = criterion(mlm.reshape(-1, VOCAB), labels.flatten()), criterion(action, actions)
    (mask_loss + action_loss).backward()
    out = model(ids, mask, vision_features=img, labels=labels, action_labels=actions)
    out.loss.backward()
    assert_fp32_close(out.masked_lm_loss, mask_loss)
    assert_fp32_close(out.action_loss, action_loss)
    expected, dropped = convert_state_dict({k: v.grad for k, v in sd.items() if k != "mlmhead.predictions.decoder.weight"})
    assert dropped == []
    own = dict(model.named_parameters())
    assert set(expected) == set(own)
    for name, grad in expected.items():
        if grad is None:  # the last cross-modal layer's vision self-attention / feed-forward feed no loss
            assert own[name].grad is None, name
        elif name.endswith(".key.bias"):  # zero in exact arithmetic (the softmax cancels it): rounding noise only
            assert float(own[name].grad.abs().max()) < 1e-5 and float(grad.abs().max()) < 1e-5, name
        else:
            assert_fp32_close(own[name].grad, grad, msg=name)
    assert sum(g is None for g in expected.values()) == 16  # that vision self-attention (10 tensors) and feed-forward (6)
