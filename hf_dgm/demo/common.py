"""What every family's Gradio app shares: loading pipelines, readable errors, and the command line.

Self-contained on purpose: this file and the family app modules next to it import only gradio, transformers,
torch, numpy and PIL (never the rest of hf_dgm), so the Space publisher copies them unchanged into a Space, where
the model loads through its remote code (`trust_remote_code=True`). Where hf_dgm is installed, it is imported
first, so a saved model folder without remote code (a training run's output) loads too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable


logger = logging.getLogger("hf_dgm.demo")

ERROR_PREFIX = "⚠️ "


def register_local_families() -> bool:
    """Import hf_dgm when it is installed (registers its models and tasks locally); True if it was."""
    try:
        importlib.import_module("hf_dgm")
    except ImportError:
        return False
    return True


def check_local_model_folder(ref: Any, what: str = "model") -> None:
    """Before any Hub lookup: a reference meant as a local path must be an existing folder holding config.json
    ("no such folder: ..." instead of transformers' repo-id message). Hub ids (`name`, `owner/name`) pass. (Here, not
    in hf_dgm.modules, because this file must run in a Space without hf_dgm.)"""
    if not isinstance(ref, (str, os.PathLike)):
        return
    ref = os.fspath(ref)
    if os.path.isdir(ref):
        if not os.path.isfile(os.path.join(ref, "config.json")):
            raise ValueError(
                f"{what}: {ref} holds no config.json: it is not a folder written by `save_pretrained` (for an original "
                "checkpoint, convert it first with `hf-dgm convert`)"
            )
        return
    if os.path.exists(ref):
        raise ValueError(f"{what}: {ref} is a file; pass the folder written by `save_pretrained` (or a Hub repo id)")
    looks_local = (ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or os.path.isabs(ref)
                   or "\\" in ref)
    if looks_local or not _is_repo_id(ref):
        raise ValueError(f"{what}: no such folder: {ref} (pass a folder written by `save_pretrained`, or a Hub repo id "
                         "`owner/name`)")


def _is_repo_id(ref: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def load_pipeline(task: str, model: str | os.PathLike, revision: str | None = None, device: Any = None,
                  **pipeline_kwargs):
    """`pipeline(task, model=model, trust_remote_code=True, revision=revision, **pipeline_kwargs)`.

    `revision` pins the Hub commit the app was published against (ignored by transformers for local folders);
    `pipeline_kwargs` go to the pipeline class (e.g. `connectivity=` of vln-navigation).
    """
    from transformers import pipeline

    check_local_model_folder(model, "model")  # "no such folder" before transformers' repo-id message
    register_local_families()
    kwargs: dict[str, Any] = {"trust_remote_code": True}
    if revision:
        kwargs["revision"] = revision
    if device is not None:
        kwargs["device"] = device
    return pipeline(task, model=str(model), **kwargs, **pipeline_kwargs)


def sibling_pipeline(first, task: str, **init_kwargs):
    """Another task's pipeline over the model `first` already loaded (no second copy of the weights).

    The class comes from the same place `first`'s did: the repo's remote code (`config.custom_pipelines`, a
    module next to `first`'s) or transformers' pipeline registry (installed hf_dgm).
    """
    custom = getattr(first.model.config, "custom_pipelines", None) or {}
    module = type(first).__module__
    if task in custom and module.startswith("transformers_modules"):
        module_name, class_name = custom[task]["impl"].rsplit(".", 1)
        package = module.rsplit(".", 1)[0]
        cls = getattr(importlib.import_module(f"{package}.{module_name}"), class_name)
    else:
        from transformers.pipelines import PIPELINE_REGISTRY

        if task not in PIPELINE_REGISTRY.supported_tasks:
            raise ValueError(f"no pipeline is registered for the task {task!r}")
        cls = PIPELINE_REGISTRY.supported_tasks[task]["impl"]
    return cls(model=first.model, task=task, device=first.device, **init_kwargs)


def read_model_type(model: str | os.PathLike, revision: str | None = None) -> str:
    """`model_type` from the config.json of a local folder or a Hub repo."""
    check_local_model_folder(model, "model")
    path = Path(model)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise ValueError(f"{path} is not a saved model folder: it has no config.json")
    else:
        from huggingface_hub import hf_hub_download

        config_path = Path(hf_hub_download(str(model), "config.json", revision=revision))
    model_type = json.loads(config_path.read_text()).get("model_type")
    if not model_type:
        raise ValueError(f"{config_path} names no model_type")
    return model_type


def model_title(model: str | os.PathLike, revision: str | None) -> str:
    name = Path(str(model)).name if Path(str(model)).is_dir() else str(model)
    pinned = f" @ `{revision[:12]}`" if revision else ""
    return f"`{name}`{pinned}"


def error_message(err: BaseException) -> str:
    """One readable line for the page; the traceback goes to the server log only."""
    if isinstance(err, (ValueError, TypeError, KeyError)):
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return f"{ERROR_PREFIX}{text}"
    return f"{ERROR_PREFIX}{type(err).__name__}: {err}"


def guarded(fn: Callable[..., tuple], empty: tuple) -> Callable[..., tuple]:
    """Wrap an event handler returning `(*outputs, status)`: any exception becomes `(*empty, message)`.

    Bad input (the pipelines raise `ValueError` with a sentence saying what is wrong) shows as that sentence in
    the page's message box; nothing of a stack trace reaches the page.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as err:  # bad input: the message says what is wrong
            logger.warning("demo request refused: %s", err)
            return (*empty, error_message(err))
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            logger.error("demo request failed:\n%s", traceback.format_exc())
            return (*empty, error_message(err))

    return wrapper


def parse_seed(value: Any) -> int | None:
    """The seed box: empty → None (random), else a non-negative int."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seed = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the seed must be a whole number ≥ 0 (or empty for a random one); got {value!r}") from None
    if seed != int(seed) or seed < 0:
        raise ValueError(f"the seed must be a whole number ≥ 0 (or empty for a random one); got {value!r}")
    return int(seed)


def build_arg_parser(prog: str, default_model: str | None = None, default_revision: str | None = None):
    parser = argparse.ArgumentParser(prog=prog, description="Serve an hf-dgm model's Gradio demo.")
    parser.add_argument("model", nargs="?" if default_model else None, default=default_model,
                        help="a saved model folder or a Hub repo id" + (f" (default: {default_model})" if default_model else ""))
    parser.add_argument("--revision", default=None,
                        help="Hub commit / branch to load" + (f" (default for {default_model}: {default_revision})" if default_revision else ""))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--device", default=None, help="torch device for the model (default: the pipeline's choice)")
    return parser


def launch(demo, host: str, port: int, **kwargs):
    """Start the server (queue on, so `gr.Progress` updates stream to the page)."""
    demo.queue(default_concurrency_limit=1)
    return demo.launch(server_name=host, server_port=port, show_error=False, **kwargs)


def run_app(build_demo: Callable[..., Any], argv: list[str] | None = None, *, prog: str = "app.py",
         default_model: str | None = None, default_revision: str | None = None) -> None:
    """Command line of an app: `app.py [MODEL] [--revision R] [--host H] [--port P]`."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_arg_parser(prog, default_model, default_revision).parse_args(argv)
    revision = args.revision
    if revision is None and args.model == default_model:
        revision = default_revision
    if args.model is None:
        sys.exit(f"{prog}: give a saved model folder or a Hub repo id")
    try:
        demo = build_demo(args.model, revision=revision, device=args.device)
    except ValueError as err:  # a missing folder, a folder without config.json, a wrong model type: one line
        sys.exit(f"{prog}: error: {err}")
    launch(demo, args.host, args.port)


__all__ = [
    "ERROR_PREFIX", "build_arg_parser", "error_message", "guarded", "launch", "load_pipeline", "run_app",
    "model_title", "parse_seed", "read_model_type", "register_local_families", "sibling_pipeline",
]
