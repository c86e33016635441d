"""FQ-U-GAT-IT model: shapes, AdaLIN/ILN math, CAM logits, FQ placement, ρ clipping, save/load (tiny configs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITGeneratorModel, FQUGATITModel
from hf_dgm.models.fq_ugatit.modeling_fq_ugatit import FQUGATITAdaLIN, FQUGATITILN
from hf_dgm.modules.feature_quantizer import FeatureQuantizer
from hf_dgm.training.fq_ugatit.loss import FQUGATITSteps
from tolerances import assert_fp32_close


torch.set_num_threads(1)


def tiny_config(**kwargs) -> FQUGATITConfig:
    base = dict(
        image_size=32, ngf=4, n_res_blocks=2, ndf=4, global_discriminator_layers=5, local_discriminator_layers=4,
        fq_num_embeddings=[8, 16, 16],
    )  # fmt: skip
    base.update(kwargs)
    return FQUGATITConfig(**base)


def images(batch=2, size=32, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("light", [False, True])
def test_shapes(light):
    torch.manual_seed(0)
    model = FQUGATITModel(tiny_config(light=light)).eval()
    x = images(3)
    for direction in ("A2B", "B2A"):
        out = model.translate(x, direction)
        assert out.images.shape == (3, 3, 32, 32)
        assert out.images.abs().max() <= 1
        assert out.cam_logits.shape == (3, 2)
        assert out.heatmap.shape == (3, 1, 8, 8)
    g = model.discriminator_global_a(x)
    # 5 layers: three stride-2 convs (32 -> 4), one stride-1 conv (-> 3), the output conv (-> 2)
    assert g.logits.shape == (3, 1, 2, 2) and g.cam_logits.shape == (3, 2) and g.heatmap.shape == (3, 1, 3, 3)
    local = model.discriminator_local_b(x)
    assert local.logits.shape == (3, 1, 6, 6) and local.cam_logits.shape == (3, 2)


def test_full_generator_needs_its_size_light_takes_others():
    full = FQUGATITModel(tiny_config()).eval()
    with pytest.raises(ValueError, match="32×32"):
        full.translate(images(1, 48))
    light = FQUGATITModel(tiny_config(light=True)).eval()
    assert light.translate(images(1, 48)).images.shape == (1, 3, 48, 48)
    with pytest.raises(ValueError, match="multiples of 4"):
        light.translate(images(1, 30))
    with pytest.raises(ValueError, match="direction"):
        light.translate(images(1), "A2C")


def test_adalin_is_a_mix_of_instance_and_layer_norm():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    gamma, beta = torch.randn(2, 6), torch.randn(2, 6)
    norm = FQUGATITAdaLIN(6, variance="moments")  # biased variance: torch's instance/layer norm
    with torch.no_grad():
        norm.rho.copy_(torch.rand(1, 6, 1, 1))
    instance = F.instance_norm(x, eps=1e-5)
    layer = F.layer_norm(x, x.shape[1:], eps=1e-5)
    rho = norm.rho
    expected = (rho * instance + (1 - rho) * layer) * gamma[:, :, None, None] + beta[:, :, None, None]
    torch.testing.assert_close(norm(x, gamma, beta), expected, rtol=1e-5, atol=1e-5)
    # ρ = 1 is instance norm, ρ = 0 layer norm
    with torch.no_grad():
        norm.rho.fill_(1.0)
    torch.testing.assert_close(norm(x, torch.ones(2, 6), torch.zeros(2, 6)), instance, rtol=1e-5, atol=1e-5)
    iln = FQUGATITILN(6, variance="moments")  # ρ = 0, γ = 1, β = 0 at init: layer norm
    torch.testing.assert_close(iln(x), layer, rtol=1e-5, atol=1e-5)


def test_variance_modes():
    """Default `unbiased`: UGATIT-pytorch since f7a4b59 (`torch.var(x, dim=[2, 3])`, `dim=[1, 2, 3]`);
    `nested_unbiased`: the port before it; the old name `ugatit_pytorch` reads as the nested form."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5) * 2 + 0.5
    assert FQUGATITConfig().norm_variance == "unbiased"
    for variance, in_var, ln_var in (
        ("unbiased", torch.var(x, dim=[2, 3], keepdim=True), torch.var(x, dim=[1, 2, 3], keepdim=True)),
        (
            "nested_unbiased",
            x.var(dim=2, keepdim=True).var(dim=3, keepdim=True),
            x.var(dim=1, keepdim=True).var(dim=2, keepdim=True).var(dim=3, keepdim=True),
        ),
    ):
        norm = FQUGATITILN(3, variance=variance)
        with torch.no_grad():
            norm.rho.fill_(1.0)
        expected = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(in_var + 1e-5)
        assert_fp32_close(norm(x), expected)
        with torch.no_grad():
            norm.rho.fill_(0.0)
        expected = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(ln_var + 1e-5)
        assert_fp32_close(norm(x), expected)
    assert tiny_config(norm_variance="ugatit_pytorch").norm_variance == "nested_unbiased"
    with pytest.raises(ValueError, match="norm_variance"):
        tiny_config(norm_variance="other")
    with pytest.raises(ValueError, match="spectral_norm_order"):
        tiny_config(spectral_norm_order="other")


