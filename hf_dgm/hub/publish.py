"""Publish a trained hf-dgm model folder to the Hugging Face Hub as a self-contained, validated repo.

```python
from hf_dgm.hub import publish_model

result = publish_model("runs/optimus-snli", "ORG/optimus-snli")        # validate, then one atomic commit
publish_model("runs/optimus-snli", "ORG/optimus-snli", dry_run_dir="out/")  # the exact folder, nothing pushed
```

What a published repo holds (one commit, `create_commit`):
- `model.safetensors` (or `model-0000k-of-0000n.safetensors` + index above `max_shard_size`), written by
  `save_pretrained` (tied weights are declared by the model, so shared storage is saved once);
- `config.json` with `auto_map` (every Auto class `import hf_dgm` registered for the config) and
  `custom_pipelines` (every pipeline task registered from the family's package, `pt` = transformers Auto classes);
- the family's code, flat: configuration/modeling/processing/pipeline files and the shared modules they import,
  with package imports rewritten to sibling imports (`hf_dgm.hub.remote_code`);
- tokenizer / processor files (Optimus: encoder tokenizer at the root, decoder tokenizer in `decoder_tokenizer/`);
- `README.md`, the model card rendered from the family's template and the run folder's metrics and recipe;
- sample images and plots of the run (`images/`) and text samples (`samples/`).

Before anything is pushed, the folder is loaded with `trust_remote_code=True` in a fresh interpreter that cannot
import hf_dgm, and the family's probe (fixed input) must give the source model's outputs.

Faults: the repo id (huggingface_hub's validator), licence (the Hub's licence ids), revision and Space id are checked
before anything else (dry runs too). A new repo is created only after the folder is assembled and validated, right
before the commit; a commit answered with 5xx is retried with exponential backoff (`hf_dgm.hub.commit.COMMIT_ATTEMPTS`,
`COMMIT_BACKOFF_SECONDS`). Any upload failure ends in one `PublishError` line saying what failed and that the
remote is unchanged; an empty repo or branch this call created is deleted again, or, if that fails, named with the
command that removes it (`hf repos delete OWNER/NAME --repo-type model --yes`). A process killed (`kill -9`)
between the repo's creation and the end of the commit cannot clean up: that command is logged right before the
creation, and running the same publish again commits into the empty repo.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .code_discovery import discover_family_code
from .commit import _STALE_PATTERNS, commit_new_or_existing, remote_state
from .commit import _one_line, delete_command  # noqa: F401  (re-exported: hf_dgm.commands.publish uses _one_line)
from .publish_inputs import PublishError, check_no_pickles, check_publish_inputs, read_model_type, resolve_token
from .repo_folder import DEFAULT_MAX_SHARD_SIZE, PreparedRepo, prepare_repo_folder
from .repo_folder import write_endpoint_handler  # noqa: F401  (re-exported)
from .validation import ValidationReport, validate_repo_folder

logger = logging.getLogger(__name__)


@dataclass
class PublishResult:
    repo_id: str
    files: list[str]
    validation: ValidationReport | None
    dry_run: bool = False
    folder: Path | None = None  # the dry-run folder
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    revision: str | None = None
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PublishRequest:
    """What to publish and how: :func:`publish_model`'s arguments, in one object (documented there)."""

    model_dir: str | os.PathLike
    repo_id: str
    private: bool = False
    create_pr: bool = False
    revision: str | None = None
    commit_message: str | None = None
    commit_description: str | None = None
    token: str | None = None
    force: bool = False
    dry_run_dir: str | os.PathLike | None = None
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE
    license: str | None = None
    endpoint: str | None = None
    validate: bool = True
    space_id: str | None = None


@dataclass
class PublishTarget:
    """The remote side of a publish, resolved before the (slow) assembly: the Hub client, the full repo id, whether
    the repo exists, the head commit of the target branch (None if that branch is missing) and the files there."""

    api: Any
    repo_id: str
    exists: bool
    parent_sha: str | None
    remote_files: list[str]
    warnings: list[str] = field(default_factory=list)


def publish_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    token: str | None = None,
    force: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    license: str | None = None,
    endpoint: str | None = None,
    validate: bool = True,
    space_id: str | None = None,
) -> PublishResult:
    """Assemble, validate and push `model_dir` to `repo_id` in one atomic commit (the steps: :func:`publish`).

    Args:
        model_dir: a folder written by `save_pretrained` (plus the run's metrics/recipe/samples files).
        repo_id: `owner/name` (a bare name is put in the token owner's namespace).
        private: create the repo private (an existing repo keeps its visibility).
        create_pr: open a pull request instead of committing to the branch.
        revision: branch to commit to (created from `main` if missing); defaults to `main`.
        commit_message / commit_description: of the commit (defaults describe the upload and its validation).
        token: Hub token; defaults to `HF_TOKEN` or the stored login.
        force: overwrite a repo whose `config.json` has another `model_type`.
        dry_run_dir: write the exact repo folder there and push nothing (no token needed).
        max_shard_size: weights are sharded above this size (`save_pretrained`'s `max_shard_size`).
        license: card license (default: the run's `run_metadata.json`, else the family's).
        endpoint: Hub endpoint (defaults to `HF_ENDPOINT`).
        validate: load the folder through remote code without hf_dgm and compare outputs (keep it on).
        space_id: the model's Gradio Space (`upload/publish_space.py`), linked from the card.

    Raises:
        PublishError: bad input (pickles, no safetensors, unknown family), missing token, refused overwrite.
        ValidationError: the assembled repo does not reproduce the source model.
        PublishError: the upload failed (one line: what failed; the remote is left as it was, single commit).
    """
    return publish(PublishRequest(
        model_dir=model_dir, repo_id=repo_id, private=private, create_pr=create_pr, revision=revision,
        commit_message=commit_message, commit_description=commit_description, token=token, force=force,
        dry_run_dir=dry_run_dir, max_shard_size=max_shard_size, license=license, endpoint=endpoint,
        validate=validate, space_id=space_id,
    ))


