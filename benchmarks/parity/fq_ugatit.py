"""Parity of hf-dgm's FQ-U-GAT-IT (use_fq=False) with the PyTorch port of U-GAT-IT, znxlwm/UGATIT-pytorch.

Verified against znxlwm/UGATIT-pytorch commit b8c4251823673189999484d07e97fdcb9300e9e0 (2019-10-15, the newest;
networks.py as of f7a4b59, 2019-08-27). The checkout is given with `--original DIR` and is never copied into this
repository:

    git clone https://github.com/znxlwm/UGATIT-pytorch /tmp/orig-ugatit
    python benchmarks/parity/fq_ugatit.py --original /tmp/orig-ugatit

What it does:

1. Builds the port's own networks (`networks.ResnetGenerator`, `networks.Discriminator` from DIR): light model,
   `--ngf` (8), `--n_res` (2) blocks, `--image_size` (64) px; global discriminators with `--global_layers` (6; the
   port's 7 needs 128 px or more) and local ones with `--local_layers` (4) layers, `ndf = ngf` as the port's
   `UGATIT.build_model`.
2. Moves every parameter away from its initial value (Gaussian noise at 50% of each tensor's std; ρ drawn from
   U(−0.2, 1.2), so the post-step clipping acts; ILN γ, β drawn around 1 and 0) and runs three training-mode
   forwards of every discriminator, so the spectral-norm vectors `u`, `v` leave their random init too.
3. Saves that as the port's checkpoint (`{"genA2B": ..., "disLB": ...}`) and converts it with hf-dgm's converter
   (`hf_dgm.models.fq_ugatit.convert_ugatit.run`, what `python -m hf_dgm.convert ugatit` runs), then loads the written folder.
4. (a) eval mode, real batch: translations A2B/B2A (images, CAM logits, heat maps) and the four discriminators
   (patch logits, CAM logits, heat maps).
5. (b) training mode, one D step then one G step from identical weights on the same real batch (scikit-learn digits
   in two styles, `hf_dgm.training.unpaired_data.digits_two_domains`, resized to the image size without
   augmentation). The port's step is `UGATIT.train`'s loop body; it reads its batches from data loaders, so this
   script calls the port's networks and loss modules (`nn.MSELoss`, `nn.L1Loss`, `nn.BCEWithLogitsLoss`, Adam with
   the port's lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, `networks.RhoClipper(0, 1)`) in the order of
   UGATIT.py lines 166–242 ("Update D": 167–196, "Update G": 199–238, ρ clipping: 241–242). Ours is
   `FQUGATITSteps.discriminator_step` / `generator_step`, `.loss.backward()`, Adam on
   `discriminator_parameters()` / `generator_parameters()` with the config's hyper-parameters, and
   `after_generator_step()`. Compared: every adversarial / CAM / cycle / identity term and the totals, the
   gradients of every network (parameter groups genA2B, genB2A, disGA, disGB, disLA, disLB), the spectral-norm
   vectors after each step (the G step advances them too: the port's discriminators stay in training mode), the
   parameters after each Adam step, and ρ after clipping.

Differences are reported per quantity as `max abs` = max |ours − port| and `max rel` = max |ours − port| / max |port|
(the tensor's scale; per tensor, maximum over a group). `--dtype float64` runs both sides in double precision
(differences then show whether any remains beyond fp32 rounding). `--norm_variance nested_unbiased` or
`--spectral_norm_order u_then_v` reproduce the two differences issue 27 found.

Result (defaults, float32, 2-thread x86-64 CPU, torch 2.13): forward outputs, every loss term and the spectral-norm
vectors after the D step are bit-identical; gradients agree to ≤ 1.9e-6 rel, spectral-norm vectors after the G step
to 1.2e-7. One explained exception: the parameters after the G step's Adam update differ by up to 4.9e-6 abs
(4.3e-5 of the tensor's scale; 5% of one step, lr 1e-4). Adam's first update is lr·g/(|g| + ε) per element, ≈ lr·sign(g):
an element whose gradient is as small as the fp32 rounding of the tensor's gradients (their scale reaches 1e3 with
the CAM weight 1000) gets a visibly different step. With `--dtype float64` every quantity, those parameters
included, agrees to ≤ 2.1e-13. Exit status 1 when a max rel exceeds `--rtol` (1e-5), except rows of parameters
after an Adam step, which must agree to `--adam_atol` (1e-5 = lr/10) in absolute value.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import torch
from parity_report import ParityReport  # noqa: E402  (benchmarks/parity/, the script's own folder, is on sys.path)
import torch.nn as nn


REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from hf_dgm.models.fq_ugatit import convert_ugatit as converter  # noqa: E402
from hf_dgm.models.fq_ugatit import FQUGATITModel  # noqa: E402
from hf_dgm.training.fq_ugatit.loss import FQUGATITSteps  # noqa: E402
from hf_dgm.models.fq_ugatit.modeling_fq_ugatit import FQUGATITSpectralNorm  # noqa: E402
from hf_dgm.training.unpaired_data import UnpairedImageCollator, digits_two_domains  # noqa: E402


VERIFIED_COMMIT = "b8c4251823673189999484d07e97fdcb9300e9e0"
NETWORKS = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")
# port network -> (our submodule, key mapper)
OURS = {
    "genA2B": ("generator_a2b", converter._generator_key),
    "genB2A": ("generator_b2a", converter._generator_key),
    "disGA": ("discriminator_global_a", converter._discriminator_key),
    "disGB": ("discriminator_global_b", converter._discriminator_key),
    "disLA": ("discriminator_local_a", converter._discriminator_key),
    "disLB": ("discriminator_local_b", converter._discriminator_key),
}
# the port's per-discriminator term names -> ours
D_KEYS = {"GA": "global_a", "LA": "local_a", "GB": "global_b", "LB": "local_b"}


def import_port(original: Path):
    if not (original / "networks.py").is_file() or not (original / "UGATIT.py").is_file():
        raise SystemExit(f"{original}: not a UGATIT-pytorch checkout (networks.py / UGATIT.py missing)")
    sys.path.insert(0, str(original))
    import networks  # the port's module

    return networks


def build_port(networks, args) -> dict[str, nn.Module]:
    torch.manual_seed(args.seed)
    kw = dict(input_nc=3, output_nc=3, ngf=args.ngf, n_blocks=args.n_res, img_size=args.image_size, light=True)
    return {
        "genA2B": networks.ResnetGenerator(**kw),
        "genB2A": networks.ResnetGenerator(**kw),
        "disGA": networks.Discriminator(input_nc=3, ndf=args.ngf, n_layers=args.global_layers),
        "disGB": networks.Discriminator(input_nc=3, ndf=args.ngf, n_layers=args.global_layers),
        "disLA": networks.Discriminator(input_nc=3, ndf=args.ngf, n_layers=args.local_layers),
        "disLB": networks.Discriminator(input_nc=3, ndf=args.ngf, n_layers=args.local_layers),
    }


@torch.no_grad()
def move_from_init(nets: dict[str, nn.Module], image_size: int, seed: int) -> None:
    """Every parameter away from its init, and the spectral-norm vectors off theirs."""
    gen = torch.Generator().manual_seed(seed + 1)
    for net in nets.values():
        for name, p in net.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "rho":
                p.copy_(torch.rand(p.shape, generator=gen) * 1.4 - 0.2)
            elif leaf == "gamma" and p.dim() == 4:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif leaf == "beta" and p.dim() == 4:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                scale = float(p.std()) if p.numel() > 1 else float(p.abs()) + 0.1
                p.add_(0.5 * scale * torch.randn(p.shape, generator=gen))
    x = torch.rand(4, 3, image_size, image_size, generator=gen) * 2 - 1
    for name, net in nets.items():
        if name.startswith("dis"):
            net.train()
            for _ in range(3):
                net(x)


def real_batch(batch: int, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    domains = digits_two_domains()
    collate = UnpairedImageCollator(resolution=image_size, augment=False)
    rows = [{"image_a": domains["train_a"][i], "image_b": domains["train_b"][i]} for i in range(batch)]
    out = collate(rows)
    return out["pixel_values_a"], out["pixel_values_b"]


def grads_by_network(nets, model) -> dict[str, tuple[list, list]]:
    out = {}
    for port_name, net in nets.items():
        prefix, mapper = OURS[port_name]
        ours_params = dict(model.named_parameters())
        o, p = [], []
        for name, param in net.named_parameters():
            theirs = param.grad if param.grad is not None else torch.zeros_like(param)
            mine = ours_params[f"{prefix}.{mapper(name)}"].grad
            o.append(mine if mine is not None else torch.zeros_like(theirs))
            p.append(theirs)
        out[port_name] = (o, p)
    return out


def params_by_network(nets, model, names) -> dict[str, tuple[list, list]]:
    ours_state = model.state_dict()
    out = {}
    for port_name in names:
        prefix, mapper = OURS[port_name]
        o, p = [], []
        for name, param in nets[port_name].named_parameters():
            o.append(ours_state[f"{prefix}.{mapper(name)}"])
            p.append(param)
        out[port_name] = (o, p)
    return out


def sn_vectors(nets, model) -> tuple[list, list]:
    ours_state = model.state_dict()
    o, p = [], []
    for port_name in ("disGA", "disGB", "disLA", "disLB"):
        prefix, mapper = OURS[port_name]
        for name, buf in nets[port_name].named_buffers():
            if name.endswith(("weight_u", "weight_v")):
                o.append(ours_state[f"{prefix}.{mapper(name)}"])
                p.append(buf)
    return o, p


def rhos(nets, model) -> tuple[list, list]:
    ours_state = model.state_dict()
    o, p = [], []
    for port_name in ("genA2B", "genB2A"):
        prefix, mapper = OURS[port_name]
        for name, param in nets[port_name].named_parameters():
            if name.endswith("rho"):
                o.append(ours_state[f"{prefix}.{mapper(name)}"])
                p.append(param)
    return o, p


def port_d_step(nets, real_A, real_B, mse):
    """UGATIT.py lines 167-195 (without the optimizer step): the port's 'Update D' body."""
    genA2B, genB2A, disGA, disGB, disLA, disLB = (nets[n] for n in NETWORKS)
    fake_A2B, _, _ = genA2B(real_A)
    fake_B2A, _, _ = genB2A(real_B)
    real = {"GA": disGA(real_A), "LA": disLA(real_A), "GB": disGB(real_B), "LB": disLB(real_B)}
    fake = {"GA": disGA(fake_B2A), "LA": disLA(fake_B2A), "GB": disGB(fake_A2B), "LB": disLB(fake_A2B)}
    terms = {}
    for k in ("GA", "LA", "GB", "LB"):
        r_logit, r_cam, _ = real[k]
        f_logit, f_cam, _ = fake[k]
        terms[f"D_ad_loss_{k}"] = mse(r_logit, torch.ones_like(r_logit)) + mse(f_logit, torch.zeros_like(f_logit))
        terms[f"D_ad_cam_loss_{k}"] = mse(r_cam, torch.ones_like(r_cam)) + mse(f_cam, torch.zeros_like(f_cam))
    return terms


