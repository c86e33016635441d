"""Training-step cost of Optimus versus its own decoder fine-tuned as a plain causal LM.

One training step = forward + backward + AdamW step, on the SAME batch of SNLI sentences (the first `--batch_size`
lines of ../shared/data/snli/train.txt, lengths as they come). Rows: Optimus with latent injection `memory`,
`embedding` and `both`, and the plain causal LM (the decoder alone, same tokenization `BOS sentence EOS`, same loss:
token cross-entropy summed per sentence, averaged over the batch). Parts: the pip-shipped all-MiniLM-L6-v2 encoder +
SmolLM2-135M decoder (`hf_dgm.training.offline_assets`), composed once with `from_encoder_decoder_pretrained`.

Throughput: all rows live in one process and share one set of weights (an Optimus built with both latent heads; a row
switches `config.latent_injection`, the plain-LM row calls the decoder alone) and one AdamW optimizer whose gradients
are cleared to `None` each step, so AdamW only updates what the row's loss reaches (the plain LM: the decoder; Optimus:
encoder, decoder, posterior and the latent head(s) in use). After `--warmup` untimed rounds, `--repeats` rounds each
time one step of every row, interleaved, in an order rotated every round; the table reports medians. Tokens = decoder
target tokens of the batch (every non-pad token after BOS, EOS included), the same for every row.

Peak memory: each row again in a fresh subprocess loading the composed model (only the decoder for the plain LM).
On CUDA: `torch.cuda.max_memory_allocated` over the steps (weights, gradients, AdamW state, activations). On CPU: the
growth of the process's peak resident set (VmHWM, reset after loading through /proc/self/clear_refs, falling back to
`getrusage` ru_maxrss when the reset is unavailable) over the steps, after the weights were copied into ordinary
memory (not file-backed mmap pages), i.e. gradients + AdamW state + activations.

    python benchmarks/bench_optimus_throughput.py --output runs/bench/optimus_throughput.md

Prints one markdown table and writes it (`--output`) plus the same figures as JSON (same path, `.json`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
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

from hf_dgm.models.optimus.modeling_optimus import OptimusForConditionalGeneration  # noqa: E402

DEFAULT_TRAIN_FILE = REPO.parent / "shared" / "data" / "snli" / "train.txt"
ROWS = ("memory", "embedding", "both", "plain_lm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_file", type=Path, default=DEFAULT_TRAIN_FILE, help="one sentence per line")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=100, help="tokens per side (paper block size for SNLI)")
    parser.add_argument("--latent_size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (one step of every row each)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the table reports medians")
    parser.add_argument("--memory_steps", type=int, default=2, help="steps per memory subprocess (0: skip memory)")
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument(
        "--num_threads", type=int, default=1,
        help="torch CPU threads; 1 is much faster than 2 on a CPU shared with other jobs (OpenMP oversubscription)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "bench" / "optimus_throughput.md")
    # internal: one memory measurement in a fresh process
    parser.add_argument("--_memory_row", choices=ROWS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_model_dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "repeats", "num_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.warmup < 0 or args.memory_steps < 0:
        parser.error("--warmup and --memory_steps must be >= 0")
    if not args.train_file.is_file():
        parser.error(f"{args.train_file} not found (expected the shared SNLI sentence file)")
    return args


def read_batch_sentences(path: Path, batch_size: int) -> list[str]:
    sentences = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                sentences.append(line.strip())
            if len(sentences) == batch_size:
                break
    if len(sentences) < batch_size:
        raise ValueError(f"{path} has only {len(sentences)} sentences for a batch of {batch_size}")
    return sentences


def plain_lm_loss(decoder, batch: dict) -> torch.Tensor:
    """Optimus's reconstruction term without a latent: token NLL summed per sentence, mean over the batch."""
    ids, mask = batch["decoder_input_ids"], batch["decoder_attention_mask"]
    logits = decoder(input_ids=ids, attention_mask=mask, use_cache=False).logits
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    nll = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none"
    )
    return nll.view(targets.shape).sum(-1).mean()


