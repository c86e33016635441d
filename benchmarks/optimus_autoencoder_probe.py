"""How fast does the main job's Optimus learn to carry a sentence through `z`? An autoencoder probe (β = 0).

Composes the main job's model (pip-shipped all-MiniLM-L6-v2, mean-pooled, + SmolLM2-135M, latent 32, fresh heads),
trains it as an autoencoder (β = 0: reconstruction loss only) on SNLI training sentences with a plain AdamW loop, and
every `--eval_every` steps decodes the posterior means of the first 64 SNLI test sentences greedily and reports corpus
BLEU (sacrebleu) and exact matches against the inputs, with the training seconds so far (evaluation time excluded),
scored by the main job's `reconstruction_scores` (an exact match is equal under BLEU's 13a tokenization; the exact
counts in benchmarks/README.md were taken before, with case-insensitive string equality).
The knobs are the candidates of issue 17: learning rates of the decoder, encoder and latent heads, word dropout,
a frozen decoder, the posterior mean instead of a sample, the scale of the memory head at initialisation.

    python benchmarks/optimus_autoencoder_probe.py --steps 120 --eval_every 40 --freeze_decoder \
        --head_lr_multiplier 100 --output runs/bench/ae_probe.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from hf_dgm.training.optimus.data import shared_data_dir
from hf_dgm.training.optimus.evaluation import reconstruction_scores
from hf_dgm.training.optimus.run import OptimusModelArguments, build_model
from hf_dgm.training.optimus.trainer import OptimusTrainer


def read_sentences(path: Path) -> list[str]:
    return [line.strip().strip('"') for line in path.read_text().splitlines() if line.strip()]


def autoencoder_steps(model, processor, train: list[str], optimizer, clip_parameters, *, steps: int, batch_size: int,
                      seed: int, word_dropout: float, max_length: int, sample_latent: bool = True):
    """β = 0 training steps on `train` (reshuffled epochs, word dropout on the decoder inputs, gradients clipped at 1);
    yields (step, model output, training seconds so far) after each optimizer step. Shared by the probe scripts."""
    clip_parameters = list(clip_parameters)
    pad = model.config.decoder_pad_token_id
    rng = random.Random(seed)
    order = list(range(len(train)))
    rng.shuffle(order)
    position, train_seconds = 0, 0.0
    model.train()
    for step in range(1, steps + 1):
        started = time.time()
        if position + batch_size > len(order):
            rng.shuffle(order)
            position = 0
        batch = processor([train[i] for i in order[position : position + batch_size]], return_tensors="pt", max_length=max_length)
        position += batch_size
        ids, mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]
        labels = ids.masked_fill(mask == 0, -100)
        if word_dropout > 0:
            drop = (torch.rand(ids.shape) < word_dropout) & (mask == 1)
            drop[:, 0] = False
            ids = ids.masked_fill(drop, pad)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=ids,
                    decoder_attention_mask=mask, labels=labels, beta=0.0, sample_latent=sample_latent)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(clip_parameters, 1.0)
        optimizer.step()
        train_seconds += time.time() - started
        yield step, out, train_seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--latent_injection", default="memory", choices=["memory", "embedding", "both", "prefix"])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--learning_rate", type=float, default=1e-4, help="decoder (and base) learning rate")
    p.add_argument("--head_lr_multiplier", type=float, default=10.0)
    p.add_argument("--encoder_lr_multiplier", type=float, default=1.0)
    p.add_argument("--word_dropout", type=float, default=0.0)
    p.add_argument("--freeze_decoder", action="store_true", help="only the encoder and the latent heads train")
    p.add_argument("--posterior_mean", action="store_true", help="decode the posterior mean instead of a sample")
    p.add_argument("--memory_init_std", type=float, default=None, help="re-initialise latent_to_memory N(0, std²)")
    p.add_argument("--train_subset", type=int, default=0,
                   help="train on the first N training sentences only, cycled in reshuffled epochs, and also report "
                   "BLEU on 64 of them: does the decoder read z for sentences it has seen, and for new ones?")
    p.add_argument("--eval_every", type=int, default=40)
    p.add_argument("--eval_sentences", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", default=None, help="JSON file for the settings and the BLEU curve")
    a = p.parse_args()
    data = shared_data_dir()
    if data is None or not (data / "snli" / "train.txt").is_file():
        print("needs ../shared/data/snli/{train,test}.txt next to the checkout", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    model = build_model(
        OptimusModelArguments(offline_parts=True, latent_size=32, latent_injection=a.latent_injection, pooling="mean"),
        seed=a.seed,
    )
    processor = model.processor
    if a.memory_init_std is not None and model.config.uses_memory:
        torch.nn.init.normal_(model.latent_to_memory.weight, std=a.memory_init_std)
    train = read_sentences(data / "snli" / "train.txt")
    test = read_sentences(data / "snli" / "test.txt")[: a.eval_sentences]

    if a.train_subset:
        train = train[: a.train_subset]
    seen = train[: a.eval_sentences]
    groups: dict[str, list] = {"heads": [], "encoder": [], "decoder": []}
    for name, param in model.named_parameters():
        role = "heads" if name.startswith(OptimusTrainer.LATENT_HEADS) else "encoder" if name.startswith("encoder.") else "decoder"
        if role == "decoder" and a.freeze_decoder:
            param.requires_grad_(False)
        else:
            groups[role].append(param)
    rates = {"heads": a.head_lr_multiplier, "encoder": a.encoder_lr_multiplier, "decoder": 1.0}
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": a.learning_rate * rates[r]} for r, ps in groups.items() if ps], weight_decay=0.0, fused=True
    )
    def evaluate(references: list[str]) -> tuple[float, int, list[str]]:
        """The main job's scorer (`reconstruction_scores`): corpus BLEU, exact matches under BLEU's tokenization."""
        scores = reconstruction_scores(model, processor, references, batch_size=16, max_length=40,
                                       generation_kwargs={"max_new_tokens": 40})
        model.train()
        return scores["bleu"], round(scores["exact_match"] * len(references)), scores["reconstructions"]

    curve = []
    steps = autoencoder_steps(model, processor, train, optimizer, model.parameters(), steps=a.steps,
                              batch_size=a.batch_size, seed=a.seed, word_dropout=a.word_dropout, max_length=40,
                              sample_latent=not a.posterior_mean)
    for step, out, train_seconds in steps:
        if step % 10 == 0:
            per_token = out.reconstruction_loss.sum().item() / out.num_tokens.sum().item()
            print(f"step {step}: {train_seconds:.0f} s, reconstruction {per_token:.3f} nats/token, KL {out.kl.mean().item():.1f}", flush=True)
        if step % a.eval_every == 0 or step == a.steps:
            bleu, exact, hyps = evaluate(test)
            point = {"step": step, "train_seconds": round(train_seconds, 1), "bleu": round(bleu, 2), "exact": exact}
            print(f"step {step}: test BLEU {bleu:.2f}, exact {exact}/{len(test)}", flush=True)
            for h, r in list(zip(hyps, test))[:4]:
                print(f"    {r}  ->  {h}", flush=True)
            if a.train_subset:
                seen_bleu, seen_exact, seen_hyps = evaluate(seen)
                point.update(seen_bleu=round(seen_bleu, 2), seen_exact=seen_exact)
                print(f"step {step}: BLEU on trained sentences {seen_bleu:.2f}, exact {seen_exact}/{len(seen)}", flush=True)
                for h, r in list(zip(seen_hyps, seen))[:4]:
                    print(f"    {r}  ->  {h}", flush=True)
            curve.append(point)
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(json.dumps({"settings": vars(a), "curve": curve}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
