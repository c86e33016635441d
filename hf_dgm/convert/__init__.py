"""Converters of original research checkpoints (one module per family; `python -m hf_dgm.convert FAMILY`)."""

from __future__ import annotations

import os
import pickle


def load_state_dict_weights_only(path: str | os.PathLike, what: str):
    """`torch.load(path, weights_only=True)`; a pickle holding anything but tensors and plain containers is refused
    with a `ValueError` naming the file (not torch's advice to retry with `weights_only=False`)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        detail = f" ({found[0]})" if found else ""
        raise ValueError(
            f"{what}: {path} is a pickle holding more than tensors{detail}. Pickles are refused: unpickling can run "
            "arbitrary code the file carries, so hf_dgm reads tensors only (weights_only=True); do not load it with "
            "weights_only=False unless you trust its origin. Re-save its plain `state_dict` (tensors only) and "
            "convert that"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{what}: {path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from None
