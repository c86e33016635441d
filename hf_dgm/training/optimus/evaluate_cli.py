"""Optimus: IW-NLL, PPL per token and per word, -ELBO, KL, MI, AU, reconstruction BLEU (the paper's protocol).

    hf-dgm evaluate optimus ./optimus-ptb --dataset ../shared/data/ptb --split test \\
        --max_examples 500 --num_importance_samples 100 --output metrics.json

Defaults are sized by device: on CPU, the first 200 sentences with K = 20 importance samples (the paper's K = 100 on a
whole test set takes hours on a laptop CPU); on a GPU, every sentence with K = 100. Before the run, one batch is timed
and the whole evaluation's duration is estimated and printed; the progress bars show the remaining time.

`--task low-resource-classification`: the frozen model's latent mean (and the original encoder's pooled feature) under
a linear classifier trained on 1, 10, 100, 1000 labelled sentences per class (`hf_dgm.training.optimus.low_resource`):

    hf-dgm evaluate optimus ./optimus-snli --task low-resource-classification \\
        --recipe training/recipes/optimus_low_resource_yelp.yaml --output low_resource.json
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ...evaluate import load_sentences
from . import low_resource

CPU_MAX_EXAMPLES = 200
CPU_IMPORTANCE_SAMPLES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="folder (or Hub id) of an hf-dgm Optimus model with its tokenizers")
    parser.add_argument("--task", default="language-modeling", choices=["language-modeling", "low-resource-classification"],
                        help="language-modeling (default): the metrics above; low-resource-classification: see below")
    parser.add_argument("--dataset", default=None, help="text file (one sentence per line), folder, or Hub dataset name "
                        "(low-resource-classification: a folder of <name>.<split>.<label> files)")
    parser.add_argument("--split", default="test", help="split of a folder ({split}.txt) or Hub dataset (default: test)")
    parser.add_argument("--text_column", default=None, help="column holding the sentences (json/csv/Hub datasets)")
    parser.add_argument("--max_examples", type=int, default=None,
                        help="evaluate the first N sentences only (default: 200 on CPU, all on GPU)")
    parser.add_argument("--num_importance_samples", type=int, default=None,
                        help="K of the IW estimate (default: 20 on CPU, 100 — the paper's — on GPU)")
    parser.add_argument("--chunk_size", type=int, default=5, help="importance samples decoded together (default 5)")
    parser.add_argument("--batch_size", type=int, default=None, help="sentences per batch (default 8; low-resource-classification: 64)")
    parser.add_argument("--au_threshold", type=float, default=0.01, help="active-unit threshold δ (default 0.01)")
    parser.add_argument("--max_length", type=int, default=None, help="max tokens per sentence (default 128; low-resource-classification: 64)")
    parser.add_argument("--no_bleu", action="store_true", help="skip the reconstruction BLEU (no generation)")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="generation cap of the reconstructions")
    parser.add_argument("--num_beams", type=int, default=None, help="beam size of the reconstructions (default greedy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--output", default=None, help="write the metrics JSON here (default: print only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    low_resource.add_arguments(parser)


def _resolve_defaults(args: argparse.Namespace) -> str:
    """Fill in the likelihood task's defaults (batch size 8, 128 tokens; on CPU at most `CPU_MAX_EXAMPLES` sentences
    and `CPU_IMPORTANCE_SAMPLES` importance samples, else K = 100) in `args`; returns the device."""
    import torch

    args.batch_size = 8 if args.batch_size is None else args.batch_size
    args.max_length = 128 if args.max_length is None else args.max_length
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_cpu = torch.device(device).type == "cpu"
    if args.max_examples is None and on_cpu:
        args.max_examples = CPU_MAX_EXAMPLES
    if args.num_importance_samples is None:
        args.num_importance_samples = CPU_IMPORTANCE_SAMPLES if on_cpu else 100
    return device


def _print_estimate(model, processor, sentences: list[str], args: argparse.Namespace, device: str, common: dict) -> None:
    """Time one batch of the evaluation and print the expected minutes of the whole run."""
    import time

    from hf_dgm.training.optimus.evaluation import evaluate_optimus

    started = time.perf_counter()
    evaluate_optimus(model, processor, sentences[: args.batch_size], progress=False, **common)
    per_batch = time.perf_counter() - started
    minutes = per_batch * math.ceil(len(sentences) / args.batch_size) / 60
    print(
        f"[evaluate] {len(sentences)} sentences x K = {args.num_importance_samples} importance samples on {device}: "
        f"about {minutes:.1f} min (one batch of {args.batch_size} took {per_batch:.1f} s)",
        flush=True,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import hf_dgm  # noqa: F401  (registers the Auto classes)
    from hf_dgm.models.optimus import OptimusForConditionalGeneration, OptimusProcessor
    from hf_dgm.training.optimus.evaluation import evaluate_optimus

    if args.task == "low-resource-classification":
        return low_resource.run(args)
    if args.dataset is None:
        raise ValueError("--dataset is required (a text file, folder, or Hub dataset of sentences)")
    device = _resolve_defaults(args)
    sentences = load_sentences(args.dataset, split=args.split, text_column=args.text_column, max_examples=args.max_examples)
    model = OptimusForConditionalGeneration.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    model.to(device)
    processor = getattr(model, "processor", None) or OptimusProcessor.from_pretrained(args.model)
    generation_kwargs = {}
    if args.max_new_tokens is not None:
        generation_kwargs["max_new_tokens"] = args.max_new_tokens
    if args.num_beams is not None:
        generation_kwargs["num_beams"] = args.num_beams
    common = dict(
        num_importance_samples=args.num_importance_samples, chunk_size=args.chunk_size, batch_size=args.batch_size,
        au_threshold=args.au_threshold, compute_bleu=not args.no_bleu, generation_kwargs=generation_kwargs,
        max_length=args.max_length, seed=args.seed,
    )
    if not args.quiet and len(sentences) > args.batch_size:
        _print_estimate(model, processor, sentences, args, device, common)
    metrics = evaluate_optimus(model, processor, sentences, progress=not args.quiet, **common)
    return {"model": str(args.model), "dataset": str(args.dataset), "split": args.split, **metrics}
