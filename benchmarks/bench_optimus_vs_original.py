"""One Optimus training step: hf-dgm against the original code (ChunyuanLI/Optimus) on identical shapes (issue 17).

The original code is NOT part of this repository. Get it once and point `--original_dir` at its `code` folder:

    git clone https://github.com/ChunyuanLI/Optimus /tmp/optimus_orig      # then --original_dir /tmp/optimus_orig/code

It is imported unmodified on today's torch with two run-time shims made in the worker process only: its
`pytorch_transformers/__init__.py` (which imports every tokenizer, some needing packages not installed here, e.g.
`sacremoses`) is skipped by registering an empty package object whose `__path__` is its folder, and
`examples/big_ae/modules` is registered the same way so that only `vae.py` (and its `utils.py`) is imported. The
model, loss and optimizer code that runs is the original's own.

Shapes (both sides): encoder = bert-base default config (vocabulary 30522), decoder = gpt2 default config with the
original's 3 added tokens (vocabulary 50260; PAD 50257, BOS 50258, EOS 50259), random weights (no downloads), latent
32, dropout on (train mode), batch `--batch_size` × `--length` tokens (BOS, random tokens, EOS; no padding),
`--threads` torch threads, fp32, `--device` (default cpu). Injections: `memory` (the original's `latent_as_gpt_memory=1,
latent_as_gpt_emb=0`), `embedding` (0, 1) and `both` (1, 1).

One step, as each side's training script runs it:
  * original (`examples/big_ae/run_lm_vae_training.py`): `loss_rec, loss_kl, loss = VAE(inputs, labels)` with
    `fb_mode=1` (the mode its loop sets whenever β > 0: dimension-wise KL mask at `dim_target_kl`), `beta`,
    `length_weighted_loss=False`; `loss.mean().backward()` (the loop's multi-GPU branch; its per-example `loss` is a
    vector); `clip_grad_norm_(model_vae.parameters(), 1.0)`; its own `pytorch_transformers.optimization.AdamW`
    (python loop over parameters; groups bias/LayerNorm.weight vs the rest, weight decay 0, lr 5e-5, eps 1e-8);
    `WarmupLinearSchedule.step()`; `model_vae.zero_grad()`.
  * hf-dgm: `OptimusForConditionalGeneration(**batch, beta=β, kl_threshold=λ).loss.backward()`;
    `clip_grad_norm_(model.parameters(), 1.0)`; the optimizer and scheduler that `OptimusTrainer` builds with default
    `OptimusTrainingArguments` (`create_optimizer_and_scheduler`: fused AdamW by default); `scheduler.step()`;
    `model.zero_grad()`.
  β = 1.0 and λ = `dim_target_kl` = 0.5 on both sides (the fine-tuning values of `OptimusTrainingArguments`).

Every measurement is a FRESH subprocess (`--worker original|hfdgm`) that builds its model (seed 0), runs `--warmup`
untimed steps (they also allocate the optimizer state), then times `--steps` steps. Rounds alternate which side
runs first. tokens/s = decoder target tokens per step (batch × (length − 1)) / median wall time of all timed steps;
the ratio is hf-dgm / original tokens/s (= original / hf-dgm step time), on wall time and on the worker's process CPU
time (user + system, `time.process_time`; on a shared machine the wall time also holds the time the worker waited
for a core, the CPU time does not). `--bf16` adds an hf-dgm worker whose forward runs under
`torch.autocast(<device type>, torch.bfloat16)` (the Trainer's `--bf16`), compared with the original in fp32;
`--compile` adds an hf-dgm worker whose model runs through `torch.compile` (what the Trainer's `--torch_compile`
does; fp32, the same model and loss, but fused kernels round differently and the dropout masks come from
inductor's own random stream, so the first-step losses differ slightly); the compilation happens in the warm-up
steps (keep `--warmup` ≥ 2).
`--device cuda` runs both sides on the GPU (CUDA time synchronised by `loss.item()` at the end of each step; the
CPU-time column is then the host's). `--profile`
instead runs one worker per side that profiles one step after the warm-up (`torch.profiler`: top operators by self
CPU time, the share of matrix products, and the step's phases forward+loss / backward / clip_grad_norm / optimizer /
scheduler+zero_grad). `--worker_env KEY=VALUE,...` sets extra environment variables for both sides' workers (e.g.
glibc malloc tunables). The table goes to stdout and to `--output` (default `runs/bench/optimus_vs_original.md`),
the raw per-step times and losses to the `.json` next to it.

    PYTHONPATH=$PWD python benchmarks/bench_optimus_vs_original.py --original_dir /tmp/optimus_orig/code \\
        [--threads 2] [--rounds 3] [--injections memory,embedding,both] [--bf16] [--compile] [--profile]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from datetime import datetime, timezone

DEFAULT_ORIGINAL_DIR = "/tmp/optimus_orig/code"
PAD, BOS, EOS = 50257, 50258, 50259
DECODER_VOCAB = 50260
LATENT = 32
PHASES = ("step/forward+loss", "step/backward", "step/clip_grad_norm", "step/optimizer", "step/scheduler+zero_grad")
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
INJECTIONS = {"memory": (True, False), "embedding": (False, True), "both": (True, True)}  # (memory, embedding)
REQUIRED_FILES = (
    "pytorch_transformers/modeling_bert.py",
    "pytorch_transformers/modeling_gpt2.py",
    "pytorch_transformers/optimization.py",
    "examples/big_ae/modules/vae.py",
)


def check_original_dir(path: str) -> str:
    path = os.path.abspath(path)
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise SystemExit(
            f"--original_dir {path!r} does not hold the original Optimus code (missing: {', '.join(missing)}).\n"
            "Get it with\n"
            "    git clone https://github.com/ChunyuanLI/Optimus /tmp/optimus_orig\n"
            "and pass --original_dir /tmp/optimus_orig/code (the folder that holds pytorch_transformers/ and "
            "examples/)."
        )
    return path


def record_function(name: str):
    from torch.profiler import record_function as _record_function

    return _record_function(name)


def make_batch(batch_size: int, length: int):
    import torch

    g = torch.Generator().manual_seed(0)
    enc = torch.randint(1000, 28000, (batch_size, length), generator=g)
    dec = torch.randint(0, PAD, (batch_size, length), generator=g)
    dec[:, 0] = BOS
    dec[:, -1] = EOS
    return enc, dec


# ------------------------------------------------------------------------------------------------ the original
def import_original(original_dir: str):
    """The original's modules, imported without running its package `__init__` (see the module docstring)."""
    packages = (("pytorch_transformers", "pytorch_transformers"), ("optimus_big_ae_modules", "examples/big_ae/modules"))
    for name, sub in packages:
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [os.path.join(original_dir, sub)]
            sys.modules[name] = package
    bert = importlib.import_module("pytorch_transformers.modeling_bert")
    gpt2 = importlib.import_module("pytorch_transformers.modeling_gpt2")
    optimization = importlib.import_module("pytorch_transformers.optimization")
    vae = importlib.import_module("optimus_big_ae_modules.vae")
    return bert, gpt2, optimization, vae


