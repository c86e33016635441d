#!/usr/bin/env python
"""Cost of feature quantization in U-GAT-IT: time and peak memory of one full training iteration with and without
FQ, at 64 and 256 px, and the throughput of the `image-translation` pipeline.

One iteration = what `GANTrainer` does per global step: `FQUGATITSteps.discriminator_step` (both domains, four
discriminators, dictionary EMA update) + backward + D Adam step, then `FQUGATITSteps.generator_step` (translations,
cycles, identities, CAM losses; D frozen) + backward + G Adam step + ρ clipping. Batch 1 (the original's), the
paper's widths by default (`--width`: ngf = ndf = 64, 4 residual blocks, global/local discriminators of 7/5 layers at 256 px; 6/4 at 64 px
so that the patch maps stay at least 2×2) with `--light` (default: the light generator, whose γ/β MLP does not grow
with the image: the full 256 px generator holds 2 × 268M MLP weights, too large for a shared CPU box; pass
`--no-light` on a GPU).

Memory: every (size, FQ) cell runs in a fresh subprocess: on CUDA the peak of `torch.cuda.max_memory_allocated`
over the measured iterations minus the memory allocated before them; on CPU the growth of the process's peak RSS
(`ru_maxrss`) over its RSS before the first iteration (weights allocated; gradients, Adam state and activations
counted). Time: the two models (FQ and no FQ, same seed) live in one process and alternate iteration by iteration
(`--time_repeats` rounds, the order flipped every round), so load changes on a shared machine hit both alike; the
ratio is the median of the per-round FQ / no-FQ ratios.

Pipeline: images per second of `pipeline("image-translation")` on a saved light model (`--width`) at 256 px, batches of
`--pipeline_batch` 256×256 RGB PIL images, median over `--repeats` calls after one warm-up.

    python benchmarks/bench_fq_ugatit.py [--device cpu|cuda] [--sizes 64,256] [--repeats 3] [--threads 1] [--width 64]
        [--output runs/bench/fq_ugatit.md]
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
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from hf_dgm.training.fq_ugatit.loss import FQUGATITSteps

size, use_fq, light, repeats, device, threads = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
width = int(sys.argv[7])
torch.set_num_threads(threads)
torch.manual_seed(0)
layers = (7, 5) if size >= 256 else (6, 4)
config = FQUGATITConfig(image_size=size, light=light, use_fq=use_fq, global_discriminator_layers=layers[0],
                        local_discriminator_layers=layers[1], ngf=width, ndf=width)
model = FQUGATITModel(config).to(device).train()
g_params, d_params = list(model.generator_parameters()), list(model.discriminator_parameters())
adam = dict(lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
opt_g, opt_d = torch.optim.Adam(g_params, **adam), torch.optim.Adam(d_params, **adam)
a = torch.rand(1, 3, size, size, device=device) * 2 - 1
b = torch.rand(1, 3, size, size, device=device) * 2 - 1

def iteration():
    opt_d.zero_grad(set_to_none=True)
    for p in g_params: p.requires_grad_(False)
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": a, "pixel_values_b": b}).loss.backward()
    for p in g_params: p.requires_grad_(True)
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    for p in d_params: p.requires_grad_(False)
    FQUGATITSteps(model).generator_step({"pixel_values_a": a, "pixel_values_b": b}).loss.backward()
    for p in d_params: p.requires_grad_(True)
    opt_g.step()
    model.after_generator_step()
    if device == "cuda":
        torch.cuda.synchronize()

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

before = rss_kb()
if device == "cuda":
    torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
iteration()
times = []
for _ in range(repeats):
    t = time.perf_counter(); iteration(); times.append(time.perf_counter() - t)
if device == "cuda":
    peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
else:
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"time_s": statistics.median(times), "times_s": times, "peak_mb": peak_mb,
                  "params": sum(p.numel() for p in model.parameters()),
                  "fq_buffers": sum(b.numel() for n, b in model.named_buffers() if ".quantizers." in n)}))
"""

