"""`python -m hf_dgm.convert FAMILY ...`: convert original research checkpoints into hf-dgm folders (safetensors).

Each family lives in its own module of this package, exposing `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

FAMILIES = {
    "optimus": "hf_dgm.convert.optimus",
    "fq_biggan": "hf_dgm.convert.fq_biggan",
    "prevalent": "hf_dgm.convert.prevalent",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hf_dgm.convert", description=__doc__)
    sub = parser.add_subparsers(dest="family", required=True)
    modules = {}
    for family, module_name in FAMILIES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        modules[family] = module
        module.add_arguments(sub.add_parser(family, help=(module.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    return int(modules[args.family].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
