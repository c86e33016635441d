"""Pushing a prepared folder: the remote's state, ONE commit retried on 5xx, and the rollback of an empty repo or
branch this run created when that commit fails; every failure ends in one `PublishError` line."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .publish_inputs import PublishError

logger = logging.getLogger(__name__)

# Remote files that a new upload makes stale and that could shadow the new weights or code: deleted in the same
# commit when the new folder does not hold them. Everything else already in the repo is left alone.
_STALE_PATTERNS = re.compile(r"(^|/)(model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json|[^/]+\.py)$")


def remote_state(api, repo_id: str, revision: str | None) -> tuple[bool, str | None, str | None, list[str]]:
    """(repo exists, head sha of the target revision or None if that branch is missing, the model_type of the
    config.json there (None if there is none), remote files). Network errors propagate: an unanswered check must
    not read as "no config.json" and allow an overwrite."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        api.model_info(repo_id)
    except RepositoryNotFoundError:
        return False, None, None, []
    target = revision or "main"
    try:
        sha = api.model_info(repo_id, revision=target).sha
    except RevisionNotFoundError:
        sha = None  # a new branch starts from main: check main's model type
    ref = sha or api.model_info(repo_id, revision="main").sha
    files = api.list_repo_files(repo_id, revision=ref)
    remote_type = None
    if "config.json" in files:
        with tempfile.TemporaryDirectory() as cache:
            path = api.hf_hub_download(repo_id, "config.json", revision=ref, cache_dir=cache)
            try:
                remote_type = json.loads(Path(path).read_text()).get("model_type")
            except json.JSONDecodeError:
                remote_type = "<unreadable config.json>"
    return True, sha, remote_type, files


COMMIT_ATTEMPTS = 4
COMMIT_BACKOFF_SECONDS = 2.0  # waits 2, 4, 8 s between attempts


def _commit_with_retries(api, repo_id: str, operations, **kwargs):
    """`api.create_commit`, retried with exponential backoff while the Hub answers 5xx (the commit did not land:
    `parent_commit` makes a retry of a commit that did land fail instead of duplicating it). After the last
    attempt, a `PublishError` with one line saying what the Hub answered."""
    import time

    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return api.create_commit(repo_id, operations, **kwargs)
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status is None or status < 500:
                raise
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            if attempt == COMMIT_ATTEMPTS:
                times = f" {COMMIT_ATTEMPTS} times" if COMMIT_ATTEMPTS > 1 else ""
                raise PublishError(
                    f"the Hub answered {status} to the commit to {repo_id}{times} ({first_line}); "
                    "try again later; nothing was committed"
                ) from None
            wait = COMMIT_BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning("commit to %s failed with %s (attempt %d/%d); retrying in %.1f s",
                           repo_id, status, attempt, COMMIT_ATTEMPTS, wait)
            time.sleep(wait)


def _one_line(err: BaseException) -> str:
    """What an upload error says, on one line: the HTTP status and the first line of the message."""
    from huggingface_hub.errors import HfHubHTTPError

    def first_line(e: BaseException) -> str:
        text = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
        return text if len(text) <= 300 else text[:297] + "..."

    text = first_line(err)
    if not isinstance(err, (HfHubHTTPError, PublishError)):
        text = f"{type(err).__name__}: {text}"
    cause, seen = err, set()
    while cause is not None and id(cause) not in seen:  # the Hub's answer behind a wrapper ("Error while uploading")
        seen.add(id(cause))
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(cause, HfHubHTTPError) and status is not None:
            if cause is not err:
                text += f" (HTTP {status}: {first_line(cause)})"
            elif str(status) not in text:
                text = f"HTTP {status}: {text}"
            break
        cause = cause.__cause__ or cause.__context__
    return text


def delete_command(repo_id: str, repo_type: str = "model", endpoint: str | None = None) -> str:
    """The `hf` command (huggingface_hub's CLI) that deletes `repo_id`."""

    prefix = f"HF_ENDPOINT={endpoint} " if endpoint and endpoint.rstrip("/") != "https://huggingface.co" else ""
    return f"{prefix}hf repos delete {repo_id} --repo-type {repo_type} --yes"


@dataclass
class CommitTarget:
    """Where `commit_new_or_existing` commits, and what it created on the way (what the rollback undoes)."""

    repo_id: str
    repo_type: str
    revision: str | None
    parent_sha: str | None
    created_repo: bool = False
    created_branch: bool = False

    @property
    def kind(self) -> str:
        return "Space" if self.repo_type == "space" else "repo"


