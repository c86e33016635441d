"""`python -m hf_dgm.evaluate FAMILY MODEL_DIR ...`: alias of `hf-dgm evaluate` (`hf_dgm.commands.evaluate`), and
`load_sentences`, the sentences an evaluator scores (a text file, a data file, a folder or a Hub dataset)."""

from __future__ import annotations

import sys
from pathlib import Path

from .commands.evaluate import NON_FAMILY_EVALUATORS, format_table  # noqa: F401 (public names)
from .commands.evaluate import main as _evaluate_main


TEXT_SUFFIXES = {"", ".txt", ".text", ".tok"}
DATASET_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def _read_lines(path: Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file; `ValueError` naming the file if it is binary or not UTF-8."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise ValueError(f"{path} is a binary file (it holds NUL bytes); pass a UTF-8 text file, one sentence a line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); pass a UTF-8 text file") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


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


def main(argv: list[str] | None = None, prog: str = "python -m hf_dgm.evaluate") -> int:
    """`hf-dgm evaluate`, named `python -m hf_dgm.evaluate`."""
    return _evaluate_main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
