"""Tests of FQ-BigGAN: config, generator, discriminator with feature quantizers, training-step interface, EMA,
save/load and the generator-only model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel

import hf_dgm  # noqa: F401  (registers the Auto classes)
from hf_dgm.models.fq_biggan import (
    CIFAR10_CLASSES,
    FQBigGANConfig,
    FQBigGANForImageGeneration,
    FQBigGANGeneratorModel,
)
from hf_dgm.models.fq_biggan.modeling_fq_biggan import (
    FQBigGANSNConv2d,
    FQBigGANSNEmbedding,
    FQBigGANSNLinear,
    sample_truncated_normal,
)
from hf_dgm.modules.feature_quantizer import FeatureQuantizer
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps
from tolerances import assert_fp32_close


def tiny(**overrides) -> FQBigGANConfig:
    return FQBigGANConfig.from_preset("tiny", **overrides)


def tiny_imagenet_like(**overrides) -> FQBigGANConfig:
    """32×32, shared embedding + hierarchical z + self-attention in G and D (the ImageNet recipe, scaled down)."""
    values = dict(
        resolution=32,
        generator_ch=8,
        discriminator_ch=8,
        generator_multipliers=[4, 4, 2, 2],
        discriminator_multipliers=[1, 2, 4, 4],
        discriminator_downsample=[True, True, True, False],
        dim_z=20,
        hierarchical_z=True,
        shared_embedding=True,
        shared_dim=8,
        num_classes=5,
        generator_attention=[16],
        discriminator_attention=[8],
        generator_init="ortho",
        discriminator_init="ortho",
        fq_layers=[1, 2],
        fq_num_embeddings=32,
        fq_decay=0.7,
        fq_commitment=0.5,
        ema_start=2,
    )
    values.update(overrides)
    return FQBigGANConfig(**values)


def d_step(model, pixel_values=None, labels=None, **kwargs):
    """One D step of the training protocol (`FQBigGANSteps`), with the trainer's batch entries as arguments."""
    batch = {k: v for k, v in {"pixel_values": pixel_values, "labels": labels}.items() if v is not None}
    return FQBigGANSteps(model).discriminator_step(batch, **kwargs)


def g_step(model, pixel_values=None, labels=None, **kwargs):
    """One G step of the training protocol (`FQBigGANSteps`)."""
    batch = {k: v for k, v in {"pixel_values": pixel_values, "labels": labels}.items() if v is not None}
    return FQBigGANSteps(model).generator_step(batch, **kwargs)


def quantizer_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.discriminator.quantizers.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------
def test_presets_carry_the_original_fq_table():
    c10 = FQBigGANConfig.from_preset("cifar10")
    assert (c10.resolution, c10.num_classes, c10.fq_layers, c10.fq_num_embeddings) == (32, 10, [0, 1, 2, 3], 1024)
    assert (c10.fq_decay, c10.fq_commitment, c10.discriminator_steps, c10.generator_init) == (0.8, 1.0, 4, "N02")
    assert c10.class_names == list(CIFAR10_CLASSES) and c10.id2label[3] == "cat"
    assert c10.discriminator_resolutions() == [16, 8, 8, 8]
    c100 = FQBigGANConfig.from_preset("cifar100")
    assert (c100.fq_num_embeddings, c100.fq_decay, c100.fq_commitment, c100.num_classes) == (64, 0.9, 10.0, 100)
    i64 = FQBigGANConfig.from_preset("imagenet64")
    assert (i64.fq_layers, i64.fq_decay, i64.fq_commitment, i64.z_chunk_size) == ([2], 0.7, 0.5, 24)
    assert (i64.generator_lr, i64.discriminator_lr, i64.ema_start, i64.generator_attention) == (1e-4, 4e-4, 20000, [32])
    channels = [i64.discriminator_ch * m for m in i64.discriminator_multipliers]
    assert (channels[2], i64.discriminator_resolutions()[2]) == (256, 8)  # "block 2: 256 @ 8²"
    i128 = FQBigGANConfig.from_preset("imagenet128")
    assert (i128.fq_layers, i128.fq_commitment, i128.shared_embedding, i128.hierarchical_z) == ([0, 1, 2, 3], 15.0, True, True)
    channels = [i128.discriminator_ch * m for m in i128.discriminator_multipliers]
    assert list(zip(channels, i128.discriminator_resolutions()))[:4] == [(64, 64), (128, 32), (256, 16), (512, 8)]
    assert FQBigGANConfig.from_preset("cifar10", use_fq=False).use_fq is False


