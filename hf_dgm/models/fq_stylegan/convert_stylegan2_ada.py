"""Convert a StyleGAN2-ADA-format pickle (`network-snapshot-*.pkl`) into an hf-dgm FQ-StyleGAN folder, without
running any code from the pickle.

Usage (`stylegan2_ada`, this module's name, is an alias of the family's converter command `fq_stylegan`):

    python -m hf_dgm.convert stylegan2_ada --pickle network-snapshot.pkl --out sg2-dir
    hf-dgm convert fq_stylegan --pickle network-snapshot.pkl --out sg2-dir

**Why a custom reader.** NVlabs' snapshots are plain pickles of `dict(G=…, D=…, G_ema=…, training_set_kwargs=…,
augment_pipe=…)` whose networks are `@persistence.persistent_class` objects: each is pickled as
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with `meta = dict(type='class', version, module_src,
class_name, state)`, and the normal loader `exec`s `module_src` (arbitrary code). This module's
[`SafeSnapshotUnpickler`] resolves only an allow-list of globals, each to a function of its own:

| global in the pickle | what it becomes |
|---|---|
| `torch_utils.persistence._reconstruct_persistent_obj` | [`PersistentRecord`] (class name + `state`); `module_src` is never executed |
| `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, `_rebuild_parameter_with_state` | checked tensor rebuilds (plain tensors; hooks and extra state refused) |
| `torch.storage._load_from_bytes` | `torch.load(bytes, weights_only=True)`, which must give a storage |
| `collections.OrderedDict`, `builtins.set` / `frozenset` | themselves |
| `numpy` `scalar`, `dtype`, `_reconstruct`, `ndarray` (`numpy.core` / `numpy._core`) | themselves (data only) |
| `dnnlib.util.EasyDict` | `dict` |
| `_codecs.encode` (protocol-2 bytes) | `str.encode`, `latin1` only |

Every other global (e.g. `os.system`, `builtins.eval`, any class of the original code base) raises
[`UnsafePickleError`] naming it, before anything is called; persistent ids are refused too.

**What is converted.** The StyleGAN2 networks of StyleGAN2-ADA (`training/networks.py`): an unconditional generator
with the `skip` synthesis architecture and a `resnet` discriminator (the ADA defaults). The architecture is read from
the records (tensor shapes, `conv_clamp`, mbstd group, mapping depth and learning-rate multiplier, `w_avg_beta`),
not from `module_src`. StyleGAN3 pickles load with the same reader but their synthesis network is another
architecture, which this converter refuses, as it refuses conditional (`c_dim > 0`) networks.

Key mapping (ADA → hf-dgm, under `generator` / `generator_ema` / `discriminator`): `mapping.fc{i}.*` →
`mapping.layers.{i}.*`; `mapping.w_avg` → `mapping.w_avg`; `synthesis.b{R}.{const,conv0,conv1,torgb}.*` →
`synthesis.blocks.{log2(R)-2}.*` (same leaf names); D `b{R}.{fromrgb,conv0,conv1,skip}.*` →
`blocks.{j}.*` (j = 0 for the image resolution); D `b4.{conv,fc,out}.*` → `epilogue.*`. The constant
`resample_filter` buffers are checked against the config's filter, not copied. Without `G` the EMA weights fill the
generator; without `D` the folder holds an [`FQStyleGANGeneratorModel`] (sampling only).

The folder is written with `save_pretrained` (safetensors) and reloaded once to check it.
"""

from __future__ import annotations

import argparse
import io
import math
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration, FQStyleGANGeneratorModel
from ...models.fq_stylegan.modeling_fq_stylegan import fir_filter


class UnsafePickleError(ValueError):
    """The pickle references something the safe reader does not allow."""


@dataclass
class PersistentRecord:
    """A `@persistence.persistent_class` object as stored in the pickle, never instantiated: the class name it had
    and its `__dict__` (`state`), with `_parameters`, `_buffers`, `_modules` and the layer's own attributes."""

    class_name: str
    state: dict = field(repr=False)
    stylegan3_source: bool = False  # its `module_src` defines StyleGAN3's `SynthesisInput` (text search only)

    @property
    def parameters(self) -> dict[str, torch.Tensor]:
        return dict(self.state.get("_parameters") or {})

    @property
    def buffers(self) -> dict[str, torch.Tensor]:
        return dict(self.state.get("_buffers") or {})

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def get(self, name: str, default=None):
        return self.state.get(name, default)


