"""The one recipe loader of hf-dgm: a YAML or JSON recipe plus command-line flags -> dataclass arguments.

```python
from hf_dgm.training.recipes import parse_recipe_args

model_args, data_args, training_args = parse_recipe_args(
    (ModelArguments, DataArguments, TrainingArguments), ["--recipe", "r.yaml", "--learning_rate", "1e-4"]
)
```

Rules:
- the recipe is a mapping of argument names (the dataclass field names) to values; `--recipe FILE` may appear
  anywhere on the command line, and flags given on the command line override the recipe's keys;
- values keep their YAML/JSON types: lists, booleans and dict-valued keys (`lr_scheduler_kwargs: {min_lr: 1e-6}`)
  reach the dataclasses as they are (through `HfArgumentParser.parse_dict`, no round trip through strings);
- a key that no dataclass defines is an error naming it; so is an unknown command-line flag;
- string values starting with `./` or `../` are paths relative to the recipe file's folder and are resolved
  against it (write `../../data/x.txt`, not a path relative to wherever the command runs);
- command-line flags use the dataclass field names with underscores (`--num_train_epochs`); the dashed spelling
  (`--num-train-epochs`) is accepted as an alias.

The loaded recipe (after path resolution, before command-line overrides) is returned by `load_recipe`, and the
run folder records the merged arguments (`hf_dgm.training.run_folder`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from hf_dgm.commands.utils import undash


RECIPE_FLAG = "--recipe"


class RecipeError(ValueError):
    """A recipe or its command-line overrides cannot be turned into the arguments."""


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (`.yaml`/`.yml`) or JSON (`.json`) recipe; `./` and `../` strings become absolute paths
    relative to the recipe's folder."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise RecipeError(f"recipe {path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                          f"{' '.join(str(err).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of argument names to values, got {type(data).__name__}")
    base = path.resolve().parent
    return {str(key): _resolve_paths(value, base) for key, value in data.items()}


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, str) and (value.startswith("./") or value.startswith("../")):
        return os.path.normpath(str(base / value))
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


def split_recipe_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(`--recipe` value or None, the other arguments). `--recipe=FILE` works too."""
    argv = list(argv)
    recipe = None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == RECIPE_FLAG:
            if i + 1 >= len(argv):
                raise RecipeError("--recipe needs a file (YAML or JSON)")
            recipe = argv[i + 1]
            i += 2
            continue
        if arg.startswith(RECIPE_FLAG + "="):
            recipe = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return recipe, rest


def _field_names(dataclass_types: Sequence[type]) -> set[str]:
    return {f.name for dtype in dataclass_types for f in dataclasses.fields(dtype) if f.init}


def parse_recipe_args(
    dataclass_types: Sequence[type], argv: Sequence[str] | None = None, recipe: str | os.PathLike | None = None
) -> tuple[Any, ...]:
    """Instances of `dataclass_types` from a recipe (`recipe`, or `--recipe FILE` in `argv`) and the flags of
    `argv` (default `sys.argv[1:]`), flags winning. Raises `RecipeError` naming unknown keys or flags.

    A dataclass with a `recipe_path` field receives the recipe's path.
    """
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    flag_recipe, argv = split_recipe_flag(argv)
    recipe = recipe if recipe is not None else flag_recipe
    values = load_recipe(recipe) if recipe is not None else {}
    names = _field_names(dataclass_types)
    unknown = sorted(set(values) - names)
    if unknown:
        raise RecipeError(f"recipe {recipe}: unknown keys {unknown} (no argument of that name)")

    parser = HfArgumentParser(dataclass_types)
    overrides, unknown_flags = _explicit_flags(parser, undash(argv, names))
    if unknown_flags:
        raise RecipeError(f"unknown command-line arguments: {unknown_flags}")
    values = check_recipe_types(dataclass_types, values, recipe)
    merged = {**values, **overrides}
    if "recipe_path" in names and recipe is not None:
        merged.setdefault("recipe_path", str(recipe))
    try:
        outputs = parser.parse_dict(merged, allow_extra_keys=False)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe {recipe}: {err}" if recipe is not None else str(err)) from err
    return tuple(outputs)


