"""Shared reading of original research checkpoints for the converters, which live with their family (`hf_dgm/models/<family>/convert_*.py`, named by `FamilySpec.converter`); `python -m hf_dgm.convert FAMILY` is `hf-dgm convert`."""

from __future__ import annotations

import os
import pickle
import re


TORCH_CHECKPOINT = "a torch.save checkpoint of plain state dicts (tensors in dicts/lists only)"

# globals a tensors-only pickle references (torch.save's own rebuild functions and containers)
_DATA_GLOBAL_PREFIXES = ("torch._utils.", "torch.storage.", "torch.", "collections.OrderedDict", "builtins.set",
                         "_codecs.encode", "numpy.")


def _pickle_globals(data: bytes) -> tuple[list[str], bool]:
    """(globals the pickle references, whether it ends before its STOP opcode), read with `pickletools.genops`:
    the opcodes are only parsed, nothing is called or imported."""
    import io
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
            if opcode.name == "STOP":
                return found, False
    except Exception:  # truncated or not a pickle past some point
        return found, True
    return found, True


def describe_unreadable_checkpoint(path: str | os.PathLike, err: BaseException | None = None) -> str:
    """Why `path` cannot be read as a tensors-only checkpoint, in words (never torch's `weights_only=False` advice):
    empty, truncated, not a checkpoint at all, or a pickle that references code (the globals are named)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return "is empty (0 bytes)"
    message = str(err) if err is not None else ""
    code = re.findall(r"GLOBAL ([\w.]+)", message)
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format
        if code:
            return f"holds Python objects besides tensors (it references {code[0]})"
        if isinstance(err, pickle.UnpicklingError):
            return "is a torch.save archive whose pickle holds data other than tensors"
        return "is a truncated or corrupted torch.save archive (its zip directory cannot be read)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):  # a pickle's PROTO opcode
        found, truncated = _pickle_globals(head)
        unsafe = [g for g in found if not g.startswith(_DATA_GLOBAL_PREFIXES)]
        if unsafe or code:
            return f"is a pickle that references code or objects besides tensors ({(code or unsafe)[0]})"
        if truncated:
            return "is a truncated pickle (it ends before its last opcode)"
        return "is a plain pickle, not a torch.save checkpoint"
    return f"is not a PyTorch checkpoint or a pickle (it starts with {head[:8]!r})"


def load_state_dict_weights_only(path: str | os.PathLike, what: str):
    """`torch.load(path, weights_only=True)`; anything but a readable tensors-only checkpoint is a `ValueError`
    naming `what` and the file, saying what is wrong and what is accepted (never torch's advice to retry with
    `weights_only=False`)."""
    import torch

    if not os.path.isfile(path):
        raise ValueError(f"{what}: {path}: no such file (expected {TORCH_CHECKPOINT})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's weights-only reader fails with many types on truncated or odd data
        problem = describe_unreadable_checkpoint(path, err)
        refused = (
            " Unpickling such a file can run arbitrary code it carries, so hf_dgm reads tensors only; re-save its "
            "plain `state_dict` (tensors only) and convert that"
        ) if "besides tensors" in problem or "other than tensors" in problem else ""
        raise ValueError(f"{what}: {path} {problem}; expected {TORCH_CHECKPOINT}.{refused}") from None


__all__ = ["TORCH_CHECKPOINT", "describe_unreadable_checkpoint", "load_state_dict_weights_only"]
