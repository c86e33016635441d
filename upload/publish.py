#!/usr/bin/env python
"""Publish a trained hf-dgm model folder to the Hugging Face Hub: alias of `hf-dgm publish` (see
`hf_dgm.commands.publish` for the flags).

    python upload/publish.py runs/optimus-snli --repo_id ORG/optimus-snli [--dry_run OUT_DIR] ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hf_dgm.commands.publish import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="python upload/publish.py"))