def _field_types(dataclass_types: Sequence[type]) -> dict[str, Any]:
    """{field name: resolved annotation} (string annotations resolved; unresolvable ones left out)."""
    import typing

    types: dict[str, Any] = {}
    for dtype in dataclass_types:
        try:
            hints = typing.get_type_hints(dtype)
        except Exception:  # an annotation naming something not importable here: check the others
            hints = {}
        for f in dataclasses.fields(dtype):
            if f.init:
                annotation = hints.get(f.name, f.type)
                if not isinstance(annotation, str):
                    types.setdefault(f.name, annotation)
    return types


_NO_MATCH = object()


def _type_name(annotation: Any) -> str:
    import enum
    import typing

    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any) -> Any:
    """`value` (as YAML/JSON gave it), possibly converted, if it fits `annotation`; else `_NO_MATCH`.
    Unknown annotations accept anything (the dataclass checks them)."""
    import enum
    import numbers
    import typing

    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        return value if value is None else _NO_MATCH
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        for arg in typing.get_args(annotation):
            out = _coerce(value, arg)
            if out is not _NO_MATCH:
                return out
        return _NO_MATCH
    if origin is typing.Literal:
        return value if value in typing.get_args(annotation) else _NO_MATCH
    if annotation is bool:
        return value if isinstance(value, bool) else _NO_MATCH
    if annotation is int:
        return value if isinstance(value, numbers.Integral) and not isinstance(value, bool) else _NO_MATCH
    if annotation is float:
        if isinstance(value, bool):
            return _NO_MATCH
        if isinstance(value, numbers.Real):
            return value
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                return _NO_MATCH
        return _NO_MATCH
    if annotation is str:
        return value if isinstance(value, str) else _NO_MATCH
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        if isinstance(value, annotation):
            return value
        return value if value in {m.value for m in annotation} else _NO_MATCH
    if origin in (list, tuple, set) or annotation in (list, tuple, set):
        if not isinstance(value, (list, tuple)):
            return _NO_MATCH
        args = typing.get_args(annotation)
        if not args or origin is tuple:
            return value
        items = [_coerce(v, args[0]) for v in value]
        return _NO_MATCH if any(v is _NO_MATCH for v in items) else items
    if origin is dict or annotation is dict:
        return value if isinstance(value, dict) else _NO_MATCH
    return value


def check_recipe_types(
    dataclass_types: Sequence[type], values: dict[str, Any], recipe: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The recipe's values checked against the dataclass field types (before `TrainingArguments` sees them):
    `max_steps: abc` or `max_steps: [1, 2]` is a `RecipeError` naming the key, the recipe, the value and the
    expected type. Numeric strings for float fields (YAML's `1e-4`) become floats."""
    types = _field_types(dataclass_types)
    checked = dict(values)
    for key, value in values.items():
        if key not in types:
            continue
        out = _coerce(value, types[key])
        if out is _NO_MATCH:
            where = f"recipe {recipe}" if recipe is not None else "recipe"
            raise RecipeError(
                f"{where}: `{key}` must be {_type_name(types[key])}; got {type(value).__name__} {value!r}"
            )
        checked[key] = out
    return checked


def _explicit_flags(parser, argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """({dest: value} for the options `argv` sets, converted by argparse; the arguments nobody knows)."""
    if any(arg in ("-h", "--help") for arg in argv):
        parser.parse_known_args(argv)  # prints the help with the real defaults (not the sentinel below) and exits
    sentinel = object()
    saved = {id(a): (a.default, a.required) for a in parser._actions}
    for action in parser._actions:
        if action.dest != "help":
            action.default, action.required = sentinel, False
    try:
        namespace, unknown = parser.parse_known_args(argv)
    finally:
        for action in parser._actions:
            action.default, action.required = saved[id(action)]
    return {k: v for k, v in vars(namespace).items() if v is not sentinel}, unknown


__all__ = ["RecipeError", "check_recipe_types", "load_recipe", "parse_recipe_args", "split_recipe_flag"]
