"""Gradio demos of the hf-dgm families: what the apps share (`common.py`) and one way to open any saved model.

    python -m hf_dgm.demo MODEL_DIR_OR_REPO [--revision SHA] [--port 7860]     # the local gallery, offline

A family's app module lives in its model folder (`hf_dgm/models/<family>/demo_<family>.py`), is named by its registry
entry (`FamilySpec.demo`) and exposes `build_demo(model, revision=None, device=None) -> gr.Blocks` and `main(argv)` (`hf-dgm demo FAMILY MODEL`);
the module for a model is chosen by its `model_type`.
`upload/publish_space.py` copies `common.py` and the family's module into a Hugging Face Space next to the published
model: they import nothing else from hf_dgm (the family module's `...demo.common` becomes `.common`), so they run in a
Space where the model loads through its remote code.
"""

from __future__ import annotations

from typing import Any, Callable


def demo_modules() -> dict[str, str]:
    """model_type -> dotted app module, for every registered family that declares a demo (`FamilySpec.demo`)."""
    from ..registry import families

    return {name: spec.demo for name, spec in families().items() if spec.demo}


def demo_module(model_type: str) -> str:
    """The dotted path of the app module for `model_type`."""
    modules = demo_modules()
    if model_type not in modules:
        raise ValueError(f"no demo app for model_type {model_type!r}; families with an app: {sorted(modules)}")
    return modules[model_type]


def app_builder(model_type: str) -> Callable[..., Any]:
    """The family's `build_demo(model, revision=None, device=None)`."""
    from ..registry import load_entry_point

    return load_entry_point(demo_module(model_type)).build_demo


def build_demo(model, revision: str | None = None, device: Any = None):
    """The Gradio app (`gr.Blocks`, not launched) for a saved folder or Hub repo, chosen by its model_type."""
    from .common import read_model_type

    return app_builder(read_model_type(model, revision))(model, revision=revision, device=device)


__all__ = ["app_builder", "build_demo", "demo_module", "demo_modules"]