# ----------------------------------------------------------------------------------------------------------------
# The restricted unpickler
# ----------------------------------------------------------------------------------------------------------------
def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("a persistence record must be a dict with type='class'")
    state = meta.get("state")
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"the state of persistent object {meta.get('class_name')!r} is not a dict")
    source = meta.get("module_src")
    # the source is only searched as text (never executed): StyleGAN3's networks_stylegan3.py defines SynthesisInput
    stylegan3 = isinstance(source, str) and "class SynthesisInput" in source
    return PersistentRecord(class_name=str(meta.get("class_name")), state=state, stylegan3_source=stylegan3)


def _load_storage_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("torch.storage._load_from_bytes expects bytes")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(f"a tensor storage inside the pickle is not plain data: {err}") from err
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"torch.storage._load_from_bytes gave a {type(storage).__name__}, not a storage")
    return storage


def _check_hooks(hooks) -> None:
    if hooks:
        raise UnsafePickleError("tensors with backward hooks are not accepted")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"_rebuild_tensor_v2 got a {type(storage).__name__} instead of a storage")
    _check_hooks(backward_hooks)
    if metadata:
        raise UnsafePickleError("tensor metadata is not accepted")
    return torch._utils._rebuild_tensor_v2(
        storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride),
        bool(requires_grad), OrderedDict(),
    )


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"_rebuild_parameter got a {type(data).__name__} instead of a tensor")
    _check_hooks(backward_hooks)
    if state:
        raise UnsafePickleError("parameters with extra state are not accepted")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _encode_latin1(text, encoding="latin1"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode is only accepted with latin1 text, got {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    try:
        from numpy._core import multiarray as _multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray as _multiarray
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "scalar")] = _multiarray.scalar
        allowed[(module, "_reconstruct")] = _multiarray._reconstruct
    return allowed


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("dnnlib.util", "EasyDict"): dict,
    ("_codecs", "encode"): _encode_latin1,
    **_numpy_globals(),
}


class SafeSnapshotUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only the allow-listed globals (module docstring) and refuses everything
    else, naming it, before it could be called. It never imports a module named by the pickle."""

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[key]
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: the pickle references a global that the safe StyleGAN2-ADA reader "
            "does not allow (only tensors, containers, numpy data and persistence records are read)"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing persistent id {pid!r}: not part of the StyleGAN2-ADA snapshot format")


SNAPSHOT = "a StyleGAN2-ADA network-snapshot-*.pkl (a pickle of dict(G, D, G_ema, ...))"


def load_snapshot(path_or_file) -> Any:
    """Read a StyleGAN2-ADA/StyleGAN3-format pickle safely; networks come back as [`PersistentRecord`]s.

    For a path, every failure is a `ValueError` naming the file: missing, empty, truncated, not a pickle, or a
    global outside the allow-list (`UnsafePickleError`)."""
    if not isinstance(path_or_file, (str, Path)):
        return SafeSnapshotUnpickler(path_or_file).load()
    path = Path(path_or_file)
    if not path.is_file():
        raise ValueError(f"--pickle: {path}: no such file (expected {SNAPSHOT})")
    with open(path, "rb") as handle:
        head = handle.read(2)
        handle.seek(0)
        if not head:
            raise ValueError(f"--pickle: {path} is empty (0 bytes); expected {SNAPSHOT}")
        if head == b"PK":
            raise ValueError(f"--pickle: {path} is a zip archive (a torch.save file?), not a pickle; expected {SNAPSHOT}")
        what = "a truncated or corrupted pickle" if head[:1] == b"\x80" else "not a pickle"
        try:
            return SafeSnapshotUnpickler(handle).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(f"--pickle: {path}: {err}") from None
        except EOFError:
            raise ValueError(
                f"--pickle: {path} is truncated (the pickle ends before its last opcode); expected {SNAPSHOT}: "
                "copy or download it again"
            ) from None
        except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                UnicodeDecodeError, RuntimeError, MemoryError, OverflowError) as err:  # fmt: skip
            raise ValueError(
                f"--pickle: {path} is {what} ({type(err).__name__}: {err}); expected {SNAPSHOT}"
            ) from None


# ----------------------------------------------------------------------------------------------------------------
# ADA state → hf-dgm
# ----------------------------------------------------------------------------------------------------------------
def _flatten(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """All parameters and buffers of a record tree, by dotted path (as `nn.Module.state_dict` names them)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in {**record.parameters, **record.buffers}.items():
        if value is not None:
            if not isinstance(value, torch.Tensor):
                raise UnsafePickleError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            tensors[prefix + name] = value.detach()
    for name, child in record.modules.items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise ValueError(f"submodule {prefix}{name} is a {type(child).__name__}, not a persistence record")
        tensors.update(_flatten(child, f"{prefix}{name}."))
    return tensors


