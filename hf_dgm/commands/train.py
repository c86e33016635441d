"""`hf-dgm train FAMILY --recipe FILE [--flag value ...]`: the family's trainer (`FamilySpec.trainer`) parses the
rest of the command line itself."""

from __future__ import annotations

import sys

from .utils import run_family_main


def main(argv: list[str] | None = None, prog: str = "hf-dgm train") -> int:
    return run_family_main("trainer", list(sys.argv[1:] if argv is None else argv), prog)
