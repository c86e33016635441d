"""Model conventions (issue 32): every model declares `_no_split_modules` and loads with `device_map="auto"` (CPU
here, accelerate installed) to the same outputs as a plain load; `gradient_checkpointing_enable()` gives the same
gradients (and the same state updates: spectral norm, batch norm, noise generators) as no checkpointing, or is
refused with a reason."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tolerances import assert_fp32_close  # noqa: E402

from hf_dgm.models.fq_biggan.configuration_fq_biggan import FQBigGANConfig  # noqa: E402
from hf_dgm.models.fq_biggan.modeling_fq_biggan import FQBigGANForImageGeneration  # noqa: E402
from hf_dgm.models.fq_stylegan.configuration_fq_stylegan import FQStyleGANConfig  # noqa: E402
from hf_dgm.models.fq_stylegan.modeling_fq_stylegan import FQStyleGANForImageGeneration  # noqa: E402
from hf_dgm.models.fq_ugatit.configuration_fq_ugatit import FQUGATITConfig  # noqa: E402
from hf_dgm.models.fq_ugatit.modeling_fq_ugatit import FQUGATITModel  # noqa: E402
from hf_dgm.models.prevalent.configuration_prevalent import PrevalentConfig, PrevalentNavigationConfig  # noqa: E402
from hf_dgm.models.prevalent.modeling_prevalent import (  # noqa: E402
    PrevalentForNavigation,
    PrevalentForPreTraining,
    PrevalentModel,
)
from hf_dgm.models.prevalent_speaker.configuration_prevalent_speaker import PrevalentSpeakerConfig  # noqa: E402
from hf_dgm.models.prevalent_speaker.modeling_prevalent_speaker import PrevalentSpeakerModel  # noqa: E402

pytest.importorskip("accelerate")
torch.set_num_threads(1)

PREVALENT = dict(
    vocab_size=60, hidden_size=32, num_attention_heads=4, intermediate_size=48, la_layers=2, vl_layers=1,
    vision_feature_size=0, angle_feature_size=8, max_position_embeddings=30, nav_hidden_size=24,
    nav_action_embedding_size=8,
)  # fmt: skip
IDS = torch.randint(1, 60, (2, 7), generator=torch.Generator().manual_seed(0))
MASK = torch.ones(2, 7, dtype=torch.long)


def _biggan():
    return FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny"))


def _stylegan():
    return FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny"))


def _ugatit():
    return FQUGATITModel(FQUGATITConfig(image_size=32, ngf=4, n_res_blocks=2, ndf=4, global_discriminator_layers=5,
                                        local_discriminator_layers=4, fq_num_embeddings=[8, 16, 16]))  # fmt: skip


def _optimus():
    from optimus_tiny import bert_config, gpt2_config

    from hf_dgm import OptimusConfig, OptimusForConditionalGeneration

    config = OptimusConfig(encoder=bert_config(40), decoder=gpt2_config(40), latent_size=8, decoder_bos_token_id=1,
                           decoder_eos_token_id=2, decoder_pad_token_id=0)  # fmt: skip
    return OptimusForConditionalGeneration(config)


def _speaker():
    config = PrevalentSpeakerConfig(token_ids=list(range(0, 40)) + [100, 101, 102], vocab_size=120, hidden_size=16,
                                    embedding_size=8, angle_feat_size=8, dropout=0.0, feature_dropout=0.0)  # fmt: skip
    return PrevalentSpeakerModel(config)


def _gan_z(model, n=2):
    return torch.randn(n, model.config.dim_z if hasattr(model.config, "dim_z") else model.config.z_dim,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip


def _run(name, model):
    """One deterministic forward pass of each model (eval mode), as a list of tensors."""
    if name == "biggan":
        z = _gan_z(model)
        labels = torch.tensor([0, 1]) if model.config.num_classes > 0 else None
        return [model.generator(z, labels)]
    if name == "stylegan":
        return [model.generator(_gan_z(model), noise_mode="const")]
    if name == "ugatit":
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
        return _tensors(model.generator_a2b(x))
    if name == "optimus":
        dec = torch.randint(3, 40, (2, 6), generator=torch.Generator().manual_seed(3))
        out = model(input_ids=IDS % 40, attention_mask=MASK, decoder_input_ids=dec, beta=0.0)
        return [out.loss, out.logits]
    if name == "speaker":
        return _speaker_run(model)
    if name == "prevalent":
        return [model(IDS, attention_mask=MASK).last_hidden_state]
    if name == "prevalent-pretraining":
        return [model(IDS, attention_mask=MASK, labels=IDS).loss]
    if name == "prevalent-navigation":
        out = model.encode(IDS, MASK)
        return [v for v in out.values() if isinstance(v, torch.Tensor)]
    raise AssertionError(name)


def _tensors(out):
    values = out.values() if hasattr(out, "values") else out
    return [t for t in values if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _speaker_run(model):
    g = torch.Generator().manual_seed(4)
    # the encoder's LSTM input is the action feature (vision + angle)
    size = next(m for m in model.modules() if isinstance(m, torch.nn.LSTM)).input_size
    action = torch.randn(2, 3, size, generator=g)
    view = torch.randn(2, 3, 4, size, generator=g)
    ids = torch.tensor([[101, 5, 6, 102], [101, 7, 102, 0]])
    out = model(action, view, input_ids=ids, attention_mask=(ids != 0).long())
    return [out.loss, out.logits]


MODELS = {
    "biggan": _biggan,
    "stylegan": _stylegan,
    "ugatit": _ugatit,
    "optimus": _optimus,
    "speaker": _speaker,
    "prevalent": lambda: PrevalentModel(PrevalentConfig(**PREVALENT)),
    "prevalent-pretraining": lambda: PrevalentForPreTraining(PrevalentConfig(**PREVALENT)),
    "prevalent-navigation": lambda: PrevalentForNavigation(PrevalentNavigationConfig(**PREVALENT)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_device_map_auto_loads_and_matches_plain_load(name, tmp_path):
    torch.manual_seed(0)
    model = MODELS[name]()
    assert type(model)._no_split_modules is not None, f"{type(model).__name__} has no _no_split_modules"
    assert model._no_split_modules, "nothing kept whole"  # (Optimus: its encoder's and decoder's layers)
    module = sys.modules[type(model).__module__]
    for class_name in type(model)._no_split_modules:
        assert class_name == "FeatureQuantizer" or isinstance(getattr(module, class_name, None), type), class_name
    from accelerate import infer_auto_device_map

    placed = infer_auto_device_map(model, no_split_module_classes=list(model._no_split_modules))
    assert placed and set(placed.values()) == {"cpu"}
    model.save_pretrained(tmp_path)
    cls = type(model)
    plain = cls.from_pretrained(tmp_path).eval()
    mapped = cls.from_pretrained(tmp_path, device_map="auto").eval()
    assert all(p.device.type == "cpu" for p in mapped.parameters())
    with torch.no_grad():
        expected, actual = _run(name, plain), _run(name, mapped)
    assert len(expected) == len(actual) > 0
    for a, e in zip(actual, expected):
        assert_fp32_close(a, e, msg=name)


def _grads_equal(make, step, checkpoint: bool):
    torch.manual_seed(0)
    model = make().train()
    if checkpoint:
        model.gradient_checkpointing_enable()
    loss = step(model)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return grads, buffers, loss.detach()


def _biggan_step(model):
    z = _gan_z(model, 4)
    labels = torch.arange(4) % max(model.config.num_classes, 1) if model.config.num_classes > 0 else None
    images = model.generator(z, labels)
    out = model.discriminator(images, labels) if labels is not None else model.discriminator(images)
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits.square().mean() + images.mean()


def _stylegan_step(model):
    g = torch.Generator().manual_seed(5)
    images = model.generator(_gan_z(model, 4), noise_mode="random", generator=g)
    out = model.discriminator(images)
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits.square().mean() + images.mean()


def _ugatit_step(model):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    return sum(t.float().square().mean() for t in _tensors(model.generator_a2b(x)))


def _prevalent_step(model):
    return model(IDS, attention_mask=MASK, labels=IDS).loss


CHECKPOINTABLE = {
    "biggan": (_biggan, _biggan_step),
    "stylegan": (_stylegan, _stylegan_step),
    "ugatit": (_ugatit, _ugatit_step),
    "prevalent-pretraining": (MODELS["prevalent-pretraining"], _prevalent_step),
}


@pytest.mark.parametrize("name", list(CHECKPOINTABLE))
def test_gradient_checkpointing_gives_the_same_gradients(name):
    make, step = CHECKPOINTABLE[name]
    assert make().supports_gradient_checkpointing
    grads, buffers, loss = _grads_equal(make, step, checkpoint=False)
    grads_ckpt, buffers_ckpt, loss_ckpt = _grads_equal(make, step, checkpoint=True)
    assert set(grads) == set(grads_ckpt) and grads
    torch.testing.assert_close(loss_ckpt, loss, rtol=0, atol=0)
    for key in grads:
        torch.testing.assert_close(grads_ckpt[key], grads[key], rtol=1e-6, atol=1e-7, msg=key)
    # spectral-norm u/sigma, batch-norm running stats, quantizer dictionaries: updated once, as without checkpointing
    for key in buffers:
        torch.testing.assert_close(buffers_ckpt[key], buffers[key], rtol=0, atol=0, msg=key)


def test_checkpointing_is_really_used():
    """The blocks are checkpointed: their forward runs again during backward."""
    model = _stylegan().train()
    model.gradient_checkpointing_enable()
    block = model.generator.synthesis.blocks[-1]
    calls = []
    handle = block.register_forward_pre_hook(lambda *a: calls.append(1))
    _stylegan_step(model).backward()
    handle.remove()
    assert len(calls) == 2


def test_speaker_refuses_gradient_checkpointing_with_a_reason():
    model = _speaker()
    assert not model.supports_gradient_checkpointing
    with pytest.raises(ValueError, match="no stack of blocks to checkpoint"):
        model.gradient_checkpointing_enable()
