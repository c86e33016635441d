#!/usr/bin/env python
"""Publish a Gradio Space that demos a published hf-dgm model.

    python upload/publish_space.py --model ORG/NAME --space_id ORG/NAME-demo [--revision SHA] [--dry_run OUT_DIR]
        [--model_dir DIR] [--private] [--license ID] [--token T] [--endpoint URL]

Writes `app.py` (the family's app from hf_dgm.demo, pinned to the model's commit), `hf_dgm_demo/` (the app
modules), `requirements.txt` (pinned to the installed versions) and the Space card (`sdk: gradio`), and pushes them
in one commit. `--dry_run OUT_DIR` writes the folder and pushes nothing; `python OUT_DIR/app.py [MODEL_DIR]` then
serves the same app locally. Token: --token, else HF_TOKEN, else the stored `hf auth login` token. Flags use
underscores; the dashed spellings (`--space-id`, `--dry-run`, `--model-dir`) are accepted as aliases.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hf_dgm.commands.publish import run_with_one_line_errors  # noqa: E402
from hf_dgm.commands.utils import undash_flags  # noqa: E402
from hf_dgm.hub.publish import PublishError  # noqa: E402
from hf_dgm.hub.space import publish_space  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python upload/publish_space.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the published model repo, owner/name")
    parser.add_argument("--space_id", required=True, help="the Space repo, owner/name (created if missing)")
    parser.add_argument("--revision", help="model commit to pin the app to (default: the model's current main)")
    parser.add_argument("--model_dir", help="read config.json/README.md from this folder instead of the Hub")
    parser.add_argument("--dry_run", metavar="OUT_DIR", help="write the exact Space folder here; push nothing")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--license", help="Space license id (default: the model card's)")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--endpoint", help="Hub endpoint (default: HF_ENDPOINT, else https://huggingface.co)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(undash_flags(argv, parser))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result, code = run_with_one_line_errors(
        lambda: publish_space(
            args.model, args.space_id, revision=args.revision, model_dir=args.model_dir, dry_run_dir=args.dry_run,
            token=args.token, endpoint=args.endpoint, private=args.private, license=args.license,
        ),
        endpoint=args.endpoint, what=f"publishing the Space {args.space_id}", expected=(PublishError, ValueError),
    )
    if code:
        return code
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    pinned = result.revision or "latest"
    if result.dry_run:
        print(f"wrote the Space for {result.model_id}@{pinned} to {result.folder}: {', '.join(result.files)}")
        print(f"run it locally: python {result.folder}/app.py [MODEL_DIR]")
    else:
        print(f"published {result.space_id} ({result.model_id}@{pinned}): {result.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
