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


def undash_flags(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Rewrite `--some-flag` to `--some_flag` where the parser (or one of its sub-parsers) knows `some_flag`: the
    dashed spellings stay accepted as hidden aliases of the one (underscore) flag style."""
    dests: set[str] = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            dests.add(action.dest)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    out = []
    for arg in argv:
        if arg.startswith("--") and "-" in arg[2:]:
            flag, eq, value = arg[2:].partition("=")
            if flag.replace("-", "_") in dests:
                arg = "--" + flag.replace("-", "_") + eq + value
        out.append(arg)
    return out


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
        # a converter module is named after the original's format (`hf_dgm.convert.ugatit` converts UGATIT-pytorch
        # checkpoints of the fq_ugatit family): that name is accepted as an alias of the family name
        module_name = dotted.rsplit(".", 1)[-1]
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


# ----------------------------------------------------------------------------------------------- `hf-dgm`
COMMANDS = {
    "train": "train a family (`hf-dgm train FAMILY --recipe FILE [--flag value ...]`)",
    "evaluate": "evaluate a saved model and write its metrics as JSON",
    "convert": "convert an original research checkpoint into an hf-dgm folder (safetensors)",
    "publish": "publish a run folder to the Hugging Face Hub as a validated remote-code repo",
    "demo": "run a family's interactive demo",
}


def _family_entry_main(role: str, argv: list[str], prog: str) -> int:
    """`prog FAMILY ...rest`: hand `rest` to the family's `<role>` module's `main(argv)`."""
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
    import sys

    saved_prog, sys.argv[0] = sys.argv[0], f"{prog} {family}"  # argparse/HfArgumentParser name the command by argv[0]
    try:
        return int(module.main(rest) or 0)
    finally:
        sys.argv[0] = saved_prog


def main(argv: list[str] | None = None) -> int:
    """The `hf-dgm` console script."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"hf-dgm {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hf-dgm [--version] COMMAND [arguments ...]\n\ncommands:")
        for name, help_text in COMMANDS.items():
            print(f"  {name:<10} {help_text}")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        return _family_entry_main("trainer", rest, "hf-dgm train")
    if command == "demo":
        return _family_entry_main("demo", rest, "hf-dgm demo")
    if command == "evaluate":
        from .evaluate import main as evaluate_main

        return evaluate_main(rest, prog="hf-dgm evaluate")
    if command == "convert":
        from .convert.__main__ import main as convert_main

        return convert_main(rest, prog="hf-dgm convert")
    if command == "publish":
        from .hub.cli import main as publish_main

        return publish_main(rest, prog="hf-dgm publish")
    raise SystemExit(f"hf-dgm: unknown command {command!r}; commands: {', '.join(COMMANDS)}")


if __name__ == "__main__":
    raise SystemExit(main())