def training_step(model, row: str, batch: dict, optimizer: torch.optim.Optimizer) -> float:
    """One forward + backward + AdamW step of `row`; returns the loss. `model` is the Optimus wrapper, or the
    bare decoder for the plain-LM row in a memory subprocess."""
    optimizer.zero_grad(set_to_none=True)
    if row == "plain_lm":
        decoder = model.decoder if isinstance(model, OptimusForConditionalGeneration) else model
        loss = plain_lm_loss(decoder, batch)
    else:
        model.config.latent_injection = row
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------------------------------
# memory: one row in a fresh process


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_hwm_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def memory_worker(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    row = args._memory_row
    injection = "memory" if row == "plain_lm" else row
    model = OptimusForConditionalGeneration.from_pretrained(args._model_dir, latent_injection=injection)
    processor = model.processor
    if row == "plain_lm":
        trained = model.decoder
        del model
        gc.collect()
    else:
        trained = model
    trained.to(device).train()
    if device.type == "cpu":
        # safetensors weights may still be file-backed (mmap) pages that only become resident when first read;
        # copy them into ordinary memory now so the growth measured below is training state, not weight loading.
        with torch.no_grad():
            for param in trained.parameters():
                param.data = param.data.clone()
        gc.collect()
    batch = processor(read_batch_sentences(args.train_file, args.batch_size), max_length=args.max_length, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(trained.parameters(), lr=args.learning_rate, eps=1e-8, weight_decay=0.0)

    result: dict = {"row": row, "device": device.type}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        result["resident_bytes"] = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.memory_steps):
            training_step(trained, row, batch, optimizer)
        torch.cuda.synchronize(device)
        result["peak_bytes"] = torch.cuda.max_memory_allocated(device)
        result["method"] = "torch.cuda.max_memory_allocated"
    else:
        gc.collect()
        reset = _reset_peak_rss()
        start_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result["resident_bytes"] = _rss_bytes()
        for _ in range(args.memory_steps):
            training_step(trained, row, batch, optimizer)
        if reset:
            result["peak_bytes"] = _vm_hwm_bytes()
            result["method"] = "VmHWM after /proc/self/clear_refs reset"
        else:
            result["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            result["method"] = "getrusage ru_maxrss (no reset: load peak included)"
            result["load_peak_bytes"] = start_peak
    result["growth_bytes"] = result["peak_bytes"] - result["resident_bytes"]
    print("MEMORY_RESULT " + json.dumps(result), flush=True)
    return 0


def measure_memory(args: argparse.Namespace, model_dir: Path, row: str) -> dict:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--_memory_row", row, "--_model_dir", str(model_dir),
        "--train_file", str(args.train_file), "--batch_size", str(args.batch_size), "--max_length", str(args.max_length),
        "--memory_steps", str(args.memory_steps), "--num_threads", str(args.num_threads), "--seed", str(args.seed),
        "--learning_rate", str(args.learning_rate),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_RESULT "):
            return json.loads(line[len("MEMORY_RESULT "):])
    raise RuntimeError(f"memory subprocess for {row} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# ----------------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._memory_row is not None:
        return memory_worker(args)
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(args.seed)
    started = time.time()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    from hf_dgm.training.offline_assets import minilm_path, smollm2_path

    print("[bench] composing Optimus from the pip-shipped parts (MiniLM encoder + SmolLM2-135M decoder) ...", flush=True)
    folder, gguf = smollm2_path()
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(
        str(minilm_path()), str(folder), decoder_gguf_file=gguf, latent_size=args.latent_size, latent_injection="both"
    )
    processor = model.processor
    sentences = read_batch_sentences(args.train_file, args.batch_size)
    batch = processor(sentences, max_length=args.max_length, return_tensors="pt")
    target_tokens = int(batch["decoder_attention_mask"][:, 1:].sum())
    batch = {k: v.to(device) for k, v in batch.items()}

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "optimus"
        if args.memory_steps > 0:
            model.save_pretrained(model_dir)  # the memory subprocesses load this (no GGUF dequantization there)

        # ---- throughput: interleaved rounds, one shared set of weights and one optimizer
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, eps=1e-8, weight_decay=0.0)
        times: dict[str, list[float]] = {row: [] for row in ROWS}
        losses: dict[str, list[float]] = {row: [] for row in ROWS}
        rounds = args.warmup + args.repeats
        with tqdm(total=rounds * len(ROWS), desc="interleaved training steps") as bar:
            for r in range(rounds):
                k = r % len(ROWS)
                for row in ROWS[k:] + ROWS[:k]:
                    synchronize(device)
                    t0 = time.perf_counter()
                    loss = training_step(model, row, batch, optimizer)
                    synchronize(device)
                    elapsed = time.perf_counter() - t0
                    if r >= args.warmup:
                        times[row].append(elapsed)
                        losses[row].append(loss)
                    bar.set_postfix(row=row, seconds=f"{elapsed:.2f}")
                    bar.update(1)
        model.config.latent_injection = "both"
        del optimizer, model
        gc.collect()

        # ---- peak memory: a fresh process per row
        memory: dict[str, dict] = {}
        if args.memory_steps > 0:
            for row in tqdm(ROWS, desc="memory (fresh process per row)"):
                memory[row] = measure_memory(args, model_dir, row)

    results = {}
    for row in ROWS:
        median = statistics.median(times[row])
        results[row] = {
            "median_step_seconds": median,
            "min_step_seconds": min(times[row]),
            "max_step_seconds": max(times[row]),
            "tokens_per_second": target_tokens / median,
            "step_seconds": times[row],
            "losses": losses[row],
            "memory": memory.get(row),
        }
    base = results["plain_lm"]
    mib = 2**20
    on_cuda = device.type == "cuda"
    mem_key = "peak_bytes" if on_cuda else "growth_bytes"
    mem_label = "peak CUDA allocated (MiB)" if on_cuda else "peak RSS growth (MiB)"
    header = (
        f"| row | median step (s) [min–max] | tokens/s | tokens/s ratio vs LM | {mem_label} | memory ratio vs LM |\n"
        "|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in ROWS:
        res = results[row]
        name = "plain causal LM (decoder only)" if row == "plain_lm" else f"Optimus, latent_injection={row}"
        mem = res["memory"]
        mem_cell = f"{mem[mem_key] / mib:.0f}" if mem else "–"
        mem_ratio = f"{mem[mem_key] / base['memory'][mem_key]:.2f}" if mem and base["memory"] else "–"
        lines.append(
            f"| {name} | {res['median_step_seconds']:.2f} [{res['min_step_seconds']:.2f}–{res['max_step_seconds']:.2f}] | "
            f"{res['tokens_per_second']:.1f} | {res['tokens_per_second'] / base['tokens_per_second']:.3f} | "
            f"{mem_cell} | {mem_ratio} |"
        )
    method = next((m["method"] for m in memory.values()), "not measured")
    machine = (
        torch.cuda.get_device_name(device) if on_cuda
        else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), {platform.processor() or platform.machine()})"
    )
    caption = (
        f"Batch: first {args.batch_size} sentences of {args.train_file.name} ({target_tokens} decoder target tokens, "
        f"padded length {batch['decoder_input_ids'].shape[1]}); latent {args.latent_size}; AdamW lr {args.learning_rate:g}. "
        f"Medians of {args.repeats} interleaved rounds after {args.warmup} warm-up round(s), row order rotated per round; "
        f"{machine}. Memory: fresh process per row, {args.memory_steps} step(s), {method}"
        + ("" if on_cuda else " (growth over the loaded model: gradients + AdamW state + activations)")
        + "."
    )
    table = header + "\n".join(lines) + "\n\n" + caption + "\n"
    print("\n" + table, flush=True)
    settings = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), "machine": machine,
        "batch_size": args.batch_size, "target_tokens": target_tokens, "max_length": args.max_length,
        "latent_size": args.latent_size, "warmup": args.warmup, "repeats": args.repeats,
        "memory_steps": args.memory_steps, "memory_method": method, "num_threads": args.num_threads,
        "total_seconds": round(time.time() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    args.output.with_suffix(".json").write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    print(f"[bench] wrote {args.output} and {args.output.with_suffix('.json')} ({settings['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
