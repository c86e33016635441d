"""Labelled sentences for Optimus-CARA and their posterior means under the frozen Optimus VAE.

Labelled data come as one text file per label (one sentence a line), e.g. the Yelp sentiment files
`sentiment.{split}.0` (negative) and `sentiment.{split}.1` (positive): `label_files(yelp_dir, "test")`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import torch

from ..optimus.data import check_text_file


def label_files(data_dir: str | Path, split: str, num_labels: int = 2, prefix: str = "sentiment") -> list[str]:
    """`[data_dir/prefix.split.0, ..., data_dir/prefix.split.(num_labels-1)]` (the Yelp layout); each must exist."""
    files = [Path(data_dir) / f"{prefix}.{split}.{label}" for label in range(num_labels)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"missing labelled sentence files: {missing}")
    return [str(f) for f in files]


def read_labelled_sentences(
    files: Sequence[str | Path], max_per_label: int | None = None, seed: int = 0
) -> tuple[list[str], list[int]]:
    """
    Sentences and labels from one file per label (file i holds label i). With `max_per_label`, a seeded random
    subset of each file (without replacement). The result is shuffled with `seed`. Blank lines are dropped.
    """
    if not files:
        raise ValueError("pass one sentence file per label")
    rows: list[tuple[str, int]] = []
    rng = random.Random(seed)
    for label, path in enumerate(files):
        if not Path(path).is_file():
            raise ValueError(f"labelled sentence file {path} does not exist")
        check_text_file(path, f"label {label} file")
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        if max_per_label is not None and len(lines) > max_per_label:
            lines = rng.sample(lines, max_per_label)
        rows += [(line, label) for line in lines]
    rng.shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows]


@torch.no_grad()
def posterior_means(
    optimus, processor, sentences: Sequence[str], batch_size: int = 64, max_length: int = 40, progress: bool = True
) -> torch.Tensor:
    """μ(x) of every sentence under the Optimus encoder: `(len(sentences), latent_size)`, float32 on the CPU."""
    from tqdm.auto import tqdm

    optimus.eval()
    out = []
    starts = range(0, len(sentences), batch_size)
    for start in tqdm(starts, desc="posterior means", disable=not progress):
        batch = processor(list(sentences[start : start + batch_size]), max_length=max_length, return_tensors="pt")
        mean = optimus.encode(batch["input_ids"].to(optimus.device), batch["attention_mask"].to(optimus.device)).mean
        out.append(mean.float().cpu())
    return torch.cat(out)


def write_mixed_sentences(files: Sequence[str | Path], out: str | Path, seed: int = 0) -> int:
    """Every sentence of the per-label files, shuffled with `seed`, one a line in `out` (the unlabelled training file
    of the Optimus VAE underneath). Returns the number of sentences."""
    sentences, _ = read_labelled_sentences(files, None, seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return len(sentences)


def main(argv: list[str] | None = None) -> int:
    """`python -m hf_dgm.training.optimus_cara.data --files F0 F1 --out mixed.txt [--seed 0]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hf_dgm.training.optimus_cara.data",
                                     description="Write the shuffled union of per-label sentence files (VAE training text).")
    parser.add_argument("--files", nargs="+", required=True, help="one sentence file per label")
    parser.add_argument("--out", required=True, help="output text file")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    args = parser.parse_args(argv)
    print(f"{write_mixed_sentences(args.files, args.out, args.seed)} sentences -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["label_files", "read_labelled_sentences", "posterior_means", "write_mixed_sentences"]
