"""Tests of the BigGAN-PyTorch / FQ-BigGAN checkpoint converter (`python -m hf_dgm.convert fq_biggan`).

The original checkpoints are not available offline, so the test writes state dicts in the original layout itself:
it builds an hf-dgm model, renames every tensor to the name BigGAN-PyTorch's `Generator` / FQ-GAN's `Discriminator`
give it (a table written here from BigGAN.py, layers.py and vq_layer.py, independently of the converter), saves
them with `torch.save`, converts, and checks that the result is the same model.
"""

from __future__ import annotations

import pytest
import torch

import hf_dgm  # noqa: F401
from hf_dgm.convert.__main__ import main as convert_main
from hf_dgm.models.fq_biggan.convert_fq_biggan import convert_checkpoints
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps


# ----------------------------------------------------------------------------------------------------------------
# Original names, from BigGAN-PyTorch: G = {shared, linear, blocks[i] = [GBlock(conv1, conv2, conv_sc, bn1, bn2),
# (Attention(theta, phi, g, o, gamma))], output_layer = Sequential(bn(gain, bias, stored_mean, stored_var), ReLU,
# SNConv2d)}; ccbn(gain, bias = SNLinear or Embedding, stored_mean, stored_var); SN layers carry u0 and sv0.
# D = {blocks[i] = [DBlock(conv1, conv2, conv_sc), (Quantize(embed, cluster_size, embed_avg)), (Attention)],
# linear, embed}.
# ----------------------------------------------------------------------------------------------------------------
SN_LEAVES = {"weight": "weight", "bias": "bias", "weight_u": "u0", "weight_sigma": "sv0"}


def original_generator_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "class_embedding":
            name = "shared.weight"
        elif parts[0] == "z_projection":
            name = "linear." + SN_LEAVES[parts[1]]
        elif parts[0] == "blocks":
            block, layer = parts[1], parts[2]
            if layer in ("conv1", "conv2", "conv_shortcut"):
                name = f"blocks.{block}.0.{'conv_sc' if layer == 'conv_shortcut' else layer}.{SN_LEAVES[parts[3]]}"
            else:  # bn1 / bn2
                sub = parts[3]
                if sub in ("scale", "shift"):
                    name = f"blocks.{block}.0.{layer}.{'gain' if sub == 'scale' else 'bias'}.{SN_LEAVES[parts[4]]}"
                else:
                    name = f"blocks.{block}.0.{layer}.{'stored_mean' if sub == 'running_mean' else 'stored_var'}"
        elif parts[0] == "attentions":
            leaf = parts[2] if parts[2] == "gamma" else f"{parts[2]}.{SN_LEAVES[parts[3]]}"
            name = f"blocks.{parts[1]}.1.{leaf}"
        elif parts[0] == "output_bn":
            if parts[1] == "num_batches_tracked":
                continue  # layers.bn has no such buffer
            name = "output_layer.0." + {"weight": "gain", "bias": "bias", "running_mean": "stored_mean",
                                         "running_var": "stored_var"}[parts[1]]  # fmt: skip
        elif parts[0] == "output_conv":
            name = "output_layer.2." + SN_LEAVES[parts[1]]
        else:
            raise AssertionError(f"unmapped generator key {key}")
        out[name] = value.clone()
    return out


def original_discriminator_state(state: dict[str, torch.Tensor], config: FQBigGANConfig) -> dict[str, torch.Tensor]:
    out = {}
    quantized = set(config.fq_layers) if config.use_fq else set()
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks":
            layer = "conv_sc" if parts[2] == "conv_shortcut" else parts[2]
            name = f"blocks.{parts[1]}.0.{layer}.{SN_LEAVES[parts[3]]}"
        elif parts[0] == "quantizers":
            name = f"blocks.{parts[1]}.1.{parts[2]}"
        elif parts[0] == "attentions":
            position = 2 if int(parts[1]) in quantized else 1
            leaf = parts[2] if parts[2] == "gamma" else f"{parts[2]}.{SN_LEAVES[parts[3]]}"
            name = f"blocks.{parts[1]}.{position}.{leaf}"
        elif parts[0] == "output_linear":
            name = "linear." + SN_LEAVES[parts[1]]
        elif parts[0] == "class_embedding":
            name = "embed." + SN_LEAVES[parts[1]]
        else:
            raise AssertionError(f"unmapped discriminator key {key}")
        out[name] = value.clone()
    return out


def imagenet_like() -> FQBigGANConfig:
    return FQBigGANConfig(
        resolution=32, generator_ch=8, discriminator_ch=8, generator_multipliers=[4, 4, 2, 2],
        discriminator_multipliers=[1, 2, 4, 4], discriminator_downsample=[True, True, True, False], dim_z=20,
        hierarchical_z=True, shared_embedding=True, shared_dim=8, num_classes=5, generator_attention=[16],
        discriminator_attention=[8], fq_layers=[1, 2], fq_num_embeddings=32, fq_decay=0.7, ema_start=0,
    )  # fmt: skip


def trained_model(config: FQBigGANConfig) -> FQBigGANForImageGeneration:
    """A model whose weights, dictionaries, SN vectors, BN statistics and EMA copy are all non-trivial."""
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(config).train()
    size, classes = config.resolution, max(config.num_classes, 1)
    real = torch.rand(4, 3, size, size) * 2 - 1
    labels = torch.randint(0, classes, (4,)) if config.num_classes else None
    steps = FQBigGANSteps(model)  # one D and one G training step
    steps.discriminator_step({"pixel_values": real, "labels": labels})
    steps.generator_step(batch_size=4)
    with torch.no_grad():
        for p in list(model.generator_parameters()) + list(model.discriminator_parameters()):
            p.add_(0.01 * torch.randn_like(p))
    model.update_generator_ema(decay=0.5)
    return model.eval()


