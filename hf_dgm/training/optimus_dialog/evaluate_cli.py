"""Optimus dialog responses: BLEU recall / precision / F1 over several sampled responses per context, intra/inter
distinct-1/2, average length, and the reference's NLL from the context's posterior mean (the original protocol:
10 responses per context, nucleus sampling top-p 0.9; see `hf_dgm.training.optimus_dialog.evaluation`).

    hf-dgm evaluate optimus_dialog ./optimus-dialog --dataset daily_dialog --split test --output metrics.json
    hf-dgm evaluate optimus_dialog ./optimus-dialog --data_file test.txt      # the original's context<TAB>response file
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="folder (or Hub id) of an hf-dgm optimus_dialog model with its tokenizers")
    parser.add_argument("--dataset", default=None, help="Hub dialog dataset, one dialog per row (e.g. daily_dialog)")
    parser.add_argument("--dataset_config", default=None, help="Hub dataset config")
    parser.add_argument("--split", default="test", help="split of --dataset (default: test)")
    parser.add_argument("--dialog_column", default="dialog", help="column holding a dialog's turns (default: dialog)")
    parser.add_argument("--data_file", default=None, help="local .jsonl/.json dialogs or the original's .txt pairs")
    parser.add_argument("--max_contexts", type=int, default=200, help="distinct test contexts scored (default 200)")
    parser.add_argument("--num_responses", type=int, default=10, help="responses per context (default 10, original)")
    parser.add_argument("--top_p", type=float, default=0.9, help="nucleus sampling (default 0.9, original)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--max_new_tokens", type=int, default=40, help="cap on a response's tokens (default 40)")
    parser.add_argument("--max_length", type=int, default=64, help="max tokens of a reference response (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--output", default=None, help="write the metrics JSON here (default: print only)")
    parser.add_argument("--generations", default=None, help="write context<TAB>reference<TAB>response lines here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import hf_dgm  # noqa: F401  (registers the Auto classes)
    from hf_dgm.models.optimus.processing_optimus import OptimusProcessor
    from hf_dgm.models.optimus_dialog.modeling_optimus_dialog import OptimusForDialogResponse

    from .data import load_dialog_pairs
    from .evaluation import evaluate_dialog, write_generations

    if args.dataset is None and args.data_file is None:
        raise ValueError("give --dataset (a Hub dialog dataset) or --data_file")
    for name in ("max_contexts", "num_responses", "max_new_tokens", "max_length"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1; got {getattr(args, name)}")
    pairs = load_dialog_pairs(args.dataset, args.dataset_config, split=args.split, dialog_column=args.dialog_column,
                              data_file=args.data_file)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = OptimusForDialogResponse.from_pretrained(args.model).to(device)
    processor = model.processor or OptimusProcessor.from_pretrained(args.model)
    metrics, generations = evaluate_dialog(
        model, processor, pairs, num_responses=args.num_responses, max_contexts=args.max_contexts, seed=args.seed,
        max_length=args.max_length, top_p=args.top_p, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
    )
    metrics.update({"dataset": args.dataset or Path(args.data_file).name, "split": args.split if args.dataset else None})
    if args.generations:
        write_generations(generations, args.generations)
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return metrics
