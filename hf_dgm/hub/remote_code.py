"""Assemble the flat, self-contained code folder that `trust_remote_code=True` loads from a Hub repo.

Inside the package, family code reaches shared pieces by package-relative imports
(`from ...modules.feature_quantizer import FeatureQuantizer`). transformers' remote-code loader only follows
single-dot sibling imports (`from .name import X`, see `dynamic_module_utils.get_relative_imports`): it downloads
`name.py` from the repo root next to the importing file. So the publisher copies every file a family needs, plus
every package file those import (transitively), into ONE folder and rewrites each package import into a sibling
import. Imports of other packages (torch, transformers, ...) are left alone and reported as requirements.

Only the statement's module specifier is rewritten; names, aliases, parentheses and comments are untouched:

    from ...modules.feature_quantizer import (FeatureQuantizer,   ->  from .feature_quantizer import (FeatureQuantizer,
        QuantizerOutput)                                                  QuantizerOutput)
    from hf_dgm.modules.feature_quantizer import X                ->  from .feature_quantizer import X

Forms the loader cannot follow are rejected with a `RemoteCodeError` naming the file and line:
`from . import x`, `import hf_dgm...`, and imports of a package's `__init__`.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence


PACKAGE_NAME = "hf_dgm"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../hf_dgm

# import name -> pip distribution name, for the requirements list of a card
_PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml", "cv2": "opencv-python"}
_IMPORT_SPEC = re.compile(r"from\s+(\.*[\w.]*)\s+import")
# what may not appear in a generated comment line (it would end the comment): line breaks, other control characters
_UNSAFE_COMMENT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\x0b\x0c]")


class RemoteCodeError(ValueError):
    """The family's code cannot be turned into a flat remote-code folder."""


@dataclass
class RemoteCodeBundle:
    """What `assemble_remote_code` wrote."""

    files: dict[str, Path] = field(default_factory=dict)  # flat file name -> source file in the package
    requirements: list[str] = field(default_factory=list)  # third-party distributions the code imports


def _module_parts(path: Path, package_root: Path) -> list[str]:
    rel = path.resolve().relative_to(package_root.parent)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts


def _module_file(parts: Sequence[str], package_root: Path, where: str) -> Path:
    base = package_root.parent.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        raise RemoteCodeError(
            f"{where}: imports the package `{'.'.join(parts)}`; remote code can only import module files. "
            f"Import from the module that defines the names (e.g. `from ...{'.'.join(parts[1:])}.x import Y`)."
        )
    raise RemoteCodeError(f"{where}: imports `{'.'.join(parts)}`, which is not a file of the {parts[0]} package")


def _resolve_import(node: ast.ImportFrom, src: Path, package_root: Path, package_name: str) -> list[str] | None:
    """Absolute module parts of a package-internal `from X import ...`, or None for third-party imports."""
    if node.level == 0:
        if node.module is None or node.module.split(".")[0] != package_name:
            return None
        return node.module.split(".")
    parts = _module_parts(src, package_root)
    is_init = src.name == "__init__.py"
    package = parts if is_init else parts[:-1]
    up = node.level - 1
    if up > len(package) - 1:
        raise RemoteCodeError(f"{src}:{node.lineno}: relative import goes above the {package_name} package")
    base = package[: len(package) - up] if up else package
    return base + (node.module.split(".") if node.module else [])


