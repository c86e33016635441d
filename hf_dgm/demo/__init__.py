"""Gradio demos of the hf-dgm families: one app module per family, one way to open any saved model.

    python -m hf_dgm.demo MODEL_DIR_OR_REPO [--revision SHA] [--port 7860]     # the local gallery, offline

The app for a model comes from its `model_type` (see `app_builder`); `upload/publish_space.py` copies the same
modules into a Hugging Face Space next to the published model. The app modules (`common.py` and one per family)
import nothing else from hf_dgm, so they run unchanged in a Space where the model loads through remote code.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


# model_type -> "module:function" building the family's `gr.Blocks`. Replaced by the family registry's `demo`
# field once the registry lands (each family declares its app builder there).
APP_BUILDERS: dict[str, str] = {
    "optimus": "hf_dgm.demo.optimus:build_demo",
    "fq_biggan": "hf_dgm.demo.fq_biggan:build_demo",
}


def app_builder_path(model_type: str) -> str:
    """The dotted path `module:function` of the app builder for `model_type`."""
    if model_type not in APP_BUILDERS:
        raise ValueError(f"no demo app for model_type {model_type!r}; families with an app: {sorted(APP_BUILDERS)}")
    return APP_BUILDERS[model_type]


def app_builder(model_type: str) -> Callable[..., Any]:
    module, _, name = app_builder_path(model_type).partition(":")
    return getattr(importlib.import_module(module), name)


def build_demo(model, revision: str | None = None, device: Any = None):
    """The Gradio app (`gr.Blocks`, not launched) for a saved folder or Hub repo, chosen by its model_type."""
    from .common import read_model_type

    return app_builder(read_model_type(model, revision))(model, revision=revision, device=device)


__all__ = ["APP_BUILDERS", "app_builder", "app_builder_path", "build_demo"]
