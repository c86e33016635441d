"""`python -m hf_dgm.convert FAMILY ...`: convert original research checkpoints into hf-dgm folders (safetensors).

The families with a converter are those whose `FamilySpec.converter` names a module (see `hf_dgm.registry`);
that module exposes `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import sys

from .utils import add_family_subcommands, run_family_subcommand, undash_flags


def main(argv: list[str] | None = None, prog: str = "hf-dgm convert") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_family_subcommands(parser, "converter")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(undash_flags(argv, parser))
    try:
        return int(run_family_subcommand(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # bad input: one line naming the file or flag, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
