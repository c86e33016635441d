"""Argparse helpers shared by the `hf-dgm` commands, the `python -m hf_dgm.<x>` aliases, the recipe parser
(`hf_dgm.training.recipes`) and the upload scripts: one sub-command per registered family, dispatched through
`hf_dgm.registry`, and the one implementation of the dashed-flag aliases.

Entry-point modules named by a `FamilySpec`:
- `converter`, `evaluator`: `add_arguments(parser)` and `run(args)` (argparse);
- `trainer`, `demo`: `main(argv) -> int | None` (they parse their own arguments, e.g. with `HfArgumentParser`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

from ..registry import families, load_entry_point


def undash(argv: list[str], names: Iterable[str]) -> list[str]:
    """Rewrite `--some-flag` (or `--some-flag=value`) to `--some_flag` where `some_flag` is in `names`: the dashed
    spellings stay accepted as hidden aliases of the one (underscore) flag style."""
    names = set(names)
    out = []
    for arg in argv:
        if arg.startswith("--") and "-" in arg[2:]:
            flag, eq, value = arg[2:].partition("=")
            if flag.replace("-", "_") in names:
                arg = "--" + flag.replace("-", "_") + eq + value
        out.append(arg)
    return out


def parser_dests(parser: argparse.ArgumentParser) -> set[str]:
    """Every `dest` the parser and its sub-parsers know."""
    dests: set[str] = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            dests.add(action.dest)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return dests


def undash_flags(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`undash` with the flags the parser (or one of its sub-parsers) knows."""
    return undash(argv, parser_dests(parser))


def add_family_subcommands(parser: argparse.ArgumentParser, role: str, extra: dict[str, str] | None = None) -> None:
    """One sub-parser per family whose `FamilySpec.<role>` names a module with `add_arguments` / `run`, plus one per
    `extra` entry (subcommand name -> dotted module of the same shape) for commands that are not a model family."""
    sub = parser.add_subparsers(dest="family", required=True, metavar="FAMILY")
    entries = [(model_type, getattr(spec, role), spec.description) for model_type, spec in families().items()]
    entries += [(name, dotted, "") for name, dotted in (extra or {}).items()]
    for name, dotted, description in entries:
        if dotted is None:
            continue
        module = load_entry_point(dotted)
        doc = (module.__doc__ or "").strip()
        # a converter module is named after the original's format (`models/fq_ugatit/convert_ugatit.py` converts
        # UGATIT-pytorch checkpoints of the fq_ugatit family): that name is accepted as an alias of the family name
        module_name = dotted.rsplit(".", 1)[-1].removeprefix("convert_")
        taken = {entry[0] for entry in entries}
        aliases = [module_name] if role == "converter" and module_name not in taken else []
        child = sub.add_parser(
            name, help=doc.splitlines()[0] if doc else description, description=doc or None,
            formatter_class=argparse.RawDescriptionHelpFormatter, aliases=aliases,
        )
        module.add_arguments(child)
        child.set_defaults(_hf_dgm_entry=module)


def run_family_subcommand(args: argparse.Namespace) -> Any:
    """Run the entry point `add_family_subcommands` selected."""
    return args._hf_dgm_entry.run(args)


def families_with(role: str) -> dict[str, str]:
    """model_type -> dotted module, for the families that declare `role`."""
    return {name: getattr(spec, role) for name, spec in families().items() if getattr(spec, role)}


def run_family_main(role: str, argv: list[str], prog: str) -> int:
    """`prog FAMILY ...rest`: hand `rest` to the family's `<role>` module's `main(argv)` (`hf-dgm train|demo`)."""
    available = families_with(role)
    every = sorted(families())
    if not argv or argv[0] in ("-h", "--help"):
        lines = [f"usage: {prog} FAMILY [arguments ...]", "", "families:"]
        for name in every:
            lines.append(f"  {name:<14} {'(none)' if name not in available else available[name]}")
        print("\n".join(lines))
        return 0 if argv else 2
    family, rest = argv[0], argv[1:]
    if family not in every:
        raise SystemExit(f"{prog}: unknown family {family!r}; registered: {', '.join(every)}")
    if family not in available:
        print(f"{prog}: the {family} family has no {role} (FamilySpec.{role} is not set); families that have one: "
              f"{', '.join(sorted(available))}")
        return 0 if any(arg in ("-h", "--help") for arg in rest) else 1
    module = load_entry_point(available[family])
    saved_prog, sys.argv[0] = sys.argv[0], f"{prog} {family}"  # argparse/HfArgumentParser name the command by argv[0]
    try:
        return int(module.main(rest) or 0)
    finally:
        sys.argv[0] = saved_prog
