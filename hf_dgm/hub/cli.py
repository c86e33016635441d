"""`python -m hf_dgm.hub MODEL_DIR --repo_id ORG/NAME ...`: alias of `hf-dgm publish` (`hf_dgm.commands.publish`)."""

from __future__ import annotations

from ..commands.publish import main as _publish_main


def main(argv: list[str] | None = None, prog: str = "python -m hf_dgm.hub") -> int:
    """`hf-dgm publish`, named `python -m hf_dgm.hub`."""
    return _publish_main(argv, prog=prog)
