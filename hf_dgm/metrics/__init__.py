"""hf-dgm's metrics: the image-metric math (`feature_statistics`), the FID Inception network (`inception`, weights
loaded by `inception_weights`), feature extraction (`image_features`), the VAE math (`vae_math`),
and offline `evaluate` modules, one folder each (`fid`, `kid`, `inception_score`, `iw_nll`, ...).

    import hf_dgm.metrics
    fid = hf_dgm.metrics.load("fid")   # works from any directory: the packaged folder, no network

:func:`load` resolves the module folder inside the installed package (`importlib.resources`), so it does not
depend on the current directory the way `evaluate.load("hf_dgm/metrics/fid")` does.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

__all__ = ["available", "load", "module_path"]


def available() -> list[str]:
    """Names of the packaged `evaluate` modules (folders `<name>/<name>.py`), sorted."""
    root = resources.files(__name__)
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and entry.joinpath(f"{entry.name}.py").is_file()
    )


def module_path(name: str) -> str:
    """Filesystem path of the packaged `evaluate` module folder `name` (e.g. "fid")."""
    names = available()
    if name not in names:
        raise ValueError(f"Unknown hf-dgm metric {name!r}; available: {', '.join(names)}.")
    folder = resources.files(__name__).joinpath(name)
    path = os.fspath(folder) if isinstance(folder, os.PathLike) else str(folder)
    if not os.path.isfile(os.path.join(path, f"{name}.py")):
        raise RuntimeError(
            f"hf-dgm metric {name!r} is not on the filesystem ({folder!r}); `evaluate` needs a real folder: install "
            "hf-dgm unzipped."
        )
    return path


def load(name: str, **kwargs: Any):
    """`evaluate.load` of the packaged module `name` ("fid", "kid", "inception_score", "iw_nll", ...), from any
    working directory and offline. Extra keyword arguments go to `evaluate.load` (e.g. `experiment_id`)."""
    import evaluate

    return evaluate.load(module_path(name), **kwargs)