class _DecoderTokens:
    """What `VAE.__init__` reads from the decoder tokenizer: the ids of its EOS and PAD tokens."""

    eos_token, pad_token = "<EOS>", "<PAD>"

    def convert_tokens_to_ids(self, tokens):
        return [{"<EOS>": EOS, "<PAD>": PAD}[t] for t in tokens]


def build_original(original_dir: str, injection: str, beta: float, threshold: float, device: str = "cpu"):
    import torch

    bert, gpt2, optimization, vae = import_original(original_dir)
    memory, embedding = INJECTIONS[injection]
    torch.manual_seed(0)
    encoder = bert.BertForLatentConnector(bert.BertConfig(), latent_size=LATENT)
    decoder_config = gpt2.GPT2Config(vocab_size_or_config_json_file=DECODER_VOCAB)
    decoder_config.latent_size = LATENT
    decoder = gpt2.GPT2ForLatentConnector(
        decoder_config, latent_size=LATENT, latent_as_gpt_emb=embedding, latent_as_gpt_memory=memory
    )
    args = types.SimpleNamespace(
        latent_size=LATENT, device=torch.device(device), fb_mode=1, dim_target_kl=threshold, beta=beta,
        length_weighted_loss=False,
    )
    model = vae.VAE(encoder, decoder, _DecoderTokens(), _DecoderTokens(), args).to(device).train()
    no_decay = ["bias", "LayerNorm.weight"]
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = optimization.AdamW(groups, lr=5e-5, eps=1e-8)
    scheduler = optimization.WarmupLinearSchedule(optimizer, warmup_steps=0, t_total=100_000)

    def step(enc, dec):
        with record_function(PHASES[0]):
            loss_rec, loss_kl, loss = model(enc, dec)
            loss = loss.mean()
        with record_function(PHASES[1]):
            loss.backward()
        with record_function(PHASES[2]):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        with record_function(PHASES[3]):
            optimizer.step()
        with record_function(PHASES[4]):
            scheduler.step()
            model.zero_grad()
        return loss.detach(), loss_rec.detach().mean()

    return model, step


