"""How close the main job's training step is to this CPU's matrix-product speed (issue 30: is there a software
avenue left that makes a step several times cheaper?).

The main job's model (MiniLM-L6 encoder, SmolLM2-135M decoder, latent 32, `memory`, posterior mean batch-normalised)
is built from the pip-shipped parts. For batches of 16 SNLI training sentences drawn at random (the main job's
sentences, padded per batch as the length-grouped sampler pads them):

* the floating-point operations of one forward + backward pass are counted with `torch.utils.flop_counter`
  (matrix products and attention; element-wise work is not counted, so the figure is a lower bound);
* one training step (forward, backward, gradient clipping, fused AdamW, zero_grad) is timed, median of `--steps`
  after one untimed step, under `--decoder_training full` (the default) and `lora` (all-linear, rank 16);
* the baseline, measured in the same process with the same threads: fp32 matrix products of the decoder's own
  shapes at this batch (tokens x 576 @ 576 x 1536, its MLP) and of a large square product (2048^3), in GFLOP/s.

The step's GFLOP/s divided by the MLP-shaped product's is the share of this CPU's matrix speed that a step already
uses; 1 / that share bounds what any reordering of the same arithmetic (compilation, fusion, caching) could gain.

    OMP_NUM_THREADS=2 python benchmarks/optimus_step_flops.py --threads 2 --steps 5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_dgm.training.optimus.adapters import configure_trainable_parts
from hf_dgm.training.optimus.data import shared_data_dir
from hf_dgm.training.optimus.run import OptimusModelArguments, build_model


def gemm_gflops(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    """fp32 GFLOP/s of (m x k) @ (k x n), timed for about `seconds` after two untimed products."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(2):
        a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - started) / 1e9


def batches(processor, sentences: list[str], batch_size: int, count: int, seed: int, max_length: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        batch = processor(rng.sample(sentences, batch_size), return_tensors="pt", max_length=max_length)
        batch["labels"] = batch["decoder_input_ids"].masked_fill(batch["decoder_attention_mask"] == 0, -100)
        out.append(batch)
    return out


def step(model, optimizer, trainable, batch) -> None:
    out = model(**batch, beta=1.0, kl_threshold=0.5)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(mode: str, args, sentences: list[str]) -> dict:
    model = build_model(OptimusModelArguments(offline_parts=True, latent_size=32, latent_injection="memory",
                                              pooling="mean", posterior_mean_batch_norm=1.0), seed=args.seed)
    configure_trainable_parts(model, mode, "full", lora_rank=16, lora_alpha=32.0, lora_target_modules="all-linear")
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=True)
    work = batches(model.processor, sentences, args.batch_size, args.steps + 1, args.seed, args.max_length)
    step(model, optimizer, trainable, work[0])  # untimed
    seconds, step_flops, step_tokens = [], [], []
    for batch in work[1:]:
        counter = FlopCounterMode(display=False)
        with counter:  # counting only (no timing): the same shapes as the timed step below
            model(**batch, beta=1.0, kl_threshold=0.5).loss.backward()
        optimizer.zero_grad(set_to_none=True)
        step_flops.append(counter.get_total_flops())
        step_tokens.append(int(batch["decoder_attention_mask"].sum()))
        started = time.perf_counter()
        step(model, optimizer, trainable, batch)
        seconds.append(time.perf_counter() - started)
    total_seconds, total_flops = sum(seconds), sum(step_flops)
    return {
        "mode": mode, "trainable_parameters": sum(p.numel() for p in trainable),
        "median_step_seconds": round(statistics.median(seconds), 3),
        "mean_decoder_tokens_per_batch": round(sum(step_tokens) / len(step_tokens), 1),
        "gflop_per_step": round(total_flops / len(step_flops) / 1e9, 1),
        "step_gflops": round(total_flops / total_seconds / 1e9, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_length", type=int, default=40)
    p.add_argument("--modes", default="full,lora")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="JSON file for the figures")
    args = p.parse_args()
    data = shared_data_dir()
    if data is None or not (data / "snli" / "train.txt").is_file():
        print("needs ../shared/data/snli/train.txt next to the checkout", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    sentences = [s.strip() for s in (data / "snli" / "train.txt").read_text().splitlines() if s.strip()]
    rows = [measure(mode, args, sentences) for mode in args.modes.split(",")]
    tokens = round(rows[0]["mean_decoder_tokens_per_batch"])
    baseline = {"gemm_mlp_shape_gflops": round(gemm_gflops(tokens, 576, 1536), 1),
                "gemm_2048_gflops": round(gemm_gflops(2048, 2048, 2048), 1)}
    print(f"threads {args.threads}; fp32 matrix products: {tokens} x 576 @ 576 x 1536 (the decoder MLP at this batch) "
          f"{baseline['gemm_mlp_shape_gflops']} GFLOP/s, 2048^3 {baseline['gemm_2048_gflops']} GFLOP/s")
    print("| decoder | trainable | GFLOP / step (fwd + bwd) | s / step (median) | step GFLOP/s | share of the MLP-shaped product's speed |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        row["share_of_gemm"] = round(row["step_gflops"] / baseline["gemm_mlp_shape_gflops"], 2)
        print(f"| {row['mode']} | {row['trainable_parameters'] / 1e6:.1f} M | {row['gflop_per_step']} | "
              f"{row['median_step_seconds']} | {row['step_gflops']} | {row['share_of_gemm']} |")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"settings": vars(args), "baseline": baseline, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