def _require(record: Any, what: str, class_names: tuple[str, ...]) -> PersistentRecord:
    if not isinstance(record, PersistentRecord):
        raise ValueError(f"{what} is a {type(record).__name__}, not a network record")
    if record.class_name not in class_names:
        raise ValueError(
            f"{what} is a {record.class_name!r}; this converter handles the StyleGAN2 networks of StyleGAN2-ADA "
            f"({' / '.join(class_names)}). StyleGAN3 synthesis networks are a different architecture."
        )
    return record


def _channels_config(channels: dict[int, int], hint_base: Any, hint_max: Any) -> tuple[int, int]:
    """(channel_base, channel_max) with `min(base // r, max) == channels[r]` for every resolution r."""

    def fits(base: int, cmax: int) -> bool:
        return all(min(base // r, cmax) == c for r, c in channels.items())

    if isinstance(hint_base, int) and isinstance(hint_max, int) and fits(hint_base, hint_max):
        return hint_base, hint_max
    cmax = max(channels.values())
    below = [r * c for r, c in channels.items() if c < cmax]
    candidates = below or [cmax * min(channels)]
    base = max(candidates)
    if not fits(base, cmax):
        raise ValueError(f"the channel counts {channels} do not follow min(channel_base / r, channel_max)")
    return base, cmax


def config_from_records(generator: PersistentRecord, discriminator: PersistentRecord | None) -> FQStyleGANConfig:
    """Read the architecture of ADA `Generator` (and `Discriminator`) records into an [`FQStyleGANConfig`]
    (`use_fq=False`: StyleGAN2 has no quantizers)."""
    if int(generator.get("c_dim", 0) or 0) != 0:
        raise ValueError("conditional StyleGAN2-ADA networks (c_dim > 0) are not supported: FQ-StyleGAN is unconditional")
    mapping = _require(generator.modules.get("mapping"), "G.mapping", ("MappingNetwork",))
    synthesis = _require(generator.modules.get("synthesis"), "G.synthesis", ("SynthesisNetwork",))
    resolution = int(generator.get("img_resolution"))
    z_dim, w_dim = int(generator.get("z_dim")), int(generator.get("w_dim"))
    layers = sorted(int(m.group(1)) for name in mapping.modules if (m := re.fullmatch(r"fc(\d+)", name)))
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"G.mapping has no fc0..fcN layers: {sorted(mapping.modules)}")
    if "embed" in mapping.modules and mapping.modules["embed"] is not None:
        raise ValueError("G.mapping has a label embedding: conditional networks are not supported")
    fc0 = mapping.modules["fc0"]
    lr_multiplier = float(fc0.get("bias_gain", 1.0))

    channels: dict[int, int] = {}
    conv_clamp = None
    for log2 in range(2, int(math.log2(resolution)) + 1):
        res = 2**log2
        block = _require(synthesis.modules.get(f"b{res}"), f"G.synthesis.b{res}", ("SynthesisBlock",))
        if block.get("architecture", "skip") != "skip":
            raise ValueError(f"G.synthesis.b{res} uses architecture {block.get('architecture')!r}; only 'skip' is supported")
        conv1 = _require(block.modules.get("conv1"), f"G.synthesis.b{res}.conv1", ("SynthesisLayer",))
        if not conv1.get("use_noise", True):
            raise ValueError("synthesis layers without noise inputs are not supported")
        channels[res] = int(conv1.parameters["weight"].shape[0])
        conv_clamp = conv1.get("conv_clamp", None)
    kwargs = generator.get("_init_kwargs") or {}
    synthesis_kwargs = dict(kwargs.get("synthesis_kwargs") or {})
    channel_base, channel_max = _channels_config(
        channels, synthesis_kwargs.get("channel_base"), synthesis_kwargs.get("channel_max")
    )
    values: dict[str, Any] = dict(
        resolution=resolution,
        num_channels=int(generator.get("img_channels", 3)),
        z_dim=z_dim,
        w_dim=w_dim,
        mapping_layers=len(layers),
        mapping_lr_multiplier=lr_multiplier,
        w_avg_beta=float(mapping.get("w_avg_beta", 0.995) or 0.995),
        channel_base=channel_base,
        channel_max=channel_max,
        conv_clamp=conv_clamp,
        use_fq=False,
    )
    if discriminator is not None:
        if int(discriminator.get("c_dim", 0) or 0) != 0:
            raise ValueError("conditional discriminators (c_dim > 0) are not supported")
        epilogue = _require(discriminator.modules.get("b4"), "D.b4", ("DiscriminatorEpilogue",))
        if epilogue.get("architecture", "resnet") != "resnet":
            raise ValueError("only the 'resnet' discriminator architecture is supported")
        mbstd = epilogue.modules.get("mbstd")
        if isinstance(mbstd, PersistentRecord):
            values["mbstd_group_size"] = int(mbstd.get("group_size") or 0)
            values["mbstd_num_channels"] = int(mbstd.get("num_channels", 1))
        else:
            values["mbstd_num_channels"] = 0
        for res in [2**i for i in range(int(math.log2(resolution)), 2, -1)]:
            block = _require(discriminator.modules.get(f"b{res}"), f"D.b{res}", ("DiscriminatorBlock",))
            if block.get("architecture", "resnet") != "resnet":
                raise ValueError(f"D.b{res} uses architecture {block.get('architecture')!r}; only 'resnet' is supported")
    return FQStyleGANConfig(**values)


_GENERATOR_LEAF = re.compile(r"^synthesis\.b(\d+)\.(.+)$")
_DISCRIMINATOR_LEAF = re.compile(r"^b(\d+)\.(.+)$")


def convert_generator_tensors(tensors: dict[str, torch.Tensor], config: FQStyleGANConfig) -> dict[str, torch.Tensor]:
    """ADA `Generator` tensors (dotted names) → [`FQStyleGANGenerator`] state dict."""
    taps = fir_filter(config.resample_filter)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith("resample_filter"):
            if tensor.shape != taps.shape or not torch.allclose(tensor.float(), taps, atol=1e-6):
                raise ValueError(f"{name} is not the [1, 3, 3, 1] FIR filter this model uses")
            continue
        if match := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", name):
            out[f"mapping.layers.{match.group(1)}.{match.group(2)}"] = tensor
        elif name == "mapping.w_avg":
            out["mapping.w_avg"] = tensor
        elif match := _GENERATOR_LEAF.match(name):
            res, leaf = int(match.group(1)), match.group(2)
            out[f"synthesis.blocks.{int(math.log2(res)) - 2}.{leaf}"] = tensor
        else:
            raise ValueError(f"unexpected generator tensor {name!r}")
    return out


def convert_discriminator_tensors(tensors: dict[str, torch.Tensor], config: FQStyleGANConfig) -> dict[str, torch.Tensor]:
    """ADA `Discriminator` tensors → [`FQStyleGANDiscriminator`] state dict."""
    taps = fir_filter(config.resample_filter)
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith("resample_filter"):
            if tensor.shape != taps.shape or not torch.allclose(tensor.float(), taps, atol=1e-6):
                raise ValueError(f"{name} is not the [1, 3, 3, 1] FIR filter this model uses")
            continue
        match = _DISCRIMINATOR_LEAF.match(name)
        if match is None:
            raise ValueError(f"unexpected discriminator tensor {name!r}")
        res, leaf = int(match.group(1)), match.group(2)
        if res == 4:
            out[f"epilogue.{leaf}"] = tensor
        else:
            out[f"blocks.{config.log2_resolution - int(math.log2(res))}.{leaf}"] = tensor
    return out


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what}: the pickle does not match the architecture read from it "
                         f"(missing {missing[:8]}, unexpected {unexpected[:8]})")  # fmt: skip
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(f"{what}.{name}: shape {tuple(tensor.shape)} in the pickle, {tuple(expected[name].shape)} expected")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


