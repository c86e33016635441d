"""`python -m hf_dgm.demo MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`: the local gallery.

Opens the family's Gradio app for any saved model folder (offline) or Hub repo, chosen by its `model_type`.
"""

from __future__ import annotations

from . import build_demo
from .common import run_app


def main(argv: list[str] | None = None) -> None:
    run_app(build_demo, argv, prog="python -m hf_dgm.demo")


if __name__ == "__main__":
    main()
