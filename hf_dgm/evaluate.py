"""`python -m hf_dgm.evaluate FAMILY MODEL_DIR ...`: evaluate a saved hf-dgm model and write its metrics as JSON.

Families:
  optimus   IW-NLL, PPL per token and per word, −ELBO, KL, MI, AU, reconstruction BLEU (the paper's protocol).
  vln       R2R trajectories (submission JSON): TL, NE, SR, OSR, SPL, nDTW, SDTW
            (python -m hf_dgm.evaluate vln --predictions preds.json --split val_seen --data ../shared/data/r2r).

Example:
  python -m hf_dgm.evaluate optimus ./optimus-ptb --dataset ../shared/data/ptb --split test \
      --max_examples 500 --num_importance_samples 100 --output metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


TEXT_SUFFIXES = {"", ".txt", ".text", ".tok"}
DATASET_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _column(dataset, text_column: str | None, source: str) -> list[str]:
    columns = list(dataset.column_names)
    if text_column is None:
        for candidate in ("text", "sentence", "sentence1", "premise"):
            if candidate in columns:
                text_column = candidate
                break
        else:
            string_columns = [c for c, f in dataset.features.items() if getattr(f, "dtype", None) == "string"]
            if len(string_columns) != 1:
                raise ValueError(f"{source}: cannot guess the text column among {columns}; pass --text_column")
            text_column = string_columns[0]
    if text_column not in columns:
        raise ValueError(f"{source}: no column {text_column!r}; columns are {columns}")
    return [str(t).strip() for t in dataset[text_column] if t is not None and str(t).strip()]


def load_sentences(
    dataset: str, split: str = "test", text_column: str | None = None, max_examples: int | None = None
) -> list[str]:
    """
    Sentences to evaluate on, from:
    - a text file (one sentence per line; `.txt` or no suffix), or a `.json`/`.jsonl`/`.csv`/`.tsv`/`.parquet` file;
    - a folder holding `{split}.txt` (e.g. the PTB / SNLI sentence files), or data files `datasets` can load;
    - a Hub dataset name (`datasets.load_dataset(name, split=split)`), with `text_column`.
    The first `max_examples` non-empty sentences are kept.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"--max_examples must be a positive int; got {max_examples}")
    path = Path(dataset)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in DATASET_SUFFIXES:
            import datasets

            kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
            data = datasets.load_dataset(DATASET_SUFFIXES[suffix], data_files=str(path), split="train", **kwargs)
            sentences = _column(data, text_column, str(path))
        elif suffix in TEXT_SUFFIXES:
            sentences = _read_lines(path)
        else:
            raise ValueError(f"unsupported file type {suffix!r}: use a text file (one sentence per line), json, csv or parquet")
    elif path.is_dir():
        text_file = path / f"{split}.txt"
        if text_file.is_file():
            sentences = _read_lines(text_file)
        else:
            import datasets

            data = datasets.load_dataset(str(path), split=split)
            sentences = _column(data, text_column, str(path))
    else:
        import datasets

        data = datasets.load_dataset(dataset, split=split)
        sentences = _column(data, text_column, dataset)
    if not sentences:
        raise ValueError(f"no sentences found in {dataset!r} (split {split!r})")
    return sentences[:max_examples] if max_examples is not None else sentences


def format_table(metrics: dict[str, Any]) -> str:
    """Scalar metrics as a two-column text table."""
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) or v is None]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric'.ljust(width)}  value", f"{'-' * width}  {'-' * 12}"]
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ optimus
def add_optimus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="folder (or Hub id) of an hf-dgm Optimus model with its tokenizers")
    parser.add_argument("--dataset", required=True, help="text file (one sentence per line), folder, or Hub dataset name")
    parser.add_argument("--split", default="test", help="split of a folder ({split}.txt) or Hub dataset (default: test)")
    parser.add_argument("--text_column", default=None, help="column holding the sentences (json/csv/Hub datasets)")
    parser.add_argument("--max_examples", type=int, default=None, help="evaluate the first N sentences only")
    parser.add_argument("--num_importance_samples", type=int, default=100, help="K of the IW estimate (default 100)")
    parser.add_argument("--chunk_size", type=int, default=5, help="importance samples decoded together (default 5)")
    parser.add_argument("--batch_size", type=int, default=8, help="sentences per batch (default 8)")
    parser.add_argument("--au_threshold", type=float, default=0.01, help="active-unit threshold δ (default 0.01)")
    parser.add_argument("--max_length", type=int, default=128, help="max tokens per sentence (default 128)")
    parser.add_argument("--no_bleu", action="store_true", help="skip the reconstruction BLEU (no generation)")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="generation cap of the reconstructions")
    parser.add_argument("--num_beams", type=int, default=None, help="beam size of the reconstructions (default greedy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--output", default=None, help="write the metrics JSON here (default: print only)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_optimus(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import hf_dgm  # noqa: F401  (registers the Auto classes)
    from hf_dgm.models.optimus import OptimusForConditionalGeneration, OptimusProcessor
    from hf_dgm.training.optimus.evaluation import evaluate_optimus

    sentences = load_sentences(args.dataset, split=args.split, text_column=args.text_column, max_examples=args.max_examples)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = OptimusForConditionalGeneration.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    model.to(device)
    processor = getattr(model, "processor", None) or OptimusProcessor.from_pretrained(args.model)
    generation_kwargs = {}
    if args.max_new_tokens is not None:
        generation_kwargs["max_new_tokens"] = args.max_new_tokens
    if args.num_beams is not None:
        generation_kwargs["num_beams"] = args.num_beams
    metrics = evaluate_optimus(
        model,
        processor,
        sentences,
        num_importance_samples=args.num_importance_samples,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        au_threshold=args.au_threshold,
        compute_bleu=not args.no_bleu,
        generation_kwargs=generation_kwargs,
        progress=not args.quiet,
        max_length=args.max_length,
        seed=args.seed,
    )
    metrics = {
        "model": str(args.model),
        "dataset": str(args.dataset),
        "split": args.split,
        **metrics,
    }
    return metrics


# ---------------------------------------------------------------------------------------------------------- vln
def add_vln_arguments(parser: argparse.ArgumentParser) -> None:
    from hf_dgm.vln.evaluation import add_arguments

    add_arguments(parser)


def run_vln(args: argparse.Namespace) -> dict[str, Any]:
    from hf_dgm.vln.evaluation import run

    return run(args)


FAMILIES = {"optimus": (add_optimus_arguments, run_optimus), "vln": (add_vln_arguments, run_vln)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hf_dgm.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="family", required=True)
    for family, (add_arguments, _) in FAMILIES.items():
        add_arguments(sub.add_parser(family, help=f"evaluate an hf-dgm {family} model"))
    args = parser.parse_args(argv)
    metrics = FAMILIES[args.family][1](args)
    print(format_table(metrics))
    if args.output:
        out = Path(args.output)
        if out.parent and not out.parent.exists():
            os.makedirs(out.parent, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, ensure_ascii=False)
        print(f"metrics written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