def test_config_round_trip(tmp_path):
    config = FQBigGANConfig.from_preset("cifar10", fq_mode="straight_through")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, FQBigGANConfig)
    assert loaded.class_names == list(CIFAR10_CLASSES)
    assert loaded.fq_mode == "straight_through" and loaded.fq_layers == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(fq_mode="paper"), "fq_mode"),
        (dict(fq_dictionary_init="kmeans"), "fq_dictionary_init"),
        (dict(fq_layers=[5]), "fq_layers"),
        (dict(fq_layers=[]), "fq_layers"),
        (dict(fq_decay=1.0), "fq_decay"),
        (dict(fq_commitment=-1.0), "fq_commitment"),
        (dict(resolution=32), "resolution"),
        (dict(generator_init="kaiming"), "generator_init"),
        (dict(class_names=["a", "b"]), "class_names"),
        (dict(generator_attention=[7]), "generator_attention"),
        (dict(discriminator_downsample=[True]), "discriminator_downsample"),
        (dict(hierarchical_z=True, shared_embedding=True, dim_z=16), "multiple of 3"),
        (dict(hierarchical_z=True, dim_z=15), "shared_embedding"),
        (dict(generator_ch=0), "generator_ch"),
        (dict(ema_decay=1.5), "ema_decay"),
        (dict(generator_betas=(0.0,)), "generator_betas"),
    ],
)
def test_bad_config_values_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_unknown_preset_and_resolution_without_table():
    with pytest.raises(ValueError, match="preset"):
        FQBigGANConfig.from_preset("lsun")
    with pytest.raises(ValueError, match="architecture table"):
        FQBigGANConfig(resolution=48)


# ----------------------------------------------------------------------------------------------------------------
# Architecture
# ----------------------------------------------------------------------------------------------------------------
def test_shapes_spectral_norm_and_quantizer_placement():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny())
    z = torch.randn(3, model.config.dim_z)
    labels = torch.tensor([0, 4, 9])
    images = model.generator(z, labels)
    assert images.shape == (3, 3, 16, 16) and images.abs().max() <= 1
    scores = model.discriminator(images, labels)
    assert scores.logits.shape == (3,) and scores.quantization_loss.shape == (3,)
    assert sorted(model.discriminator.quantizers) == ["0", "1"]
    assert all(isinstance(q, FeatureQuantizer) and q.dim == 32 for q in model.discriminator.quantizers.values())

    # Every conv and linear layer of G and D is spectrally normalised (G's embeddings are not, as BigGAN).
    for network in (model.generator, model.discriminator):
        for module in network.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                assert isinstance(module, (FQBigGANSNConv2d, FQBigGANSNLinear)), module
    assert isinstance(model.discriminator.class_embedding, FQBigGANSNEmbedding)

    # The power iteration converges: the normalised weight has spectral norm 1.
    layer = model.discriminator.blocks[1].conv1
    layer.train()
    with torch.no_grad():
        for _ in range(500):
            layer.normalized_weight()
    matrix = layer.normalized_weight().detach().reshape(layer.out_channels, -1)
    assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=1e-3)
    true_sigma = torch.linalg.matrix_norm(layer.weight.detach().reshape(layer.out_channels, -1), ord=2).item()
    assert layer.weight_sigma.item() == pytest.approx(true_sigma, rel=1e-3)


def test_imagenet_like_architecture_hierarchical_shared_attention():
    torch.manual_seed(0)
    config = tiny_imagenet_like()
    model = FQBigGANForImageGeneration(config)
    assert sorted(model.generator.attentions) == ["1"] and sorted(model.discriminator.attentions) == ["1"]
    # 3 G blocks: z (20) splits into 4 chunks of 5, one for the input layer and one per block
    assert model.generator.z_chunk_size == 5 and model.generator.z_projection.in_features == 5
    assert model.generator.blocks[0].bn1.scale.in_features == config.shared_dim + 5
    out = d_step(model, pixel_values=torch.rand(4, 3, 32, 32) * 2 - 1, labels=torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(out.loss)
    images = model.generate([0, 4], generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 32, 32)
    # Orthogonal init: rows of the (out, in) weight matrix are orthonormal.
    weight = model.generator.blocks[0].conv1.weight.detach().reshape(32, -1)
    torch.testing.assert_close(weight @ weight.t(), torch.eye(32), atol=1e-4, rtol=0)


def test_custom_init_survives_post_init():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny())
    quantizer = model.discriminator.quantizers["0"]
    assert 0.8 < quantizer.embed.std().item() < 1.2  # N(0, 1) as the original, not the generic N(0, 0.02)
    torch.testing.assert_close(quantizer.embed_avg, quantizer.embed)
    assert quantizer.cluster_size.abs().sum().item() == 0
    assert 0.015 < model.generator.blocks[0].conv1.weight.std().item() < 0.025  # N02 in the tiny/CIFAR preset
    assert model.generator.blocks[0].bn1.running_var.eq(1).all()


