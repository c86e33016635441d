"""Where the tests find the project's data files (SNLI / PTB sentence files, R2R): `$HF_DGM_SHARED_DATA`, else a
`shared/data` folder next to the checkout (the layout CI uses). Tests that need a file skip, naming it, when it is
absent; no test downloads anything."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("HF_DGM_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def require(*parts: str) -> Path:
    """The path `SHARED_DATA / parts`, or `pytest.skip` saying which file is missing and how to point at the data."""
    import pytest  # lazily: tests/core_install_check.py imports this module with pytest made unimportable

    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"data file {path} not present (set HF_DGM_SHARED_DATA to the folder holding snli/, ptb/, r2r/)")
    return path
