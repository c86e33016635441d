"""The publisher's inputs, checked before anything is assembled or pushed: the repo id, licence, revision and Space
id, the run folder (a saved model with safetensors weights, no pickles) and the Hub token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .card_checks import ModelCardError, check_card_value, check_license, check_repo_id, check_revision

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Folders of a run that the publisher reads from (besides the top level); pickles there are refused too.
_READ_SUBFOLDERS = ("decoder_tokenizer", "samples", "plots", "figures", "images")


class PublishError(ValueError):
    """The model folder cannot be published as asked (bad input, refused overwrite, missing token...)."""


def check_no_pickles(model_dir: Path) -> None:
    """Refuse a run folder holding pickle files where the publisher reads (top level, tokenizer/sample folders).

    hf_dgm never unpickles anything: pickles can run arbitrary code on load, and a repo holding them next to
    safetensors weights invites exactly that. Convert or delete them first.
    """
    found = []
    for folder in (model_dir, *(model_dir / sub for sub in _READ_SUBFOLDERS)):
        if folder.is_dir():
            found += [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES]
    if found:
        names = ", ".join(str(p.relative_to(model_dir)) for p in found)
        raise PublishError(
            f"{model_dir} holds pickle files ({names}); hf_dgm publishes safetensors only and never loads pickles. "
            "Re-save the model with `save_pretrained` (safetensors), convert original checkpoints with "
            "`python -m hf_dgm.convert`, and move or delete the pickles (Trainer's `training_args.bin` included: "
            "the recipe is read from `training_args.json` / `recipe.yaml`)."
        )


def has_safetensors(model_dir: Path) -> bool:
    """`model.safetensors` or its shard index is in `model_dir`."""
    return (model_dir / "model.safetensors").is_file() or (model_dir / "model.safetensors.index.json").is_file()


def read_model_type(model_dir: Path) -> str:
    """The `model_type` of `model_dir/config.json` (a PublishError when there is none)."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise PublishError(f"{model_dir} is not a saved model folder: no config.json")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if not model_type:
        raise PublishError(f"{config_path} has no `model_type`")
    return model_type


def check_publish_inputs(repo_id: Any, license: Any, revision: Any = None, space_id: Any = None) -> None:
    """Before anything else (dry runs too): the repo id passes huggingface_hub's validator, the license is one of
    the Hub's licence ids, the revision is a git ref name and the Space id a repo id."""
    try:
        check_repo_id(repo_id, "repo_id (--repo_id)")
        check_card_value(license, "license (--license)")
        check_license(license, "license (--license)")
        check_revision(revision, "revision (--revision)")
        if space_id is not None:
            check_repo_id(space_id, "space_id (--space_id)")
    except ModelCardError as err:
        raise PublishError(str(err)) from None


def resolve_token(token: str | None) -> str:
    """`token`, else `HF_TOKEN`, else the token stored by `hf auth login`."""
    from huggingface_hub import get_token

    resolved = token or get_token()
    if not resolved:
        raise PublishError(
            "no Hugging Face token: pass token=... (CLI: --token), set HF_TOKEN, or run `hf auth login`"
        )
    return resolved
