#!/usr/bin/env python
"""Cost of feature quantization in FQ-StyleGAN, and pipeline throughput, in one run.

1. D-step and G-step time and peak memory with and without FQ (`use_fq=True` / `False`, the plain StyleGAN2) at
   32×32 and 256×256, the StyleGAN2 config-e architecture (preset `config-e`; `--channel_max` can shrink it for a
   CPU). A "D step" is `FQStyleGANSteps.discriminator_step` (fakes without gradient, D on fakes and reals, dictionary EMA
   updates) + backward + Adam step; a "G step" is `FQStyleGANSteps.generator_step` + backward + Adam step, as `GANTrainer`
   runs them. The lazy regularisers are OFF in the measured steps (`d_step=1`, `step=1`): R1 and path length run
   every 16th / 4th step only and cost the same with and without FQ.
2. Images per second of the `unconditional-image-generation` pipeline (EMA generator, `noise_mode="const"`) at
   model batch 1 and 16, on the 256×256 model.

Each (resolution, FQ, step) cell runs in a fresh subprocess so that peak memory is clean: on CUDA the peak of
`torch.cuda.max_memory_allocated` over the measured steps minus the memory held before them; on CPU the growth of the
process's peak RSS over its RSS just before the first step. Times are medians over `--repeats` after one warm-up.
Ratios are FQ / no-FQ (steps) and batch 16 / batch 1 (pipeline). Figures measured on a shared, loaded machine vary
from run to run; the ratios are more stable than the absolute numbers.

    python benchmarks/bench_fq_stylegan.py [--device cpu|cuda] [--batch_32 8] [--batch_256 4] [--repeats 3]
        [--channel_max 512] [--pipeline_images 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CELL = r"""
import json, resource, statistics, sys, time
import torch
from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration
from hf_dgm.training.fq_stylegan.loss import FQStyleGANSteps

resolution, use_fq, step, batch, repeats, device, channel_max = (int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3],
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7]))
torch.manual_seed(0)
config = FQStyleGANConfig.from_preset("config-e", resolution=resolution, use_fq=use_fq, channel_max=channel_max)
model = FQStyleGANForImageGeneration(config).to(device).train()
g_params, d_params = list(model.generator_parameters()), list(model.discriminator_parameters())
trained, frozen = (d_params, g_params) if step == "D" else (g_params, d_params)
opt = torch.optim.Adam(trained, lr=config.learning_rate, betas=tuple(config.adam_betas))
reals = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1

def sync():
    if device == "cuda":
        torch.cuda.synchronize()

def run():
    opt.zero_grad(set_to_none=True)
    for p in frozen:
        p.requires_grad_(False)
    if step == "D":
        out = FQStyleGANSteps(model).discriminator_step({"pixel_values": reals}, d_step=1)
    else:
        out = FQStyleGANSteps(model).generator_step({"pixel_values": reals}, step=1)
    out.loss.backward()
    for p in frozen:
        p.requires_grad_(True)
    opt.step()
    sync()

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

run()  # warm-up (also allocates Adam's state)
if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
else:
    before = rss_kb()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
if device == "cuda":
    peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
else:
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, 0) / 1024
print(json.dumps({"seconds": statistics.median(times), "peak_mb": peak_mb,
                  "parameters": sum(p.numel() for p in model.parameters())}))
"""

PIPELINE = r"""
import json, sys, time
import torch
from transformers import pipeline
import hf_dgm  # noqa: F401
from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANGeneratorModel

folder, device, channel_max, images, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
FQStyleGANGeneratorModel(FQStyleGANConfig.from_preset("config-e", resolution=256, channel_max=channel_max)).save_pretrained(folder)
generate = pipeline("unconditional-image-generation", model=folder, device=device)
results = {}
for batch in (1, 16):
    generate(num_images=min(batch, images), batch_size=batch, seed=0)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        generate(num_images=images, batch_size=batch, truncation_psi=0.7, seed=0)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    results[batch] = images / best
print(json.dumps(results))
"""


def _run(code: str, *args) -> dict:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark cell {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    parser.add_argument("--batch_32", type=int, default=8)
    parser.add_argument("--batch_256", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channel_max", type=int, default=512, help="config-e uses 512; smaller for a quick CPU run")
    parser.add_argument("--pipeline_images", type=int, default=32)
    parser.add_argument("--skip_pipeline", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict = {"device": args.device, "channel_max": args.channel_max, "steps": {}, "pipeline": None}
    print(f"device={args.device} config-e channel_max={args.channel_max} repeats={args.repeats}")
    print(f"{'res':>4} {'step':>4} {'batch':>5} | {'no-FQ s':>8} {'FQ s':>8} {'time x':>7} | "
          f"{'no-FQ MB':>9} {'FQ MB':>9} {'mem x':>6}")  # fmt: skip
    for resolution, batch in ((32, args.batch_32), (256, args.batch_256)):
        for step in ("D", "G"):
            cells = {
                fq: _run(CELL, resolution, int(fq), step, batch, args.repeats, args.device, args.channel_max)
                for fq in (False, True)
            }
            time_ratio = cells[True]["seconds"] / cells[False]["seconds"]
            mem_ratio = cells[True]["peak_mb"] / cells[False]["peak_mb"] if cells[False]["peak_mb"] > 0 else float("nan")
            results["steps"][f"{resolution}_{step}"] = {
                "batch": batch, "no_fq": cells[False], "fq": cells[True], "time_ratio": time_ratio,
                "memory_ratio": mem_ratio,
            }  # fmt: skip
            print(f"{resolution:>4} {step:>4} {batch:>5} | {cells[False]['seconds']:8.3f} {cells[True]['seconds']:8.3f} "
                  f"{time_ratio:7.3f} | {cells[False]['peak_mb']:9.1f} {cells[True]['peak_mb']:9.1f} {mem_ratio:6.3f}",
                  flush=True)  # fmt: skip
    if not args.skip_pipeline:
        with tempfile.TemporaryDirectory() as folder:
            rates = _run(PIPELINE, folder, args.device, args.channel_max, args.pipeline_images, args.repeats)
        rate1, rate16 = rates["1"], rates["16"]
        results["pipeline"] = {"images_per_second_batch_1": rate1, "images_per_second_batch_16": rate16,
                               "ratio_16_over_1": rate16 / rate1, "resolution": 256}  # fmt: skip
        print(f"pipeline 256x256 ({args.pipeline_images} images): batch 1 {rate1:.2f} img/s, batch 16 "
              f"{rate16:.2f} img/s, ratio {rate16 / rate1:.2f}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    main()
