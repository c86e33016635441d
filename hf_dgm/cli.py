"""Command-line plumbing shared by `hf-dgm` and the `python -m hf_dgm.<command>` aliases: one sub-command per
registered family, dispatched through `hf_dgm.registry`.

Entry-point modules named by a `FamilySpec`:
- `converter`, `evaluator`: `add_arguments(parser)` and `run(args)` (argparse);
- `trainer`, `demo`: `main(argv) -> int | None` (they parse their own arguments, e.g. with `HfArgumentParser`).
"""

from __future__ import annotations

import argparse
from typing import Any

from .registry import families, load_entry_point


def add_family_subcommands(parser: argparse.ArgumentParser, role: str) -> None:
    """One sub-parser per family whose `FamilySpec.<role>` names a module with `add_arguments` / `run`."""
    sub = parser.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for model_type, spec in families().items():
        dotted = getattr(spec, role)
        if dotted is None:
            continue
        module = load_entry_point(dotted)
        doc = (module.__doc__ or "").strip()
        child = sub.add_parser(
            model_type, help=doc.splitlines()[0] if doc else spec.description, description=doc or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(child)
        child.set_defaults(_hf_dgm_entry=module)


def run_family_subcommand(args: argparse.Namespace) -> Any:
    """Run the entry point `add_family_subcommands` selected."""
    return args._hf_dgm_entry.run(args)


def families_with(role: str) -> dict[str, str]:
    """model_type -> dotted module, for the families that declare `role`."""
    return {name: getattr(spec, role) for name, spec in families().items() if getattr(spec, role)}
