"""Parity of hf-dgm's FQ-StyleGAN training step (`use_fq=False`) with NVlabs/stylegan2-ada-pytorch.

Verified against NVlabs/stylegan2-ada-pytorch commit d72cc7d041b42ec8e806021a205ed9349f87c6a4 (the newest). The
checkout is given with `--original DIR` and is never copied into this repository:

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/orig-sg2ada
    python benchmarks/parity/fq_stylegan.py --original /tmp/orig-sg2ada

What it does:

1. Builds ADA's `training.networks.Generator` / `Discriminator` (resnet D, skip G, no fp16, no clamp; custom ops
   fall back to their reference implementations on CPU) at a small size, moves every parameter and buffer away from
   its initial value (Gaussian noise at 50% of each tensor's scale; `w_avg` too) and converts them with hf-dgm's
   converter (`hf_dgm.models.fq_stylegan.convert_stylegan2_ada.convert_generator_tensors` / `convert_discriminator_tensors`).
2. Runs ADA's four training phases in `training_loop.py` order with ADA's own `StyleGAN2Loss.accumulate_gradients`
   (`Gmain`, `Greg` with gain `G_reg_interval`, `Dmain`, `Dreg` with gain `D_reg_interval`), each followed by a step
   of the phase's Adam (lr and betas with ADA's `interval / (interval + 1)` correction), and ours:
   `FQStyleGANSteps`' `generator_step`, `generator_regularization_step`, `discriminator_step`, `discriminator_regularization_step`,
   backward, the same optimizer steps. Both sides get the same latents (`z=`) and the same synthesis and
   path-length noise (the global RNG reseeded before every phase; both draw in the same order). Style mixing is off
   (`style_mixing_prob=0`, explicit on our side) so that both sides draw nothing else. The real batch is
   scikit-learn's digits, nearest-upsampled to the resolution and repeated to RGB, in [-1, 1].
3. Compares every loss term (ADA's values are captured from its `training_stats.report` calls), the gradients of
   every parameter group after each phase, the parameters after each optimizer step, and the state after each
   phase: the path-length mean and `w_avg`.

Precision: ADA casts its activations to float32 (`networks.py`: `dtype = torch.float32` unless fp16), so this
comparison runs in float32 only. `max rel` is max |ours − ADA| / max |ADA| over each group. Exit status 1 when a
max rel exceeds `--rtol` (1e-5 by default; the float32 figures of Adam-updated parameters can exceed it where a
gradient element is near 0, since Adam's first step normalises it to ±lr).

With FQ on, the quantizer terms follow FQ-GAN's TF FQ-StyleGAN (`VectorQuantizerEMA`, zero-debiased EMA); that
formula was verified against TensorFlow 2.21 running FQ-GAN's own function (see `tests/test_feature_quantizer.py`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from parity_report import ParityReport  # noqa: E402  (benchmarks/parity/, the script's own folder, is on sys.path)


REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from hf_dgm.models.fq_stylegan.convert_stylegan2_ada import convert_discriminator_tensors, convert_generator_tensors  # noqa: E402
from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration  # noqa: E402
from hf_dgm.training.fq_stylegan.loss import FQStyleGANSteps  # noqa: E402

VERIFIED_COMMIT = "d72cc7d041b42ec8e806021a205ed9349f87c6a4"


@torch.no_grad()
def move_from_init(module, seed):
    gen = torch.Generator().manual_seed(seed)
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point() and not name.endswith("resample_filter"):  # the FIR taps are fixed, not learned
            t.add_(0.5 * (float(t.abs().mean()) or 0.1) * torch.randn(t.shape, generator=gen))


def real_batch(batch, resolution):
    from hf_dgm.training.image_data import load_digits_dataset

    rows = load_digits_dataset().select(range(batch))
    x = torch.stack([torch.tensor(list(r["image"].convert("L").getdata()), dtype=torch.float32).reshape(1, 8, 8)
                     for r in rows]) / 127.5 - 1  # fmt: skip
    return torch.nn.functional.interpolate(x.repeat(1, 3, 1, 1), size=resolution, mode="nearest")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Parity of hf-dgm FQ-StyleGAN's training phases (use_fq=False) with NVlabs/stylegan2-ada-pytorch "
        f"training/loss.py + networks.py + training_loop.py, verified against commit {VERIFIED_COMMIT}."
    )
    parser.add_argument("--original", type=Path, required=True, help="a NVlabs/stylegan2-ada-pytorch checkout")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.original))
    from training import loss as ada_loss  # noqa: E402
    from training import networks  # noqa: E402

    dims, base, cmax, r1_gamma, g_int, d_int, lr, betas = 32, 256, 32, 1.0, 4, 16, 0.002, (0.0, 0.99)
    torch.manual_seed(args.seed)
    G = networks.Generator(z_dim=dims, c_dim=0, w_dim=dims, img_resolution=args.resolution, img_channels=3,
                           mapping_kwargs=dict(num_layers=2),
                           synthesis_kwargs=dict(channel_base=base, channel_max=cmax, num_fp16_res=0, conv_clamp=None))
    D = networks.Discriminator(c_dim=0, img_resolution=args.resolution, img_channels=3, channel_base=base,
                               channel_max=cmax, num_fp16_res=0, conv_clamp=None,
                               epilogue_kwargs=dict(mbstd_group_size=4))  # fmt: skip
    move_from_init(G, args.seed + 1)
    move_from_init(D, args.seed + 2)
    G.train(), D.train()
    config = FQStyleGANConfig(resolution=args.resolution, num_channels=3, z_dim=dims, w_dim=dims, mapping_layers=2,
                              channel_base=base, channel_max=cmax, conv_clamp=None, mbstd_group_size=4, use_fq=False,
                              style_mixing_prob=0.0, r1_gamma=r1_gamma, r1_interval=d_int, pl_interval=g_int,
                              learning_rate=lr, adam_betas=betas)  # fmt: skip
    model = FQStyleGANForImageGeneration(config)
    model.generator.load_state_dict(convert_generator_tensors(dict(G.state_dict()), config))
    model.discriminator.load_state_dict(convert_discriminator_tensors(dict(D.state_dict()), config))
    model.train()

    def adam(params, interval):
        c = interval / (interval + 1)
        return torch.optim.Adam(params, lr=lr * c, betas=tuple(b**c for b in betas), eps=1e-8)

    opt = {"G": adam(G.parameters(), g_int), "D": adam(D.parameters(), d_int)}
    ours_opt = {"G": adam(model.generator.parameters(), g_int), "D": adam(model.discriminator.parameters(), d_int)}
    loss = ada_loss.StyleGAN2Loss("cpu", G.mapping, G.synthesis, D, style_mixing_prob=0.0, r1_gamma=r1_gamma)
    reported: dict[str, torch.Tensor] = {}
    ada_loss.training_stats.report = lambda name, value: reported.__setitem__(name, torch.as_tensor(value).detach())

    reals = real_batch(args.batch, args.resolution)
    gen = torch.Generator().manual_seed(args.seed + 3)
    zs = [torch.randn(args.batch, dims, generator=gen) for _ in range(4)]
    report = ParityReport()
    g_names = [n for n, _ in model.generator.named_parameters()]
    d_names = [n for n, _ in model.discriminator.named_parameters()]

    def ada_grads(net, convert, names):
        sd = convert({n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in net.named_parameters()}
                     | {n: b for n, b in net.named_buffers()}, config)  # fmt: skip
        return [sd[n] for n in names]

    def ada_params(net, convert, names):
        sd = convert(dict(net.state_dict()), config)
        return [sd[n] for n in names]

    steps = FQStyleGANSteps(model)

    def step_call(mode):
        """Our training step of a phase (`FQStyleGANSteps.<mode>_step`); R1 at the reals draws nothing."""
        function = getattr(steps, f"{mode}_step")
        return (lambda batch, **_: function(batch)) if mode == "discriminator_regularization" else function

    phases = [("Gmain", "G", "generator", 1), ("Greg", "G", "generator_regularization", g_int),
              ("Dmain", "D", "discriminator", 1), ("Dreg", "D", "discriminator_regularization", d_int)]  # fmt: skip
    for index, (phase, net_name, mode, gain) in enumerate(phases):
        ada_net, our_net = (G, model.generator) if net_name == "G" else (D, model.discriminator)
        convert = convert_generator_tensors if net_name == "G" else convert_discriminator_tensors
        names = g_names if net_name == "G" else d_names
        # ADA
        reported.clear()
        opt[net_name].zero_grad(set_to_none=True)
        ada_net.requires_grad_(True)
        torch.manual_seed(100 + index)
        loss.accumulate_gradients(phase=phase, real_img=reals, real_c=torch.zeros(args.batch, 0), gen_z=zs[index],
                                  gen_c=torch.zeros(args.batch, 0), sync=True, gain=gain)  # fmt: skip
        ada_net.requires_grad_(False)
        theirs_grads = ada_grads(ada_net, convert, names)
        opt[net_name].step()
        # ours
        ours_opt[net_name].zero_grad(set_to_none=True)
        other = model.discriminator if net_name == "G" else model.generator
        other.requires_grad_(False)
        torch.manual_seed(100 + index)
        out = step_call(mode)({"pixel_values": reals}, z=zs[index], style_mixing=False)
        out.loss.backward()
        other.requires_grad_(True)
        ours_grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in our_net.parameters()]
        ours_opt[net_name].step()
        # compare
        if phase == "Gmain":
            report.add("Gmain: logits fake", out.term("logits_fake"), reported["Loss/scores/fake"].reshape(-1))
            report.add("Gmain: loss softplus(-D(G(z)))", out.term("g_loss"), reported["Loss/G/loss"].mean())
        elif phase == "Greg":
            report.add("Greg: pl penalty", out.term("pl_penalty"), reported["Loss/pl_penalty"].mean())
            report.add("Greg: pl_mean after", model.training_state.pl_mean, loss.pl_mean)
        elif phase == "Dmain":
            report.add("Dmain: logits fake", out.term("logits_fake"), reported["Loss/scores/fake"].reshape(-1))
            report.add("Dmain: logits real", out.term("logits_real"), reported["Loss/scores/real"].reshape(-1))
            report.add("Dmain: loss (real + fake)", out.term("d_loss_real") + out.term("d_loss_fake"), reported["Loss/D/loss"].mean())
        else:
            report.add("Dreg: R1 penalty", out.term("r1_penalty"), reported["Loss/r1_penalty"].mean())
        report.add(f"{phase}: grads of {net_name}", ours_grads, theirs_grads)
        for group in sorted({n.split(".")[0] for n in names}):
            idx = [i for i, n in enumerate(names) if n.split(".")[0] == group]
            report.add(f"  {phase} grads {group}", [ours_grads[i] for i in idx], [theirs_grads[i] for i in idx])
        report.add(f"{phase}: {net_name} params after Adam", list(our_net.parameters()),
                   ada_params(ada_net, convert, names))  # fmt: skip
        report.add(f"{phase}: w_avg after", model.generator.mapping.w_avg, G.mapping.w_avg)

    print(f"FQ-StyleGAN (use_fq=False) parity vs NVlabs/stylegan2-ada-pytorch ({args.original}), float32, "
          f"batch {args.batch}, resolution {args.resolution}")  # fmt: skip
    report.print()
    worst = report.worst_relative
    print(f"worst max rel: {worst:.3e} (rtol {args.rtol:g})")
    return 0 if worst <= args.rtol else 1


if __name__ == "__main__":
    raise SystemExit(main())
