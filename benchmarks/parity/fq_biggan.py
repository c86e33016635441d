"""Parity of hf-dgm's FQ-BigGAN training step with FQ-GAN's FQ-BigGAN (PyTorch), YangNaruto/FQ-GAN.

Verified against YangNaruto/FQ-GAN commit bc43d45700b2a84234932bc6d6616b0248d1304e (the newest), sub-folder
`FQ-BigGAN/`. The checkout is given with `--original DIR` (the repository root) and is never copied into this
repository:

    git clone https://github.com/YangNaruto/FQ-GAN /tmp/orig-fqgan
    python benchmarks/parity/fq_biggan.py --original /tmp/orig-fqgan

What it does:

1. Imports the original's `BigGAN.py`, `train_fns.py` and `losses.py` from DIR/FQ-BigGAN. Shim (at run time only,
   the checkout is not edited): torchvision is not needed by the code paths used here and is not a dependency of
   hf-dgm, so an empty stand-in module is registered when it is missing (`utils.py` imports it at module level).
2. Builds the original `Generator` / `Discriminator` with the CIFAR-10 launch script's settings (`launch_C10.sh`: N02
   init, no attention, 4 quantized D blocks, commitment 1.0, decay 0.8) at a small width (`--ch`, 8) and dictionary
   (`--dict-size`, 4 → 16 entries), then moves every parameter and buffer away from its initial value (Gaussian
   noise at 50% of each tensor's scale; batch-norm variances and cluster sizes kept positive; spectral-norm `u`
   perturbed too) and converts the state dicts with hf-dgm's converter (`hf_dgm.models.fq_biggan.convert_fq_biggan`).
3. Runs ONE iteration of the original's own `train_fns.GAN_training_function` (num_D_steps 1, batch `--batch`,
   toggle_grads, no ortho reg, no G-EMA; both networks in training mode as `train.py` sets them) with its Adam
   optimizers (lr 2e-4, betas (0, 0.999), eps 1e-8), feeding it pre-drawn z and classes through a stand-in for
   `utils.Distribution`; and the same on our side: `FQBigGANSteps(model).discriminator_step(batch, z=..., generator_labels=...)`,
   backward, Adam step on `discriminator_parameters()`, then `FQBigGANSteps(model).generator_step(z=..., generator_labels=...)`,
   backward, Adam step on `generator_parameters()`. The real batch is scikit-learn's digits (8×8 greyscale,
   upsampled to 32×32 RGB, in [-1, 1]) via `hf_dgm.training.image_data.load_digits_dataset`.
4. Compares: D logits (real, fake), hinge terms, quantizer terms (real, fake, G step), G logits and loss; the
   gradients of every parameter of G and D; the parameters after each Adam step; the dictionary buffers (`embed`,
   `cluster_size`, `embed_avg`) after the D step and after the G step; the spectral-norm `u` and `sv` after each step;
   G's batch-norm statistics after each step.

Notes on naming in the original: `BigGAN.G_D.forward` returns its outputs in the order `(fake, real)` under the names
`D_real, D_fake` and `quant_loss_real, quant_loss_fake`, and `train_fns` unpacks them as `D_fake, D_real,
quant_loss_real, quant_loss_fake`: the scores end up correctly named, but its `quant_loss_real` holds the FAKES'
quantizer loss (and is added to its `D_loss_real`). The totals are the same; this script compares the quantizer loss
of the real images with ours `quantization_loss_real`, and of the fakes with `quantization_loss_fake`.

Differences are reported per quantity as `max abs` = max |ours − original| and `max rel` = max abs / max |original|,
both over every tensor of the group (the group's scale: the gradients of G's conv biases that feed a batch norm are
0 in exact arithmetic, ~1e-16 of rounding noise on both sides, and would read as 100% relative on their own). `--dtype float64` (the default) runs both sides in double precision;
`--dtype float32` shows fp32 rounding. `--no-g-step-update` runs ours with `fq_update_in_generator_step=False`, which
reproduces the difference issue 27 found (the dictionaries after the G step). Exit status 1 when a max rel exceeds
`--rtol` (1e-5).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
from parity_report import ParityReport  # noqa: E402  (benchmarks/parity/, the script's own folder, is on sys.path)
import torch.nn as nn


REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from hf_dgm.models.fq_biggan.convert_fq_biggan import convert_discriminator_state_dict, convert_generator_state_dict  # noqa: E402
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration  # noqa: E402
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps  # noqa: E402


VERIFIED_COMMIT = "bc43d45700b2a84234932bc6d6616b0248d1304e"


def import_original(root: Path):
    folder = root / "FQ-BigGAN"
    if not (folder / "BigGAN.py").exists():
        raise SystemExit(f"--original {root}: no FQ-BigGAN/BigGAN.py (give the root of a YangNaruto/FQ-GAN checkout)")
    import datasets as hf_datasets  # noqa: F401  (before any stand-in: it probes for torchvision)
    import transformers  # noqa: F401

    stubs = []
    try:
        import torchvision  # noqa: F401
    except ImportError:  # shim: utils.py / datasets.py import torchvision at module level; nothing used here needs it

        class _Anything(types.ModuleType):
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)
                if name[:1].isupper():  # a class the original subclasses (e.g. `dset.CIFAR10`)
                    return type(name, (), {})
                return _Anything(f"{self.__name__}.{name}")

            def __call__(self, *args, **kwargs):
                return self

        for name in ("torchvision", "torchvision.transforms", "torchvision.datasets", "torchvision.datasets.utils",
                     "torchvision.utils", "torchvision.models"):  # fmt: skip
            sys.modules[name] = _Anything(name)
            stubs.append(name)
    # The original has a top-level `datasets.py`, which would shadow Hugging Face `datasets`: import the original with
    # its own module under that name, then put Hugging Face's back (the original's modules keep their reference).
    saved = sys.modules.pop("datasets")
    sys.path.insert(0, str(folder))
    try:
        import BigGAN  # noqa: E402
        import losses  # noqa: E402
        import train_fns  # noqa: E402
    finally:
        sys.path.remove(str(folder))
        sys.modules["datasets"] = saved
        for name in stubs:  # later `find_spec("torchvision")` probes must not see the stand-in
            sys.modules.pop(name, None)
    return BigGAN, losses, train_fns


def our_config(args) -> FQBigGANConfig:
    return FQBigGANConfig.from_preset(
        "cifar10",
        generator_ch=args.ch,
        discriminator_ch=args.ch,
        dim_z=args.dim_z,
        fq_num_embeddings=2**args.dict_size,
        fq_update_in_generator_step=not args.no_g_step_update,
        batch_size=args.batch,
        discriminator_steps=1,
    )


def build_original(BigGAN, config: FQBigGANConfig, args):
    common = dict(resolution=32, n_classes=10, skip_init=False, no_optim=False)
    G = BigGAN.Generator(G_ch=args.ch, dim_z=args.dim_z, bottom_width=4, G_attn="0", G_shared=False, hier=False,
                         G_init="N02", BN_eps=config.bn_eps, SN_eps=config.sn_eps, G_lr=config.generator_lr,
                         G_B1=config.generator_betas[0], G_B2=config.generator_betas[1], adam_eps=config.adam_eps,
                         **common)  # fmt: skip
    D = BigGAN.Discriminator(D_ch=args.ch, D_wide=True, D_attn="0", D_init="N02", SN_eps=config.sn_eps,
                             D_lr=config.discriminator_lr, D_B1=config.discriminator_betas[0],
                             D_B2=config.discriminator_betas[1], adam_eps=config.adam_eps, dict_decay=config.fq_decay,
                             commitment=config.fq_commitment, discrete_layer="".join(map(str, config.fq_layers)),
                             dict_size=args.dict_size, **common)  # fmt: skip
    return G, D


@torch.no_grad()
def move_from_init(*modules: nn.Module, seed: int) -> None:
    """Every parameter and floating buffer moved by Gaussian noise at 50% of its scale (variances and cluster sizes
    kept positive), as a trained checkpoint's would be."""
    gen = torch.Generator().manual_seed(seed)
    for module in modules:
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            scale = float(tensor.abs().mean()) or 0.1
            noise = torch.randn(tensor.shape, generator=gen, dtype=torch.float64).to(tensor.dtype)
            if name.endswith(("stored_var", "cluster_size", "running_var")):
                tensor.mul_(1.0 + 0.5 * noise.abs()).add_(0.5 * (noise.abs() + 0.1))
            else:
                tensor.add_(0.5 * scale * noise)


