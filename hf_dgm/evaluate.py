"""`python -m hf_dgm.evaluate FAMILY MODEL_DIR ...`: evaluate a saved hf-dgm model and write its metrics as JSON.

The families with an evaluator are those whose `FamilySpec.evaluator` names a module (`hf_dgm.registry`); that
module exposes `add_arguments(parser)` and `run(args)`, which returns the metrics dict. Optimus: IW-NLL, PPL per
token and per word, -ELBO, KL, MI, AU, reconstruction BLEU (the paper's protocol).

Evaluators that are not a model family (`NON_FAMILY_EVALUATORS`): `vln` scores R2R trajectories (the leaderboard's
submission JSON) with TL, NE, SR, OSR, SPL, nDTW, SDTW:
  python -m hf_dgm.evaluate vln --predictions preds.json --split val_seen --data ../shared/data/r2r

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


# subcommand -> dotted module with add_arguments(parser) / run(args), for evaluators that are not a model family
NON_FAMILY_EVALUATORS = {"vln": "hf_dgm.vln.evaluation"}


def main(argv: list[str] | None = None, prog: str = "python -m hf_dgm.evaluate") -> int:
    from .cli import add_family_subcommands, run_family_subcommand, undash_flags

    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_family_subcommands(parser, "evaluator", extra=NON_FAMILY_EVALUATORS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(undash_flags(argv, parser))
    metrics = run_family_subcommand(args)
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
