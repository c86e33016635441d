"""Converter of UGATIT-pytorch checkpoints: state dicts built here with the port's module layout (key names, shapes,
`torch.nn.utils.spectral_norm`, nested-variance AdaLIN/ILN) convert to an FQUGATITModel with identical outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hf_dgm.convert.ugatit import convert, infer_config, load_port_checkpoint
from hf_dgm.models.fq_ugatit import FQUGATITModel


torch.set_num_threads(1)


# -- a minimal reference of the port's networks (same module indices, hence the same state-dict keys) -------------
def _nested_norms(x, eps=1e-5):
    in_mean = x.mean(dim=(2, 3), keepdim=True)
    in_var = torch.var(torch.var(x, dim=2, keepdim=True), dim=3, keepdim=True)
    ln_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    ln_var = torch.var(torch.var(torch.var(x, dim=1, keepdim=True), dim=2, keepdim=True), dim=3, keepdim=True)
    return (x - in_mean) / torch.sqrt(in_var + eps), (x - ln_mean) / torch.sqrt(ln_var + eps)


class RefAdaILN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.rho = nn.Parameter(torch.rand(1, c, 1, 1))

    def forward(self, x, gamma, beta):
        a, b = _nested_norms(x)
        return (self.rho * a + (1 - self.rho) * b) * gamma[:, :, None, None] + beta[:, :, None, None]


class RefILN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.rho = nn.Parameter(torch.rand(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.rand(1, c, 1, 1) + 0.5)
        self.beta = nn.Parameter(torch.randn(1, c, 1, 1) * 0.1)

    def forward(self, x):
        a, b = _nested_norms(x)
        return (self.rho * a + (1 - self.rho) * b) * self.gamma + self.beta


class RefResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=False), nn.InstanceNorm2d(c),
        )  # fmt: skip

    def forward(self, x):
        return x + self.conv_block(x)


class RefAdaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(c, c, 3, bias=False), RefAdaILN(c)
        self.conv2, self.norm2 = nn.Conv2d(c, c, 3, bias=False), RefAdaILN(c)

    def forward(self, x, g, b):
        out = F.relu(self.norm1(self.conv1(F.pad(x, (1,) * 4, mode="reflect")), g, b))
        return x + self.norm2(self.conv2(F.pad(out, (1,) * 4, mode="reflect")), g, b)


class RefGenerator(nn.Module):
    def __init__(self, ngf, n_blocks, size, light):
        super().__init__()
        self.n_blocks, self.light = n_blocks, light
        f = 4 * ngf
        down = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=False), nn.InstanceNorm2d(ngf), nn.ReLU()]
        for m in (1, 2):
            down += [nn.ReflectionPad2d(1), nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, bias=False),
                     nn.InstanceNorm2d(ngf * m * 2), nn.ReLU()]  # fmt: skip
        down += [RefResBlock(f) for _ in range(n_blocks)]
        self.DownBlock = nn.Sequential(*down)
        self.gap_fc, self.gmp_fc = nn.Linear(f, 1, bias=False), nn.Linear(f, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * f, f, 1)
        fc_in = f if light else (size // 4) ** 2 * f
        self.FC = nn.Sequential(nn.Linear(fc_in, f, bias=False), nn.ReLU(), nn.Linear(f, f, bias=False), nn.ReLU())
        self.gamma, self.beta = nn.Linear(f, f, bias=False), nn.Linear(f, f, bias=False)
        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", RefAdaBlock(f))
        up = []
        for m in (4, 2):
            up += [nn.Upsample(scale_factor=2), nn.ReflectionPad2d(1), nn.Conv2d(ngf * m, ngf * m // 2, 3, bias=False),
                   RefILN(ngf * m // 2), nn.ReLU()]  # fmt: skip
        up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x):
        x = self.DownBlock(x)
        gap_logit = self.gap_fc(x.mean(dim=(2, 3)))
        gmp_logit = self.gmp_fc(x.amax(dim=(2, 3)))
        x = torch.cat([x * self.gap_fc.weight[:, :, None, None], x * self.gmp_fc.weight[:, :, None, None]], 1)
        x = F.relu(self.conv1x1(x))
        heat = x.sum(1, keepdim=True)
        h = self.FC(x.mean(dim=(2, 3)) if self.light else x.flatten(1))
        g, b = self.gamma(h), self.beta(h)
        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, g, b)
        return self.UpBlock2(x), torch.cat([gap_logit, gmp_logit], 1), heat


class RefDiscriminator(nn.Module):
    def __init__(self, ndf, n_layers):
        super().__init__()
        sn = nn.utils.spectral_norm
        layers, c = [], 3
        for i in range(n_layers - 1):
            out = ndf * 2**i
            layers += [nn.ReflectionPad2d(1), sn(nn.Conv2d(c, out, 4, 1 if i == n_layers - 2 else 2)), nn.LeakyReLU(0.2)]
            c = out
        self.model = nn.Sequential(*layers)
        self.gap_fc, self.gmp_fc = sn(nn.Linear(c, 1, bias=False)), sn(nn.Linear(c, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * c, c, 1)
        self.pad, self.conv = nn.ReflectionPad2d(1), sn(nn.Conv2d(c, 1, 4, bias=False))

    def forward(self, x):
        x = self.model(x)
        gap_logit, gmp_logit = self.gap_fc(x.mean(dim=(2, 3))), self.gmp_fc(x.amax(dim=(2, 3)))
        wa, wm = self.gap_fc.weight_orig, self.gmp_fc.weight_orig  # the raw parameter, as the port reads it
        x = torch.cat([x * wa[:, :, None, None], x * wm[:, :, None, None]], 1)
        x = F.leaky_relu(self.conv1x1(x), 0.2)
        return self.conv(self.pad(x)), torch.cat([gap_logit, gmp_logit], 1), x.sum(1, keepdim=True)


def _port_checkpoint(ngf=4, n_blocks=2, size=32, light=False, ndf=4, n_global=5, n_local=4, seed=0):
    torch.manual_seed(seed)
    nets = {
        "genA2B": RefGenerator(ngf, n_blocks, size, light),
        "genB2A": RefGenerator(ngf, n_blocks, size, light),
        "disGA": RefDiscriminator(ndf, n_global),
        "disGB": RefDiscriminator(ndf, n_global),
        "disLA": RefDiscriminator(ndf, n_local),
        "disLB": RefDiscriminator(ndf, n_local),
    }
    x = torch.rand(2, 3, size, size) * 2 - 1
    for net in nets.values():  # a few training-mode forwards move the spectral-norm vectors off their init
        if isinstance(net, RefDiscriminator):
            for _ in range(3):
                net(x)
        net.eval()
    return nets


@pytest.mark.parametrize("light", [False, True])
def test_converted_outputs_equal_the_reference(tmp_path, light):
    nets = _port_checkpoint(light=light)
    path = tmp_path / "selfie2anime_params_0000100.pt"
    torch.save({k: v.state_dict() for k, v in nets.items()}, path)
    states = load_port_checkpoint(path)
    config = infer_config(states, image_size=32 if light else None)
    assert (config.ngf, config.n_res_blocks, config.light, config.image_size, config.ndf) == (4, 2, light, 32, 4)
    assert (config.global_discriminator_layers, config.local_discriminator_layers) == (5, 4)
    model = convert(states, image_size=32 if light else None)
    torch.manual_seed(1)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for port_name, direction in (("genA2B", "A2B"), ("genB2A", "B2A")):
            ref = nets[port_name](x)
            ours = model.translate(x, direction)
            torch.testing.assert_close(ours.images, ref[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(ours.cam_logits, ref[1], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours.heatmap, ref[2], rtol=1e-5, atol=1e-4)
        for port_name, ours_name in (("disGA", "discriminator_global_a"), ("disLB", "discriminator_local_b")):
            ref = nets[port_name](x)
            out = getattr(model, ours_name)(x)
            torch.testing.assert_close(out.logits, ref[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(out.cam_logits, ref[1], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_cli_writes_a_loadable_folder(tmp_path):
    nets = _port_checkpoint()
    ckpt = tmp_path / "x_params_0000001.pt"
    torch.save({k: v.state_dict() for k, v in nets.items()}, ckpt)
    out = tmp_path / "converted"
    result = subprocess.run(
        [sys.executable, "-m", "hf_dgm.convert", "ugatit", "--checkpoint", str(ckpt), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    model = FQUGATITModel.from_pretrained(out).eval()
    assert model.config.norm_variance == "ugatit_pytorch" and not model.config.use_fq
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.translate(x, "A2B").images, nets["genA2B"](x)[0], rtol=0, atol=1e-5)


def test_bad_checkpoints_raise(tmp_path):
    nets = _port_checkpoint()
    states = {k: v.state_dict() for k, v in nets.items()}
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
