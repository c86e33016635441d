"""FQ-StyleGAN model: shapes, the modulated convolution, truncation, style mixing, noise modes, FQ placement,
save/load, and the unconditional-image-generation pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoModel, pipeline

import hf_dgm  # noqa: F401  (registers the model and the task)
from hf_dgm.models.fq_stylegan import (
    FQStyleGANConfig,
    FQStyleGANForImageGeneration,
    FQStyleGANGeneratorModel,
)
from hf_dgm.models.fq_stylegan.modeling_fq_stylegan import (
    fir_filter,
    minibatch_stddev,
    modulated_conv2d,
    upfirdn2d,
)
from hf_dgm.pipelines.image_generation import UnconditionalImageGenerationPipeline


def tiny(**overrides) -> FQStyleGANConfig:
    return FQStyleGANConfig.from_preset("tiny", **overrides)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (noise strengths and biases are 0 at init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and "quantizers" not in name:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * (0.2 if tensor.dim() <= 1 else 1.0))


# -----------------------------------------------------------------------------------------------------------------
# Config
# -----------------------------------------------------------------------------------------------------------------
def test_presets():
    e = FQStyleGANConfig.from_preset("config-e", resolution=256)
    assert (e.channel_base, e.channel_max, e.r1_gamma, e.use_fq, e.fq_decay, e.fq_commitment) == (
        16384, 512, 100.0, True, 0.8, 0.25)  # fmt: skip
    assert e.fq_layers == [3, 4] and e.fq_resolutions == [32, 16] and e.fq_num_embeddings == [128, 128]
    e1024 = FQStyleGANConfig.from_preset("config-e")
    assert e1024.fq_layers == [5, 6] and e1024.fq_resolutions == [32, 16] and e1024.fq_num_embeddings_at(6) == 128
    assert e.channels_at(16) == 512 and e.channels_at(256) == 64 and e.num_ws == 14
    p256 = FQStyleGANConfig.from_preset("paper256")
    assert (p256.channel_base, p256.mbstd_group_size, p256.r1_gamma, p256.ema_kimg, p256.conv_clamp) == (
        16384, 8, 1.0, 20.0, 256.0)  # fmt: skip
    sg2 = FQStyleGANConfig.from_preset("stylegan2")
    assert (sg2.channel_base, sg2.resolution, sg2.r1_gamma, sg2.use_fq) == (32768, 1024, 10.0, False)
    with pytest.raises(ValueError, match="unknown preset"):
        FQStyleGANConfig.from_preset("config-x")
    with pytest.raises(ValueError, match="power of two"):
        tiny(resolution=48)
    with pytest.raises(ValueError, match="fq_layers"):
        tiny(fq_layers=[3])
    with pytest.raises(ValueError, match="fq_num_embeddings"):
        tiny(fq_num_embeddings=[16])
    with pytest.raises(ValueError, match="fq_mode"):
        tiny(fq_mode="both")


# -----------------------------------------------------------------------------------------------------------------
# Ops
# -----------------------------------------------------------------------------------------------------------------
def test_modulated_conv_equals_per_sample_conv():
    g = torch.Generator().manual_seed(0)
    x, weight, styles = torch.randn(3, 5, 8, 8, generator=g), torch.randn(6, 5, 3, 3, generator=g), torch.randn(3, 5, generator=g)
    f = fir_filter([1, 3, 3, 1])
    for demodulate in (True, False):
        out = modulated_conv2d(x, weight, styles, demodulate=demodulate)
        up = modulated_conv2d(x, weight, styles, up=2, demodulate=demodulate, resample_filter=f)
        assert out.shape == (3, 6, 8, 8) and up.shape == (3, 6, 16, 16)
        for b in range(3):
            w = weight * styles[b].reshape(1, 5, 1, 1)
            if demodulate:
                w = w / torch.sqrt(w.pow(2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
            torch.testing.assert_close(out[b], F.conv2d(x[b : b + 1], w, padding=1)[0], rtol=1e-5, atol=1e-5)
            # up=2: zero insertion, correlation with the flipped kernel ("full" padding), then FIR with gain 4
            zeros = torch.zeros(1, 5, 15, 15)
            zeros[:, :, ::2, ::2] = x[b : b + 1]
            y = F.conv2d(F.pad(zeros, [2, 2, 2, 2]), w.flip([2, 3]))
            y = F.conv2d(F.pad(y, [1, 1, 1, 1]), (4 * f)[None, None].repeat(6, 1, 1, 1), groups=6)
            torch.testing.assert_close(up[b], y[0], rtol=1e-5, atol=1e-5)


def test_upfirdn2d_matches_direct_definition():
    x = torch.randn(2, 3, 6, 6)
    f = torch.rand(3, 3)
    out = upfirdn2d(x, f, up=2, down=1, padding=(1, 1, 1, 1))
    # direct: zero insertion (12x12, zeros after each sample), pad 1, true convolution (flipped filter)
    up = torch.zeros(2, 3, 12, 12)
    up[:, :, ::2, ::2] = x
    ref = F.conv2d(F.pad(up, [1, 1, 1, 1]), f.flip([0, 1])[None, None].repeat(3, 1, 1, 1), groups=3)
    torch.testing.assert_close(out, ref)
    crop = upfirdn2d(x, f, padding=(-1, 0, 0, -1), down=2)
    ref = F.conv2d(x[:, :, :-1, 1:], f.flip([0, 1])[None, None].repeat(3, 1, 1, 1), groups=3)[:, :, ::2, ::2]
    torch.testing.assert_close(crop, ref)


def test_minibatch_stddev_groups():
    x = torch.randn(8, 4, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 5, 2, 2)
    members = [1, 3, 5, 7]  # sample 1 is in group 1 mod 2
    expected = x[members].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(out[3, 4], torch.full((2, 2), float(expected)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        minibatch_stddev(torch.randn(6, 4, 2, 2), group_size=4)


# -----------------------------------------------------------------------------------------------------------------
# Model
# -----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_shapes(resolution):
    torch.manual_seed(0)
    config = tiny(resolution=resolution, channel_base=max(512, resolution * 2), channel_max=16)
    model = FQStyleGANForImageGeneration(config)
    z = torch.randn(4, config.z_dim)
    out = model(z=z)
    assert out.images.shape == (4, 3, resolution, resolution)
    assert out.ws.shape == (4, config.num_ws, config.w_dim) and config.num_ws == 2 * int(math.log2(resolution)) - 2
    scores = model.discriminator(out.images)
    assert scores.logits.shape == (4,)
    assert scores.quantization_loss.shape == (4,) and torch.isfinite(scores.quantization_loss).all()
    first = config.discriminator_resolutions.index(32)
    assert set(model.discriminator.quantizers) == {str(first), str(first + 1)}
    assert model.discriminator.quantizers[str(first + 1)].dim == config.channels_at(8)
    out.images.mean().backward()
    assert model.generator.mapping.layers[0].weight.grad is not None


def test_use_fq_false_is_plain_stylegan2():
    model = FQStyleGANForImageGeneration(tiny(use_fq=False))
    assert len(model.discriminator.quantizers) == 0
    assert not any("quantizers" in name for name in model.state_dict())
    scores = model.discriminator(torch.randn(4, 3, 32, 32))
    assert scores.quantization_loss is None and scores.logits.shape == (4,)


def test_fq_dictionary_updates_only_when_asked_in_training():
    model = FQStyleGANForImageGeneration(tiny())
    quantizer = model.discriminator.quantizers["0"]
    images = torch.randn(4, 3, 32, 32)
    before = quantizer.embed.clone()
    model.discriminator(images, update_dictionary=False)
    assert torch.equal(before, quantizer.embed)
    model.eval()
    model.discriminator(images, update_dictionary=True)
    assert torch.equal(before, quantizer.embed)
    model.train()
    model.discriminator(images, update_dictionary=True)
    assert not torch.equal(before, quantizer.embed)


def test_psi_zero_gives_the_image_of_w_avg():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny())
    randomize(model)
    w_avg = model.generator_ema.mapping.w_avg
    assert w_avg.abs().sum() > 0
    z = torch.randn(3, model.config.z_dim)
    images = model.generate(z=z, truncation_psi=0.0, noise_mode="const")
    expected = model.synthesis(w_avg.expand(3, -1), noise_mode="const")
    torch.testing.assert_close(images, expected)
    assert torch.allclose(images[0], images[1])
    ws = model.mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(ws, w_avg + 0.5 * (model.mapping(z) - w_avg))
    cut = model.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg.expand(3, 2, -1))
    torch.testing.assert_close(cut[:, 2:], model.mapping(z)[:, 2:])


def test_style_mixing_interpolation_and_noise_modes():
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny())
    randomize(model)
    za, zb = torch.randn(2, model.config.z_dim), torch.randn(2, model.config.z_dim)
    wa, wb = model.mapping(za), model.mapping(zb)
    mixed = model.mix_styles(wa, wb, cutoff=3)
    assert torch.equal(mixed[:, :3], wa[:, :3]) and torch.equal(mixed[:, 3:], wb[:, 3:])
    assert torch.equal(model.mix_styles(wa, wb, cutoff=model.config.num_ws), wa)
    with pytest.raises(ValueError, match="cutoff"):
        model.mix_styles(wa, wb, cutoff=99)
    path = model.interpolate_ws(wa, wb, steps=5)
    assert path.shape == (5, *wa.shape)
    torch.testing.assert_close(path[0], wa)
    torch.testing.assert_close(path[-1], wb)
    torch.testing.assert_close(path[2], (wa + wb) / 2)
    img = model.synthesis(mixed)
    assert img.shape == (2, 3, 32, 32)

    const1, const2 = model.synthesis(wa, noise_mode="const"), model.synthesis(wa, noise_mode="const")
    assert torch.equal(const1, const2)
    none = model.synthesis(wa, noise_mode="none")
    assert not torch.allclose(none, const1)
    r1 = model.synthesis(wa, noise_mode="random", generator=torch.Generator().manual_seed(1))
    r1b = model.synthesis(wa, noise_mode="random", generator=torch.Generator().manual_seed(1))
    r2 = model.synthesis(wa, noise_mode="random", generator=torch.Generator().manual_seed(2))
    assert torch.equal(r1, r1b) and not torch.allclose(r1, r2)
    with pytest.raises(ValueError, match="noise_mode"):
        model.synthesis(wa, noise_mode="fixed")
    with pytest.raises(ValueError, match="truncation_psi"):
        model.generate(batch_size=2, truncation_psi=float("nan"))
    with pytest.raises(ValueError, match="z"):
        model.mapping(torch.randn(2, 5))


def test_save_load_identity(tmp_path):
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny())
    randomize(model)
    model.train()
    model.discriminator(torch.randn(4, 3, 32, 32), update_dictionary=True)  # dictionaries move away from init
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = FQStyleGANForImageGeneration.from_pretrained(tmp_path)
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    assert not any(p.requires_grad for p in loaded.generator_ema.parameters())
    z = torch.randn(2, model.config.z_dim)
    torch.testing.assert_close(model.generate(z=z), loaded.generate(z=z))
    auto = AutoModel.from_pretrained(tmp_path)
    assert isinstance(auto, FQStyleGANForImageGeneration)

    generator_only = FQStyleGANGeneratorModel.from_pretrained(tmp_path)
    assert not any(k.startswith(("generator.", "discriminator.")) for k in generator_only.state_dict())
    torch.testing.assert_close(generator_only.generate(z=z), model.generate(z=z))
    with pytest.raises(ValueError, match="EMA"):
        generator_only.generate(z=z, use_ema=False)


# -----------------------------------------------------------------------------------------------------------------
# Pipeline
# -----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stylegan_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = FQStyleGANForImageGeneration(tiny())
    randomize(model, seed=3)
    path = tmp_path_factory.mktemp("fq_stylegan")
    model.save_pretrained(path)
    return path


def test_pipeline(stylegan_dir):
    generate = pipeline("unconditional-image-generation", model=str(stylegan_dir))
    assert isinstance(generate, UnconditionalImageGenerationPipeline)
    images = generate(num_images=4, truncation_psi=0.7, seed=0).images
    assert len(images) == 4 and all(isinstance(i, Image.Image) and i.size == (32, 32) and i.mode == "RGB" for i in images)
    again = generate(num_images=4, truncation_psi=0.7, seed=0).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again))
    # chunked: the same z's; float rounding of another batch size may move a pixel by one level
    chunked = generate(num_images=4, truncation_psi=0.7, seed=0, batch_size=3).images
    assert all(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1 for a, b in zip(images, chunked))
    other = generate(num_images=4, truncation_psi=0.7, seed=1).images
    assert not np.array_equal(np.asarray(images[0]), np.asarray(other[0]))

    model = FQStyleGANForImageGeneration.from_pretrained(stylegan_dir)
    expected = model.generate(batch_size=4, truncation_psi=0.7, noise_mode="const",
                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(np.asarray(images[2]), expected[2])

    random_a = generate(num_images=2, noise_mode="random", seed=5).images
    random_b = generate(num_images=2, noise_mode="random", seed=5).images
    assert np.array_equal(np.asarray(random_a[0]), np.asarray(random_b[0]))
    mean_images = generate(num_images=2, truncation_psi=0.0, noise_mode="none", seed=0).images
    assert np.array_equal(np.asarray(mean_images[0]), np.asarray(mean_images[1]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_images=0), "num_images"),
        (dict(num_images=2.5), "num_images"),
        (dict(truncation_psi="high"), "truncation_psi"),
        (dict(truncation_psi=float("inf")), "truncation_psi"),
        (dict(noise_mode="fixed"), "noise_mode"),
        (dict(seed=-1), "seed"),
        (dict(truncation=0.5), "truncation_psi"),
        (dict(batch_size=0), "batch_size"),
        (dict(temperature=1.0), "unexpected"),
    ],
)
def test_pipeline_bad_input(stylegan_dir, kwargs, message):
    generate = pipeline("unconditional-image-generation", model=str(stylegan_dir))
    with pytest.raises(ValueError, match=message):
        generate(**kwargs)


def test_config_saved_with_the_earlier_channel_name_loads(tmp_path):
    """`num_channels` is the zoo's one channel name; a config.json written with the earlier `image_channels` (published
    checkpoints) loads into it, and the model built from it reads greyscale images."""
    import json

    config = FQStyleGANConfig.from_preset("tiny", num_channels=1)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["num_channels"] == 1 and "image_channels" not in saved
    saved["image_channels"] = saved.pop("num_channels")  # as an earlier release wrote it
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = FQStyleGANConfig.from_pretrained(tmp_path)
    assert loaded.num_channels == 1 and not hasattr(loaded, "image_channels")
    model = FQStyleGANForImageGeneration(loaded).eval()
    assert model.generate(batch_size=2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 32, 32)