def real_batch(batch: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    from hf_dgm.training.image_data import load_digits_dataset

    data = load_digits_dataset().select(range(batch))
    images, labels = [], []
    for row in data:
        image = torch.tensor(list(row["image"].convert("L").getdata()), dtype=torch.float64).reshape(1, 8, 8)
        images.append(image / 127.5 - 1.0)
        labels.append(int(row["label"]))
    x = torch.stack(images).repeat(1, 3, 1, 1)
    x = nn.functional.interpolate(x, size=32, mode="nearest")
    return x.to(dtype), torch.tensor(labels, dtype=torch.long)


class _Feed(torch.Tensor):
    """Stand-in for the original's `utils.Distribution`: `sample_()` copies the next pre-drawn tensor in place."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    def sample_(self):
        self.copy_(self.queue.pop(0))


def _feed(values: list[torch.Tensor]) -> _Feed:
    tensor = torch.Tensor._make_subclass(_Feed, values[0].clone())
    tensor.queue = [v.clone() for v in values]
    return tensor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=f"Parity of hf-dgm FQ-BigGAN's D and G steps with YangNaruto/FQ-GAN's FQ-BigGAN "
        f"(train_fns.GAN_training_function), verified against commit {VERIFIED_COMMIT}.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--original", type=Path, required=True, help="root of a YangNaruto/FQ-GAN checkout")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ch", type=int, default=8, help="G_ch = D_ch")
    parser.add_argument("--dim-z", type=int, default=32)
    parser.add_argument("--dict-size", type=int, default=4, help="log2 of the dictionary size (original --dict_size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-g-step-update", action="store_true",
                        help="ours with fq_update_in_generator_step=False (shows the dictionary difference)")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--verbose", action="store_true", help="also print every gradient tensor's difference")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(1)

    BigGAN, losses, train_fns = import_original(args.original)
    config = our_config(args)
    torch.manual_seed(args.seed)
    G, D = build_original(BigGAN, config, args)
    move_from_init(G, D, seed=args.seed + 1)
    G, D = G.to(dtype), D.to(dtype)
    for net, (lr, betas) in ((G, (config.generator_lr, config.generator_betas)),
                             (D, (config.discriminator_lr, config.discriminator_betas))):  # fmt: skip
        net.optim = torch.optim.Adam(net.parameters(), lr=lr, betas=tuple(betas), eps=config.adam_eps)

    model = FQBigGANForImageGeneration(config)
    model.generator.load_state_dict(convert_generator_state_dict(G.state_dict()))
    model.discriminator.load_state_dict(convert_discriminator_state_dict(D.state_dict()))
    model = model.to(dtype).train()
    d_opt = torch.optim.Adam(model.discriminator_parameters(), lr=config.discriminator_lr,
                             betas=tuple(config.discriminator_betas), eps=config.adam_eps)  # fmt: skip
    g_opt = torch.optim.Adam(model.generator_parameters(), lr=config.generator_lr,
                             betas=tuple(config.generator_betas), eps=config.adam_eps)  # fmt: skip

    x, y = real_batch(args.batch, dtype)
    gen = torch.Generator().manual_seed(args.seed + 2)
    z_d = torch.randn(args.batch, args.dim_z, generator=gen, dtype=torch.float64).to(dtype)
    z_g = torch.randn(args.batch, args.dim_z, generator=gen, dtype=torch.float64).to(dtype)
    y_d = torch.randint(0, 10, (args.batch,), generator=gen)
    y_g = torch.randint(0, 10, (args.batch,), generator=gen)

    report = ParityReport()

    def states(gnet, dnet, ours: bool):
        sd_d = dnet.state_dict()
        sd_g = gnet.state_dict()
        if not ours:
            sd_d = convert_discriminator_state_dict(sd_d)
            sd_g = convert_generator_state_dict(sd_g)
        pick = lambda sd, keys: [sd[k] for k in sorted(sd) if any(s in k for s in keys)]  # noqa: E731
        return {
            "dictionary embed": pick(sd_d, [".embed"]),
            "dictionary cluster_size": pick(sd_d, ["cluster_size"]),
            "dictionary embed_avg": pick(sd_d, ["embed_avg"]),
            "D spectral-norm u": pick(sd_d, ["weight_u"]),
            "D spectral-norm sv": pick(sd_d, ["weight_sigma"]),
            "G spectral-norm u": pick(sd_g, ["weight_u"]),
            "G batch-norm stats": pick(sd_g, ["running_mean", "running_var"]),
        }

    # -- the original: one iteration of train_fns.GAN_training_function ---------------------------------------------
    captured: dict[str, list] = {"gd": [], "d_loss": [], "g_loss": []}
    gd = BigGAN.G_D(G, D)
    real_gd_forward = gd.forward

    def gd_forward(*a, **k):
        out = real_gd_forward(*a, **k)
        captured["gd"].append(out)
        return out

    gd.forward = gd_forward
    real_d_loss, real_g_loss = losses.discriminator_loss, losses.generator_loss
    losses.discriminator_loss = lambda f, r: captured["d_loss"].append(real_d_loss(f, r)) or captured["d_loss"][-1]
    losses.generator_loss = lambda f: captured["g_loss"].append(real_g_loss(f)) or captured["g_loss"][-1]
    train_config = dict(batch_size=args.batch, num_D_steps=1, num_D_accumulations=1, num_G_accumulations=1,
                        toggle_grads=True, D_ortho=0.0, G_ortho=0.0, split_D=False, ema=False)  # fmt: skip
    z_feed, y_feed = _feed([z_d, z_g]), _feed([y_d, y_g])
    step = train_fns.GAN_training_function(G, D, gd, z_feed, y_feed, None, {"itr": 1}, train_config)
    G.train()
    D.train()
    # The D step's optimizer update happens inside `train`, before the G step: record the state between them by
    # wrapping D.optim.step.
    between: dict[str, object] = {}
    real_d_step = D.optim.step

    def d_step_and_record(*a, **k):
        between["d_grads"] = [p.grad.detach().clone() for p in D.parameters()]
        result = real_d_step(*a, **k)
        between["d_params"] = [p.detach().clone() for p in D.parameters()]
        between["states"] = {k: [t.clone() for t in v] for k, v in states(G, D, ours=False).items()}
        return result

    D.optim.step = d_step_and_record
    real_g_step = G.optim.step

    def g_step_and_record(*a, **k):
        between["g_grads"] = [p.grad.detach().clone() for p in G.parameters()]
        return real_g_step(*a, **k)

    G.optim.step = g_step_and_record
    step(x, y)
    orig_after = states(G, D, ours=False)
    d_fake_o, d_real_o, q_fakepart_o, q_realpart_o, _ = captured["gd"][0]
    g_logits_o, q_g_o = captured["gd"][1]
    (d_loss_real_o, d_loss_fake_o) = captured["d_loss"][0]

    # -- ours ---------------------------------------------------------------------------------------------------------
    d_out = FQBigGANSteps(model).discriminator_step({"pixel_values": x, "labels": y}, z=z_d, generator_labels=y_d)
    d_out.loss.backward()
    ours_d_grads = [p.grad.detach().clone() for p in model.discriminator_parameters()]
    d_opt.step()
    ours_between = {k: [t.clone() for t in v] for k, v in states(model.generator, model.discriminator, True).items()}
    d_opt.zero_grad(set_to_none=True)
    model.discriminator.requires_grad_(False)  # as the original's toggle_grads
    g_out = FQBigGANSteps(model).generator_step(z=z_g, generator_labels=y_g)
    g_out.loss.backward()
    ours_g_grads = [p.grad.detach().clone() for p in model.generator_parameters()]
    g_opt.step()
    model.discriminator.requires_grad_(True)
    ours_after = states(model.generator, model.discriminator, True)

    # Parameters in the original's order mapped to ours by name through the converter.
    def by_name(module, converted_names, values, convert):
        names = [n for n, _ in module.named_parameters()]
        mapped = convert(dict(zip(names, values)))
        return [mapped[n] for n in converted_names]

    d_names = [n for n, _ in model.discriminator.named_parameters()]
    g_names = [n for n, _ in model.generator.named_parameters()]
    orig_d_grads = by_name(D, d_names, between["d_grads"], convert_discriminator_state_dict)
    orig_d_params = by_name(D, d_names, between["d_params"], convert_discriminator_state_dict)
    orig_g_grads = by_name(G, g_names, between["g_grads"], convert_generator_state_dict)
    orig_g_params = by_name(G, g_names, [p.detach() for p in G.parameters()], convert_generator_state_dict)

    report.add("D step: logits real", d_out.term("logits_real"), d_real_o.reshape(-1))
    report.add("D step: logits fake", d_out.term("logits_fake"), d_fake_o.reshape(-1))
    report.add("D step: hinge real", d_out.term("d_loss_real"), real_d_loss(d_fake_o, d_real_o)[0])
    report.add("D step: hinge fake", d_out.term("d_loss_fake"), real_d_loss(d_fake_o, d_real_o)[1])
    report.add("D step: quantizer loss real", d_out.term("quantization_loss_real"), q_realpart_o.mean())
    report.add("D step: quantizer loss fake", d_out.term("quantization_loss_fake"), q_fakepart_o.mean())
    # train_fns adds the quantizer terms to D_loss_real / D_loss_fake in place (`+=`), so the captured tensors hold them.
    report.add("D step: total loss", d_out.loss, d_loss_real_o + d_loss_fake_o)
    report.add("D step: grads of D (all params)", ours_d_grads, orig_d_grads)
    for name in sorted({n.split(".")[0] for n in d_names}):
        idx = [i for i, n in enumerate(d_names) if n.split(".")[0] == name]
        report.add(f"  D grads: {name}", [ours_d_grads[i] for i in idx], [orig_d_grads[i] for i in idx])
    report.add("D step: D params after Adam", list(model.discriminator_parameters()), orig_d_params)
    for key, values in between["states"].items():
        report.add(f"after D step: {key}", ours_between[key], values)
    report.add("G step: logits", g_out.term("logits_fake").reshape(-1), g_logits_o.reshape(-1))
    report.add("G step: hinge", g_out.term("g_loss"), captured["g_loss"][0])
    report.add("G step: quantizer loss", g_out.term("quantization_loss"), q_g_o.mean())
    report.add("G step: total loss", g_out.loss, captured["g_loss"][0] + q_g_o.mean())
    report.add("G step: grads of G (all params)", ours_g_grads, orig_g_grads)
    if args.verbose:
        for n, a, b in zip(g_names, ours_g_grads, orig_g_grads):
            print(f"G grad {n}: max abs {float((a - b).abs().max()):.3e}, scale {float(b.abs().max()):.3e}")
    for name in sorted({n.split(".")[0] for n in g_names}):
        idx = [i for i, n in enumerate(g_names) if n.split(".")[0] == name]
        report.add(f"  G grads: {name}", [ours_g_grads[i] for i in idx], [orig_g_grads[i] for i in idx])
    report.add("G step: G params after Adam", list(model.generator_parameters()), orig_g_params)
    for key, values in orig_after.items():
        report.add(f"after G step: {key}", ours_after[key], values)

    print(f"FQ-BigGAN parity vs YangNaruto/FQ-GAN ({args.original}), {args.dtype}, batch {args.batch}, ch {args.ch}, "
          f"K {2**args.dict_size}, fq_update_in_generator_step={config.fq_update_in_generator_step}")  # fmt: skip
    report.print()
    worst = report.worst_relative
    print(f"worst max rel: {worst:.3e} (rtol {args.rtol:g})")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    raise SystemExit(main())