def test_fq_sits_in_the_global_discriminators_only():
    config = tiny_config(fq_num_embeddings=[64, 128, 128])
    model = FQUGATITModel(config)
    for domain in ("a", "b"):
        quantizers = getattr(model, f"discriminator_global_{domain}").quantizers
        assert sorted(quantizers) == ["1", "2", "3"]
        assert [(q.dim, q.num_embeddings) for q in quantizers.values()] == [(8, 64), (16, 128), (32, 128)]
        assert all(q.decay == 0.85 and q.commitment == 2.0 for q in quantizers.values())
        assert not any(isinstance(m, FeatureQuantizer) for m in getattr(model, f"discriminator_local_{domain}").modules())
    assert not any(isinstance(m, FeatureQuantizer) for m in model.generator_a2b.modules())
    plain = FQUGATITModel(tiny_config(use_fq=False))
    assert not any(isinstance(m, FeatureQuantizer) for m in plain.modules())
    out = FQUGATITSteps(plain).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    assert float(out.term("quantization_loss")) == 0.0 and out.term("fq_perplexity") is None
    with pytest.raises(ValueError, match="fq_layers"):
        tiny_config(fq_layers=[1, 5])


@pytest.mark.parametrize("in_g_step", [True, False])
def test_dictionaries_move_in_d_steps_and_by_default_in_g_steps(in_g_step):
    torch.manual_seed(0)
    model = FQUGATITModel(tiny_config(fq_update_in_generator_step=in_g_step)).train()
    embed = model.discriminator_global_a.quantizers["2"].embed
    before = embed.clone()
    g = FQUGATITSteps(model).generator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    assert torch.equal(embed, before) is not in_g_step  # FQ-U-GAT-IT's G run updates them (default)
    assert g.term("quantization_loss") > 0 and g.loss.requires_grad
    before = embed.clone()
    d = FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    assert not torch.equal(embed, before)
    assert d.term("quantization_loss") > 0 and 0 < float(d.term("fq_usage")) <= 1
    torch.testing.assert_close(d.loss.detach(), d.term("d_adv_loss") + d.term("quantization_loss"))
    torch.testing.assert_close(d.term("quantization_loss"), d.term("quantization_loss_real") + d.term("quantization_loss_fake"))
    torch.testing.assert_close(d.term("d_adv_loss"), d.term("d_loss_a") + d.term("d_loss_b"))
    torch.testing.assert_close(d.term("d_adv_loss"), d.term("d_loss_real") + d.term("d_loss_fake"))
    # the D loss reaches D parameters only, the G loss reaches G (and D) parameters
    d.loss.backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator_parameters())
    # eval mode never updates
    model.eval()
    before = embed.clone()
    FQUGATITSteps(model).generator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    assert torch.equal(embed, before)


