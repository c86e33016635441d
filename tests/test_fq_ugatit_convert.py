"""Converter of UGATIT-pytorch checkpoints (znxlwm/UGATIT-pytorch): a checkpoint with the port's key names and shapes
converts to an FQUGATITModel whose outputs are the port's own.

The expected values were computed by the port's `networks.py` (commit b8c4251, whose AdaLIN/ILN use
`torch.var(x, dim=[2, 3])` / `dim=[1, 2, 3]` since f7a4b59) on the same deterministic checkpoint and input, in float32
(see `benchmarks/parity/fq_ugatit.py`, which compares against a checkout of the port directly). Every weight of the
checkpoint is away from any initial value and the spectral-norm vectors are near their singular pair, as after
training. CI has no checkout of the port: the values are pinned here.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from tolerances import assert_fp32_close

from hf_dgm.models.fq_ugatit.convert_ugatit import convert, infer_config, load_port_checkpoint
from hf_dgm.models.fq_ugatit import FQUGATITModel


torch.set_num_threads(1)


# -- a deterministic checkpoint in the port's layout (key names and shapes of its state dicts) ---------------------


def pseudo(n, salt):
    i = np.arange(n, dtype=np.float64)
    x = np.sin(i * 12.9898 + salt * 78.233) * 43758.5453
    return (x - np.floor(x)) * 2.0 - 1.0  # U(-1, 1)-like


def fill_state(keys_shapes):
    out = {}
    for idx, (key, shape) in enumerate(keys_shapes):
        n = int(np.prod(shape))
        u = pseudo(n, idx + 1)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "rho":
            v = 0.5 + 0.6 * u
        elif leaf == "gamma" and len(shape) == 4:
            v = 1.0 + 0.3 * u
        elif leaf == "beta" and len(shape) == 4:
            v = 0.2 * u
        elif leaf in ("weight_u", "weight_v"):
            v = u / np.linalg.norm(u)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            v = 1.7 * u / np.sqrt(fan_in)
        else:
            v = 0.1 * u
        out[key] = torch.tensor(v, dtype=torch.float32).reshape(shape)
    return out


def port_layout(ngf=4, n_blocks=2, size=32, light=False, ndf=4, n_global=5, n_local=4):
    f = 4 * ngf
    gen = {"DownBlock.1.weight": (ngf, 3, 7, 7), "DownBlock.5.weight": (2 * ngf, ngf, 3, 3),
           "DownBlock.9.weight": (f, 2 * ngf, 3, 3), "gap_fc.weight": (1, f), "gmp_fc.weight": (1, f),
           "conv1x1.weight": (f, 2 * f, 1, 1), "conv1x1.bias": (f,),
           "FC.0.weight": (f, f if light else (size // 4) ** 2 * f), "FC.2.weight": (f, f),
           "gamma.weight": (f, f), "beta.weight": (f, f), "UpBlock2.2.weight": (2 * ngf, f, 3, 3),
           "UpBlock2.7.weight": (ngf, 2 * ngf, 3, 3), "UpBlock2.11.weight": (3, ngf, 7, 7)}
    for i in range(n_blocks):
        gen[f"DownBlock.{12 + i}.conv_block.1.weight"] = gen[f"DownBlock.{12 + i}.conv_block.5.weight"] = (f, f, 3, 3)
        gen[f"UpBlock1_{i + 1}.conv1.weight"] = gen[f"UpBlock1_{i + 1}.conv2.weight"] = (f, f, 3, 3)
        gen[f"UpBlock1_{i + 1}.norm1.rho"] = gen[f"UpBlock1_{i + 1}.norm2.rho"] = (1, f, 1, 1)
    for index, c in ((3, 2 * ngf), (8, ngf)):
        for leaf in ("rho", "gamma", "beta"):
            gen[f"UpBlock2.{index}.{leaf}"] = (1, c, 1, 1)

    def disc(n_layers):
        out, c_in = {}, 3
        def sn(name, shape):
            out[f"{name}.weight_orig"] = shape
            out[f"{name}.weight_u"] = (shape[0],)
            out[f"{name}.weight_v"] = (int(np.prod(shape[1:])),)
        for j in range(n_layers - 1):
            c = ndf * 2**j
            sn(f"model.{3 * j + 1}", (c, c_in, 4, 4))
            out[f"model.{3 * j + 1}.bias"] = (c,)
            c_in = c
        sn("gap_fc", (1, c_in))
        sn("gmp_fc", (1, c_in))
        out["conv1x1.weight"], out["conv1x1.bias"] = (c_in, 2 * c_in, 1, 1), (c_in,)
        sn("conv", (1, c_in, 4, 4))
        return out

    layout = {"genA2B": gen, "genB2A": gen, "disGA": disc(n_global), "disGB": disc(n_global),
              "disLA": disc(n_local), "disLB": disc(n_local)}
    return layout


def port_checkpoint(**kw):
    layout = port_layout(**kw)
    states = {}
    for n, (name, shapes) in enumerate(layout.items()):
        keys = sorted(shapes)
        filled = fill_state([(k, shapes[k]) for k in keys])
        # distinct values per network: salt by network index
        filled = {k: v * (1.0 + 0.05 * n) if not k.endswith(("weight_u", "weight_v", "rho", "gamma")) else v for k, v in filled.items()}
        # spectral-norm vectors as training leaves them: near the top singular pair (8 power iterations from the
        # filled vectors, in float64)
        for key in [k for k in filled if k.endswith("weight_orig")]:
            w = filled[key].double().flatten(1)
            u = filled[key[: -len("orig")] + "u"].double()
            for _ in range(8):
                v = w.t() @ u
                v = v / v.norm()
                u = w @ v
                u = u / u.norm()
            filled[key[: -len("orig")] + "u"] = u.float()
            filled[key[: -len("orig")] + "v"] = v.float()
        states[name] = filled
    return states


def images(batch=2, size=32, salt=999):
    return torch.tensor(pseudo(batch * 3 * size * size, salt), dtype=torch.float32).reshape(batch, 3, size, size)


# -- what the port's networks give on `images()` with `port_checkpoint(light=...)` ---------------------------------
# images[:, :, ::16, ::16], heatmap[:, :, ::4, ::4]; discriminators: logits[:, :, ::3, ::3], heatmap[:, :, ::2, ::2]
PORT_OUTPUTS = {
    False: {
    "genA2B": {"images": [0.4508263, 0.6053588, 0.5866852, 0.07167999, 0.1323276, 0.2168823, 0.4270612, -0.02776154, 0.5608097, 0.7412203, 0.7963766, 0.8358535, 0.01129987, -0.4989003, -0.3482766, -0.1932955, 0.2790168, 0.4518861, -0.7658526, -0.1616065, 0.6242521, -0.1954144, -0.1822138, 0.3767378], "mean": 0.1329795, "abs_mean": 0.3934573, "min": -0.9748613, "max": 0.9896975,
            "cam_logits": [0.1752739, -0.3272829, 0.1705858, 0.07732344], "heatmap": [1.875026, 1.944512, 1.968278, 5.115266, 1.751951, 2.473873, 2.778564, 2.496529]},
        "genB2A": {"images": [0.4953454, 0.613393, 0.547786, 0.09265965, 0.0997382, 0.1696335, 0.4602998, 0.02090423, 0.5582978, 0.8068215, 0.8351824, 0.8420777, 0.06024368, -0.4878648, -0.3247741, -0.2391605, 0.1900233, 0.4746371, -0.7573168, -0.130414, 0.6639981, -0.1875022, -0.2473871, 0.3705761], "mean": 0.1485128, "abs_mean": 0.4064076, "min": -0.9797848, "max": 0.9911987,
            "cam_logits": [0.1840381, -0.3436471, 0.1791157, 0.0811913], "heatmap": [2.059776, 2.131902, 2.168924, 5.637259, 1.925386, 2.715859, 3.057351, 2.74721]},
        "disGA": {"logits": [0.07689211, 0.07517106], "cam_logits": [-0.005432976, 0.04029333, -0.034821, 0.09531321], "heatmap": [0.5294369, 0.5586404, 0.5653993, 0.5497354, 0.5370715, 0.5320317, 0.484613, 0.5355666]},
        "disLB": {"logits": [0.05214629, 0.07628185, 0.04280673, 0.1015132, 0.08027076, 0.05992713, 0.09498871, 0.07554966], "cam_logits": [0.1093301, 0.1568414, 0.1346796, 0.3070101], "heatmap": [0.3021961, 0.1802936, 0.3172915, 0.2638002, 0.2589627, 0.2285526, 0.2544312, 0.2929605, 0.338534, 0.3272536, 0.2759644, 0.3770508, 0.4497975, 0.4563266, 0.2983417, 0.393661, 0.4404576, 0.2907152, 0.3958379, 0.3774092, 0.3124962, 0.2017209, 0.3585311, 0.4332294, 0.2805971, 0.337745, 0.2989837, 0.2556365, 0.3627424, 0.3317025, 0.3883379, 0.2838315]},
    },
    True: {
    "genA2B": {"images": [0.1789616, -0.4774019, 0.04341489, 0.502588, 0.4911987, 0.0199967, -0.1663458, 0.1252653, 0.5032157, -0.07342704, -0.1384534, 0.8342934, -0.2820608, -0.5159748, -0.007593242, 0.2973228, 0.316206, 0.3309125, -0.2199472, -0.6716611, 0.8830817, 0.3309527, 0.8241606, 0.4451019], "mean": 0.1288111, "abs_mean": 0.4014238, "min": -0.9803219, "max": 0.9958292,
            "cam_logits": [0.1752739, -0.3272829, 0.1705858, 0.07732344], "heatmap": [1.875026, 1.944512, 1.968278, 5.115266, 1.751951, 2.473873, 2.778564, 2.496529]},
        "genB2A": {"images": [0.1581876, -0.4786159, 0.06150048, 0.5154532, 0.4778966, 0.00881569, -0.1579813, 0.1246805, 0.4826948, -0.08752487, -0.1429297, 0.8438434, -0.2279407, -0.5884828, 0.05840701, 0.3033752, 0.4139159, 0.3472429, -0.1527532, -0.6956716, 0.8871699, 0.3552948, 0.8629262, 0.5004412], "mean": 0.1387094, "abs_mean": 0.4153654, "min": -0.984497, "max": 0.9968915,
            "cam_logits": [0.1840381, -0.3436471, 0.1791157, 0.0811913], "heatmap": [2.059776, 2.131902, 2.168924, 5.637259, 1.925386, 2.715859, 3.057351, 2.74721]},
    },
}


def _check_generator(out, expected):
    images = out.images
    assert_fp32_close(images[:, :, ::16, ::16], torch.tensor(expected["images"]).reshape(2, 3, 2, 2))
    for name, value in (("mean", images.mean()), ("abs_mean", images.abs().mean()), ("min", images.min()),
                        ("max", images.max())):  # fmt: skip
        assert_fp32_close(float(value), expected[name], msg=f"{name}: {float(value)} != {expected[name]}")
    assert_fp32_close(out.cam_logits, torch.tensor(expected["cam_logits"]).reshape(2, 2))
    assert_fp32_close(out.heatmap[:, :, ::4, ::4], torch.tensor(expected["heatmap"]).reshape(2, 1, 2, 2))


@pytest.mark.parametrize("light", [False, True])
def test_converted_outputs_equal_the_ports(tmp_path, light):
    path = tmp_path / "selfie2anime_params_0000100.pt"
    torch.save(port_checkpoint(light=light), path)
    states = load_port_checkpoint(path)
    config = infer_config(states, image_size=32 if light else None)
    assert (config.ngf, config.n_res_blocks, config.light, config.image_size, config.ndf) == (4, 2, light, 32, 4)
    assert (config.global_discriminator_layers, config.local_discriminator_layers) == (5, 4)
    assert config.norm_variance == "unbiased" and config.spectral_norm_order == "v_then_u"
    model = convert(states, image_size=32 if light else None)
    x = images()
    with torch.no_grad():
        for port_name, direction in (("genA2B", "A2B"), ("genB2A", "B2A")):
            _check_generator(model.translate(x, direction), PORT_OUTPUTS[light][port_name])
        if not light:
            for port_name, ours in (("disGA", "discriminator_global_a"), ("disLB", "discriminator_local_b")):
                out, expected = getattr(model, ours)(x), PORT_OUTPUTS[light][port_name]
                logits = out.logits[:, :, ::3, ::3]
                assert_fp32_close(logits, torch.tensor(expected["logits"]).reshape(logits.shape))
                assert_fp32_close(out.cam_logits, torch.tensor(expected["cam_logits"]).reshape(2, 2))
                heat = out.heatmap[:, :, ::2, ::2]
                assert_fp32_close(heat, torch.tensor(expected["heatmap"]).reshape(heat.shape))


def test_nested_variance_option_is_the_older_port():
    """`norm_variance="nested_unbiased"` (the port before f7a4b59) gives other images from the same weights (issue 27:
    images far off the current port's), and the same CAM logits (computed before any AdaLIN/ILN)."""
    states = port_checkpoint()
    model = convert(states, norm_variance="nested_unbiased")
    assert model.config.norm_variance == "nested_unbiased"
    with torch.no_grad():
        out = model.translate(images(), "A2B")
    expected = PORT_OUTPUTS[False]["genA2B"]
    assert_fp32_close(out.cam_logits, torch.tensor(expected["cam_logits"]).reshape(2, 2))
    gap = (out.images[:, :, ::16, ::16] - torch.tensor(expected["images"]).reshape(2, 3, 2, 2)).abs().max()
    assert gap > 0.1
    with pytest.raises(ValueError, match="norm_variance"):
        convert(states, norm_variance="moments")


@pytest.mark.slow
def test_cli_writes_a_loadable_folder(tmp_path):
    ckpt = tmp_path / "x_params_0000001.pt"
    torch.save(port_checkpoint(), ckpt)
    out = tmp_path / "converted"
    result = subprocess.run(
        [sys.executable, "-m", "hf_dgm.convert", "ugatit", "--checkpoint", str(ckpt), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    model = FQUGATITModel.from_pretrained(out).eval()
    assert model.config.norm_variance == "unbiased" and not model.config.use_fq
    with torch.no_grad():
        _check_generator(model.translate(images(), "A2B"), PORT_OUTPUTS[False]["genA2B"])


def test_cli_help_names_the_variance_option(capsys):
    from hf_dgm.convert.__main__ import main

    with pytest.raises(SystemExit):
        main(["ugatit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--norm_variance {unbiased,nested_unbiased}" in text and "f7a4b59" in text


def test_bad_checkpoints_raise(tmp_path):
    states = port_checkpoint()
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in states.items() if k != "disLB"}, path)
    with pytest.raises(ValueError, match="disLB"):
        load_port_checkpoint(path)
    broken = {k: dict(v) for k, v in states.items()}
    broken["genA2B"]["FC.0.weight"] = torch.zeros(16, 17)
    with pytest.raises(ValueError, match="FC.0.weight"):
        infer_config(broken)
    no_v = {k: {n: t for n, t in v.items() if not n.endswith("weight_v")} for k, v in states.items()}
    with pytest.raises(ValueError, match="weight_v"):
        convert(no_v)
    with pytest.raises(ValueError, match="contradicts"):
        infer_config(states, image_size=64)