def publish(request: PublishRequest) -> PublishResult:
    """resolve -> assemble and validate -> commit (with its own rollback, :func:`hf_dgm.hub.commit.rollback`); a
    dry run stops after the folder is assembled and validated."""
    check_publish_inputs(request.repo_id, request.license, request.revision, request.space_id)
    if request.dry_run_dir is not None:
        prepared = _prepare(request, request.dry_run_dir, request.repo_id)
        return PublishResult(repo_id=request.repo_id, files=prepared.files, validation=prepared.validation,
                             dry_run=True, folder=Path(request.dry_run_dir),
                             warnings=list(prepared.validation.warnings) if prepared.validation else [])
    target = resolve_target(request)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_publish_") as tmp:
        prepared = _prepare(request, Path(tmp) / "repo", target.repo_id)
        operations, stale = commit_operations(prepared, target.remote_files)
        message, description = _commit_texts(request, prepared)
        info = commit_new_or_existing(
            target.api, target.repo_id, operations, repo_type="model", exists=target.exists,
            parent_sha=target.parent_sha, private=request.private, revision=request.revision,
            create_pr=request.create_pr, commit_message=message, commit_description=description,
        )
    warnings = target.warnings + (prepared.validation.warnings if prepared.validation is not None else [])
    return PublishResult(
        repo_id=target.repo_id, files=prepared.files, validation=prepared.validation, commit_url=info.commit_url,
        commit_oid=info.oid, pr_url=info.pr_url, revision=info.pr_revision or request.revision or "main",
        deleted=stale, warnings=warnings,
    )


def resolve_target(request: PublishRequest) -> PublishTarget:
    """The token, the full repo id (a bare name goes to the token owner's namespace) and the remote's state; fails
    fast, before the assembly, when the target holds another kind of model (unless `force`)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=request.endpoint, token=resolve_token(request.token))
    repo_id = request.repo_id
    if "/" not in repo_id:
        repo_id = f"{api.whoami()['name']}/{repo_id}"
    model_type = read_model_type(Path(request.model_dir))
    exists, parent_sha, remote_type, remote_files = remote_state(api, repo_id, request.revision)
    if remote_type is not None and remote_type != model_type and not request.force:
        raise PublishError(
            f"{repo_id} holds a {remote_type!r} model (config.json) and this is a {model_type!r} model; "
            "refusing to overwrite it (pass force=True / --force to replace it)"
        )
    target = PublishTarget(api=api, repo_id=repo_id, exists=exists, parent_sha=parent_sha, remote_files=remote_files)
    if exists and request.private and not api.model_info(repo_id).private:
        target.warnings.append(f"{repo_id} already exists and is public; --private only applies to new repos")
        logger.warning(target.warnings[-1])
    return target


def _prepare(request: PublishRequest, folder: str | os.PathLike, repo_id: str) -> PreparedRepo:
    """Assemble the repo folder and (unless `validate=False`) validate it: :func:`prepare_repo_folder`."""
    return prepare_repo_folder(request.model_dir, folder, repo_id, max_shard_size=request.max_shard_size,
                               license=request.license, validate=request.validate, space_id=request.space_id)


def commit_operations(prepared: PreparedRepo, remote_files: list[str]) -> tuple[list, list[str]]:
    """The commit's operations: add every file of the folder, delete the remote files it makes stale (old weight
    shards and code files it no longer holds). Returns (operations, the deleted paths)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    folder = prepared.folder
    additions = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in prepared.files]
    stale = sorted(f for f in remote_files if f not in prepared.files and _STALE_PATTERNS.search(f))
    return additions + [CommitOperationDelete(path_in_repo=f) for f in stale], stale


def _commit_texts(request: PublishRequest, prepared: PreparedRepo) -> tuple[str, str | None]:
    """The commit message and description: the request's, else ones that describe the upload and its validation."""
    import hf_dgm

    message, description = request.commit_message, request.commit_description
    if message is None:
        message = f"Upload {prepared.model_type} model ({Path(request.model_dir).name}) with hf_dgm {hf_dgm.__version__}"
    if description is None and prepared.validation is not None:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in prepared.validation.max_abs_diff.items())
        description = (
            "Validated before upload: loaded with trust_remote_code=True in an interpreter without hf_dgm; "
            f"max |difference| from the source model: {diffs}."
        )
    return message, description


__all__ = [
    "publish_model",
    "publish",
    "PublishRequest",
    "PublishTarget",
    "resolve_target",
    "commit_operations",
    "prepare_repo_folder",
    "validate_repo_folder",
    "discover_family_code",
    "check_no_pickles",
    "resolve_token",
    "PublishError",
    "PublishResult",
    "PreparedRepo",
    "DEFAULT_MAX_SHARD_SIZE",
]