def test_use_fq_false_is_plain_biggan():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny(use_fq=False))
    assert len(model.discriminator.quantizers) == 0
    assert not any(isinstance(m, FeatureQuantizer) for m in model.modules())
    out = d_step(model, pixel_values=torch.zeros(2, 3, 16, 16), labels=torch.tensor([1, 2]))
    assert out.term("quantization_loss").item() == 0 and out.term("fq_perplexity") is None and out.term("fq_usage") is None
    torch.testing.assert_close(out.loss, out.term("d_loss_real") + out.term("d_loss_fake"))


def test_loss_only_leaves_d_forward_unchanged_straight_through_changes_it():
    torch.manual_seed(0)
    baseline = FQBigGANForImageGeneration(tiny(use_fq=False)).eval()
    loss_only = FQBigGANForImageGeneration(tiny(fq_mode="loss_only")).eval()
    straight = FQBigGANForImageGeneration(tiny(fq_mode="straight_through")).eval()
    loss_only.load_state_dict(baseline.state_dict(), strict=False)
    straight.load_state_dict(loss_only.state_dict())  # same weights and dictionaries, only the mode differs
    images, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([3, 7])
    base = baseline.discriminator(images, labels).logits
    torch.testing.assert_close(loss_only.discriminator(images, labels).logits, base)
    assert not torch.allclose(straight.discriminator(images, labels).logits, base)


# ----------------------------------------------------------------------------------------------------------------
# Training-step interface
# ----------------------------------------------------------------------------------------------------------------
def test_discriminator_step_updates_dictionary_and_gives_no_gradient_to_g():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny()).train()
    before = quantizer_state(model)
    real, labels = torch.rand(4, 3, 16, 16) * 2 - 1, torch.randint(0, 10, (4,))
    out = d_step(model, pixel_values=real, labels=labels)
    for name in ("loss", "d_loss_real", "d_loss_fake", "quantization_loss", "fq_perplexity", "fq_usage"):
        assert (out.loss if name == "loss" else out.terms[name]).dim() == 0, name
    torch.testing.assert_close(out.loss, out.term("d_loss_real") + out.term("d_loss_fake") + out.term("quantization_loss"))
    assert out.term("quantization_loss").item() > 0 and 1 <= out.term("fq_perplexity").item() <= 16 and 0 < out.term("fq_usage").item() <= 1
    assert not same_state(before, quantizer_state(model)), "D step must update the dictionary"
    # real and fake each contribute: cluster_size grew by (1 - d) · (2B · H · W) vectors per quantized layer
    assert model.discriminator.quantizers["0"].cluster_size.sum().item() == pytest.approx(0.2 * 8 * 8 * 8, rel=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in model.generator_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.discriminator_parameters())


def test_generator_step_dictionary_update_follows_the_original_by_default_and_trains_g():
    # Default: the G step updates the dictionaries from the fakes, as FQ-GAN's train_fns.py (D stays in training mode).
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny()).train()
    before = quantizer_state(model)
    z = torch.randn(3, model.config.dim_z)
    out = g_step(model, labels=torch.tensor([1, 2, 3]), z=z)
    assert not same_state(before, quantizer_state(model)), "the default G step updates the dictionary"
    # By hand: the same update is what one training-mode D call on the fakes (with their labels) does.
    torch.manual_seed(0)
    reference = FQBigGANForImageGeneration(tiny()).train()
    with torch.no_grad():
        images = reference.generator(z, torch.tensor([1, 2, 3]))
        reference.discriminator(images, torch.tensor([1, 2, 3]), update_dictionary=True)
    for key, value in quantizer_state(reference).items():
        assert_fp32_close(quantizer_state(model)[key], value, msg=key)
    assert out.term("images").shape == (3, 3, 16, 16) and out.term("labels").tolist() == [1, 2, 3]
    torch.testing.assert_close(out.loss, out.term("g_loss") + out.term("quantization_loss"))
    torch.testing.assert_close(out.term("g_loss"), -out.term("logits_fake").mean())
    out.loss.backward()
    assert all(p.grad is not None for p in model.generator_parameters())
    out = g_step(model, batch_size=5)
    assert out.term("images").shape[0] == 5 and out.term("labels").shape == (5,)


