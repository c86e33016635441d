"""Small-scale check of Optimus's central language-modelling claim: after the SAME fine-tuning budget, the sentence VAE
(importance-weighted PPL) is at least as good as its own decoder fine-tuned as a plain causal LM, while keeping an
informative latent space (KL > 0, MI > 0, active units > 0, i.e. no posterior collapse).

Both models start from the same pretrained parts (pip-shipped all-MiniLM-L6-v2 encoder + SmolLM2-135M decoder, see
`hf_dgm.training.offline_assets`): the plain LM is a copy of the Optimus decoder taken before any training (same resized
vocabulary, same `BOS sentence EOS` tokenization). Both are fine-tuned on the same SNLI sentences (../shared/data/snli)
for the same number of steps, batch size, learning rate, optimizer (AdamW, eps 1e-8, no weight decay, linear decay
without warm-up, clipping 1.0), sampler and seed; the order of the batches is recorded and compared. Both minimise the
same reconstruction term (token cross-entropy summed per sentence, averaged over the batch); Optimus adds β_t·KL_λ
with the paper's fine-tuning schedule (1 cycle, ratio_zero 0.5, ratio_increase 0.25, β 1.0, λ 0.5).

Evaluation on test sentences: Optimus with `evaluate_optimus` (IW-NLL with K importance samples); the plain LM with its
exact NLL. Same token counting for both (BOS and EOS included, per token as the original; per word = words + 1).

    python benchmarks/bench_optimus_vs_lm.py --output runs/bench/optimus_vs_lm.md
    python benchmarks/bench_optimus_vs_lm.py --steps 1000 --batch_size 16 --eval_sentences 499 \
        --num_importance_samples 100 --num_threads 2 --output runs/bench/optimus_vs_lm_large.md

Prints one markdown table and writes it (`--output`) plus the same figures as JSON (same path, `.json`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hf_dgm.training.optimus.data import OptimusDataCollator  # noqa: E402
from hf_dgm.training.optimus.data import load_sentences  # noqa: E402
from hf_dgm.training.optimus.data import tokenize_sentences  # noqa: E402
from hf_dgm.training.optimus.evaluation import count_words  # noqa: E402
from hf_dgm.training.optimus.evaluation import evaluate_optimus  # noqa: E402
from hf_dgm.models.optimus.modeling_optimus import OptimusForConditionalGeneration  # noqa: E402
from hf_dgm.training.optimus.trainer import OptimusTrainer  # noqa: E402
from hf_dgm.training.optimus.trainer import OptimusTrainingArguments  # noqa: E402
from hf_dgm.training.offline_assets import minilm_path  # noqa: E402
from hf_dgm.training.offline_assets import smollm2_path  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "snli"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA, help="folder with train.txt and test.txt")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps for each model")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="paper: 5e-5 over a full epoch")
    parser.add_argument("--latent_size", type=int, default=32)
    parser.add_argument("--latent_injection", choices=("memory", "embedding", "both"), default="memory")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--kl_threshold", type=float, default=0.5)
    parser.add_argument("--beta_n_cycles", type=int, default=1)
    parser.add_argument("--beta_ratio_zero", type=float, default=0.5)
    parser.add_argument("--beta_ratio_increase", type=float, default=0.25)
    parser.add_argument("--max_length", type=int, default=40, help="decoder tokens per sentence (BOS/EOS included)")
    parser.add_argument("--eval_sentences", type=int, default=60, help="first N sentences of test.txt")
    parser.add_argument("--num_importance_samples", type=int, default=10, help="paper: 100")
    parser.add_argument("--eval_batch_size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--num_threads", type=int, default=1,
        help="torch CPU threads; 1 is much faster than 2 on a CPU shared with other jobs (OpenMP oversubscription)",
    )
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "bench" / "optimus_vs_lm.md")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "eval_sentences", "num_importance_samples", "eval_batch_size", "num_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.max_length < 3:
        parser.error("--max_length must be >= 3")
    for name in ("train.txt", "test.txt"):
        if not (args.data_dir / name).is_file():
            parser.error(f"{args.data_dir / name} not found (expected the shared SNLI sentence files)")
    return args


class RecordingCollator(OptimusDataCollator):
    """The Optimus collator, plus a digest of every batch it builds (to compare the data order of the two runs)."""

    def __init__(self, base: OptimusDataCollator):
        super().__init__(base.encoder_pad_token_id, base.decoder_pad_token_id)
        self.digests: list[str] = []

    def __call__(self, features):
        batch = super().__call__(features)
        self.digests.append(hashlib.sha1(batch["decoder_input_ids"].numpy().tobytes()).hexdigest()[:12])
        return batch


def sentence_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """−log p(x) per sentence `(batch,)`: cross-entropy of tokens 1… given the prefix, summed (pads ignored)."""
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none"
    )
    return nll.view(targets.shape).sum(-1)


class PlainLMTrainer(Trainer):
    """Fine-tunes the decoder alone on the Optimus batches with Optimus's reconstruction term (no latent)."""

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        ids, mask = inputs["decoder_input_ids"], inputs["decoder_attention_mask"]
        out = model(input_ids=ids, attention_mask=mask, use_cache=False)
        loss = sentence_nll(out.logits, ids, mask).mean()
        return (loss, out) if return_outputs else loss


