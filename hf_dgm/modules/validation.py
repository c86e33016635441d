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


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _looks_local(ref: str) -> bool:
    """A reference meant as a local path (a Hub id is `name` or `owner/name`, never starts with these)."""
    import os

    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or os.path.isabs(ref) or "\\" in ref


def check_pretrained_folder(ref: Any, model_type: str, *, config_given: bool = False) -> None:
    """Before `from_pretrained(ref)`: a local folder must exist, hold a `config.json` of `model_type` (unless a config
    is passed), and safetensors weights whose headers read; pickled weights are refused. Errors name the file."""
    import json
    import os

    if not isinstance(ref, (str, os.PathLike)):
        raise ValueError(f"`pretrained_model_name_or_path` must be a folder or a Hub repo id; got {type(ref).__name__}")
    ref = os.fspath(ref)
    if not os.path.isdir(ref):
        if os.path.exists(ref):
            raise ValueError(f"{ref} is a file; pass the folder written by `save_pretrained` (or a Hub repo id)")
        if _looks_local(ref):
            raise ValueError(f"{ref}: no such local folder (a saved model folder, or a Hub repo id `owner/name`)")
        return  # a Hub repo id: transformers resolves it
    config_path = os.path.join(ref, "config.json")
    if not config_given:
        if not os.path.isfile(config_path):
            raise ValueError(
                f"{ref} holds no config.json: it is not a folder written by `save_pretrained` (for an original "
                "checkpoint, convert it first with `python -m hf_dgm.convert`)"
            )
        try:
            with open(config_path, encoding="utf-8") as f:
                found = json.load(f).get("model_type")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
            raise ValueError(f"{config_path} is not a JSON object ({err})") from None
        if found != model_type:
            raise ValueError(
                f"{config_path} has model_type {found!r}; this class loads {model_type!r} models (use the Auto class "
                "or the model class of that type)"
            )
    files = sorted(os.listdir(ref))
    weights = [f for f in files if f.endswith(".safetensors")]
    pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES) and f != "training_args.bin"]
    if not weights and pickles:
        raise ValueError(
            f"{ref} holds pickled weights ({', '.join(pickles)}) and no safetensors: hf_dgm loads safetensors only, "
            "because unpickling a file can run arbitrary code. Convert the checkpoint (`python -m hf_dgm.convert`) "
            "or re-save a trusted model with `save_pretrained` (safetensors)"
        )
    from safetensors import safe_open

    for name in weights:
        path = os.path.join(ref, name)
        try:
            with safe_open(path, framework="pt") as f:
                f.keys()
        except Exception as err:  # safetensors raises its own error types for bad headers and short files
            raise ValueError(
                f"{path} is not a readable safetensors file ({type(err).__name__}: {err}); it is truncated, empty "
                "or corrupted: save or download it again"
            ) from None


__all__ += ["check_pretrained_folder", "PICKLE_SUFFIXES"]


def check_config_keys(config_cls: type, keys: Any, where: str) -> None:
    """Refuse keys that `config_cls.__init__` does not take (they would be written into `config.json` unused);
    `where` names the source (e.g. `--override`, `config_overrides`)."""
    import difflib
    import inspect

    allowed: set[str] = set()
    for cls in config_cls.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            allowed |= {p for p in inspect.signature(init).parameters if p not in ("self", "kwargs", "args")}
    allowed |= {"num_labels", "name_or_path", "_name_or_path"}
    unknown = sorted(set(keys) - allowed)
    if unknown:
        hints = {k: difflib.get_close_matches(k, sorted(allowed), n=1) for k in unknown}
        hint = "; ".join(f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k) for k, m in hints.items())
        raise ValueError(f"{where}: unknown {config_cls.__name__} keys {hint}; they would be saved unused")


__all__ += ["check_config_keys"]


def _non_finite(value: Any, name: str, depth: int = 0) -> str | None:
    """The dotted/indexed name of the first NaN or infinite float inside `value`, or None."""
    if depth > 6:
        return None
    if isinstance(value, float) or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        return None if math.isfinite(float(value)) else name
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if (found := _non_finite(item, f"{name}[{i}]", depth + 1)) is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if (found := _non_finite(item, f"{name}[{key!r}]", depth + 1)) is not None:
                return found
    elif hasattr(value, "to_diff_dict") and hasattr(value, "__dict__"):  # a nested PretrainedConfig
        for key, item in vars(value).items():
            if not key.startswith("_") and (found := _non_finite(item, f"{name}.{key}", depth + 1)) is not None:
                return found
    return None


def check_finite_fields(config: Any) -> None:
    """Every numeric field of `config` (floats, also inside lists, dicts and nested configs) must be finite:
    a NaN `r1_gamma` or `beta` would otherwise be saved and train to NaN weights silently. `ValueError` naming the
    field."""
    for key, value in vars(config).items():
        if key.startswith("_"):
            continue
        found = _non_finite(value, key)
        if found is not None:
            raise ValueError(
                f"{type(config).__name__}: `{found}` must be a finite number; got {_lookup(config, found)!r}"
            )


def _lookup(config: Any, found: str) -> Any:
    import re

    head, *rest = re.split(r"(?=[.\[])", found)
    value = getattr(config, head)
    for part in rest:
        if part.startswith("."):
            value = getattr(value, part[1:])
        else:
            index = part[1:-1]
            value = value[int(index)] if isinstance(value, (list, tuple)) else value[eval_key(index)]
    return value


def eval_key(text: str) -> Any:
    import ast

    return ast.literal_eval(text)


def finite_config(cls: type) -> type:
    """Class decorator for configs: after `__init__`, every numeric field must be finite ([`check_finite_fields`])."""
    import functools

    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        check_finite_fields(self)

    cls.__init__ = __init__
    return cls


__all__ += ["check_finite_fields", "finite_config"]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def check_pipeline_model(model: Any, task: str, expected: str, tokenizer: Any = None, hints: dict | None = None) -> None:
    """For a pipeline built on a model folder: the loaded model must be of `expected` model_type (else name the type
    found and the one expected), and, where `tokenizer` is None, say which tokenizer files the folder lacks."""
    import os

    config = getattr(model, "config", None)
    found = getattr(config, "model_type", None)
    where = getattr(config, "_name_or_path", "") or getattr(model, "name_or_path", "") or "the model"
    if found != expected:
        hint = (hints or {}).get(found, "")
        raise ValueError(
            f"{task} needs a model of type {expected!r}; {where} holds model_type {found!r}" + (f" ({hint})" if hint else "")
        )
    vocab_size = getattr(config, "vocab_size", None)
    if tokenizer is not None and tokenizer is not True and isinstance(vocab_size, int) and hasattr(tokenizer, "__len__"):
        if len(tokenizer) < vocab_size and os.path.isdir(where) and not any(
            os.path.isfile(os.path.join(where, name)) for name in TOKENIZER_FILES
        ):
            tokenizer = None  # a tokenizer class instantiated without its vocabulary (only the special tokens)
    if tokenizer is None:
        missing = ""
        if os.path.isdir(where):
            present = [name for name in TOKENIZER_FILES if os.path.isfile(os.path.join(where, name))]
            missing = f": {where} holds none of {', '.join(TOKENIZER_FILES)}" if not present else (
                f": {where} has {', '.join(present)} but they do not load"
            )
        raise ValueError(
            f"{task} needs the model's tokenizer{missing}. Save it next to the model (`tokenizer.save_pretrained(folder)`) "
            "or pass `tokenizer=`"
        )


__all__ += ["TOKENIZER_FILES", "check_pipeline_model"]