@pytest.mark.parametrize("how", ["config", "argument"])
def test_generator_step_can_leave_the_dictionary_alone(how):
    torch.manual_seed(0)
    config = tiny(fq_update_in_generator_step=False) if how == "config" else tiny()
    model = FQBigGANForImageGeneration(config).train()
    before = quantizer_state(model)
    kwargs = {"update_dictionary": False} if how == "argument" else {}
    g_step(model, labels=torch.tensor([1, 2, 3]), **kwargs)
    assert same_state(before, quantizer_state(model)), "G step must not update the dictionary"


def test_steps_take_explicit_latents_and_generators():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny()).eval()  # eval: no state changes between the two calls
    reals, labels = torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([0, 1])
    a = d_step(model, pixel_values=reals, labels=labels, generator=torch.Generator().manual_seed(3))
    b = d_step(model, pixel_values=reals, labels=labels, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.term("fakes"), b.term("fakes"))  # same process, same kernels, same tensors
    z, fake_labels = torch.randn(2, model.config.dim_z), torch.tensor([4, 5])
    c = d_step(model, pixel_values=reals, labels=labels, z=z, generator_labels=fake_labels)
    with torch.no_grad():
        torch.testing.assert_close(c.term("fakes"), model.generator(z, fake_labels))
    torch.testing.assert_close(c.term("quantization_loss"), c.term("quantization_loss_real") + c.term("quantization_loss_fake"))
    g = g_step(model, z=z, generator_labels=fake_labels, pixel_values=reals)
    torch.testing.assert_close(g.term("labels"), fake_labels)
    with pytest.raises(ValueError, match="`z`"):
        g_step(model, z=torch.randn(2, 3), labels=fake_labels)
    with pytest.raises(TypeError, match="noise"):
        g_step(model, batch_size=2, noise=1)


def test_data_initialised_dictionary_in_d_step():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny(fq_dictionary_init="data")).train()
    out = d_step(model, pixel_values=torch.rand(4, 3, 16, 16) * 2 - 1, labels=torch.arange(4))
    assert out.term("fq_usage").item() == 1.0, "every entry starts as a feature vector of the first D batch"
    baseline = FQBigGANForImageGeneration(tiny()).train()
    out = d_step(baseline, pixel_values=torch.rand(4, 3, 16, 16) * 2 - 1, labels=torch.arange(4))
    assert out.term("fq_usage").item() < 1.0


def test_eval_mode_discriminator_step_does_not_update():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny()).eval()
    before = quantizer_state(model)
    d_step(model, pixel_values=torch.zeros(2, 3, 16, 16), labels=torch.tensor([0, 1]))
    assert same_state(before, quantizer_state(model))


def test_parameter_groups_are_disjoint_and_exclude_ema():
    model = FQBigGANForImageGeneration(tiny())
    g = {id(p) for p in model.generator_parameters()}
    d = {id(p) for p in model.discriminator_parameters()}
    ema = {id(p) for p in model.generator_ema.parameters()}
    assert g and d and not (g & d) and not (g & ema) and not (d & ema)
    assert not any(p.requires_grad for p in model.generator_ema.parameters())


def test_bad_forward_inputs_raise():
    model = FQBigGANForImageGeneration(tiny())
    with pytest.raises(ValueError, match="mode"):  # a training step takes batch entries only: no mode flag
        FQBigGANSteps(model).discriminator_step({"pixel_values": torch.zeros(2, 3, 16, 16), "mode": "both"})
    with pytest.raises(ValueError, match="pixel_values"):
        d_step(model, pixel_values=torch.zeros(2, 3, 32, 32), labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        d_step(model, pixel_values=torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="labels"):
        d_step(model, pixel_values=torch.zeros(2, 3, 16, 16), labels=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="batch_size"):
        g_step(model)
    with pytest.raises(ValueError, match="truncation"):
        model.generate([0], truncation=0.0)
    with pytest.raises(ValueError, match="class ids"):
        model.generate([11])


def test_unconditional_model():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny(num_classes=0)).train()
    assert model.discriminator.class_embedding is None and model.generator.class_embedding is None
    out = d_step(model, pixel_values=torch.zeros(2, 3, 16, 16))
    assert torch.isfinite(out.loss)
    out = g_step(model, batch_size=2)
    assert out.term("labels") is None and out.term("images").shape == (2, 3, 16, 16)
    assert model.generate(batch_size=3).shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="unconditional"):
        model.generate([0])