@torch.no_grad()
def evaluate_plain_lm(decoder, processor, sentences: list[str], batch_size: int, max_length: int) -> dict:
    """Exact NLL of the plain LM, counted exactly as `evaluate_optimus` counts (BOS+EOS per token; words + 1)."""
    decoder.eval()
    total_nll, num_tokens = 0.0, 0
    for i in tqdm(range(0, len(sentences), batch_size), desc="plain LM NLL"):
        batch = processor(sentences[i : i + batch_size], max_length=max_length, return_tensors="pt").to(decoder.device)
        ids, mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]
        logits = decoder(input_ids=ids, attention_mask=mask, use_cache=False).logits
        total_nll += float(sentence_nll(logits, ids, mask).double().sum())
        num_tokens += int(mask.sum())
    num_words = sum(count_words(s) for s in sentences)
    return {
        "nll": total_nll / len(sentences),
        "ppl_per_token": math.exp(total_nll / num_tokens),
        "ppl_per_word": math.exp(total_nll / num_words),
        "num_tokens": num_tokens,
        "num_words": num_words,
    }


def common_training_kwargs(args: argparse.Namespace, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        warmup_steps=0,
        train_sampling_strategy="group_by_length",
        logging_steps=max(1, args.steps // 6),
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    print("[bench] composing Optimus from the pip-shipped parts (MiniLM encoder + SmolLM2-135M decoder) ...", flush=True)
    torch.manual_seed(args.seed)
    folder, gguf = smollm2_path()
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
        str(minilm_path()), str(folder), decoder_gguf_file=gguf,
        latent_size=args.latent_size, latent_injection=args.latent_injection,
    )
    processor = model.processor
    plain_lm = copy.deepcopy(model.decoder)  # the very same starting decoder (resized vocabulary included)
    # The GGUF file was dequantized to fp32 on load (Optimus trains these weights), but the loader leaves its quantizer
    # attached, which makes `Trainer` refuse the bare decoder as "purely quantized".
    plain_lm.hf_quantizer = None
    plain_lm.is_quantized = False

    num_train = args.steps * args.batch_size
    train_raw = load_sentences(train_file=str(args.data_dir / "train.txt"), max_examples=num_train)
    if len(train_raw) < num_train:
        print(f"[bench] note: only {len(train_raw)} training sentences for {num_train} (steps x batch); >1 epoch", flush=True)
    train = tokenize_sentences(train_raw, processor, args.max_length).remove_columns(["text"])
    test_raw = load_sentences(train_file=str(args.data_dir / "test.txt"), split="test", max_examples=args.eval_sentences)
    test_sentences = [row["text"].strip() for row in test_raw]
    base_collator = OptimusDataCollator.from_processor(processor)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # ---- Optimus
        optimus_collator = RecordingCollator(base_collator)
        optimus_args = OptimusTrainingArguments(
            beta=args.beta, kl_threshold=args.kl_threshold, beta_n_cycles=args.beta_n_cycles,
            beta_ratio_zero=args.beta_ratio_zero, beta_ratio_increase=args.beta_ratio_increase,
            **common_training_kwargs(args, str(Path(tmp) / "optimus")),
        )
        trainer = OptimusTrainer(model=model, args=optimus_args, train_dataset=train, data_collator=optimus_collator)
        t0 = time.time()
        train_out = trainer.train()
        optimus_train_s = time.time() - t0
        last_log = [r for r in trainer.state.log_history if "rec_loss" in r][-1]
        t0 = time.time()
        optimus_eval = evaluate_optimus(
            model, processor, test_sentences, num_importance_samples=args.num_importance_samples,
            chunk_size=min(5, args.num_importance_samples), batch_size=args.eval_batch_size,
            compute_bleu=False, max_length=args.max_length, seed=args.seed,
        )
        optimus_eval_s = time.time() - t0
        results["optimus"] = {
            "train_loss": train_out.training_loss, "train_seconds": optimus_train_s, "eval_seconds": optimus_eval_s,
            "last_train_log": last_log, **optimus_eval,
        }
        del trainer, model

        # ---- plain LM: same batches, same optimizer and schedule, reconstruction term only
        lm_collator = RecordingCollator(base_collator)
        lm_args = TrainingArguments(**common_training_kwargs(args, str(Path(tmp) / "plain_lm")))
        trainer = PlainLMTrainer(model=plain_lm, args=lm_args, train_dataset=train, data_collator=lm_collator)
        t0 = time.time()
        train_out = trainer.train()
        lm_train_s = time.time() - t0
        t0 = time.time()
        lm_eval = evaluate_plain_lm(plain_lm.to(device), processor, test_sentences, args.eval_batch_size, args.max_length)
        results["plain_lm"] = {
            "train_loss": train_out.training_loss, "train_seconds": lm_train_s, "eval_seconds": time.time() - t0, **lm_eval,
        }

    same_order = optimus_collator.digests == lm_collator.digests
    opt, lm = results["optimus"], results["plain_lm"]
    settings = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {torch.get_num_threads()} torch thread(s), "
        + (torch.cuda.get_device_name() if device == "cuda" else "CPU"),
        "encoder": "all-MiniLM-L6-v2 (pip)", "decoder": "SmolLM2-135M-Instruct Q4_1→fp32 (pip)",
        "steps": args.steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "train_sentences": len(train), "max_length": args.max_length, "latent_size": args.latent_size,
        "latent_injection": args.latent_injection, "beta": args.beta, "kl_threshold": args.kl_threshold,
        "beta_n_cycles": args.beta_n_cycles, "beta_ratio_zero": args.beta_ratio_zero,
        "beta_ratio_increase": args.beta_ratio_increase, "eval_sentences": len(test_sentences),
        "num_importance_samples": args.num_importance_samples, "seed": args.seed,
        "same_batch_order": same_order, "batches_recorded": len(optimus_collator.digests),
        "total_seconds": round(time.time() - started, 1),
    }

    header = (
        "| model | PPL / token | PPL / word | NLL / sent (nats) | PPL ratio vs LM | KL | MI | AU | −ELBO | train s |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = (
        f"| Optimus ({args.latent_injection}, IW K={args.num_importance_samples}) | {fmt(opt['ppl_per_token'])} | "
        f"{fmt(opt['ppl_per_word'])} | {fmt(opt['iw_nll'])} | {fmt(opt['ppl_per_token'] / lm['ppl_per_token'], 3)} | "
        f"{fmt(opt['kl'])} | {fmt(opt['mutual_information'])} | {fmt(opt['active_units'])}/{args.latent_size} | "
        f"{fmt(opt['neg_elbo'])} | {fmt(opt['train_seconds'], 0)} |\n"
        f"| plain causal LM (same decoder, exact NLL) | {fmt(lm['ppl_per_token'])} | {fmt(lm['ppl_per_word'])} | "
        f"{fmt(lm['nll'])} | 1.000 | – | – | – | – | {fmt(lm['train_seconds'], 0)} |\n"
    )
    caption = (
        f"SNLI, {args.steps} steps × batch {args.batch_size} (lr {args.learning_rate:g}, same batches in the same order: "
        f"{'yes' if same_order else 'NO'}), test = first {len(test_sentences)} sentences of test.txt "
        f"({opt['num_tokens']} tokens incl. BOS/EOS, {opt['num_words']} words+EOS); latent {args.latent_size}; "
        f"β {args.beta}, λ {args.kl_threshold}, {args.beta_n_cycles} cycle(s), ratio_zero {args.beta_ratio_zero}, "
        f"ratio_increase {args.beta_ratio_increase}. Last Optimus training window: β {last_log.get('beta')}, "
        f"KL {last_log.get('kl')}, AU {last_log.get('active_units')}, MI {last_log.get('mutual_information')}."
    )
    table = header + rows + "\n" + caption + "\n"
    print("\n" + table, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    args.output.with_suffix(".json").write_text(json.dumps({"settings": settings, "results": results}, indent=2, default=str))
    print(f"[bench] wrote {args.output} and {args.output.with_suffix('.json')} ({settings['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