# ------------------------------------------------------------------------------------------------ hf-dgm
def build_hfdgm(injection: str, beta: float, threshold: float, bf16: bool, device: str = "cpu", compile: bool = False):
    import torch
    from bench_optimus_step import build  # the same bert-base + gpt2 (vocabulary 50260) Optimus, seed 0, train mode

    from hf_dgm.training.optimus.trainer import OptimusTrainer, OptimusTrainingArguments

    model = build(injection).to(device)
    if (model.config.decoder.vocab_size, model.config.latent_size, model.config.decoder_pad_token_id,
            model.config.decoder_bos_token_id, model.config.decoder_eos_token_id) != (DECODER_VOCAB, LATENT, PAD, BOS, EOS):
        raise RuntimeError("bench_optimus_step.build no longer matches the original's shapes used here")
    output_dir = tempfile.TemporaryDirectory(prefix="bench_optimus_vs_original_")  # removed with the closure
    args = OptimusTrainingArguments(output_dir=output_dir.name, report_to="none", use_cpu=device == "cpu",
                                    max_steps=100_000)
    trainer = OptimusTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=args.max_steps)
    optimizer, scheduler = trainer.optimizer, trainer.lr_scheduler
    forward = torch.compile(model) if compile else model

    def step(enc, dec, _keep=output_dir):
        ones = torch.ones_like(enc)
        with record_function(PHASES[0]), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(input_ids=enc, attention_mask=ones, decoder_input_ids=dec,
                        decoder_attention_mask=torch.ones_like(dec), beta=beta, kl_threshold=threshold)
        with record_function(PHASES[1]):
            out.loss.backward()
        with record_function(PHASES[2]):
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        with record_function(PHASES[3]):
            optimizer.step()
        with record_function(PHASES[4]):
            scheduler.step()
            model.zero_grad()
        return out.loss.detach(), out.reconstruction_loss.detach().mean()

    shown = ", ".join(f"{k}={v}" for k, v in optimizer.defaults.items() if k in ("lr", "eps", "fused", "foreach"))
    describe = f"{type(optimizer).__name__}({shown})"
    return model, step, describe


