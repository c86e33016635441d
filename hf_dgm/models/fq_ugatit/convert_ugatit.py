"""Convert a UGATIT-pytorch checkpoint (znxlwm/UGATIT-pytorch) into an hf-dgm FQ-U-GAT-IT folder.

Usage:

    python -m hf_dgm.convert ugatit --checkpoint selfie2anime_params_latest.pt --out ugatit-dir
    python -m hf_dgm.convert ugatit --checkpoint X.pt --out dir --use_fq      # add fresh quantizers to fine-tune FQ
    python -m hf_dgm.convert ugatit --checkpoint old.pt --out dir --norm_variance nested_unbiased  # port < f7a4b59

The checkpoint is one `torch.save` dict with the state dicts `genA2B`, `genB2A`, `disGA`, `disGB`, `disLA`,
`disLB` (what the port's `save()` writes), read with `torch.load(..., weights_only=True)`. A DataParallel
`module.` prefix is accepted. The architecture is read from the tensor shapes:

- `ngf`, `num_channels`: generator `DownBlock.1.weight` `(ngf, C, 7, 7)`;
- `n_res_blocks`: the number of `UpBlock1_{i}` blocks (checked against the encoder's residual blocks);
- `light` and `image_size`: generator `FC.0.weight` `(4·ngf, X)`; `X = 4·ngf` is the light model, otherwise
  `X = (S/4)²·4·ngf` gives S. The light model's weights do not depend on S: it gets `--image_size` (default 256,
  the port's default), the resolution the pipeline resizes to;
- `ndf` and the global/local discriminator depths: `disGA`/`disLA` `model.{3j+1}.weight_orig` (`n_layers − 1`
  convolutions, the first `(ndf, C, 4, 4)`).

AdaLIN/ILN variances: the port computes unbiased variances over the normalised axes (`torch.var(x, dim=[2, 3])`,
`torch.var(x, dim=[1, 2, 3])`) since its commit f7a4b59 (2019-08-27); the converted config sets
`norm_variance="unbiased"` so the outputs are the port's. A checkpoint trained with the port before that commit
(nested `torch.var(torch.var(x, 2), 3)`) needs `--norm_variance nested_unbiased`. Spectral-norm tensors
(`weight_orig`, `weight_u`, `weight_v` of `torch.nn.utils.spectral_norm`) map to the parametrization's
(`parametrizations.weight.original`, `._u`, `._v`): in eval mode both normalise by `uᵀ W v` with the stored vectors,
and the model's default `spectral_norm_order="v_then_u"` also updates them in training as the port's hook does.
Checkpoints from torch < 1.1 (no `weight_v`) are refused. Without `--use_fq` the result is plain U-GAT-IT
(`use_fq=False`, the port has no quantizer). The folder is written with `save_pretrained` (safetensors) and
reloaded once to check it.

Key mapping (port → hf-dgm), per generator (`generator_a2b` ← `genA2B`, `generator_b2a` ← `genB2A`):

| port | hf-dgm |
|---|---|
| `DownBlock.1` / `.5` / `.9` | `stem` / `down_convs.0` / `down_convs.1` |
| `DownBlock.{12+i}.conv_block.{1,5}` | `encoder_blocks.{i}.{conv1,conv2}` |
| `FC.0`, `FC.2`, `gamma`, `beta` | `mlp_fc1`, `mlp_fc2`, `gamma_fc`, `beta_fc` |
| `UpBlock1_{i+1}.{conv1,norm1,conv2,norm2}` | `decoder_blocks.{i}.{conv1,norm1,conv2,norm2}` |
| `UpBlock2.{2,3}` / `UpBlock2.{7,8}` / `UpBlock2.11` | `up_blocks.0.{conv,norm}` / `up_blocks.1.{conv,norm}` / `output_conv` |
| `gap_fc`, `gmp_fc`, `conv1x1` | same |

and per discriminator (`discriminator_{global,local}_{a,b}` ← `dis{G,L}{A,B}`): `model.{3j+1}` → `convs.{j}`,
`conv` → `output_conv`, `gap_fc`, `gmp_fc`, `conv1x1` unchanged.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from pathlib import Path

import torch

from ...models.fq_ugatit import FQUGATITConfig, FQUGATITModel


logger = logging.getLogger(__name__)

NETWORKS = {
    "genA2B": "generator_a2b",
    "genB2A": "generator_b2a",
    "disGA": "discriminator_global_a",
    "disGB": "discriminator_global_b",
    "disLA": "discriminator_local_a",
    "disLB": "discriminator_local_b",
}

_SN_LEAVES = {"weight_orig": "parametrizations.weight.original", "weight_u": "parametrizations.weight.0._u",
              "weight_v": "parametrizations.weight.0._v"}  # fmt: skip


def _strip_module(state: dict) -> dict:
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def load_port_checkpoint(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """Read the port's checkpoint (`weights_only=True`) and check it holds the six state dicts."""
    from ...convert import load_state_dict_weights_only

    checkpoint = load_state_dict_weights_only(path, "--checkpoint")
    expected = f"expected a UGATIT-pytorch checkpoint: a dict of the state dicts {list(NETWORKS)}"
    if not isinstance(checkpoint, dict):
        raise ValueError(f"--checkpoint: {path} holds a {type(checkpoint).__name__}; {expected}")
    missing = [name for name in NETWORKS if name not in checkpoint]
    if missing:
        raise ValueError(
            f"--checkpoint: {path} is not a UGATIT-pytorch checkpoint, missing {missing} (found keys "
            f"{sorted(map(str, checkpoint))[:10]}); {expected}"
        )
    for name in NETWORKS:
        state = checkpoint[name]
        if not isinstance(state, dict):
            raise ValueError(f"--checkpoint: {path}: {name} is a {type(state).__name__}, not a state dict; {expected}")
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"--checkpoint: {path}: {name}[{key!r}] is a {type(value).__name__} ({value!r:.40}), not a "
                    f"tensor; {expected} (parameter name -> tensor)"
                )
    return {name: _strip_module(dict(checkpoint[name])) for name in NETWORKS}


