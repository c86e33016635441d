#!/usr/bin/env python
"""Throughput of `GANTrainer` against a bare PyTorch loop doing the same steps, in one run.

Model: FQ-BigGAN, preset `cifar10` (the CIFAR-10 launch configuration: 32×32, ch 64, FQ after 4 D blocks,
K = 2^10), batch 16 per D step, 4 D steps per G step, G-EMA after every G step (decay 0.9999 from the first step).
Data: random 32×32 uint8 images with CIFAR-10's shape and 10 classes, held in memory as a `datasets.Dataset`
and decoded by `ImageGANCollator` (PIL -> tensor), identical for both loops; 64 rows per iteration.

- `GANTrainer`: `trainer.train()` with `max_steps = warmup + iterations`, logging every `--logging_steps`, no
  checkpoints, no sample grids. Iteration times are taken from a callback at every `on_step_end`.
- bare loop: the same `DataLoader` (same collator, batch 64, shuffled, drop_last), the same Adam settings, and per
  iteration exactly the trainer's step calls: 4 × (`steps.discriminator_step(chunk)` on a 16-row chunk, backward, D
  step) with G's parameters frozen, then `steps.generator_step(chunk0)` + backward with D frozen,
  G step, `update_generator_ema`; one `.item()` of the last G loss per iteration (what any loop that prints
  losses does; the trainer syncs once per optimizer step for its divergence guard).

Rounds alternate (trainer then bare, bare then trainer, ...) in the same process with models rebuilt from the same initial
weights; the first `--warmup` iterations of every round are not timed. Reported: median iterations/s over rounds of
each, and their ratio (trainer / bare). `--profile` prints the top cProfile entries of one trainer round instead.

    python benchmarks/bench_gan_trainer.py [--iterations 8] [--warmup 2] [--rounds 3] [--num_threads 1]
        [--batch_size 16] [--d_steps 4] [--preset cifar10] [--output runs/bench/gan_trainer.md] [--profile]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration  # noqa: E402
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments, gan_steps_for  # noqa: E402
from hf_dgm.training.image_data import ImageGANCollator, dataset_from_arrays  # noqa: E402
from transformers import TrainerCallback  # noqa: E402


class _Clock(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def _rate(times: list[float], warmup: int) -> float:
    timed = times[warmup:]
    return (len(timed) - 1) / (timed[-1] - timed[0])


def run_trainer(model, dataset, collator, args, out_dir, profile=False) -> float:
    training_args = GANTrainingArguments(
        output_dir=out_dir, max_steps=args.warmup + args.iterations + 1, per_device_train_batch_size=args.batch_size,
        d_steps_per_g_step=args.d_steps, logging_steps=args.logging_steps, save_strategy="no", sample_steps=0,
        report_to=[], use_cpu=not torch.cuda.is_available(), seed=0, disable_tqdm=True, dataloader_num_workers=0,
        ema_start=0, ema_decay=0.9999,
    )  # fmt: skip
    clock = _Clock()
    trainer = GANTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                         callbacks=[clock])  # fmt: skip
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        trainer.train()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    else:
        trainer.train()
    return _rate(clock.times, args.warmup)


def run_bare(model, dataset, collator, args) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    config = model.config
    g_params, d_params = list(model.generator_parameters()), list(model.discriminator_parameters())
    g_opt = torch.optim.Adam(g_params, lr=config.generator_lr, betas=tuple(config.generator_betas), eps=config.adam_eps)
    d_opt = torch.optim.Adam(d_params, lr=config.discriminator_lr, betas=tuple(config.discriminator_betas),
                             eps=config.adam_eps)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size * args.d_steps, shuffle=True,
                                         drop_last=True, collate_fn=collator, generator=generator)  # fmt: skip
    steps = gan_steps_for(model)  # the family's training steps (FamilySpec.gan_steps), as GANTrainer uses them
    times = []
    total = args.warmup + args.iterations + 1
    while len(times) < total:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            chunks = [{k: v[i * args.batch_size : (i + 1) * args.batch_size] for k, v in batch.items()}
                      for i in range(args.d_steps)]  # fmt: skip
            for p in g_params:
                p.requires_grad_(False)
            for chunk in chunks:
                d_opt.zero_grad(set_to_none=True)
                steps.discriminator_step(chunk).loss.backward()
                d_opt.step()
            for p in g_params:
                p.requires_grad_(True)
            for p in d_params:
                p.requires_grad_(False)
            g_opt.zero_grad(set_to_none=True)
            loss = steps.generator_step(chunks[0]).loss
            loss.backward()
            for p in d_params:
                p.requires_grad_(True)
            g_opt.step()
            model.update_generator_ema(decay=0.9999)
            loss.item()
            times.append(time.perf_counter())
            if len(times) >= total:
                break
    return _rate(times, args.warmup)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cifar10")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--d_steps", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations at the start of every round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logging_steps", type=int, default=1, help="trainer log interval (1 = the worst case)")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--output", default="runs/bench/gan_trainer.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)

    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset(args.preset)
    initial = FQBigGANForImageGeneration(config).state_dict()
    rng = np.random.default_rng(0)
    n = args.batch_size * args.d_steps * (args.warmup + args.iterations + 2)
    images = rng.integers(0, 256, size=(n, config.resolution, config.resolution, 3), dtype=np.uint8)
    dataset = dataset_from_arrays(images, rng.integers(0, config.num_classes, size=n),
                                  label_names=config.class_names or None)  # fmt: skip
    collator = ImageGANCollator.for_dataset(dataset, resolution=config.resolution)

    def fresh_model():
        model = FQBigGANForImageGeneration(config)
        model.load_state_dict(copy.deepcopy(initial))
        return model

    with tempfile.TemporaryDirectory() as out_dir:
        if args.profile:
            run_trainer(fresh_model(), dataset, collator, args, out_dir, profile=True)
            return None
        trainer_rates, bare_rates = [], []
        for index in range(args.rounds):  # the order alternates between rounds (load drifts on shared machines)
            if index % 2:
                bare_rates.append(run_bare(fresh_model(), dataset, collator, args))
                trainer_rates.append(run_trainer(fresh_model(), dataset, collator, args, out_dir))
            else:
                trainer_rates.append(run_trainer(fresh_model(), dataset, collator, args, out_dir))
                bare_rates.append(run_bare(fresh_model(), dataset, collator, args))
            print(f"round: GANTrainer {trainer_rates[-1]:.3f} it/s, bare loop {bare_rates[-1]:.3f} it/s", flush=True)

    t, b = statistics.median(trainer_rates), statistics.median(bare_rates)
    ratios = [x / y for x, y in zip(trainer_rates, bare_rates)]
    device = "cuda" if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {args.num_threads} torch thread(s))"
    table = "\n".join([
        "| loop | median it/s [min–max] | ratio vs bare loop |",
        "|---|---|---|",
        f"| GANTrainer | {t:.3f} [{min(trainer_rates):.3f}–{max(trainer_rates):.3f}] | {t / b:.3f} |",
        f"| bare loop | {b:.3f} [{min(bare_rates):.3f}–{max(bare_rates):.3f}] | 1.000 |",
        "",
        f"Preset {args.preset}, batch {args.batch_size} per D step, {args.d_steps} D steps + G step + EMA per iteration, "
        f"trainer logging every {args.logging_steps} step(s); {args.rounds} interleaved rounds of {args.iterations} timed "
        f"iterations after {args.warmup} warm-up; per-round ratios {', '.join(f'{r:.3f}' for r in ratios)}; {device}, "
        f"torch {torch.__version__}, {platform.machine()}.",
    ])  # fmt: skip
    print(table)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table + "\n")
    Path(args.output).with_suffix(".json").write_text(json.dumps(
        {"trainer_it_per_s": trainer_rates, "bare_it_per_s": bare_rates, "median_ratio": t / b,
         "per_round_ratios": ratios, "settings": vars(args)}, indent=2))  # fmt: skip
    return t / b


if __name__ == "__main__":
    main()
