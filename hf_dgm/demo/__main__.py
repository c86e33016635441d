"""`python -m hf_dgm.demo MODEL_DIR_OR_REPO [--revision R] [--host H] [--port P]`: the local gallery.

Opens the family's Gradio app for any saved model folder (offline) or Hub repo, chosen by its `model_type`
(`hf_dgm.commands.demo.gallery_main`; `hf-dgm demo FAMILY ...` names the family instead).
"""

from __future__ import annotations

from ..commands.demo import gallery_main


def main(argv: list[str] | None = None) -> None:
    gallery_main(argv, prog="python -m hf_dgm.demo")


if __name__ == "__main__":
    main()
