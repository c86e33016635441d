"""`python -m hf_dgm.hub MODEL_DIR --repo_id ORG/NAME ...`: alias of `hf-dgm publish`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
