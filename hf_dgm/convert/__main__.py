"""`python -m hf_dgm.convert FAMILY ...`: alias of `hf-dgm convert` (`hf_dgm.commands.convert`)."""

from __future__ import annotations

import sys

from ..commands.convert import main as _convert_main


def main(argv: list[str] | None = None, prog: str = "python -m hf_dgm.convert") -> int:
    """`hf-dgm convert`, named `python -m hf_dgm.convert`."""
    return _convert_main(argv, prog=prog)


if __name__ == "__main__":
    sys.exit(main())
