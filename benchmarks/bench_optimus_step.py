"""Where the time of one Optimus training step goes, and how much the speed-ups buy (issue 17, item 6).

Shapes: bert-base encoder + gpt2 decoder built from their default configs with random weights (no downloads; the
decoder vocabulary has the original's 3 added tokens: 50260), latent 32, `both` injections, batch 4 × 48 tokens,
CPU. One step = forward (loss) + backward + AdamW step + zero_grad.

Variants, timed interleaved in one process (order rotated every round, medians reported):
  * `baseline`: torch.optim.AdamW with its default per-parameter loop (what `Trainer`'s `adamw_torch` built before);
  * `fused`: the same optimizer with `fused=True` (one kernel over all parameters; `OptimusTrainingArguments` now
    defaults to `optim="adamw_torch_fused"`);
  * `fused+bf16`: as `fused`, forward under `torch.autocast(device_type, dtype=torch.bfloat16)`
    (`--bf16` in `OptimusTrainingArguments` / the Trainer).
With `--profile`, one `baseline` step and one `fused` step run under `torch.profiler` and the top operators by self
CPU time are printed.

    PYTHONPATH=$PWD python benchmarks/bench_optimus_step.py [--threads 2] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, GPT2Config

from hf_dgm import OptimusConfig, OptimusForConditionalGeneration


def build(injection: str) -> OptimusForConditionalGeneration:
    torch.manual_seed(0)
    decoder = GPT2Config(vocab_size=50260, bos_token_id=50258, eos_token_id=50259, pad_token_id=50257)
    config = OptimusConfig(
        encoder=BertConfig(), decoder=decoder, latent_size=32, latent_injection=injection, pooling="pooler",
        decoder_bos_token_id=50258, decoder_eos_token_id=50259, decoder_pad_token_id=50257,
    )
    return OptimusForConditionalGeneration(config).train()


def batch(batch_size: int, length: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    enc = torch.randint(1000, 28000, (batch_size, length), generator=g)
    dec = torch.randint(0, 50257, (batch_size, length), generator=g)
    dec[:, 0] = 50258
    dec[:, -1] = 50259
    ones = torch.ones_like(enc)
    return {"input_ids": enc, "attention_mask": ones, "decoder_input_ids": dec, "decoder_attention_mask": ones}


def step_fn(model, optimizer, inputs, bf16: bool):
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"

    def step():
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs, beta=1.0, kl_threshold=0.5).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--length", type=int, default=48)
    parser.add_argument("--injection", default="both")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--variants", default="baseline,fused,fused+bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build(args.injection)
    inputs = batch(args.batch_size, args.length)
    tokens = args.batch_size * (args.length - 1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = {
        "baseline": torch.optim.AdamW(params, lr=1e-5, eps=1e-8, weight_decay=0.0),
        "fused": torch.optim.AdamW(params, lr=1e-5, eps=1e-8, weight_decay=0.0, fused=True),
    }
    variants = {
        "baseline": step_fn(model, optimizers["baseline"], inputs, bf16=False),
        "fused": step_fn(model, optimizers["fused"], inputs, bf16=False),
        "fused+bf16": step_fn(model, optimizers["fused"], inputs, bf16=True),
    }
    names = args.variants.split(",")
    for name in names:  # warm-up (allocates optimizer state)
        variants[name]()
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for name in ("baseline", "fused"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                variants[name]()
            print(f"\n### profile: {name}\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=40))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            started = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times[names[0]])
    print(f"\n{args.batch_size}x{args.length}, {args.injection}, {args.threads} threads, {args.rounds} rounds (medians)\n")
    print("| variant | s/step | tokens/s | speed vs " + names[0] + " |")
    print("|---|---|---|---|")
    for name in names:
        t = statistics.median(times[name])
        print(f"| {name} | {t:.3f} | {tokens / t:.1f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