def test_forward_generates_from_given_latents():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny()).eval()
    z, labels = torch.randn(2, model.config.dim_z), torch.tensor([3, 4])
    out = model(z, labels)
    with torch.no_grad():
        torch.testing.assert_close(out.images, model.generator_ema(z, labels))
        torch.testing.assert_close(model(z, labels, use_ema=False).images, model.generator(z, labels))
    assert out.class_labels.tolist() == [3, 4] and out.images.requires_grad is False


# ----------------------------------------------------------------------------------------------------------------
# G-EMA, generation, save/load
# ----------------------------------------------------------------------------------------------------------------
def test_generator_ema_copy_then_average_and_independent():
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny(ema_start=10, ema_decay=0.9))
    g, ema = model.generator.z_projection.weight, model.generator_ema.z_projection.weight
    assert torch.equal(g, ema) and g.data_ptr() != ema.data_ptr()
    with torch.no_grad():
        g.add_(1.0)
    assert not torch.equal(g, ema), "the EMA copy must not share storage with G"
    assert model.update_generator_ema(step=3) == 0.0  # before ema_start: plain copy
    assert torch.equal(g, ema)
    old = ema.detach().clone()
    with torch.no_grad():
        g.add_(1.0)
    assert model.update_generator_ema(step=10) == 0.9
    torch.testing.assert_close(ema, 0.9 * old + 0.1 * g.detach())
    # buffers are averaged too (BN running statistics)
    running = model.generator_ema.blocks[0].bn1.running_mean
    with torch.no_grad():
        model.generator.blocks[0].bn1.running_mean.fill_(1.0)
    model.update_generator_ema(decay=0.5)
    torch.testing.assert_close(running, torch.full_like(running, 0.5))


def test_save_load_generate_identical_and_ema_saved(tmp_path):
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(tiny(ema_start=0, ema_decay=0.5)).train()
    real, labels = torch.rand(4, 3, 16, 16) * 2 - 1, torch.randint(0, 10, (4,))
    d_step(model, pixel_values=real, labels=labels)  # non-trivial dictionaries, SN vectors, BN stats
    g_step(model, labels=labels)
    with torch.no_grad():
        for p in model.generator_parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.update_generator_ema(step=5)
    assert not torch.equal(model.generator.output_conv.weight, model.generator_ema.output_conv.weight)

    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, FQBigGANForImageGeneration)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not any(p.requires_grad for p in loaded.generator_ema.parameters())

    def sample(m, **kwargs):
        return m.generate([0, 3, 9], truncation=0.8, generator=torch.Generator().manual_seed(7), **kwargs)

    first = sample(model)
    assert torch.equal(first, sample(model)), "a fixed torch.Generator must give identical samples"
    # Loaded weights are bit-identical; memory-mapped tensors may use other SIMD paths (differences ~1e-7).
    torch.testing.assert_close(sample(loaded), first, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(sample(model, use_ema=False), first, atol=1e-3), "use_ema=False samples from G"
    assert not torch.allclose(
        model.generate([0, 3, 9], truncation=0.8, generator=torch.Generator().manual_seed(8)), first, atol=1e-3
    )

    generator_only = FQBigGANGeneratorModel.from_pretrained(tmp_path)
    assert not hasattr(generator_only, "discriminator") and not hasattr(generator_only, "generator")
    assert sum(p.numel() for p in generator_only.parameters()) == sum(p.numel() for p in model.generator_ema.parameters())
    torch.testing.assert_close(sample(generator_only), first, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="EMA"):
        generator_only.generate([0], use_ema=False)


def test_truncated_normal_sampling():
    z = sample_truncated_normal((2000, 8), 0.5, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    z = sample_truncated_normal((2000, 8), None, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() > 2.5
    with pytest.raises(ValueError):
        sample_truncated_normal((2, 2), -1.0)