_STYLEGAN3_CLASSES = ("SynthesisInput",)
_STYLEGAN3_LAYER = re.compile(r"^L\d+_\d+_\d+$")  # StyleGAN3 synthesis layers: L{idx}_{size}_{channels}


def stylegan3_evidence(snapshot: Any) -> str | None:
    """Why the snapshot's records are StyleGAN3's (`training.networks_stylegan3`), or None: a `SynthesisInput`
    record, synthesis layers named `L{i}_{size}_{channels}`, or a record source defining `SynthesisInput`."""
    if not isinstance(snapshot, dict):
        return None
    seen: set[int] = set()
    stack = [(name, value) for name, value in snapshot.items() if isinstance(value, PersistentRecord)]
    while stack:
        path, record = stack.pop()
        if id(record) in seen:
            continue
        seen.add(id(record))
        if record.class_name in _STYLEGAN3_CLASSES:
            return f"{path} is a {record.class_name} record of training.networks_stylegan3"
        if _STYLEGAN3_LAYER.match(path.rsplit(".", 1)[-1]):
            return f"{path} is a StyleGAN3 synthesis layer ({record.class_name})"
        if record.stylegan3_source:
            return f"the source recorded for {path} ({record.class_name}) is training/networks_stylegan3.py"
        stack += [(f"{path}.{name}", child) for name, child in record.modules.items() if isinstance(child, PersistentRecord)]
    return None