# ------------------------------------------------------------------------------------------------ worker
def run_worker(opts) -> None:
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(opts.threads)
    started = time.perf_counter()
    describe = "pytorch_transformers.optimization.AdamW (per-parameter python loop)"
    if opts.worker == "original":
        model, step = build_original(opts.original_dir, opts.injection, opts.beta, opts.kl_threshold, opts.device)
    else:
        model, step, describe = build_hfdgm(
            opts.injection, opts.beta, opts.kl_threshold, opts.worker == "hfdgm+bf16", opts.device,
            compile=opts.worker == "hfdgm+compile",
        )
    build_s = time.perf_counter() - started
    enc, dec = (t.to(opts.device) for t in make_batch(opts.batch_size, opts.length))
    torch.manual_seed(1)
    losses = []
    for _ in range(opts.warmup):
        loss, rec = step(enc, dec)
        losses.append((loss.item(), rec.item()))
    if opts.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if opts.device.startswith("cuda") else [])
        with profile(activities=activities) as prof:
            step(enc, dec)
        averages = prof.key_averages()
        phases = {e.key: e.cpu_time_total for e in averages if e.key in PHASES}
        averages = [e for e in averages if e.key not in PHASES]
        total = sum(e.self_cpu_time_total for e in averages)
        matmul = sum(e.self_cpu_time_total for e in averages if e.key in MATMULS)
        print(f"\n### profile: {opts.worker}, {opts.injection}, one step after {opts.warmup} warm-up step(s)\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=opts.profile_rows,
                                        max_name_column_width=44))
        print(f"operators' self CPU time: {total / 1e6:.2f} s, of which matrix products ({', '.join(MATMULS)}) "
              f"{matmul / 1e6:.2f} s ({100 * matmul / total:.0f} %)")
        print("phases (CPU time incl. children): " + ", ".join(
            f"{name.split('/')[1]} {phases.get(name, 0) / 1e6:.2f} s ({100 * phases.get(name, 0) / total:.0f} %)"
            for name in PHASES))
        return
    times, cpu_times = [], []
    for _ in range(opts.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, rec = step(enc, dec)
        loss.item()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        losses.append((loss.item(), rec.item()))
    n_params = sum(p.numel() for p in model.parameters())
    print("RESULT " + json.dumps({
        "worker": opts.worker, "injection": opts.injection, "times": times, "cpu_times": cpu_times,
        "losses": losses, "build_s": build_s, "parameters": n_params, "optimizer": describe,
    }))


# ------------------------------------------------------------------------------------------------ driver
EXTRA_WORKERS = {
    "hfdgm+bf16": "bf16 columns: hf-dgm under bf16 autocast",
    "hfdgm+compile": "compile columns: hf-dgm under torch.compile, fp32",
}


def extra_workers(opts) -> list[str]:
    return [w for w, on in (("hfdgm+bf16", opts.bf16), ("hfdgm+compile", opts.compile)) if on]


def spawn(opts, worker: str, injection: str, profile: bool = False) -> dict | None:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--worker", worker, "--injection", injection,
        "--original_dir", opts.original_dir, "--threads", str(opts.threads), "--batch_size", str(opts.batch_size),
        "--length", str(opts.length), "--device", opts.device, "--warmup", str(opts.warmup),
        "--steps", str(opts.steps),
        "--beta", str(opts.beta), "--kl_threshold", str(opts.kl_threshold), "--profile_rows", str(opts.profile_rows),
    ]
    if profile:
        cmd.append("--profile")
    env = dict(os.environ, OMP_NUM_THREADS=str(opts.threads), MKL_NUM_THREADS=str(opts.threads), **opts.extra_env)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {worker}/{injection} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    if profile:
        print(proc.stdout)
        return None
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original_dir", default=DEFAULT_ORIGINAL_DIR,
                        help="the original repository's `code` folder (see above for how to get it)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (both sides)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh-process measurements per side and injection")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--injections", default="memory,embedding,both")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--length", type=int, default=48)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--kl_threshold", type=float, default=0.5)
    parser.add_argument("--bf16", action="store_true", help="also time (or profile) hf-dgm with bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time (or profile) hf-dgm under torch.compile")
    parser.add_argument("--profile", action="store_true", help="profile one step of each side instead of timing")
    parser.add_argument("--profile_rows", type=int, default=20)
    parser.add_argument("--worker_env", default="",
                        help="extra environment of BOTH sides' workers, KEY=VALUE[,KEY=VALUE...], e.g. glibc malloc "
                             "tunables MALLOC_MMAP_MAX_=0,MALLOC_TRIM_THRESHOLD_=100000000000")
    parser.add_argument("--output", default="runs/bench/optimus_vs_original.md",
                        help="markdown table written here, raw per-step figures as JSON next to it ('' = print only)")
    parser.add_argument("--worker", choices=["original", "hfdgm", *EXTRA_WORKERS], help=argparse.SUPPRESS)
    parser.add_argument("--injection", default="both", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.original_dir = check_original_dir(opts.original_dir)
    opts.extra_env = {}
    for item in filter(None, (i.strip() for i in opts.worker_env.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--worker_env entries must be KEY=VALUE; got {item!r}")
        opts.extra_env[key] = value
    if opts.worker:
        run_worker(opts)
        return

    injections = [i.strip() for i in opts.injections.split(",") if i.strip()]
    unknown = [i for i in injections if i not in INJECTIONS]
    if unknown:
        raise SystemExit(f"unknown injection(s) {unknown}; choose from {sorted(INJECTIONS)}")
    if opts.profile:
        for injection in injections:
            for worker in ["original", "hfdgm", *extra_workers(opts)]:
                spawn(opts, worker, injection, profile=True)
        return

    extras = extra_workers(opts)
    workers = ["original", "hfdgm", *extras]
    started = datetime.now(timezone.utc)
    results: dict[tuple[str, str], list[dict]] = {}
    for r in range(opts.rounds):
        order = workers if r % 2 == 0 else workers[::-1]
        for injection in injections:
            for worker in order:
                res = spawn(opts, worker, injection)
                results.setdefault((worker, injection), []).append(res)
                print(f"round {r + 1} {injection:9s} {worker:10s} step s: "
                      + ", ".join(f"{t:.2f}" for t in res["times"])
                      + f"  (loss of first step {res['losses'][0][0]:.1f})", file=sys.stderr, flush=True)
    tokens = opts.batch_size * (opts.length - 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    finished = datetime.now(timezone.utc)
    env_note = f", worker environment {opts.worker_env}" if opts.extra_env else ""
    lines = [
        f"{started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC, {opts.batch_size}x{opts.length}, {opts.device}, fp32"
        f"{''.join(f' ({EXTRA_WORKERS[w]})' for w in extras)}, "
        f"{opts.threads} thread(s), {opts.rounds} fresh-process round(s) x {opts.steps} timed steps after "
        f"{opts.warmup} warm-up, load average at the end {load:.1f}{env_note}",
        "",
    ]
    header = ("| injection | original tokens/s | hf-dgm tokens/s | hf-dgm / original (wall) | per-round ratios (wall) "
              "| hf-dgm / original (process CPU time) |")
    sep = "|---|---|---|---|---|---|"
    for worker in extras:
        name = worker.split("+")[1]
        header += f" hf-dgm {name} tokens/s | {name} / original (wall) | {name} / original (CPU time) |"
        sep += "---|---|---|"
    lines += [header, sep]

    def pooled(worker, injection, key):
        return statistics.median([t for run in results[(worker, injection)] for t in run[key]])

    for injection in injections:
        orig, ours = pooled("original", injection, "times"), pooled("hfdgm", injection, "times")
        orig_cpu, ours_cpu = pooled("original", injection, "cpu_times"), pooled("hfdgm", injection, "cpu_times")
        per_round = ", ".join(
            f"{statistics.median(o['times']) / statistics.median(h['times']):.2f}"
            for o, h in zip(results[("original", injection)], results[("hfdgm", injection)])
        )
        row = (f"| {injection} | {tokens / orig:.1f} | {tokens / ours:.1f} | {orig / ours:.2f}x | {per_round} "
               f"| {orig_cpu / ours_cpu:.2f}x |")
        for worker in extras:
            t, t_cpu = pooled(worker, injection, "times"), pooled(worker, injection, "cpu_times")
            row += f" {tokens / t:.1f} | {orig / t:.2f}x | {orig_cpu / t_cpu:.2f}x |"
        lines.append(row)
    lines += ["", f"hf-dgm optimizer: {results[('hfdgm', injections[0])][0]['optimizer']}; original optimizer: "
                  f"{results[('original', injections[0])][0]['optimizer']}"]
    text = "\n".join(lines)
    print("\n" + text)
    if opts.output:
        os.makedirs(os.path.dirname(os.path.abspath(opts.output)), exist_ok=True)
        with open(opts.output, "w") as f:
            f.write(text + "\n")
        settings = {k: v for k, v in vars(opts).items() if k not in ("worker", "injection")}
        raw = {f"{worker}/{injection}": runs for (worker, injection), runs in results.items()}
        with open(os.path.splitext(opts.output)[0] + ".json", "w") as f:
            json.dump({"settings": settings, "started": started.isoformat(), "finished": finished.isoformat(),
                       "tokens_per_step": tokens, "load_average_end": load, "runs": raw}, f, indent=1)
        print(f"\nwritten: {opts.output} (+ .json)")

if __name__ == "__main__":
    main()