def _third_party(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


def _rewrite(source: str, edits: list[tuple[ast.ImportFrom, str]]) -> str:
    """Replace the module specifier of each ImportFrom node with `.target`, leaving the rest of the statement."""
    lines = source.splitlines(keepends=True)
    for node, target in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        line = lines[node.lineno - 1]
        # col_offset is in UTF-8 bytes; the statement starts with ASCII `from`, so slice on the encoded line
        raw = line.encode("utf-8")
        head, tail = raw[: node.col_offset], raw[node.col_offset:].decode("utf-8")
        match = _IMPORT_SPEC.match(tail)
        if match is None:  # pragma: no cover - ast guarantees `from <spec> import` at col_offset
            raise RemoteCodeError(f"line {node.lineno}: cannot rewrite {tail.strip()!r}")
        if not target.isidentifier():  # pragma: no cover - file names are checked in assemble_remote_code
            raise RemoteCodeError(f"line {node.lineno}: module name {target!r} is not an identifier")
        tail = f"from .{target} import" + tail[match.end():]
        lines[node.lineno - 1] = head.decode("utf-8") + tail
    return "".join(lines)


def assemble_remote_code(
    entry_files: Iterable[Path | str],
    out_dir: Path | str,
    *,
    package_root: Path = PACKAGE_ROOT,
    package_name: str = PACKAGE_NAME,
    header: str | None = None,
) -> RemoteCodeBundle:
    """Copy `entry_files` and every package module they import (transitively) into `out_dir`, flat.

    Args:
        entry_files: package files the repo must hold (config, modeling, processing, pipeline modules).
        out_dir: folder to write to (created if missing).
        package_root: the package directory (`hf_dgm/`), for resolving relative imports.
        header: an optional comment line written at the top of every copied file (provenance).

    Returns:
        A [`RemoteCodeBundle`]: flat file names with their sources, and the third-party requirements.

    Raises:
        RemoteCodeError: two needed modules share a file name, an import form the loader cannot follow, or a
            package import remains after rewriting.
    """
    if header is not None and (not isinstance(header, str) or _UNSAFE_COMMENT.search(header)):
        raise RemoteCodeError(
            f"header {header!r} cannot be written as a comment line of the remote code: line breaks and other "
            "control characters are refused (they would end the comment and start code)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = RemoteCodeBundle()
    third_party: set[str] = set()
    queue = [Path(f).resolve() for f in entry_files]
    seen: set[Path] = set()
    while queue:
        src = queue.pop(0)
        if src in seen:
            continue
        seen.add(src)
        _check_flat_name(src, bundle)
        bundle.files[src.name] = src
        source = src.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(src))
        edits = _package_imports(tree, src, package_root, package_name)
        queue += [target for _, target in edits]
        third_party |= _third_party(tree)
        text = _rewrite(source, [(node, target.stem) for node, target in edits])
        if header:
            text = f"# {header} (source: {src.relative_to(package_root.parent).as_posix()})\n" + text
        (out_dir / src.name).write_text(text, encoding="utf-8")
    verify_flat_code(out_dir, bundle.files, package_name)
    bundle.requirements = sorted(_PIP_NAMES.get(n, n) for n in third_party if n != package_name)
    return bundle


def _check_flat_name(src: Path, bundle: RemoteCodeBundle) -> None:
    """`src` can be copied flat: a module `<identifier>.py` (not a package `__init__.py`), in a path without control
    characters, whose file name no other module of the bundle already uses."""
    if src.name == "__init__.py":
        raise RemoteCodeError(f"{src}: a package `__init__.py` cannot be part of flat remote code")
    flat = src.name
    if not (src.suffix == ".py" and src.stem.isidentifier()) or _UNSAFE_COMMENT.search(str(src)):
        raise RemoteCodeError(
            f"{src!r}: remote code files must be `<identifier>.py` (transformers imports them by name), in a "
            "path without control characters")
    if flat in bundle.files and bundle.files[flat] != src:
        raise RemoteCodeError(
            f"two modules would both become `{flat}` in the flat repo: {bundle.files[flat]} and {src}; "
            "rename one of them"
        )


def _package_imports(tree: ast.AST, src: Path, package_root: Path, package_name: str) -> list[tuple[ast.ImportFrom, Path]]:
    """The `from ... import` statements of `src` that reach into the package, each with the module file it names
    (in `ast.walk` order); a form the flat loader cannot follow (`import package.x`, `from . import x`) raises."""
    edits: list[tuple[ast.ImportFrom, Path]] = []
    for node in ast.walk(tree):
        where = f"{src.relative_to(package_root.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package_name:
                    raise RemoteCodeError(
                        f"{where}: `import {alias.name}` cannot be made flat; use `from .module import Name` "
                        f"(relative) instead"
                    )
        if not isinstance(node, ast.ImportFrom):
            continue
        parts = _resolve_import(node, src, package_root, package_name)
        if parts is None:
            continue
        if node.module is None:
            raise RemoteCodeError(
                f"{where}: `from {'.' * node.level} import ...` is not followed by transformers' remote-code "
                f"loader; write `from .module import Name`"
            )
        edits.append((node, _module_file(parts, package_root, where)))
    return edits


def verify_flat_code(out_dir: Path, files: Iterable[str], package_name: str = PACKAGE_NAME) -> None:
    """Check that every file in `out_dir` reaches the others only by sibling imports and never imports the package.

    Uses the same regular expressions as transformers' loader (`get_relative_imports`), so a docstring line that
    looks like `from .x import y` is caught too: the loader would try to download `x.py`.
    """
    from transformers.dynamic_module_utils import get_relative_imports

    out_dir = Path(out_dir)
    names = set(files)
    for name in sorted(names):
        path = out_dir / name
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level > 1 or (node.level == 1 and (node.module is None or "." in node.module)):
                    raise RemoteCodeError(f"{name}:{node.lineno}: non-sibling relative import remains")
                if node.level == 0 and node.module and node.module.split(".")[0] == package_name:
                    raise RemoteCodeError(f"{name}:{node.lineno}: absolute `{package_name}` import remains")
            elif isinstance(node, ast.Import):
                if any(alias.name.split(".")[0] == package_name for alias in node.names):
                    raise RemoteCodeError(f"{name}:{node.lineno}: `import {package_name}` remains")
        for module in get_relative_imports(path):
            if f"{module}.py" not in names:
                raise RemoteCodeError(
                    f"{name}: transformers' loader will look for `{module}.py` (a line `from .{module} import` — "
                    "maybe in a docstring), which is not part of the remote code"
                )


__all__ = ["assemble_remote_code", "verify_flat_code", "RemoteCodeBundle", "RemoteCodeError"]
