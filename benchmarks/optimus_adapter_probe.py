"""The autoencoder probe (`optimus_autoencoder_probe.py`: β = 0, word dropout, constant rates, random batches of
16 fresh SNLI training sentences, seed 0, greedy reconstructions of the first 64 test sentences from their posterior
means) with the decoder trained as LoRA adapters or frozen, and the encoder full or frozen (issue 30's avenues), so
its BLEU at a fixed number of steps compares with the recorded full-fine-tuning rows of that probe
(benchmarks/README.md, "Word dropout rate": BLEU 2.91 at 80 steps, 7.46 at 160 with word dropout 0.75, `memory`).
The loop is the same as that probe's; only which parameters train (and the adapters' rate) differs.

    OMP_NUM_THREADS=1 python benchmarks/optimus_adapter_probe.py --decoder_training lora --lora_target_modules all-linear \
        --steps 160 --eval_every 80 --word_dropout 0.75 --output runs/bench/adapter_probe_lora_all.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from hf_dgm.training.optimus.adapters import configure_trainable_parts
from hf_dgm.training.optimus.data import shared_data_dir
from hf_dgm.training.optimus.evaluation import reconstruction_scores
from hf_dgm.training.optimus.latent_init import initialize_posterior_from_pca, pooled_features
from hf_dgm.training.optimus.run import OptimusModelArguments, build_model
from hf_dgm.training.optimus.trainer import OptimusTrainer
from optimus_autoencoder_probe import autoencoder_steps, read_sentences  # noqa: E402  (a sibling script)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latent_injection", default="memory", choices=["memory", "embedding", "both", "prefix"])
    p.add_argument("--latent_size", type=int, default=32)
    p.add_argument("--posterior_init", default="random", choices=["random", "pca"])
    p.add_argument("--posterior_mean_batch_norm", type=float, default=None, help="BN-VAE γ (none: off)")
    p.add_argument("--pca_sentences", type=int, default=1024)
    p.add_argument("--decoder_training", default="lora", choices=["full", "lora", "frozen"])
    p.add_argument("--encoder_training", default="full", choices=["full", "frozen"])
    p.add_argument("--lora_rank", type=int, default=16)
    p.add_argument("--lora_alpha", type=float, default=32.0)
    p.add_argument("--lora_target_modules", default="q_proj,v_proj")
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=1e-4, help="encoder (and full decoder) rate")
    p.add_argument("--head_lr_multiplier", type=float, default=10.0)
    p.add_argument("--lora_lr_multiplier", type=float, default=1.0)
    p.add_argument("--word_dropout", type=float, default=0.75)
    p.add_argument("--max_length", type=int, default=40)
    p.add_argument("--eval_every", type=int, default=80)
    p.add_argument("--eval_sentences", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None)
    return p.parse_args()


def main() -> int:
    a = parse()
    data = shared_data_dir()
    if data is None or not (data / "snli" / "train.txt").is_file():
        print("needs ../shared/data/snli/{train,test}.txt next to the checkout", file=sys.stderr)
        return 2
    model = build_model(
        OptimusModelArguments(offline_parts=True, latent_size=a.latent_size, latent_injection=a.latent_injection, pooling="mean",
                              posterior_mean_batch_norm=a.posterior_mean_batch_norm),
        seed=a.seed,
    )
    processor = model.processor
    counts = configure_trainable_parts(model, a.decoder_training, a.encoder_training, lora_rank=a.lora_rank,
                                       lora_alpha=a.lora_alpha, lora_target_modules=a.lora_target_modules)
    print(f"trainable {counts['trainable']:,} of {counts['total']:,} ({100 * counts['trainable'] / counts['total']:.1f}%)", flush=True)
    train = read_sentences(data / "snli" / "train.txt")
    test = read_sentences(data / "snli" / "test.txt")[: a.eval_sentences]
    if a.posterior_init == "pca":
        enc = processor.tokenizer(train[: a.pca_sentences], padding=True, truncation=True, max_length=a.max_length, return_tensors="pt")
        stats = initialize_posterior_from_pca(model, pooled_features(model, enc["input_ids"], enc["attention_mask"]))
        print(f"PCA posterior init: {stats}", flush=True)
    groups: dict[str, list] = {"heads": [], "lora": [], "other": []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            role = "heads" if name.startswith(OptimusTrainer.LATENT_HEADS) else "lora" if "lora_" in name else "other"
            groups[role].append(param)
    rates = {"heads": a.head_lr_multiplier, "lora": a.lora_lr_multiplier, "other": 1.0}
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": a.learning_rate * rates[r]} for r, ps in groups.items() if ps], weight_decay=0.0, fused=True
    )
    trainable = [p for ps in groups.values() for p in ps]
    curve = []
    steps = autoencoder_steps(model, processor, train, optimizer, trainable, steps=a.steps, batch_size=a.batch_size,
                              seed=a.seed, word_dropout=a.word_dropout, max_length=a.max_length)
    for step, out, train_seconds in steps:
        if step % 10 == 0:
            per_token = out.reconstruction_loss.sum().item() / out.num_tokens.sum().item()
            print(f"step {step}: {train_seconds:.0f} s, reconstruction {per_token:.3f} nats/token", flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            scores = reconstruction_scores(model, processor, test, batch_size=16, max_length=a.max_length,
                                           generation_kwargs={"max_new_tokens": 40})
            model.train()
            distinct = len(set(scores["reconstructions"]))
            curve.append({"step": step, "train_seconds": round(train_seconds, 1), "bleu": round(scores["bleu"], 2),
                          "exact": round(scores["exact_match"] * len(test)), "distinct": distinct})
            print(f"step {step}: test BLEU {scores['bleu']:.2f}, distinct {distinct}/{len(test)}", flush=True)
            for h, r in list(zip(scores["reconstructions"], test))[:4]:
                print(f"    {r}  ->  {h}", flush=True)
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(json.dumps({"settings": vars(a), "parameters": counts, "curve": curve}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
