"""StyleGAN2-ADA pickle converter: safe reading (nothing from the pickle runs), mapping, and image parity with a
reference computation of the original networks' math, written here from the formulas (per sample, explicit zero
insertion and flipped-kernel convolutions instead of the model's grouped/transposed convolutions)."""

from __future__ import annotations

import io
import math
import os
import pickle
import subprocess
import sys
import types
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from hf_dgm.models.fq_stylegan.convert_stylegan2_ada import (
    PersistentRecord,
    UnsafePickleError,
    convert_pickle,
    load_snapshot,
)
from hf_dgm.models.fq_stylegan import FQStyleGANForImageGeneration, FQStyleGANGeneratorModel


RES, Z, W, MAP_LAYERS, BASE, CMAX, CLAMP, GROUP = 16, 8, 8, 2, 64, 8, 256.0, 2
SRC_MARKER_NAME = "module_src_was_executed"


# ---------------------------------------------------------------------------------------------------------------
# Writing pickles in the StyleGAN2-ADA format
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def ada_modules(tmp_path):
    """Stand-ins for `torch_utils.persistence` and `dnnlib.util`, so `pickle` writes the globals a real snapshot
    references (`torch_utils.persistence._reconstruct_persistent_obj`, `dnnlib.util.EasyDict`)."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: the reader must substitute its own
        raise AssertionError("the stand-in reconstructor ran")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    saved = {name: sys.modules.get(name) for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})  # fmt: skip
    marker = tmp_path / SRC_MARKER_NAME
    yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict, marker=marker)
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


class _Persistent:
    """Pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)`, like a persistent_class object."""

    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def _record(mods, class_name, params=(), buffers=(), modules=(), **attrs):
    # module_src would write a marker file if anything exec'd it
    source = f"open({str(mods.marker)!r}, 'w').write('ran')\nclass {class_name}: pass\n"
    state = dict(
        training=False,
        _parameters=OrderedDict((k, torch.nn.Parameter(v.clone())) for k, v in params),
        _buffers=OrderedDict((k, v.clone()) for k, v in buffers),
        _non_persistent_buffers_set=set(),
        _backward_hooks=OrderedDict(),
        _forward_hooks=OrderedDict(),
        _modules=OrderedDict(modules),
        _init_args=(),
        _init_kwargs=mods.EasyDict(),
        **attrs,
    )
    meta = dict(type="class", version=4, module_src=source, class_name=class_name, state=state)
    return _Persistent(mods.reconstruct, meta)


def _filter2d():
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f)
    return f / f.sum()


def channels(res):
    return min(BASE // res, CMAX)


def random_ada_tensors(seed):
    """Random weights of a tiny ADA Generator and Discriminator, by ADA's state_dict names."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    G = {}
    for i in range(MAP_LAYERS):
        G[f"mapping.fc{i}.weight"] = r(W, Z if i == 0 else W) * 100  # stored as randn / lr_multiplier
        G[f"mapping.fc{i}.bias"] = r(W) * 0.1
    G["mapping.w_avg"] = r(W)
    for log2 in range(2, int(math.log2(RES)) + 1):
        res = 2**log2
        out_ch, in_ch = channels(res), channels(res // 2) if res > 4 else 0
        p = f"synthesis.b{res}."
        if in_ch == 0:
            G[p + "const"] = r(out_ch, res, res)
        for conv, cin in (("conv0", in_ch), ("conv1", out_ch)):
            if cin == 0:
                continue
            G[p + f"{conv}.affine.weight"] = r(cin, W)
            G[p + f"{conv}.affine.bias"] = 1 + 0.1 * r(cin)
            G[p + f"{conv}.weight"] = r(out_ch, cin, 3, 3)
            G[p + f"{conv}.bias"] = 0.1 * r(out_ch)
            G[p + f"{conv}.noise_strength"] = 0.3 * r(())
            G[p + f"{conv}.noise_const"] = r(res, res)
        G[p + "torgb.affine.weight"] = r(out_ch, W)
        G[p + "torgb.affine.bias"] = 1 + 0.1 * r(out_ch)
        G[p + "torgb.weight"] = r(3, out_ch, 1, 1)
        G[p + "torgb.bias"] = 0.1 * r(3)
    D = {}
    for res in [2**i for i in range(int(math.log2(RES)), 2, -1)]:
        tmp, out = channels(res), channels(res // 2)
        p = f"b{res}."
        if res == RES:
            D[p + "fromrgb.weight"], D[p + "fromrgb.bias"] = r(tmp, 3, 1, 1), 0.1 * r(tmp)
        D[p + "conv0.weight"], D[p + "conv0.bias"] = r(tmp, tmp, 3, 3), 0.1 * r(tmp)
        D[p + "conv1.weight"], D[p + "conv1.bias"] = r(out, tmp, 3, 3), 0.1 * r(out)
        D[p + "skip.weight"] = r(out, tmp, 1, 1)
    c4 = channels(4)
    D["b4.conv.weight"], D["b4.conv.bias"] = r(c4, c4 + 1, 3, 3), 0.1 * r(c4)
    D["b4.fc.weight"], D["b4.fc.bias"] = r(c4, c4 * 16), 0.1 * r(c4)
    D["b4.out.weight"], D["b4.out.bias"] = r(1, c4), 0.1 * r(1)
    return G, D


def _params(tensors, prefix, names):
    return [(n, tensors[prefix + n]) for n in names if prefix + n in tensors]


def build_generator_record(mods, G):
    f = _filter2d()
    fcs = [(f"fc{i}", _record(mods, "FullyConnectedLayer", _params(G, f"mapping.fc{i}.", ["weight", "bias"]),
                              activation="lrelu", weight_gain=0.01 / math.sqrt(Z if i == 0 else W), bias_gain=0.01))
           for i in range(MAP_LAYERS)]  # fmt: skip
    mapping = _record(mods, "MappingNetwork", buffers=[("w_avg", G["mapping.w_avg"])], modules=fcs,
                      z_dim=Z, c_dim=0, w_dim=W, num_ws=2 * int(math.log2(RES)) - 2, num_layers=MAP_LAYERS,
                      w_avg_beta=0.995)  # fmt: skip
    blocks = []
    for log2 in range(2, int(math.log2(RES)) + 1):
        res = 2**log2
        p = f"synthesis.b{res}."
        children = []
        for conv in ("conv0", "conv1"):
            if p + f"{conv}.weight" not in G:
                continue
            affine = _record(mods, "FullyConnectedLayer", _params(G, p + f"{conv}.affine.", ["weight", "bias"]),
                             activation="linear", bias_gain=1)  # fmt: skip
            children.append((conv, _record(
                mods, "SynthesisLayer", _params(G, p + f"{conv}.", ["weight", "noise_strength", "bias"]),
                [("resample_filter", f), ("noise_const", G[p + f"{conv}.noise_const"])], [("affine", affine)],
                resolution=res, up=2 if conv == "conv0" else 1, use_noise=True, activation="lrelu",
                conv_clamp=CLAMP, padding=1)))  # fmt: skip
        torgb_affine = _record(mods, "FullyConnectedLayer", _params(G, p + "torgb.affine.", ["weight", "bias"]),
                               activation="linear", bias_gain=1)  # fmt: skip
        children.append(("torgb", _record(mods, "ToRGBLayer", _params(G, p + "torgb.", ["weight", "bias"]),
                                          modules=[("affine", torgb_affine)], conv_clamp=CLAMP)))  # fmt: skip
        blocks.append((f"b{res}", _record(mods, "SynthesisBlock", _params(G, p, ["const"]), [("resample_filter", f)],
                                          children, architecture="skip", resolution=res)))  # fmt: skip
    synthesis = _record(mods, "SynthesisNetwork", modules=blocks, img_resolution=RES, w_dim=W)
    kwargs = mods.EasyDict(synthesis_kwargs=mods.EasyDict(channel_base=BASE, channel_max=CMAX, conv_clamp=CLAMP),
                           mapping_kwargs=mods.EasyDict(num_layers=MAP_LAYERS))  # fmt: skip
    record = _record(mods, "Generator", modules=[("synthesis", synthesis), ("mapping", mapping)], z_dim=Z, c_dim=0,
                     w_dim=W, img_resolution=RES, img_channels=3)  # fmt: skip
    record.meta["state"]["_init_kwargs"] = kwargs
    return record


def build_discriminator_record(mods, D):
    f = _filter2d()
    blocks = []
    for res in [2**i for i in range(int(math.log2(RES)), 2, -1)]:
        p = f"b{res}."
        children = []
        for name in ("fromrgb", "conv0", "conv1", "skip"):
            if p + f"{name}.weight" not in D:
                continue
            buffers = [("resample_filter", f)] if name in ("conv1", "skip") else []
            children.append((name, _record(mods, "Conv2dLayer", _params(D, p + f"{name}.", ["weight", "bias"]),
                                           buffers, conv_clamp=CLAMP)))  # fmt: skip
        blocks.append((f"b{res}", _record(mods, "DiscriminatorBlock", buffers=[("resample_filter", f)],
                                          modules=children, architecture="resnet")))  # fmt: skip
    epilogue_children = [
        ("mbstd", _record(mods, "MinibatchStdLayer", group_size=GROUP, num_channels=1)),
        ("conv", _record(mods, "Conv2dLayer", _params(D, "b4.conv.", ["weight", "bias"]), conv_clamp=CLAMP)),
        ("fc", _record(mods, "FullyConnectedLayer", _params(D, "b4.fc.", ["weight", "bias"]))),
        ("out", _record(mods, "FullyConnectedLayer", _params(D, "b4.out.", ["weight", "bias"]))),
    ]
    blocks.append(("b4", _record(mods, "DiscriminatorEpilogue", modules=epilogue_children, architecture="resnet")))
    return _record(mods, "Discriminator", modules=blocks, c_dim=0, img_resolution=RES, img_channels=3)


def write_snapshot(mods, path, G, D, protocol=3, with_d=True):
    snapshot = dict(G=build_generator_record(mods, G), G_ema=build_generator_record(mods, G),
                    training_set_kwargs=mods.EasyDict(path="ffhq.zip", resolution=RES), augment_pipe=None)  # fmt: skip
    if with_d:
        snapshot["D"] = build_discriminator_record(mods, D)
    path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    return path


# ---------------------------------------------------------------------------------------------------------------
# Reference math of the original networks, per sample
# ---------------------------------------------------------------------------------------------------------------
def lrelu(x, gain=math.sqrt(2)):
    return F.leaky_relu(x, 0.2) * gain


def zero_insert(x, size):
    """(C, H, W) → (C, size, size) with x at even positions, zeros elsewhere."""
    out = x.new_zeros(x.shape[0], size, size)
    out[:, ::2, ::2] = x
    return out


def fir(x, pad):
    """Depthwise 4×4 FIR (the normalised [1,3,3,1] filter; symmetric, so flipping does not matter) after padding."""
    f = _filter2d()
    x = F.pad(x[None], [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, f[None, None].repeat(x.shape[1], 1, 1, 1), groups=x.shape[1])[0]


def ref_mapping(G, z, psi):
    x = z / torch.sqrt((z**2).mean() + 1e-8)
    for i in range(MAP_LAYERS):
        fan_in = G[f"mapping.fc{i}.weight"].shape[1]
        x = lrelu(G[f"mapping.fc{i}.weight"] @ x * (0.01 / math.sqrt(fan_in)) + G[f"mapping.fc{i}.bias"] * 0.01)
    return G["mapping.w_avg"] + psi * (x - G["mapping.w_avg"])


def ref_synthesis_layer(G, p, x, w, up):
    weight, style = G[p + "weight"], G[p + "affine.weight"] @ w / math.sqrt(w.numel()) + G[p + "affine.bias"]
    wk = weight * style[None, :, None, None]
    wk = wk / torch.sqrt((wk**2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
    if up == 1:
        y = F.conv2d(x[None], wk, padding=1)[0]
    else:
        size = x.shape[1] * 2
        # transposed conv = zero insertion + correlation with the flipped kernel, "full" padding; then FIR · 4
        y = F.conv2d(F.pad(zero_insert(x, size - 1)[None], [2, 2, 2, 2]), wk.flip([2, 3]))[0]
        y = fir(y * 4, (1, 1))
    y = y + G[p + "noise_const"] * G[p + "noise_strength"]
    return lrelu(y + G[p + "bias"][:, None, None]).clamp(-CLAMP, CLAMP)


def ref_torgb(G, p, x, w):
    style = (G[p + "affine.weight"] @ w / math.sqrt(w.numel()) + G[p + "affine.bias"]) / math.sqrt(x.shape[0])
    y = torch.einsum("oi,ihw->ohw", G[p + "weight"][:, :, 0, 0] * style[None], x)
    return (y + G[p + "bias"][:, None, None]).clamp(-CLAMP, CLAMP)


def ref_generate(G, z, psi=1.0):
    w = ref_mapping(G, z, psi)
    x = G["synthesis.b4.const"]
    x = ref_synthesis_layer(G, "synthesis.b4.conv1.", x, w, 1)
    img = ref_torgb(G, "synthesis.b4.torgb.", x, w)
    for log2 in range(3, int(math.log2(RES)) + 1):
        p = f"synthesis.b{2**log2}."
        x = ref_synthesis_layer(G, p + "conv0.", x, w, 2)
        x = ref_synthesis_layer(G, p + "conv1.", x, w, 1)
        size = img.shape[1] * 2
        up = torch.zeros(3, size, size)
        up[:, ::2, ::2] = img
        img = fir(up * 4, (2, 1)) + ref_torgb(G, p + "torgb.", x, w)
    return img


def ref_conv(x, weight, bias, act=True, gain=1.0, down=False, clamp=CLAMP):
    scaled = weight / math.sqrt(weight[0].numel())
    if down:
        if weight.shape[-1] == 1:
            x = fir(x, (1, 1))[:, ::2, ::2]
            y = F.conv2d(x[None], scaled)[0]
        else:
            y = F.conv2d(fir(x, (2, 2))[None], scaled, stride=2)[0]
    else:
        y = F.conv2d(x[None], scaled, padding=weight.shape[-1] // 2)[0]
    if bias is not None:
        y = y + bias[:, None, None]
    y = lrelu(y, math.sqrt(2) * gain) if act else y * gain
    return y.clamp(-clamp * gain, clamp * gain) if (act and clamp is not None) else y


def ref_discriminate(D, images):
    feats = []
    for x in images:
        for res in [2**i for i in range(int(math.log2(RES)), 2, -1)]:
            p = f"b{res}."
            if res == RES:
                x = ref_conv(x, D[p + "fromrgb.weight"], D[p + "fromrgb.bias"])
            y = ref_conv(x, D[p + "skip.weight"], None, act=False, gain=math.sqrt(0.5), down=True)
            x = ref_conv(x, D[p + "conv0.weight"], D[p + "conv0.bias"])
            x = ref_conv(x, D[p + "conv1.weight"], D[p + "conv1.bias"], gain=math.sqrt(0.5), down=True)
            x = x + y
        feats.append(x)
    feats = torch.stack(feats)
    n = feats.shape[0]
    stds = torch.empty(n)
    for start in range(n // GROUP):  # sample k belongs to group k mod (n / GROUP)
        members = list(range(start, n, n // GROUP))
        std = feats[members].std(dim=0, unbiased=False).mean()
        stds[members] = std
    logits = []
    for k in range(n):
        x = torch.cat([feats[k], stds[k].expand(1, 4, 4)], dim=0)
        x = ref_conv(x, D["b4.conv.weight"], D["b4.conv.bias"])
        x = lrelu(D["b4.fc.weight"] @ x.flatten() / math.sqrt(x.numel()) + D["b4.fc.bias"])
        logits.append((D["b4.out.weight"] @ x / math.sqrt(x.numel()) + D["b4.out.bias"])[0])
    return torch.stack(logits)


# ---------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [3, 4])
def test_converted_pickle_matches_reference_math(ada_modules, tmp_path, protocol):
    G, D = random_ada_tensors(seed=protocol)
    path = write_snapshot(ada_modules, tmp_path / "network-snapshot.pkl", G, D, protocol=protocol)
    raw = path.read_bytes()
    assert b"torch_utils.persistence" in raw and b"_reconstruct_persistent_obj" in raw and b"module_src" in raw

    model = convert_pickle(path, tmp_path / "out")
    assert not ada_modules.marker.exists(), "module_src must never be executed"
    assert isinstance(model, FQStyleGANForImageGeneration)
    config = model.config
    assert (config.resolution, config.channel_base, config.channel_max, config.conv_clamp) == (RES, BASE, CMAX, CLAMP)
    assert (config.mapping_layers, config.mbstd_group_size, config.use_fq) == (MAP_LAYERS, GROUP, False)
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert not list((tmp_path / "out").glob("*.bin")) and not list((tmp_path / "out").glob("*.pkl"))

    reloaded = FQStyleGANForImageGeneration.from_pretrained(tmp_path / "out")
    z = torch.randn(4, Z, generator=torch.Generator().manual_seed(1))
    for psi in (1.0, 0.6):
        images = reloaded.generate(z=z, truncation_psi=psi, noise_mode="const")
        reference = torch.stack([ref_generate(G, zi, psi) for zi in z])
        torch.testing.assert_close(images, reference, rtol=1e-4, atol=1e-4)
    # the raw generator carries the same weights (G == G_ema in this snapshot)
    reference = torch.stack([ref_generate(G, zi) for zi in z])
    torch.testing.assert_close(reloaded.generate(z=z, use_ema=False), reference, rtol=1e-4, atol=1e-4)

    with torch.no_grad():
        logits = reloaded.discriminator(reference).logits
    torch.testing.assert_close(logits, ref_discriminate(D, reference), rtol=1e-4, atol=1e-4)


def test_snapshot_without_discriminator_gives_generator_model(ada_modules, tmp_path):
    G, D = random_ada_tensors(seed=5)
    path = write_snapshot(ada_modules, tmp_path / "g.pkl", G, D, with_d=False)
    model = convert_pickle(path, tmp_path / "out")
    assert isinstance(model, FQStyleGANGeneratorModel)
    loaded = FQStyleGANGeneratorModel.from_pretrained(tmp_path / "out")
    z = torch.randn(2, Z, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.generate(z=z), torch.stack([ref_generate(G, zi) for zi in z]), rtol=1e-4, atol=1e-4)


def test_records_keep_state_but_never_run_module_src(ada_modules, tmp_path):
    G, D = random_ada_tensors(seed=0)
    path = write_snapshot(ada_modules, tmp_path / "s.pkl", G, D)
    snapshot = load_snapshot(path)
    assert isinstance(snapshot["G_ema"], PersistentRecord) and snapshot["G_ema"].class_name == "Generator"
    assert type(snapshot["training_set_kwargs"]) is dict and snapshot["training_set_kwargs"]["resolution"] == RES
    assert not ada_modules.marker.exists()


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsShell(marker)}))
    with pytest.raises(UnsafePickleError, match=r"(posix|nt|os)\.system"):
        load_snapshot(path)
    with pytest.raises(UnsafePickleError, match=r"system"):
        convert_pickle(path, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_malicious_pickle_refused_by_cli(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _RunsShell(marker)}))
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "hf_dgm.convert", "stylegan2_ada", "--pickle", str(path), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, env=env)  # fmt: skip
    assert result.returncode != 0 and "system" in result.stderr
    assert not marker.exists()


def test_storage_bytes_are_loaded_weights_only(tmp_path):
    """`torch.storage._load_from_bytes` payloads are themselves pickles: one that calls os.system is refused."""
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save(_RunsShell(marker), buffer)  # a torch.save payload that would run a shell command if loaded unsafely

    class _Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (buffer.getvalue(),)

    path = tmp_path / "evil_storage.pkl"
    path.write_bytes(pickle.dumps({"x": _Storage()}))
    with pytest.raises(UnsafePickleError):
        load_snapshot(path)
    assert not marker.exists()


def test_other_globals_are_named(tmp_path):
    class _Eval:
        def __reduce__(self):
            return eval, ("1 + 1",)

    path = tmp_path / "eval.pkl"
    path.write_bytes(pickle.dumps([_Eval()]))
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        load_snapshot(path)