def _discriminator_depth(state: dict, name: str) -> tuple[int, int]:
    """(n_layers, ndf) of a port discriminator."""
    conv_ids = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight_orig", k)))
    if not conv_ids or conv_ids != [3 * j + 1 for j in range(len(conv_ids))]:
        raise ValueError(f"{name}: unexpected layout of `model.*` convolutions ({conv_ids})")
    return len(conv_ids) + 1, int(state["model.1.weight_orig"].shape[0])


PORT_NORM_VARIANCES = ("unbiased", "nested_unbiased")


def infer_config(
    states: dict[str, dict[str, torch.Tensor]],
    image_size: int | None = None,
    norm_variance: str = "unbiased",
    **overrides,
) -> FQUGATITConfig:
    """Build the [`FQUGATITConfig`] that the shapes of the port's state dicts describe.

    `norm_variance`: `"unbiased"` (the port since commit f7a4b59, default) or `"nested_unbiased"` (the port before
    it); the shapes cannot tell them apart."""
    if norm_variance not in PORT_NORM_VARIANCES:
        raise ValueError(f"`norm_variance` of a UGATIT-pytorch checkpoint must be one of {PORT_NORM_VARIANCES}, got {norm_variance!r}")
    gen = states["genA2B"]
    try:
        stem = gen["DownBlock.1.weight"]
        fc0 = gen["FC.0.weight"]
    except KeyError as err:
        raise ValueError(f"genA2B lacks {err.args[0]!r}: not a UGATIT-pytorch ResnetGenerator") from None
    ngf, num_channels = int(stem.shape[0]), int(stem.shape[1])
    features = 4 * ngf
    n_blocks = len({m.group(1) for k in gen if (m := re.match(r"UpBlock1_(\d+)\.", k))})
    n_encoder = len({m.group(1) for k in gen if (m := re.match(r"DownBlock\.(\d+)\.conv_block\.", k))})
    if n_blocks != n_encoder:
        raise ValueError(f"genA2B: {n_encoder} encoder residual blocks but {n_blocks} AdaLIN blocks")
    fc_in = int(fc0.shape[1])
    if fc_in == features:
        light = True
        size = 256 if image_size is None else int(image_size)
    else:
        light = False
        side = math.isqrt(fc_in // features) if fc_in % features == 0 else 0
        if side * side * features != fc_in:
            raise ValueError(f"genA2B FC.0.weight has {fc_in} inputs: not (S/4)²·{features} for any S")
        size = 4 * side
        if image_size is not None and int(image_size) != size:
            raise ValueError(f"--image_size {image_size} contradicts the generator's MLP, built for {size} px")
    global_layers, ndf = _discriminator_depth(states["disGA"], "disGA")
    local_layers, ndf_local = _discriminator_depth(states["disLA"], "disLA")
    if ndf_local != ndf:
        raise ValueError(f"disGA has ndf={ndf} but disLA has ndf={ndf_local}")
    for name, ref in (("disGB", global_layers), ("disLB", local_layers)):
        if _discriminator_depth(states[name], name)[0] != ref:
            raise ValueError(f"{name} does not have the depth of its domain-A twin ({ref} layers)")
    kwargs = dict(
        num_channels=num_channels,
        image_size=size,
        ngf=ngf,
        n_res_blocks=n_blocks,
        light=light,
        ndf=ndf,
        global_discriminator_layers=global_layers,
        local_discriminator_layers=local_layers,
        norm_variance=norm_variance,
        use_fq=False,
    )
    kwargs.update(overrides)
    return FQUGATITConfig(**kwargs)


def _generator_key(key: str) -> str:
    fixed = {
        "DownBlock.1.weight": "stem.weight",
        "DownBlock.5.weight": "down_convs.0.weight",
        "DownBlock.9.weight": "down_convs.1.weight",
        "FC.0.weight": "mlp_fc1.weight",
        "FC.2.weight": "mlp_fc2.weight",
        "gamma.weight": "gamma_fc.weight",
        "beta.weight": "beta_fc.weight",
        "UpBlock2.11.weight": "output_conv.weight",
    }
    if key in fixed:
        return fixed[key]
    if key.split(".")[0] in ("gap_fc", "gmp_fc", "conv1x1"):
        return key
    if m := re.fullmatch(r"DownBlock\.(\d+)\.conv_block\.([15])\.weight", key):
        return f"encoder_blocks.{int(m.group(1)) - 12}.{'conv1' if m.group(2) == '1' else 'conv2'}.weight"
    if m := re.fullmatch(r"UpBlock1_(\d+)\.((?:conv|norm)[12]\.(?:weight|rho))", key):
        return f"decoder_blocks.{int(m.group(1)) - 1}.{m.group(2)}"
    if m := re.fullmatch(r"UpBlock2\.(\d+)\.(weight|rho|gamma|beta)", key):
        index, leaf = int(m.group(1)), m.group(2)
        table = {2: "up_blocks.0.conv", 3: "up_blocks.0.norm", 7: "up_blocks.1.conv", 8: "up_blocks.1.norm"}
        if index in table:
            return f"{table[index]}.{leaf}"
    raise ValueError(f"generator key {key!r} has no counterpart")


def _discriminator_key(key: str) -> str:
    module, _, leaf = key.rpartition(".")
    if m := re.fullmatch(r"model\.(\d+)", module):
        index = int(m.group(1))
        if (index - 1) % 3:
            raise ValueError(f"discriminator key {key!r} has no counterpart")
        module = f"convs.{(index - 1) // 3}"
    elif module == "conv":
        module = "output_conv"
    elif module not in ("gap_fc", "gmp_fc", "conv1x1"):
        raise ValueError(f"discriminator key {key!r} has no counterpart")
    if leaf in _SN_LEAVES:
        return f"{module}.{_SN_LEAVES[leaf]}"
    if leaf in ("weight", "bias"):
        return f"{module}.{leaf}"
    raise ValueError(f"discriminator key {key!r} has no counterpart")


def convert_state_dicts(states: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Map the six port state dicts onto one `FQUGATITModel` state dict."""
    out = {}
    for name, prefix in NETWORKS.items():
        mapper = _generator_key if name.startswith("gen") else _discriminator_key
        for key, tensor in states[name].items():
            try:
                out[f"{prefix}.{mapper(key)}"] = tensor
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
    return out


def convert(
    states: dict[str, dict[str, torch.Tensor]],
    image_size: int | None = None,
    use_fq: bool = False,
    norm_variance: str = "unbiased",
) -> FQUGATITModel:
    """Build an [`FQUGATITModel`] holding the port's weights (eval mode). `norm_variance`: see [`infer_config`]."""
    if any("weight_orig" in k and k.replace("weight_orig", "weight_v") not in s for s in states.values() for k in s):
        raise ValueError(
            "spectral-norm `weight_v` tensors are missing (a checkpoint of torch < 1.1): re-save it with a newer torch"
        )
    config = infer_config(states, image_size=image_size, norm_variance=norm_variance, use_fq=use_fq)
    model = FQUGATITModel(config)
    mapped = convert_state_dicts(states)
    target = model.state_dict()
    missing = sorted(k for k in target if k not in mapped and ".quantizers." not in k)
    unexpected = sorted(k for k in mapped if k not in target)
    if missing or unexpected:
        raise ValueError(f"conversion mismatch: missing {missing[:10]}, unexpected {unexpected[:10]}")
    for key, tensor in mapped.items():
        if tuple(target[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} from the checkpoint, {tuple(target[key].shape)} expected")
    model.load_state_dict(mapped, strict=False)
    return model.eval()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="UGATIT-pytorch `<dataset>_params_*.pt`")
    parser.add_argument("--out", type=Path, required=True, help="output folder (config.json + model.safetensors)")
    parser.add_argument(
        "--image_size", type=int, default=None,
        help="resolution of a light model (its weights do not fix it; default 256); checked for the full model",
    )  # fmt: skip
    parser.add_argument(
        "--norm_variance", choices=PORT_NORM_VARIANCES, default="unbiased",
        help="AdaLIN/ILN variance of the port that trained the checkpoint: 'unbiased' (default; torch.var(x, "
        "dim=[2, 3]) and dim=[1, 2, 3], UGATIT-pytorch's networks.py since commit f7a4b59, 2019-08-27) or "
        "'nested_unbiased' (torch.var(torch.var(x, 2), 3), the port before that commit: only for checkpoints "
        "trained with that older code)",
    )  # fmt: skip
    parser.add_argument("--use_fq", action="store_true", help="add freshly initialised quantizers (to fine-tune FQ)")


def run(args: argparse.Namespace) -> int:
    states = load_port_checkpoint(args.checkpoint)
    model = convert(states, image_size=args.image_size, use_fq=args.use_fq, norm_variance=args.norm_variance)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    reloaded = FQUGATITModel.from_pretrained(args.out)
    for key, tensor in model.state_dict().items():
        if not torch.equal(tensor, reloaded.state_dict()[key]):
            raise RuntimeError(f"{args.out}: {key} differs after reloading")
    c = model.config
    print(
        f"converted {args.checkpoint} -> {args.out}: ngf={c.ngf}, n_res_blocks={c.n_res_blocks}, light={c.light}, "
        f"image_size={c.image_size}, ndf={c.ndf}, discriminator layers {c.global_discriminator_layers}/"
        f"{c.local_discriminator_layers}, norm_variance={c.norm_variance}, use_fq={c.use_fq}"
    )
    return 0


__all__ = ["PORT_NORM_VARIANCES", "add_arguments", "convert", "convert_state_dicts", "infer_config", "load_port_checkpoint", "run"]