def commit_new_or_existing(
    api, repo_id: str, operations, *, repo_type: str, exists: bool, parent_sha: str | None, private: bool = False,
    revision: str | None = None, create_pr: bool = False, space_sdk: str | None = None, **commit_kwargs,
):
    """Create the repo (when it does not exist) or the branch (when missing), then make ONE commit, retried on 5xx.

    Any failure ends in a one-line `PublishError` that says what failed and that nothing was committed. A repo or
    branch this call created and that still holds nothing of ours is deleted again (:func:`rollback`); if that is
    impossible, the error names it and the command that removes it. A process killed (`kill -9`) between the
    creation and the commit cannot clean up: the command was logged right before the creation, and publishing again
    commits into the empty repo."""
    target = CommitTarget(repo_id, repo_type, revision, parent_sha)
    try:
        _create_missing(api, target, exists=exists, private=private, create_pr=create_pr, space_sdk=space_sdk)
        return _commit_with_retries(
            api, repo_id, operations, revision=revision, create_pr=create_pr, parent_commit=target.parent_sha,
            repo_type=repo_type, **commit_kwargs,
        )
    except BaseException as err:
        # One commit: nothing of the upload landed. Undo the empty repo / branch this call created.
        leftover = rollback(api, target)
        if not isinstance(err, Exception):  # KeyboardInterrupt / SystemExit: stop, after cleaning up
            if leftover:
                logger.error("interrupted before the commit landed%s", leftover)
            raise
        raise _commit_error(err, target, len(operations), leftover) from None


def _create_missing(api, target: CommitTarget, *, exists: bool, private: bool, create_pr: bool,
                    space_sdk: str | None) -> None:
    """Create the repo (when it does not exist) or the branch (when missing); `target` records each creation as
    soon as it happened, and the parent commit the upload goes on top of."""
    from huggingface_hub.errors import HfHubHTTPError

    repo_id, repo_type, revision, kind = target.repo_id, target.repo_type, target.revision, target.kind
    if not exists:
        logger.info("creating the %s %s; if this process is killed before its first commit lands, remove the "
                    "empty %s with `%s` (or publish again into it)", kind, repo_id, kind,
                    delete_command(repo_id, repo_type, api.endpoint))
        try:
            api.create_repo(repo_id, private=private, exist_ok=False, repo_type=repo_type,
                            **({"space_sdk": space_sdk} if space_sdk else {}))
        except HfHubHTTPError as err:
            if err.response is not None and err.response.status_code == 409:
                raise PublishError(f"{repo_id} was created by someone else while publishing; run again") from None
            raise
        target.created_repo = True
        target.parent_sha = api.repo_info(repo_id, repo_type=repo_type).sha
    if revision is not None and target.parent_sha is None and create_pr:
        raise PublishError(f"cannot open a pull request against {revision!r}: no such branch in {repo_id}")
    if revision is not None and target.parent_sha is None:
        api.create_branch(repo_id, branch=revision, revision="main", exist_ok=False, repo_type=repo_type)
        target.created_branch = True
        target.parent_sha = api.repo_info(repo_id, revision=revision, repo_type=repo_type).sha


def rollback(api, target: CommitTarget) -> str:
    """Delete the empty repo / branch this run created, unless someone committed to it meanwhile. Returns what
    became of it, as the tail of the error message ("" when nothing was created)."""
    if not (target.created_repo or target.created_branch):
        return ""
    repo_id, repo_type, revision, kind = target.repo_id, target.repo_type, target.revision, target.kind
    what = f"{kind} {repo_id}" if target.created_repo else f"branch {revision!r} of {repo_id}"
    try:
        head = api.repo_info(repo_id, revision=revision if target.created_branch else "main", repo_type=repo_type).sha
        if head != target.parent_sha:
            return f"; the {what} this run created has commits from elsewhere and was kept"
        if target.created_repo:
            api.delete_repo(repo_id, repo_type=repo_type)
            return f"; the empty {kind} {repo_id} this run created was deleted again"
        api.delete_branch(repo_id, branch=revision, repo_type=repo_type)
        return f"; the branch {revision!r} this run created was deleted again"
    except Exception as cleanup_error:
        command = (delete_command(repo_id, repo_type, api.endpoint) if target.created_repo else
                   f"hf repos branch delete {repo_id} {revision} --repo-type {repo_type}")
        return (f"; the empty {what} this run created could not be deleted "
                f"({_one_line(cleanup_error)}): remove it with `{command}`")


def _commit_error(err: Exception, target: CommitTarget, num_files: int, leftover: str) -> PublishError:
    """The one-line error for a failed commit: what failed, that the remote is unchanged, and the rollback's
    outcome (`leftover`)."""
    repo_id, revision = target.repo_id, target.revision
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status == 412:
        return PublishError(
            f"{repo_id} changed while publishing (a commit landed on {revision or 'main'} after this run read it: "
            f"{_one_line(err)}); nothing was committed, the remote is unchanged. Run again to publish on top of "
            f"it{leftover}"
        )
    what_failed = (str(err) if isinstance(err, PublishError) else
                   f"uploading {num_files} files to the {target.kind} {repo_id} failed ({_one_line(err)})")
    if "nothing was committed" not in what_failed:
        what_failed += "; nothing was committed"
    return PublishError(f"{what_failed.rstrip('.')}, the remote is unchanged{leftover}")
