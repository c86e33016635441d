#!/usr/bin/env python
"""Cost of feature quantization: D-step and G-step time and peak memory of FQ-BigGAN with and without FQ.

Two sizes: CIFAR (preset `cifar10`, 32×32, FQ after 4 D blocks) and 128×128 (preset `imagenet128`, FQ after 4
D blocks), each with `use_fq=True` and `use_fq=False` (the plain BigGAN baseline) in the same run. A "D step" is
`FQBigGANSteps.discriminator_step` (fakes generated without gradient, D on fake+real, dictionary EMA update) + backward +
Adam step; a "G step" is `FQBigGANSteps.generator_step` + backward (D frozen) + Adam step — what `GANTrainer` does.

Every (size, FQ, step) cell runs in a fresh subprocess so that peak memory is clean: on CUDA the peak of
`torch.cuda.max_memory_allocated` during the measured steps; on CPU the growth of the process's peak RSS
(`ru_maxrss`) over its RSS just before the first step (parameters and Adam state are allocated before that).
Times are medians over repeats after one warm-up step. Ratios are FQ / no-FQ.

    python benchmarks/bench_fq_overhead.py [--device cpu|cuda] [--batch_cifar 16] [--batch_128 2] [--repeats 5]
        [--sizes cifar10,imagenet128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from hf_dgm.training.fq_biggan.loss import FQBigGANSteps

preset, use_fq, step, batch, repeats, device = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.manual_seed(0)
config = FQBigGANConfig.from_preset(preset, use_fq=use_fq)
model = FQBigGANForImageGeneration(config).to(device).train()
g_params, d_params = list(model.generator_parameters()), list(model.discriminator_parameters())
opt = torch.optim.Adam(d_params if step == "D" else g_params, lr=1e-4, betas=(0.0, 0.999))
x = torch.rand(batch, 3, config.resolution, config.resolution, device=device) * 2 - 1
y = torch.randint(0, config.num_classes, (batch,), device=device)

def run():
    opt.zero_grad(set_to_none=True)
    if step == "D":
        for p in g_params: p.requires_grad_(False)
        out = FQBigGANSteps(model).discriminator_step({"pixel_values": x, "labels": y})
        out.loss.backward()
        for p in g_params: p.requires_grad_(True)
    else:
        for p in d_params: p.requires_grad_(False)
        out = FQBigGANSteps(model).generator_step({"labels": y})
        out.loss.backward()
        for p in d_params: p.requires_grad_(True)
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

# Adam state exists after the first step: allocate it before measuring memory, via one untimed step whose
# memory is counted (the warm-up), then time the repeats.
before = rss_kb()
if device == "cuda":
    torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
run()
times = []
for _ in range(repeats):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
if device == "cuda":
    peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
else:
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"time_ms": 1000 * statistics.median(times), "peak_mb": peak_mb, "params": params,
                  "resolution": config.resolution, "fq_layers": config.fq_layers if use_fq else []}))
"""


def measure(preset: str, use_fq: bool, step: str, batch: int, repeats: int, device: str) -> dict:
    cmd = [sys.executable, "-c", CHILD, preset, "1" if use_fq else "0", step, str(batch), str(repeats), device]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({preset}, fq={use_fq}, {step}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch_cifar", type=int, default=None, help="default: 64 on CUDA, 16 on CPU")
    parser.add_argument("--batch_128", type=int, default=None, help="default: 32 on CUDA, 2 on CPU")
    parser.add_argument("--repeats", type=int, default=None, help="default: 20 on CUDA, 3 on CPU")
    parser.add_argument("--sizes", default="cifar10,imagenet128", help="comma-separated presets to measure")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    sizes = [
        ("cifar10", "32×32 (cifar10)", args.batch_cifar or (64 if cuda else 16)),
        ("imagenet128", "128×128 (imagenet128)", args.batch_128 or (32 if cuda else 2)),
    ]
    wanted = args.sizes.split(",")
    unknown = sorted(set(wanted) - {preset for preset, _, _ in sizes})
    if unknown:
        raise SystemExit(f"unknown --sizes {unknown}; choose from cifar10, imagenet128")
    sizes = [s for s in sizes if s[0] in wanted]
    repeats = args.repeats or (20 if cuda else 3)
    memory_kind = "CUDA peak allocated over the step" if cuda else "peak RSS growth over the step"
    device_name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"FQ overhead on {device_name}, torch {torch.__version__}; median of {repeats} steps; memory: {memory_kind}")
    rows = []
    start = time.time()
    for preset, label, batch in sizes:
        for step in ("D", "G"):
            base = measure(preset, False, step, batch, repeats, args.device)
            fq = measure(preset, True, step, batch, repeats, args.device)
            rows.append((label, batch, step, base, fq))
            print(f"  measured {label} {step} step", file=sys.stderr, flush=True)
    header = ("size", "batch", "step", "no-FQ ms", "FQ ms", "time FQ/no-FQ", "no-FQ MB", "FQ MB", "mem FQ/no-FQ")
    table = [header]
    for label, batch, step, base, fq in rows:
        table.append((
            label, str(batch), step,
            f"{base['time_ms']:.1f}", f"{fq['time_ms']:.1f}", f"{fq['time_ms'] / base['time_ms']:.3f}",
            f"{base['peak_mb']:.1f}", f"{fq['peak_mb']:.1f}",
            f"{fq['peak_mb'] / base['peak_mb']:.3f}" if base["peak_mb"] > 0 else "n/a",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"(wall time {time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