def port_g_step(nets, real_A, real_B, mse, l1, bce):
    """UGATIT.py lines 201-231: the port's 'Update G' body up to the per-domain losses."""
    genA2B, genB2A, disGA, disGB, disLA, disLB = (nets[n] for n in NETWORKS)
    fake_A2B, fake_A2B_cam_logit, _ = genA2B(real_A)
    fake_B2A, fake_B2A_cam_logit, _ = genB2A(real_B)
    fake_A2B2A, _, _ = genB2A(fake_A2B)
    fake_B2A2B, _, _ = genA2B(fake_B2A)
    fake_A2A, fake_A2A_cam_logit, _ = genB2A(real_A)
    fake_B2B, fake_B2B_cam_logit, _ = genA2B(real_B)
    fake = {"GA": disGA(fake_B2A), "LA": disLA(fake_B2A), "GB": disGB(fake_A2B), "LB": disLB(fake_A2B)}
    terms = {}
    for k in ("GA", "LA", "GB", "LB"):
        logit, cam, _ = fake[k]
        terms[f"G_ad_loss_{k}"] = mse(logit, torch.ones_like(logit))
        terms[f"G_ad_cam_loss_{k}"] = mse(cam, torch.ones_like(cam))
    terms["G_recon_loss_A"] = l1(fake_A2B2A, real_A)
    terms["G_recon_loss_B"] = l1(fake_B2A2B, real_B)
    terms["G_identity_loss_A"] = l1(fake_A2A, real_A)
    terms["G_identity_loss_B"] = l1(fake_B2B, real_B)
    terms["G_cam_loss_A"] = bce(fake_B2A_cam_logit, torch.ones_like(fake_B2A_cam_logit)) + bce(
        fake_A2A_cam_logit, torch.zeros_like(fake_A2A_cam_logit)
    )
    terms["G_cam_loss_B"] = bce(fake_A2B_cam_logit, torch.ones_like(fake_A2B_cam_logit)) + bce(
        fake_B2B_cam_logit, torch.zeros_like(fake_B2B_cam_logit)
    )
    return terms, fake_A2B, fake_B2A


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, required=True, help="checkout of znxlwm/UGATIT-pytorch")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=8)
    parser.add_argument("--n_res", type=int, default=2)
    parser.add_argument("--global_layers", type=int, default=6)
    parser.add_argument("--local_layers", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--norm_variance", choices=converter.PORT_NORM_VARIANCES, default="unbiased",
                        help="converter option (nested_unbiased reproduces issue 27's translation gap)")  # fmt: skip
    parser.add_argument("--spectral_norm_order", choices=("v_then_u", "u_then_v"), default="v_then_u",
                        help="our spectral-norm update order (u_then_v reproduces issue 27's step gap)")  # fmt: skip
    parser.add_argument("--rtol", type=float, default=1e-5, help="fail (exit 1) when a max rel exceeds this")
    parser.add_argument("--adam_atol", type=float, default=1e-5,
                        help="absolute tolerance of parameters after an Adam step (see the docstring)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)

    networks = import_port(args.original.resolve())
    nets = build_port(networks, args)
    move_from_init(nets, args.image_size, args.seed)
    for net in nets.values():
        net.eval()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / f"digits_params_{1:07d}.pt"
        torch.save({name: net.state_dict() for name, net in nets.items()}, ckpt)
        out = Path(tmp) / "converted"
        converter.run(argparse.Namespace(checkpoint=ckpt, out=out, image_size=args.image_size, use_fq=False,
                                         norm_variance=args.norm_variance))  # fmt: skip
        model = FQUGATITModel.from_pretrained(out)
    for module in model.modules():
        if isinstance(module, FQUGATITSpectralNorm):
            module.order = args.spectral_norm_order
    model.config.spectral_norm_order = args.spectral_norm_order
    model.to(dtype).eval()
    for net in nets.values():
        net.to(dtype)

    real_A, real_B = (x.to(dtype) for x in real_batch(args.batch_size, args.image_size))
    report = ParityReport(relative_to="tensor")

    # (a) forward, eval mode
    with torch.no_grad():
        for port_name, direction, x in (("genA2B", "A2B", real_A), ("genB2A", "B2A", real_B)):
            image, cam, heat = nets[port_name](x)
            ours = model.translate(x, direction)
            report.add(f"translation {direction} images", ours.images, image)
            report.add(f"translation {direction} CAM logits", ours.cam_logits, cam)
            report.add(f"translation {direction} heatmap", ours.heatmap, heat)
        for port_name in ("disGA", "disLA", "disGB", "disLB"):
            x = real_A if port_name.endswith("A") else real_B
            logit, cam, heat = nets[port_name](x)
            ours = getattr(model, OURS[port_name][0])(x)
            report.add(f"{port_name} logits / CAM logits / heatmap", [ours.logits, ours.cam_logits, ours.heatmap],
                       [logit, cam, heat])  # fmt: skip

    # (b) one D step and one G step, training mode
    cfg = model.config
    for net in nets.values():
        net.train()
    model.train()
    mse, l1, bce = nn.MSELoss(), nn.L1Loss(), nn.BCEWithLogitsLoss()
    adam = dict(lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)  # UGATIT.build_model, main.py defaults
    G_optim = torch.optim.Adam(itertools.chain(nets["genA2B"].parameters(), nets["genB2A"].parameters()), **adam)
    D_optim = torch.optim.Adam(
        itertools.chain(*(nets[n].parameters() for n in ("disGA", "disGB", "disLA", "disLB"))), **adam
    )
    ours_g = torch.optim.Adam(model.generator_parameters(), lr=cfg.generator_lr, betas=tuple(cfg.generator_betas),
                              eps=cfg.adam_eps, weight_decay=cfg.generator_weight_decay)  # fmt: skip
    ours_d = torch.optim.Adam(model.discriminator_parameters(), lr=cfg.discriminator_lr,
                              betas=tuple(cfg.discriminator_betas), eps=cfg.adam_eps,
                              weight_decay=cfg.discriminator_weight_decay)  # fmt: skip

    # D step: UGATIT.py 167-196
    D_optim.zero_grad()
    terms = port_d_step(nets, real_A, real_B, mse)
    D_loss_A = 1.0 * (terms["D_ad_loss_GA"] + terms["D_ad_cam_loss_GA"] + terms["D_ad_loss_LA"] + terms["D_ad_cam_loss_LA"])
    D_loss_B = 1.0 * (terms["D_ad_loss_GB"] + terms["D_ad_cam_loss_GB"] + terms["D_ad_loss_LB"] + terms["D_ad_cam_loss_LB"])
    Discriminator_loss = D_loss_A + D_loss_B
    Discriminator_loss.backward()
    ours_d.zero_grad()
    d_out = FQUGATITSteps(model).discriminator_step({"pixel_values_a": real_A, "pixel_values_b": real_B})
    d_out.loss.backward()
    for k, ours_key in D_KEYS.items():
        report.add(f"D step D_ad_loss_{k}", d_out.term(f"d_adv_loss_{ours_key}"), terms[f"D_ad_loss_{k}"])
        report.add(f"D step D_ad_cam_loss_{k}", d_out.term(f"d_cam_loss_{ours_key}"), terms[f"D_ad_cam_loss_{k}"])
    report.add("D step D_loss_A", d_out.term("d_loss_a"), D_loss_A)
    report.add("D step D_loss_B", d_out.term("d_loss_b"), D_loss_B)
    report.add("D step Discriminator_loss", d_out.loss, Discriminator_loss)
    grads = grads_by_network(nets, model)
    for name in ("disGA", "disGB", "disLA", "disLB"):
        report.add(f"D step grad {name}", *grads[name])
    report.add("D step spectral-norm u, v (all D)", *sn_vectors(nets, model))
    D_optim.step()
    ours_d.step()
    for name, (o, p) in params_by_network(nets, model, ("disGA", "disGB", "disLA", "disLB")).items():
        report.add(f"D step params after Adam {name}", o, p)

    # G step: UGATIT.py 199-242
    G_optim.zero_grad()
    for p in model.parameters():
        p.grad = None
    terms, _, _ = port_g_step(nets, real_A, real_B, mse, l1, bce)
    G_loss = {}
    for d in ("A", "B"):
        G_loss[d] = (
            1.0 * (terms[f"G_ad_loss_G{d}"] + terms[f"G_ad_cam_loss_G{d}"] + terms[f"G_ad_loss_L{d}"]
                   + terms[f"G_ad_cam_loss_L{d}"])
            + 10.0 * terms[f"G_recon_loss_{d}"] + 10.0 * terms[f"G_identity_loss_{d}"]
            + 1000.0 * terms[f"G_cam_loss_{d}"]
        )  # fmt: skip
    Generator_loss = G_loss["A"] + G_loss["B"]
    Generator_loss.backward()
    g_out = FQUGATITSteps(model).generator_step({"pixel_values_a": real_A, "pixel_values_b": real_B})
    g_out.loss.backward()
    for k, ours_key in D_KEYS.items():
        report.add(f"G step G_ad_loss_{k}", g_out.term(f"g_adv_loss_{ours_key}"), terms[f"G_ad_loss_{k}"])
        report.add(f"G step G_ad_cam_loss_{k}", g_out.term(f"g_cam_loss_{ours_key}"), terms[f"G_ad_cam_loss_{k}"])
    for d in ("A", "B"):
        low = d.lower()
        report.add(f"G step G_recon_loss_{d}", g_out.term(f"cycle_loss_{low}"), terms[f"G_recon_loss_{d}"])
        report.add(f"G step G_identity_loss_{d}", g_out.term(f"identity_loss_{low}"), terms[f"G_identity_loss_{d}"])
        report.add(f"G step G_cam_loss_{d}", g_out.term(f"cam_loss_{low}"), terms[f"G_cam_loss_{d}"])
        report.add(f"G step G_loss_{d}", g_out.term(f"g_loss_{low}"), G_loss[d])
    report.add("G step Generator_loss", g_out.loss, Generator_loss)
    grads = grads_by_network(nets, model)
    for name in ("genA2B", "genB2A"):
        report.add(f"G step grad {name}", *grads[name])
    report.add("G step spectral-norm u, v (all D)", *sn_vectors(nets, model))
    G_optim.step()
    ours_g.step()
    clipper = networks.RhoClipper(0, 1)
    nets["genA2B"].apply(clipper)
    nets["genB2A"].apply(clipper)
    model.after_generator_step(step=1)
    for name, (o, p) in params_by_network(nets, model, ("genA2B", "genB2A")).items():
        report.add(f"G step params after Adam + ρ clip {name}", o, p)
    report.add("G step ρ after clipping (both G)", *rhos(nets, model))

    print(f"UGATIT-pytorch at {args.original} (verified: {VERIFIED_COMMIT[:7]}), light, ngf={args.ngf}, "
          f"n_res={args.n_res}, {args.image_size} px, D layers {args.global_layers}/{args.local_layers}, "
          f"batch {args.batch_size}, {args.dtype}, norm_variance={args.norm_variance}, "
          f"spectral_norm_order={args.spectral_norm_order}")  # fmt: skip
    report.print()
    adam_rows = [r for r in report.rows if "after Adam" in r[0]]
    other = [r for r in report.rows if "after Adam" not in r[0]]
    worst = max(r[2] for r in other)
    worst_adam = max(r[1] for r in adam_rows)
    print(f"worst max rel: {worst:.2e} (tolerance {args.rtol:g}); parameters after Adam steps: worst max abs "
          f"{worst_adam:.2e} (tolerance {args.adam_atol:g})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps([{"quantity": n, "max_abs": a, "max_rel": r} for n, a, r in report.rows], indent=1))
    return 0 if worst <= args.rtol and worst_adam <= args.adam_atol else 1


if __name__ == "__main__":
    sys.exit(main())
