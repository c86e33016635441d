"""`hf-dgm demo FAMILY MODEL_DIR_OR_REPO ...`: the family's Gradio app (`FamilySpec.demo`), which parses the rest of
the command line itself. (`python -m hf_dgm.demo MODEL_DIR_OR_REPO` is the gallery: it picks the family from the
model's `model_type`.)"""

from __future__ import annotations

import sys

from .utils import run_family_main


def main(argv: list[str] | None = None, prog: str = "hf-dgm demo") -> int:
    return run_family_main("demo", list(sys.argv[1:] if argv is None else argv), prog)


def gallery_main(argv: list[str] | None = None, prog: str = "python -m hf_dgm.demo") -> None:
    """`python -m hf_dgm.demo MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`: the local gallery, which opens
    the family's app for any saved model folder (offline) or Hub repo, chosen by its `model_type`."""
    from ..demo import build_demo
    from ..demo.common import run_app

    run_app(build_demo, argv, prog=prog)