def write_original(model, tmp_path, prefix_module=False):
    g = original_generator_state(model.generator.state_dict())
    g_ema = original_generator_state(model.generator_ema.state_dict())
    d = original_discriminator_state(model.discriminator.state_dict(), model.config)
    if prefix_module:  # as saved from an nn.DataParallel wrapper
        d = {f"module.{k}": v for k, v in d.items()}
    paths = {name: tmp_path / f"{name}.pth" for name in ("G", "G_ema", "D")}
    for name, state in (("G", g), ("G_ema", g_ema), ("D", d)):
        torch.save(state, paths[name])
    return paths


def assert_same_model(converted: FQBigGANForImageGeneration, model: FQBigGANForImageGeneration):
    source = model.state_dict()
    target = converted.state_dict()
    assert source.keys() == target.keys()
    for key in source:
        if key.endswith("num_batches_tracked"):
            continue  # not in the original checkpoints
        assert torch.equal(source[key], target[key]), key
    labels = [0, 1, 2] if model.config.num_classes else None
    batch = None if labels else 3

    def sample(m, use_ema):
        generator = torch.Generator().manual_seed(3)
        return m.generate(labels, batch_size=batch, truncation=None, generator=generator, use_ema=use_ema)

    for use_ema in (True, False):
        torch.testing.assert_close(sample(converted, use_ema), sample(model, use_ema), rtol=1e-5, atol=1e-5)
    images = torch.rand(3, 3, model.config.resolution, model.config.resolution) * 2 - 1
    d_labels = torch.tensor(labels) if labels else None
    converted.eval()
    model.eval()
    expected = model.discriminator(images, d_labels).logits
    torch.testing.assert_close(converted.discriminator(images, d_labels).logits, expected, rtol=1e-5, atol=1e-5)


def test_convert_cli_tiny_preset(tmp_path):
    model = trained_model(FQBigGANConfig.from_preset("tiny"))
    paths = write_original(model, tmp_path, prefix_module=True)
    out = tmp_path / "converted"
    code = convert_main(
        ["fq_biggan", "--generator", str(paths["G"]), "--generator-ema", str(paths["G_ema"]),
         "--discriminator", str(paths["D"]), "--config", "tiny", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt*"))
    assert_same_model(FQBigGANForImageGeneration.from_pretrained(out), model)


def test_convert_cli_hierarchical_shared_attention_from_json(tmp_path):
    config = imagenet_like()
    model = trained_model(config)
    paths = write_original(model, tmp_path)
    # The original D nests [DBlock, Quantize, Attention] in block 1: the attention sits at index 2.
    assert any(k.startswith("blocks.1.2.theta") for k in torch.load(paths["D"], weights_only=True))
    config_file = tmp_path / "config.json"
    config.to_json_file(config_file)
    out = tmp_path / "converted"
    convert_main(
        ["fq_biggan", "--generator", str(paths["G"]), "--generator-ema", str(paths["G_ema"]),
         "--discriminator", str(paths["D"]), "--config", str(config_file), "--out", str(out)]
    )  # fmt: skip
    assert_same_model(FQBigGANForImageGeneration.from_pretrained(out), model)


def test_convert_plain_biggan_with_override_and_missing_pieces(tmp_path):
    config = FQBigGANConfig.from_preset("tiny", use_fq=False)
    model = trained_model(config)
    paths = write_original(model, tmp_path)
    out = tmp_path / "converted"
    convert_main(
        ["fq_biggan", "--generator-ema", str(paths["G_ema"]), "--config", "tiny", "--override", "use_fq=false",
         "--out", str(out)]
    )  # fmt: skip
    converted = FQBigGANForImageGeneration.from_pretrained(out)
    assert converted.config.use_fq is False
    for key, value in model.generator_ema.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(converted.generator_ema.state_dict()[key], value), key
            assert torch.equal(converted.generator.state_dict()[key], value), "G falls back to the EMA weights"


def test_mismatched_config_raises(tmp_path):
    model = trained_model(FQBigGANConfig.from_preset("tiny"))  # D has quantizers at blocks 0 and 1
    g = original_generator_state(model.generator.state_dict())
    d = original_discriminator_state(model.discriminator.state_dict(), model.config)
    with pytest.raises(ValueError, match="does not match the config"):
        convert_checkpoints(FQBigGANConfig.from_preset("tiny", use_fq=False), generator=g, discriminator=d)
    with pytest.raises(ValueError, match="shape"):
        convert_checkpoints(FQBigGANConfig.from_preset("tiny", generator_ch=4, discriminator_ch=4), generator=g)
    with pytest.raises(ValueError, match="unrecognised key"):
        convert_checkpoints(FQBigGANConfig.from_preset("tiny"), generator={**g, "mystery.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="num_SVs"):
        convert_checkpoints(FQBigGANConfig.from_preset("tiny"), generator={**g, "linear.u1": torch.zeros(1, 4)})
    with pytest.raises(ValueError, match="at least one"):
        convert_checkpoints(FQBigGANConfig.from_preset("tiny"), discriminator=d)
