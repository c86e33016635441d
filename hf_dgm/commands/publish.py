"""Publish a trained hf-dgm model folder to the Hugging Face Hub (`hf-dgm publish`).

    hf-dgm publish runs/optimus-snli --repo_id ORG/optimus-snli [--private] [--create_pr] [--revision R]
        [--commit_message M] [--force] [--dry_run OUT_DIR] [--token T] [--max_shard_size 5GB]

The folder is assembled (safetensors weights, config with auto_map/custom_pipelines, flat remote code,
tokenizers, model card, samples), loaded back through remote code in an interpreter without hf_dgm and compared
with the source model, then pushed in one atomic commit. `--dry_run DIR` writes the exact folder and pushes nothing.
Token: --token, else HF_TOKEN, else the stored `hf auth login` token. Flags use underscores; the dashed spellings
(`--repo-id`, `--dry-run`, ...) are accepted as aliases.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable

from ..hub.publish import DEFAULT_MAX_SHARD_SIZE, PublishError, publish_model
from ..hub.validation import ValidationError
from .utils import undash_flags


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    import importlib

    for name in ("httpx", "httpx2", "requests"):  # whichever HTTP client huggingface_hub uses
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        error = getattr(module, "TransportError", None) or getattr(module, "ConnectionError", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


def hub_error_line(err: BaseException, endpoint: str | None, what: str = "publishing") -> str | None:
    """One line for a Hub or network failure that escaped the publisher (None for other errors): what failed and
    that nothing was committed. The publisher's own upload failures are already `PublishError`s."""
    from huggingface_hub.errors import HfHubHTTPError

    from ..hub.publish import _one_line

    if isinstance(err, HfHubHTTPError):
        return f"error: {what} failed: the Hub answered {_one_line(err)}; nothing was committed, the remote is unchanged"
    if isinstance(err, _network_errors()):
        return (f"error: {what} failed: could not reach the Hub at {endpoint or 'the default endpoint'} "
                f"({_one_line(err)}); nothing was committed, the remote is unchanged")
    return None


def run_with_one_line_errors(call: Callable[[], Any], *, endpoint: str | None, what: str,
                             expected: tuple[type[BaseException], ...]) -> tuple[Any, int]:
    """`(call(), 0)`, or `(None, 1)` after printing one `error:` line to stderr: the message of an `expected` error (bad
    input, a refused publish), or `hub_error_line` for a Hub answer / unreachable endpoint. Anything else propagates."""
    try:
        return call(), 0
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return None, 1
    except Exception as err:  # a Hub answer or an unreachable endpoint: one line, not a traceback
        line = hub_error_line(err, endpoint, what)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return None, 1


def main(argv: list[str] | None = None, prog: str = "hf-dgm publish") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="folder written by save_pretrained (plus metrics/recipe/samples)")
    parser.add_argument("--repo_id", required=True, help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--revision", help="branch to commit to (created from main if missing)")
    parser.add_argument("--commit_message", help="commit title")
    parser.add_argument("--commit_description", help="commit description")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--force", action="store_true", help="overwrite a repo holding another model type")
    parser.add_argument("--dry_run", metavar="OUT_DIR", help="write the exact repo folder here; push nothing")
    parser.add_argument("--max_shard_size", default=DEFAULT_MAX_SHARD_SIZE, help="shard weights above this size")
    parser.add_argument("--license", help="card license id (default: run metadata, else the family's)")
    parser.add_argument("--endpoint", help="Hub endpoint (default: HF_ENDPOINT, else https://huggingface.co)")
    parser.add_argument("--space_id", help="the model's Gradio Space (upload/publish_space.py), linked from the card")
    parser.add_argument("--no_validate", action="store_true", help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(undash_flags(argv, parser))
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    result, code = run_with_one_line_errors(
        lambda: publish_model(
            args.model_dir, args.repo_id, private=args.private, create_pr=args.create_pr, revision=args.revision,
            commit_message=args.commit_message, commit_description=args.commit_description, token=args.token,
            force=args.force, dry_run_dir=args.dry_run, max_shard_size=args.max_shard_size, license=args.license,
            endpoint=args.endpoint, validate=not args.no_validate, space_id=args.space_id,
        ),
        endpoint=args.endpoint, what=f"publishing {args.model_dir} to {args.repo_id}",
        expected=(PublishError, ValidationError),
    )
    if code:
        return code

    if result.validation is not None:
        diffs = ", ".join(f"{k}={v:.2e}" for k, v in result.validation.max_abs_diff.items())
        print(f"validated without hf_dgm ({result.validation.model_class}, {result.validation.pipeline_class}): "
              f"max |diff| {diffs}")
    if result.dry_run:
        print(f"dry run: wrote {len(result.files)} files to {result.folder}; nothing was pushed")
    else:
        print(f"pushed {len(result.files)} files to {result.repo_id} ({result.revision}): {result.commit_url}")
        if result.deleted:
            print(f"removed stale files: {', '.join(result.deleted)}")
        if result.pr_url:
            print(f"pull request: {result.pr_url}")
    for name in result.files:
        print(f"  {name}")
    return 0
