"""Cost of one main-job training step under each avenue of issue 30, as a ratio to full fine-tuning.

The main job's model (pip-shipped all-MiniLM-L6-v2 + SmolLM2-135M, latent 32, `memory`), the same length-grouped
batches of 16 SNLI training sentences for every variant, one step = forward (β 1, λ 0.5) + backward + gradient
clipping + fused AdamW (latent heads at 10×) + zero_grad. Variants run in alternation, `--steps` steps each per
round after one untimed warm-up step, so a loaded machine slows them alike; the report is each variant's median
seconds per step and its ratio to `full`'s median. Also times tokenising the training sentences (what a
pre-tokenised cache saves) and, with `--compile`, `torch.compile` of the full model's first steps.

    OMP_NUM_THREADS=1 python benchmarks/optimus_main_job_avenues.py --rounds 3 --steps 3 --output runs/bench/avenues_cost.json
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

from hf_dgm.training.optimus.adapters import configure_trainable_parts
from hf_dgm.training.optimus.data import OptimusDataCollator, shared_data_dir, tokenize_sentences
from hf_dgm.training.optimus.run import OptimusModelArguments, build_model
from hf_dgm.training.optimus.trainer import OptimusTrainer

# name -> (model key, decoder_training, encoder_training, lora targets, max_length, length-grouped)
VARIANTS = {
    "full": ("plain", "full", "full", None, 40, True),
    "full, random batches": ("plain", "full", "full", None, 40, False),
    "full, max_length 24": ("plain", "full", "full", None, 24, True),
    "decoder frozen": ("plain", "frozen", "full", None, 40, True),
    "decoder + encoder frozen (heads only)": ("plain", "frozen", "frozen", None, 40, True),
    "LoRA q,v r16": ("lora_qv", "lora", "full", "q_proj,v_proj", 40, True),
    "LoRA q,v r16, encoder frozen": ("lora_qv", "lora", "frozen", "q_proj,v_proj", 40, True),
    "LoRA all-linear r16": ("lora_all", "lora", "full", "all-linear", 40, True),
}


def batches(processor, sentences: list[str], max_length: int, grouped: bool, n: int, seed: int = 0) -> list[dict]:
    """`n` batches of 16: length-grouped (sorted windows of 50 × 16, as the Trainer's sampler) or random."""
    from datasets import Dataset

    data = tokenize_sentences(Dataset.from_dict({"text": sentences}), processor, max_length).remove_columns(["text"])
    rng = random.Random(seed)
    order = list(range(len(data)))
    rng.shuffle(order)
    if grouped:
        lengths = [len(data[i]["decoder_input_ids"]) for i in order]
        window = order[: 16 * 50]
        window = [i for _, i in sorted(zip(lengths[: len(window)], window), key=lambda t: -t[0])]
        chunks = [window[k : k + 16] for k in range(0, len(window), 16)]
        rng.shuffle(chunks)
    else:
        chunks = [order[k : k + 16] for k in range(0, len(order), 16)]
    collate = OptimusDataCollator.from_processor(processor)
    return [collate([data[i] for i in chunk]) for chunk in chunks[:n]]


def optimizer_for(model) -> torch.optim.Optimizer:
    heads, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (heads if name.startswith(OptimusTrainer.LATENT_HEADS) else rest).append(param)
    groups = [{"params": rest, "lr": 1e-4}, {"params": heads, "lr": 1e-3}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=1e-4, weight_decay=0.0, fused=True)


def set_trainable(model, decoder: str, encoder: str) -> None:
    """On the plain model: every weight trains, then freeze what the variant freezes."""
    for param in model.parameters():
        param.requires_grad_(True)
    if decoder == "frozen":
        for param in model.get_decoder().parameters():
            param.requires_grad_(False)
    if encoder == "frozen":
        for param in model.get_encoder().parameters():
            param.requires_grad_(False)


def step(model, optimizer, batch) -> float:
    began = time.perf_counter()
    out = model(**batch, beta=1.0, kl_threshold=0.5)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - began


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    p.add_argument("--variants", default=";".join(VARIANTS), help="semicolon-separated names")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the full model (3 steps)")
    p.add_argument("--output", default=None)
    a = p.parse_args()
    data = shared_data_dir()
    if data is None or not (data / "snli" / "train.txt").is_file():
        print("needs ../shared/data/snli/train.txt next to the checkout", file=sys.stderr)
        return 2
    names = [n.strip() for n in a.variants.split(";") if n.strip()]
    sentences = [s.strip().strip('"') for s in (data / "snli" / "train.txt").read_text().splitlines() if s.strip()][:1600]
    args = OptimusModelArguments(offline_parts=True, latent_size=32, latent_injection="memory", pooling="mean")
    models: dict[str, torch.nn.Module] = {}
    for name in names:
        key, decoder, encoder, targets, _, _ = VARIANTS[name]
        if key not in models:
            models[key] = build_model(args, seed=0)
            models[key].train()
            if decoder == "lora":
                configure_trainable_parts(models[key], "lora", "full", lora_rank=16, lora_target_modules=targets)
    processor = next(iter(models.values())).processor
    began = time.perf_counter()
    tokenize_sentences(__import__("datasets").Dataset.from_dict({"text": sentences}), processor, 40)
    tokenize_seconds = time.perf_counter() - began
    data_of = {}
    for name in names:
        _, _, _, _, length, grouped = VARIANTS[name]
        data_of.setdefault((length, grouped), batches(processor, sentences, length, grouped, 1 + a.steps))
    times: dict[str, list[float]] = {n: [] for n in names}
    counts: dict[str, int] = {}
    for r in range(a.rounds):
        for name in names:
            key, decoder, encoder, _, length, grouped = VARIANTS[name]
            model = models[key]
            if key == "plain":
                set_trainable(model, decoder, encoder)
            else:  # LoRA model: adapters train, the encoder per variant
                for n_, param in model.named_parameters():
                    param.requires_grad_("lora_" in n_ or n_.startswith(OptimusTrainer.LATENT_HEADS)
                                         or (n_.startswith("encoder.") and encoder == "full"))
            counts[name] = sum(q.numel() for q in model.parameters() if q.requires_grad)
            optimizer = optimizer_for(model)
            chunk = data_of[(length, grouped)]
            step(model, optimizer, chunk[0])  # warm-up (optimizer state allocation)
            times[name] += [step(model, optimizer, b) for b in chunk[1 : 1 + a.steps]]
            del optimizer
            print(f"round {r} {name}: {statistics.median(times[name][-a.steps:]):.2f} s/step", flush=True)
    base = statistics.median(times["full"]) if "full" in times else None
    result = {"tokenize_1600_seconds": round(tokenize_seconds, 2), "variants": {}}
    for name in names:
        med = statistics.median(times[name])
        result["variants"][name] = {"median_s_per_step": round(med, 3), "ratio_to_full": round(med / base, 3) if base else None,
                                    "trainable_parameters": counts[name], "times": [round(t, 3) for t in times[name]]}
        print(f"{name:42s} {med:6.2f} s/step  ratio {med / base if base else float('nan'):.2f}  trainable {counts[name]:,}")
    if a.compile:
        model = models.get("plain") or build_model(args, seed=0)
        set_trainable(model, "full", "full")
        compiled = torch.compile(model)
        optimizer = optimizer_for(model)
        chunk = data_of[(40, True)]
        first = [step(compiled, optimizer, b) for b in chunk[: min(3, len(chunk))]]
        result["compile_first_steps_seconds"] = [round(t, 2) for t in first]
        print("torch.compile: first steps", first)
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
