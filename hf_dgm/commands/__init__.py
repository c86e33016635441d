"""The `hf-dgm` sub-commands, one module per command (`train`, `evaluate`, `convert`, `publish`, `demo`), each with
`main(argv, prog) -> int`; `hf_dgm.cli` only dispatches to them, and the `python -m hf_dgm.<x>` aliases call them.

Imports go one way: `hf_dgm.cli` -> `hf_dgm.commands.<command>` -> `hf_dgm.commands.utils` (the argparse helpers)
and `hf_dgm.registry`. Nothing here imports `hf_dgm.cli`.
"""
