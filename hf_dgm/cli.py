"""The `hf-dgm` console script: a dispatcher only. Each command is a module of `hf_dgm.commands` with
`main(argv, prog) -> int`; the argparse helpers they share are in `hf_dgm.commands.utils`.

Nothing in the package imports this module (the console script entry point `hf_dgm.cli:main` does).
"""

from __future__ import annotations

import importlib
import sys

# command -> one-line help; `hf-dgm <command>` runs `hf_dgm.commands.<command>.main(argv, prog)`
COMMANDS = {
    "train": "train a family (`hf-dgm train FAMILY --recipe FILE [--flag value ...]`)",
    "evaluate": "evaluate a saved model and write its metrics as JSON",
    "convert": "convert an original research checkpoint into an hf-dgm folder (safetensors)",
    "publish": "publish a run folder to the Hugging Face Hub as a validated remote-code repo",
    "demo": "run a family's interactive demo",
}


def main(argv: list[str] | None = None) -> int:
    """The `hf-dgm` console script."""
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
    if command not in COMMANDS:
        raise SystemExit(f"hf-dgm: unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    module = importlib.import_module(f"hf_dgm.commands.{command}")
    return module.main(rest, prog=f"hf-dgm {command}")


if __name__ == "__main__":
    raise SystemExit(main())