def _tf_vq_reference(calls, embed, decay, eps):
    """FQ-U-GAT-IT's `VectorQuantizerEMA` (TF, `vq_layer.py`) in float64 numpy, for a sequence of updating calls:
    nearest entries with the current dictionary, then `assign_moving_average(..., zero_debias=True)` of the counts and
    sums (accumulators from zero, divided by 1 - decay**t), Laplace smoothing, `w = ema_w / smoothed sizes`."""
    import numpy as np

    w = embed.double().numpy().copy()
    num = w.shape[1]
    biased_cs, biased_w, t = np.zeros(num), np.zeros_like(w), 0
    for flat in calls:
        flat = flat.double().numpy()
        dist = (flat**2).sum(1, keepdims=True) - 2 * flat @ w + (w**2).sum(0, keepdims=True)
        enc = np.eye(num)[dist.argmin(1)]
        biased_cs -= (biased_cs - enc.sum(0)) * (1 - decay)
        biased_w -= (biased_w - flat.T @ enc) * (1 - decay)
        t += 1
        cs, ema_w = biased_cs / (1 - decay**t), biased_w / (1 - decay**t)
        n = cs.sum()
        w = ema_w / ((cs + eps) / (n + num * eps) * n)
    return torch.from_numpy(w)


def test_dictionaries_follow_fq_ugatit_tf():
    """Default FQ: TF's zero-debiased EMA, updated by the real and fake images of the D run and by the fakes of the G
    run (FQ-U-GAT-IT `UGATIT.py`: `Discriminator_loss` holds real and fake quantizer losses, `Generator_loss` the
    fakes'; each loss evaluation runs the EMA assignment)."""
    torch.manual_seed(0)
    config = tiny_config()
    assert config.fq_zero_debias and config.fq_update_in_generator_step
    model = FQUGATITModel(config).train()
    quantizer = model.discriminator_global_a.quantizers["2"]
    assert quantizer.zero_debias
    calls = []
    quantizer.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((args[0].detach().permute(0, 2, 3, 1).reshape(-1, module.dim).clone(),
                                                   kwargs["update_dictionary"])),  # fmt: skip
        with_kwargs=True,
    )
    start = quantizer.embed.clone()
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    FQUGATITSteps(model).generator_step({"pixel_values_a": images(seed=2), "pixel_values_b": images(seed=3)})
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(seed=4), "pixel_values_b": images(seed=5)})
    assert [update for _, update in calls] == [True] * 5  # D: real, fake; G: fake; D: real, fake
    expected = _tf_vq_reference([flat for flat, _ in calls], start, config.fq_decay, config.fq_eps)
    assert_fp32_close(quantizer.embed, expected.float())
    assert float(quantizer.ema_steps) == 5


def test_step_outputs_hold_every_term():
    """The per-discriminator and per-domain terms add up to the totals, as the port groups them."""
    torch.manual_seed(0)
    cfg = tiny_config(use_fq=False, adv_weight=0.5, cycle_weight=3.0, identity_weight=2.0, cam_weight=7.0)
    model = FQUGATITModel(cfg).train()
    d = FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    for domain in ("a", "b"):
        parts = [d.term(f"d_{t}_loss_{k}_{domain}") for k in ("global", "local") for t in ("adv", "cam")]
        torch.testing.assert_close(d.term(f"d_loss_{domain}"), 0.5 * sum(parts))
    g = FQUGATITSteps(model).generator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    for domain in ("a", "b"):
        adv = sum(g.term(f"g_{t}_loss_{k}_{domain}") for k in ("global", "local") for t in ("adv", "cam"))
        expected = 0.5 * adv + 3 * g.term(f"cycle_loss_{domain}") + 2 * g.term(f"identity_loss_{domain}")
        expected = expected + 7 * g.term(f"cam_loss_{domain}")
        torch.testing.assert_close(g.term(f"g_loss_{domain}"), expected)
    torch.testing.assert_close(g.loss.detach(), g.term("g_loss_a") + g.term("g_loss_b"))
    torch.testing.assert_close(g.term("cycle_loss"), g.term("cycle_loss_a") + g.term("cycle_loss_b"))
    assert g.term("fake_a").shape == d.term("fake_a").shape == (2, 3, 32, 32)


