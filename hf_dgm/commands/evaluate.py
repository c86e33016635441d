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

from .utils import add_family_subcommands, run_family_subcommand, undash_flags


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


def main(argv: list[str] | None = None, prog: str = "hf-dgm evaluate") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_family_subcommands(parser, "evaluator", extra=NON_FAMILY_EVALUATORS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(undash_flags(argv, parser))
    try:
        metrics = run_family_subcommand(args)
    except (ValueError, OSError) as err:  # bad input (names the file or argument): one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(metrics))
    if getattr(args, "output", None):  # evaluators that write JSON declare --output
        out = Path(args.output)
        if out.parent and not out.parent.exists():
            os.makedirs(out.parent, exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, ensure_ascii=False)
        print(f"metrics written to {out}")
    return 0

