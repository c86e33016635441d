"""Checks of values at the public boundaries of hf_dgm models, configs and pipelines (ships with the models).

Every check raises `ValueError` (or `TypeError` for a wrong type) whose message names the argument and says what
is allowed. Floats must be finite: NaN compares False with everything, so `beta < 0` lets NaN through and a
training run or a decode would then silently produce NaN weights or empty text.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """`value` as a finite float within the bounds, else `ValueError` naming `name`. Strings and bools refused."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype.is_floating_point:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number (float); got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise ValueError(f"`{name}` must be {'>' if exclusive_minimum else '>='} {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value!r}")
    return value


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int within the bounds (a float like 3.0 is refused too: ids and counts are ints)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_floating_point:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an int; got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value}")
    return value


def check_float_tensor(value: Any, name: str, *, ndim: int | None = None, size: int | None = None) -> torch.Tensor:
    """A floating-point tensor of `ndim` dims (last dim `size`), not empty, all finite; else `ValueError`."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"`{name}` must be a torch.Tensor of floats; got {type(value).__name__} (convert with torch.tensor(...))"
        )
    if not value.dtype.is_floating_point:
        raise ValueError(f"`{name}` must hold floats; got dtype {value.dtype}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimensions; got shape {tuple(value.shape)}")
    if size is not None and value.shape[-1] != size:
        raise ValueError(f"`{name}` must have last dimension {size}; got shape {tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(value.shape)}); pass at least one row")
    if not torch.isfinite(value).all():
        raise ValueError(f"`{name}` holds NaN or infinite values")
    return value


def check_int_tensor(value: Any, name: str, *, ndim: int | None = None) -> torch.Tensor:
    """An integer tensor (ids, labels) of `ndim` dims, not empty; floats refused (1.7 must not become class 1)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of ints; got {type(value).__name__}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integers (torch.long); got dtype {value.dtype}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimensions; got shape {tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(value.shape)})")
    return value


__all__ = ["check_float", "check_int", "check_float_tensor", "check_int_tensor"]
