"""Convert FQ-BigGAN / BigGAN-PyTorch checkpoints (G.pth, G_ema.pth, D.pth) into an hf-dgm FQ-BigGAN folder.

Usage:

    python -m hf_dgm.convert fq_biggan --generator G.pth --generator-ema G_ema.pth --discriminator D.pth \
        --config cifar10 --out fq-biggan-cifar10
    python -m hf_dgm.convert fq_biggan --generator-ema G_ema.pth --config imagenet128 --override use_fq=false --out biggan

`--config` is a preset name (`cifar10`, `cifar100`, `imagenet64`, `imagenet128`) or a JSON file (a saved
`config.json`, or a dict of `FQBigGANConfig` arguments, optionally with `"preset": NAME`). `--override KEY=VALUE`
(VALUE parsed as JSON, else taken as a string) changes single values, e.g. `fq_layers=[2]` or `use_fq=false`.

Checkpoints are read with `torch.load(..., weights_only=True)` (plain state dicts, optionally under a `state_dict`
key, optionally with DataParallel's `module.` prefix). Missing pieces: without `--generator` the EMA weights fill the
generator, without `--generator-ema` the generator's weights fill the EMA copy, without `--discriminator` D keeps its
fresh initialisation (a warning says so; fine for inference, not for resuming training). The result is written with
`save_pretrained` (safetensors) and reloaded once to check it.

Key mapping (BigGAN-PyTorch → hf-dgm), `{i}` a block index:

| original | hf-dgm |
|---|---|
| `*.u0`, `*.sv0` (spectral norm) | `*.weight_u`, `*.weight_sigma` |
| G `shared.weight` | `class_embedding.weight` |
| G `linear.*` | `z_projection.*` |
| G `blocks.{i}.0.{conv1,conv2,conv_sc}.*` | `blocks.{i}.{conv1,conv2,conv_shortcut}.*` |
| G `blocks.{i}.0.bn{1,2}.{gain,bias}.*` | `blocks.{i}.bn{1,2}.{scale,shift}.*` |
| G `blocks.{i}.0.bn{1,2}.stored_{mean,var}` | `blocks.{i}.bn{1,2}.running_{mean,var}` |
| G/D `blocks.{i}.{j>0}.{theta,phi,g,o,gamma}` | `attentions.{i}.{theta,phi,g,o,gamma}` |
| G `output_layer.0.{gain,bias,stored_mean,stored_var}` | `output_bn.{weight,bias,running_mean,running_var}` |
| G `output_layer.2.*` | `output_conv.*` |
| D `blocks.{i}.0.{conv1,conv2,conv_sc}.*` | `blocks.{i}.{conv1,conv2,conv_shortcut}.*` |
| D `blocks.{i}.{j>0}.{embed,cluster_size,embed_avg}` (vq_layer.Quantize) | `quantizers.{i}.{embed,cluster_size,embed_avg}` |
| D `linear.*` | `output_linear.*` |
| D `embed.*` | `class_embedding.*` |

Batch norms saved with `--mybn` (`bn.stored_mean`, `bn.stored_var`, `bn.accumulation_counter`) or cross-replica BN
(`bn.running_mean`, ...) are accepted; standing statistics are divided by their accumulation counter. Only one
tracked singular vector (`num_G_SVs = num_D_SVs = 1`, the default) is supported.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ...convert import load_state_dict_weights_only
from ...modules.validation import check_config_keys

from ...models.fq_biggan import PRESETS, FQBigGANConfig, FQBigGANForImageGeneration


logger = logging.getLogger(__name__)

_QUANTIZER_LEAVES = {"embed", "cluster_size", "embed_avg"}
_ATTENTION_LEAVES = {"theta", "phi", "g", "o", "gamma"}


def _rename_sn(name: str) -> str:
    if name.endswith(".u0"):
        return name[: -len(".u0")] + ".weight_u"
    if name.endswith(".sv0"):
        return name[: -len(".sv0")] + ".weight_sigma"
    if re.search(r"\.(u|sv)[1-9]\d*$", name):
        raise ValueError(f"{name}: more than one tracked singular vector (num_SVs > 1) is not supported")
    return name


def _rename_bn(rest: str) -> str:
    """`bn1.gain.weight` → `bn1.scale.weight`, `bn1.stored_mean` → `bn1.running_mean`, ... (G's ccbn)."""
    rest = re.sub(r"^(bn[12])\.gain\.", r"\1.scale.", rest)
    rest = re.sub(r"^(bn[12])\.bias\.", r"\1.shift.", rest)
    rest = re.sub(r"^(bn[12])\.(?:bn\.)?(?:stored|running)_(mean|var)$", r"\1.running_\2", rest)
    return rest


def _unwrap(state_dict: Any, what: str) -> dict[str, torch.Tensor]:
    if isinstance(state_dict, dict) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{what}: expected a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _standing_stats(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """myBN with accumulated standing stats stores sums: divide them by `accumulation_counter`, drop the counter."""
    out = dict(state_dict)
    for key in [k for k in state_dict if k.endswith(".accumulation_counter")]:
        prefix = key[: -len("accumulation_counter")]
        counter = float(out.pop(key).reshape(-1)[0])
        if counter > 0:
            for stat in ("stored_mean", "stored_var"):
                if prefix + stat in out:
                    out[prefix + stat] = out[prefix + stat] / counter
    return {k: v for k, v in out.items() if not k.endswith("num_batches_tracked")}


def convert_generator_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BigGAN-PyTorch `Generator.state_dict()` → [`FQBigGANGenerator`] state dict."""
    state_dict = _standing_stats(_unwrap(state_dict, "generator"))
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        new = _rename_sn(name)
        if new.startswith("shared."):
            new = "class_embedding." + new[len("shared."):]
        elif new.startswith("linear."):
            new = "z_projection." + new[len("linear."):]
        elif match := re.match(r"^blocks\.(\d+)\.(\d+)\.(.+)$", new):
            block, position, rest = match.groups()
            if position == "0":
                rest = rest.replace("conv_sc.", "conv_shortcut.")
                new = f"blocks.{block}.{_rename_bn(rest)}"
            elif rest.split(".")[0] in _ATTENTION_LEAVES:
                new = f"attentions.{block}.{rest}"
            else:
                raise ValueError(f"generator: unrecognised key {name!r}")
        elif match := re.match(r"^output_layer\.0\.(?:bn\.)?(gain|bias|stored_mean|stored_var|running_mean|running_var)$", new):
            leaf = {"gain": "weight", "bias": "bias", "stored_mean": "running_mean", "stored_var": "running_var"}
            new = "output_bn." + leaf.get(match.group(1), match.group(1))
        elif new.startswith("output_layer.2."):
            new = "output_conv." + new[len("output_layer.2."):]
        else:
            raise ValueError(f"generator: unrecognised key {name!r}")
        converted[new] = tensor
    converted.setdefault("output_bn.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return converted


def convert_discriminator_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """FQ-BigGAN / BigGAN-PyTorch `Discriminator.state_dict()` → [`FQBigGANDiscriminator`] state dict."""
    state_dict = _unwrap(state_dict, "discriminator")
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        new = _rename_sn(name)
        if match := re.match(r"^blocks\.(\d+)\.(\d+)\.(.+)$", new):
            block, position, rest = match.groups()
            leaf = rest.split(".")[0]
            if position == "0":
                new = f"blocks.{block}.{rest.replace('conv_sc.', 'conv_shortcut.')}"
            elif leaf in _QUANTIZER_LEAVES and rest == leaf:
                new = f"quantizers.{block}.{leaf}"
            elif leaf in _ATTENTION_LEAVES:
                new = f"attentions.{block}.{rest}"
            else:
                raise ValueError(f"discriminator: unrecognised key {name!r}")
        elif new.startswith("linear."):
            new = "output_linear." + new[len("linear."):]
        elif new.startswith("embed."):
            new = "class_embedding." + new[len("embed."):]
        else:
            raise ValueError(f"discriminator: unrecognised key {name!r}")
        converted[new] = tensor
    return converted


def _load_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str, config_hint: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{what}: the checkpoint does not match the config ({config_hint}).\n"
            f"  missing in checkpoint: {missing[:12]}{' ...' if len(missing) > 12 else ''}\n"
            f"  not in model: {unexpected[:12]}{' ...' if len(unexpected) > 12 else ''}"
        )
    for key, value in state_dict.items():
        if value.shape != expected[key].shape:
            raise ValueError(
                f"{what}: {key} has shape {tuple(value.shape)} in the checkpoint, {tuple(expected[key].shape)} in the "
                f"model ({config_hint})"
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True)


def convert_checkpoints(
    config: FQBigGANConfig,
    generator: dict[str, torch.Tensor] | None = None,
    generator_ema: dict[str, torch.Tensor] | None = None,
    discriminator: dict[str, torch.Tensor] | None = None,
) -> FQBigGANForImageGeneration:
    """Build an [`FQBigGANForImageGeneration`] from original state dicts (see the module docstring for the rules)."""
    if generator is None and generator_ema is None:
        raise ValueError("pass at least one of the generator and generator-EMA state dicts")
    hint = (
        f"resolution={config.resolution}, generator_ch={config.generator_ch}, discriminator_ch={config.discriminator_ch}, "
        f"use_fq={config.use_fq}, fq_layers={config.fq_layers}, attention G{config.generator_attention} "
        f"D{config.discriminator_attention}, shared_embedding={config.shared_embedding}, "
        f"hierarchical_z={config.hierarchical_z}, num_classes={config.num_classes}"
    )
    model = FQBigGANForImageGeneration(config)
    g = convert_generator_state_dict(generator) if generator is not None else None
    g_ema = convert_generator_state_dict(generator_ema) if generator_ema is not None else None
    _load_into(model.generator, g if g is not None else g_ema, "generator", hint)
    _load_into(model.generator_ema, g_ema if g_ema is not None else g, "generator_ema", hint)
    if discriminator is not None:
        _load_into(model.discriminator, convert_discriminator_state_dict(discriminator), "discriminator", hint)
    else:
        logger.warning("No discriminator given: D keeps its random initialisation (fine for sampling only).")
    model.generator_ema.requires_grad_(False)
    return model.eval()


def load_config(spec: str, overrides: list[str] | None = None) -> FQBigGANConfig:
    """`spec`: a preset name or a JSON file; `overrides`: `KEY=VALUE` strings (VALUE as JSON, else a string)."""
    values: dict[str, Any] = {}
    preset = None
    if spec in PRESETS:
        preset = spec
    else:
        path = Path(spec)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(f"--config must be a preset ({sorted(PRESETS)}) or a JSON file; {spec!r} is neither")
        values = json.loads(path.read_text())
        preset = values.pop("preset", None)
        for key in ("model_type", "transformers_version", "architectures", "dtype", "torch_dtype"):
            values.pop(key, None)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--override expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    check_config_keys(FQBigGANConfig, values, f"--config {spec} / --override")
    return FQBigGANConfig.from_preset(preset, **values) if preset else FQBigGANConfig(**values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", type=Path, help="G.pth (BigGAN-PyTorch generator state dict)")
    parser.add_argument("--generator_ema", type=Path, help="G_ema.pth (EMA generator state dict)")
    parser.add_argument("--discriminator", type=Path, help="D.pth (discriminator state dict, with quantizers)")
    parser.add_argument(
        "--config", required=True, help=f"preset ({', '.join(sorted(PRESETS))}) or a JSON file of config values"
    )
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="change a config value")
    parser.add_argument("--out", type=Path, required=True, help="output folder (config.json + model.safetensors)")


def _read(path: Path | None, what: str) -> dict[str, torch.Tensor] | None:
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    return load_state_dict_weights_only(path, what)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.override)
    model = convert_checkpoints(
        config,
        generator=_read(args.generator, "--generator"),
        generator_ema=_read(args.generator_ema, "--generator-ema"),
        discriminator=_read(args.discriminator, "--discriminator"),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    reloaded = FQBigGANForImageGeneration.from_pretrained(args.out)
    source, target = model.state_dict(), reloaded.state_dict()
    if set(source) != set(target) or not all(torch.equal(source[k], target[k]) for k in source):
        raise RuntimeError(f"{args.out}: the saved weights do not reload identically")
    parameters = sum(p.numel() for p in model.generator_ema.parameters())
    print(
        f"Converted FQ-BigGAN ({config.resolution}x{config.resolution}, {config.num_classes} classes, "
        f"use_fq={config.use_fq}, fq_layers={config.fq_layers if config.use_fq else []}, "
        f"{parameters / 1e6:.2f}M generator parameters) -> {args.out}"
    )
    return 0