def test_forward_rejects_unknown_and_misplaced_arguments():
    model = FQUGATITModel(tiny_config(use_fq=False)).eval()
    steps = FQUGATITSteps(model)  # the training steps take the trainer's batch entries: unknown ones are refused
    with pytest.raises(ValueError, match="pixel_value_a"):
        steps.discriminator_step({"pixel_value_a": images(), "pixel_values_b": images()})
    with pytest.raises(TypeError, match="directions"):
        model(pixel_values=images(), directions="B2A")
    with pytest.raises(TypeError, match="pixel_values_a"):  # forward translates: it takes no training batch
        model(pixel_values=images(), pixel_values_a=images())
    with pytest.raises(ValueError, match="not `pixel_values`"):
        steps.generator_step({"pixel_values": images(), "pixel_values_a": images(), "pixel_values_b": images()})
    generators = FQUGATITGeneratorModel(tiny_config(use_fq=False)).eval()
    with pytest.raises(TypeError, match="bogus"):
        generators(images(), bogus=1)
    # the trainer's counters are accepted
    FQUGATITSteps(model).generator_step({"pixel_values_a": images(), "pixel_values_b": images()}, step=3)


def test_generator_loss_weights():
    torch.manual_seed(0)
    config = tiny_config(use_fq=False)
    model = FQUGATITModel(config).eval()
    g = FQUGATITSteps(model).generator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})
    expected = g.term("g_adv_loss") + 10 * g.term("cycle_loss") + 10 * g.term("identity_loss") + 1000 * g.term("cam_loss")
    torch.testing.assert_close(g.loss.detach(), expected)


def test_clip_rho_keeps_rho_in_range():
    model = FQUGATITModel(tiny_config())
    rhos = list(model.generator_a2b.rho_parameters()) + list(model.generator_b2a.rho_parameters())
    # 2 res blocks × 2 AdaLIN + 2 ILN per generator
    assert len(rhos) == 12
    with torch.no_grad():
        for i, rho in enumerate(rhos):
            rho.fill_(-0.5 if i % 2 else 1.7)
    model.clip_rho()
    assert all(float(r.detach().min()) >= 0.0 and float(r.detach().max()) <= 1.0 for r in rhos)
    assert {float(r.detach().mean()) for r in rhos} == {0.0, 1.0}


def test_save_load_identity(tmp_path):
    torch.manual_seed(0)
    model = FQUGATITModel(tiny_config()).train()
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": images(), "pixel_values_b": images(seed=1)})  # move dictionaries and SN vectors
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = FQUGATITModel.from_pretrained(tmp_path).eval()
    state, state2 = model.state_dict(), loaded.state_dict()
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    x = images(2, seed=3)
    # Two instances with bitwise-equal state may still run different kernels (memory alignment): outputs are compared
    # at the fp32 tolerance, the state dicts bitwise (above).
    with torch.no_grad():
        assert_fp32_close(loaded.translate(x, "B2A").images, model.translate(x, "B2A").images)
        assert_fp32_close(loaded.discriminator_global_b(x).logits, model.discriminator_global_b(x).logits)
        generators = FQUGATITGeneratorModel.from_pretrained(tmp_path).eval()
        assert not any("discriminator" in k for k in generators.state_dict())
        for direction in ("A2B", "B2A"):
            assert_fp32_close(generators(x, direction).images, model.translate(x, direction).images)