TIME_CHILD = r"""
import json, statistics, sys, time
import torch
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from hf_dgm.training.fq_ugatit.loss import FQUGATITSteps

size, light, repeats, device, threads, width = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
layers = (7, 5) if size >= 256 else (6, 4)
a = torch.rand(1, 3, size, size, device=device) * 2 - 1
b = torch.rand(1, 3, size, size, device=device) * 2 - 1
runs = {}
for use_fq in (False, True):
    torch.manual_seed(0)
    config = FQUGATITConfig(image_size=size, light=light, use_fq=use_fq, global_discriminator_layers=layers[0],
                            local_discriminator_layers=layers[1], ngf=width, ndf=width)
    model = FQUGATITModel(config).to(device).train()
    g, d = list(model.generator_parameters()), list(model.discriminator_parameters())
    adam = dict(lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)
    runs[use_fq] = (model, g, d, torch.optim.Adam(g, **adam), torch.optim.Adam(d, **adam))

def iteration(model, g_params, d_params, opt_g, opt_d):
    opt_d.zero_grad(set_to_none=True)
    for p in g_params: p.requires_grad_(False)
    FQUGATITSteps(model).discriminator_step({"pixel_values_a": a, "pixel_values_b": b}).loss.backward()
    for p in g_params: p.requires_grad_(True)
    opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    for p in d_params: p.requires_grad_(False)
    FQUGATITSteps(model).generator_step({"pixel_values_a": a, "pixel_values_b": b}).loss.backward()
    for p in d_params: p.requires_grad_(True)
    opt_g.step()
    model.after_generator_step()
    if device == "cuda":
        torch.cuda.synchronize()

for use_fq in (False, True):
    iteration(*runs[use_fq])
times = {False: [], True: []}
for r in range(repeats):
    for use_fq in ((False, True) if r % 2 == 0 else (True, False)):  # alternate the order every round
        t = time.perf_counter(); iteration(*runs[use_fq]); times[use_fq].append(time.perf_counter() - t)
ratios = [f / n for f, n in zip(times[True], times[False])]
print(json.dumps({"no_fq_s": statistics.median(times[False]), "fq_s": statistics.median(times[True]),
                  "ratio_median": statistics.median(ratios), "ratios": ratios, "times": {"no_fq": times[False], "fq": times[True]}}))
"""

PIPELINE_CHILD = r"""
import json, statistics, sys, tempfile, time
import numpy as np, torch
import hf_dgm  # registers image-translation
from PIL import Image
from transformers import pipeline
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITGeneratorModel

batch, repeats, device, threads, width = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
folder = tempfile.mkdtemp()
FQUGATITGeneratorModel(FQUGATITConfig(image_size=256, light=True, ngf=width, ndf=width)).save_pretrained(folder)
pipe = pipeline("image-translation", model=folder, device=device)
rng = np.random.default_rng(0)
images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(batch)]
pipe(images, direction="A2B")
times = []
for _ in range(repeats):
    t = time.perf_counter(); pipe(images, direction="A2B"); times.append(time.perf_counter() - t)
print(json.dumps({"images_per_s": batch / statistics.median(times), "times_s": times, "batch": batch}))
"""


def _child(code: str, args: list[str]) -> dict:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--sizes", default="64,256")
    parser.add_argument("--repeats", type=int, default=3, help="measured iterations of each memory cell")
    parser.add_argument("--time_repeats", type=int, default=6, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=64, help="ngf = ndf (the paper: 64)")
    parser.add_argument("--light", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--pipeline_batch", type=int, default=4)
    parser.add_argument("--skip_pipeline", action="store_true")
    parser.add_argument("--output", default="runs/bench/fq_ugatit.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows, raw = [], {}
    for size in sizes:
        cells = {}
        for use_fq in (False, True):
            cells[use_fq] = _child(CHILD, [str(size), "1" if use_fq else "0", "1" if args.light else "0",
                                           str(args.repeats), args.device, str(args.threads), str(args.width)])  # fmt: skip
            print(f"{size} px, use_fq={use_fq}: {cells[use_fq]}", flush=True)
        timing = _child(TIME_CHILD, [str(size), "1" if args.light else "0", str(args.time_repeats), args.device,
                                     str(args.threads), str(args.width)])  # fmt: skip
        print(f"{size} px, interleaved timing: {timing}", flush=True)
        raw[str(size)] = {"no_fq": cells[False], "fq": cells[True], "interleaved": timing}
        rows.append(
            f"| {size} | {timing['no_fq_s']:.3f} | {timing['fq_s']:.3f} | {timing['ratio_median']:.3f} | "
            f"{cells[False]['peak_mb']:.0f} | {cells[True]['peak_mb']:.0f} | "
            f"{cells[True]['peak_mb'] / max(cells[False]['peak_mb'], 1e-9):.3f} |"
        )
    lines = [
        f"Run {started}, device {args.device}, {args.threads} torch threads, ngf = ndf = {args.width}, "
        f"light={args.light}, batch 1. Time: both models in one process, {args.time_repeats} interleaved rounds (order "
        f"alternating) after 1 warm-up each, medians; ratio = median of per-round FQ/no-FQ ratios. Memory: one fresh "
        f"process per cell ({args.repeats} iterations after 1 warm-up).",
        "",
        "| size (px) | iteration no FQ (s) | iteration FQ (s) | time ratio FQ/no-FQ | peak mem no FQ (MiB) | "
        "peak mem FQ (MiB) | memory ratio FQ/no-FQ |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if not args.skip_pipeline:
        pipe = _child(PIPELINE_CHILD, [str(args.pipeline_batch), str(args.repeats), args.device, str(args.threads),
                                       str(args.width)])  # fmt: skip
        raw["pipeline"] = pipe
        lines += ["", f"Pipeline (light, 256 px, ngf {args.width}, batches of {pipe['batch']}): "
                  f"{pipe['images_per_s']:.3f} images/s."]
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump({"settings": vars(args), "started": started, "results": raw}, f, indent=2)
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