def convert_snapshot(snapshot: Any) -> FQStyleGANForImageGeneration | FQStyleGANGeneratorModel:
    """Build the hf-dgm model from a snapshot read by [`load_snapshot`] (`dict` with `G_ema`, optionally `G`, `D`)."""
    if not isinstance(snapshot, dict):
        raise ValueError(f"a StyleGAN2-ADA snapshot is a dict with 'G_ema' (and 'G', 'D'), got {type(snapshot).__name__}")
    if "G_ema" not in snapshot:
        raise ValueError(f"the snapshot has no 'G_ema' network (keys: {sorted(snapshot)})")
    if stylegan3_evidence(snapshot):
        raise ValueError(
            f"this is a StyleGAN3 snapshot ({stylegan3_evidence(snapshot)}): StyleGAN3's alias-free synthesis network "
            "(training/networks_stylegan3.py: SynthesisInput and L{i}_{size}_{channels} layers) is a different "
            "architecture, which this converter refuses. It converts "
            "the StyleGAN2 networks of StyleGAN2-ADA (training/networks.py: Generator / SynthesisNetwork with "
            "b4..bN SynthesisBlocks)"
        )
    g_ema = _require(snapshot["G_ema"], "G_ema", ("Generator",))
    g = _require(snapshot["G"], "G", ("Generator",)) if snapshot.get("G") is not None else g_ema
    d = _require(snapshot["D"], "D", ("Discriminator",)) if snapshot.get("D") is not None else None
    config = config_from_records(g_ema, d)
    with torch.no_grad():
        if d is None:
            model = FQStyleGANGeneratorModel(config)
        else:
            model = FQStyleGANForImageGeneration(config)
            _load_into(model.generator, convert_generator_tensors(_flatten(g), config), "G")
            _load_into(model.discriminator, convert_discriminator_tensors(_flatten(d), config), "D")
        _load_into(model.generator_ema, convert_generator_tensors(_flatten(g_ema), config), "G_ema")
    return model.eval()


def convert_pickle(path: str | Path, out: str | Path) -> FQStyleGANForImageGeneration | FQStyleGANGeneratorModel:
    """Read `path` safely, convert, save to `out` (safetensors) and reload once to check."""
    snapshot = load_snapshot(path)
    try:
        model = convert_snapshot(snapshot)
    except ValueError as err:
        raise type(err)(f"--pickle: {path}: {err}") from None
    out = Path(out)
    model.save_pretrained(out)
    reloaded = type(model).from_pretrained(out)
    for name, tensor in model.state_dict().items():
        if not torch.equal(tensor, reloaded.state_dict()[name]):
            raise RuntimeError(f"{name} changed when the saved folder was reloaded")
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pickle", type=Path, required=True, help="StyleGAN2-ADA network-snapshot-*.pkl")
    parser.add_argument("--out", type=Path, required=True, help="output folder (config.json + model.safetensors)")


def run(args: argparse.Namespace) -> int:
    model = convert_pickle(args.pickle, args.out)
    config = model.config
    print(
        f"wrote {type(model).__name__} to {args.out}: {config.resolution}x{config.resolution}, "
        f"channel_base={config.channel_base}, channel_max={config.channel_max}, mapping_layers={config.mapping_layers}, "
        f"conv_clamp={config.conv_clamp}"
    )
    return 0


__all__ = [
    "PersistentRecord",
    "SafeSnapshotUnpickler",
    "UnsafePickleError",
    "config_from_records",
    "convert_discriminator_tensors",
    "convert_generator_tensors",
    "convert_pickle",
    "convert_snapshot",
    "load_snapshot",
    "stylegan3_evidence",
]
