#!/usr/bin/env python
"""A short FQ-BigGAN training run on CPU (scikit-learn digits, 16×16) with `GANTrainer`.

Prints one table of the logged losses and of the FQ dictionary's code perplexity / usage over the steps, and writes
the sample grids (fixed z and classes, EMA generator; one column per digit class) and a loss plot as PNG.

    python benchmarks/gan_cpu_run.py [--steps 60] [--output_dir runs/gan_cpu_run]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from hf_dgm.training.image_data import ImageGANCollator, load_digits_dataset
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments
from hf_dgm.training.plots import plot_gan_losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--output_dir", default="runs/gan_cpu_run")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset(
        "tiny",
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        fq_num_embeddings=64,
        generator_lr=5e-4,
        discriminator_lr=5e-4,
        discriminator_steps=2,
        ema_start=20,
        ema_decay=0.95,
    )
    model = FQBigGANForImageGeneration(config)
    dataset = load_digits_dataset()
    training_args = GANTrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        logging_steps=args.log_every,
        save_strategy="no",
        sample_steps=args.log_every * 2,
        num_sample_images=40,
        use_cpu=True,
        report_to=[],
        seed=0,
        disable_tqdm=True,
    )
    trainer = GANTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=ImageGANCollator.for_dataset(dataset, resolution=config.resolution),
    )
    start = time.time()
    trainer.train()
    elapsed = time.time() - start
    plot_path = os.path.join(args.output_dir, "losses.png")
    plot_gan_losses(trainer.state.log_history, plot_path)
    grid_path = trainer.save_sample_grid(os.path.join(args.output_dir, "samples", "final.png"))

    rows = [r for r in trainer.state.log_history if "d_loss" in r]
    header = ("G step", "D loss", "D real", "D fake", "D FQ loss", "G loss", "G FQ loss", "FQ perplexity", "FQ usage")
    keys = ("step", "d_loss", "d_loss_real", "d_loss_fake", "d_quantization_loss", "g_loss", "g_quantization_loss",
            "d_fq_perplexity", "d_fq_usage")
    table = [header] + [
        tuple(str(r[k]) if k == "step" else f"{r[k]:.4f}" for k in keys) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(
        f"FQ-BigGAN tiny on digits 16×16, CPU ({torch.get_num_threads()} threads): {args.steps} G steps × "
        f"{trainer.d_steps_per_g_step} D steps, batch {args.batch_size}, dictionary K={config.fq_num_embeddings} "
        f"on D blocks {config.fq_layers} (perplexity/usage: mean over the quantized layers, D steps), "
        f"{elapsed:.0f} s"
    )
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(f"sample grids: {os.path.join(args.output_dir, 'samples')} (final: {grid_path}); loss plot: {plot_path}")


if __name__ == "__main__":
    main()
