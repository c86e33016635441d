"""Every command-line path answers `--help` with exit code 0, a usage line and real defaults: `hf-dgm` and each of
its commands and families, every `python -m hf_dgm...` entry point, and the scripts in training/ and upload/.
Run in-process (argparse prints and raises SystemExit(0)), so the whole sweep takes seconds."""

from __future__ import annotations

import argparse
import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

from hf_dgm.cli import COMMANDS
from hf_dgm.cli import main as hf_dgm_main
from hf_dgm.registry import families

REPO_ROOT = Path(__file__).resolve().parents[1]
BAD_DEFAULT_MARKERS = ("<object object", "%(default)", "%(prog)")


def _call(function, argv_0: str = "hf-dgm") -> tuple[int, str]:
    out = io.StringIO()
    saved = sys.argv[:]
    sys.argv[:] = [argv_0]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = function()
            except SystemExit as exit_info:
                code = exit_info.code
    finally:
        sys.argv[:] = saved
    return (0 if code is None else code), out.getvalue()


def _check(code: int, text: str, what: str) -> None:
    assert code == 0, f"{what}: exit code {code}\n{text[-2000:]}"
    assert "usage" in text.lower() or "has no" in text, f"{what}: no usage line\n{text[-2000:]}"
    for marker in BAD_DEFAULT_MARKERS:
        assert marker not in text, f"{what}: help shows {marker!r}\n{text[-2000:]}"


def _subcommand_choices(command: str) -> list[str]:
    """The FAMILY choices of `hf-dgm evaluate|convert` (built the way the commands build their sub-parsers)."""
    from hf_dgm.commands.evaluate import NON_FAMILY_EVALUATORS
    from hf_dgm.commands.utils import add_family_subcommands

    parser = argparse.ArgumentParser()
    if command == "evaluate":
        add_family_subcommands(parser, "evaluator", extra=NON_FAMILY_EVALUATORS)
    else:
        add_family_subcommands(parser, "converter")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def hf_dgm_paths() -> list[list[str]]:
    paths = [["--help"], ["--version"]]
    for command in COMMANDS:
        paths.append([command, "--help"])
    for command in ("train", "demo"):
        for family in sorted(families()):
            paths.append([command, family, "--help"])
    for command in ("evaluate", "convert"):
        for choice in _subcommand_choices(command):
            paths.append([command, choice, "--help"])
    return paths


@pytest.mark.parametrize("argv", hf_dgm_paths(), ids=lambda argv: " ".join(argv))
def test_hf_dgm_help(argv):
    code, text = _call(lambda: hf_dgm_main(list(argv)))
    if argv == ["--version"]:
        assert code == 0 and text.startswith("hf-dgm ")
        return
    _check(code, text, "hf-dgm " + " ".join(argv))


def test_train_help_shows_the_real_defaults():
    """Recipe-aware parsers replace every default with a sentinel to find the explicit flags: `--help` must still
    print the dataclass defaults."""
    code, text = _call(lambda: hf_dgm_main(["train", "optimus", "--help"]))
    _check(code, text, "train optimus")
    assert "hf-dgm train optimus" in text  # the usage line names the command, not the module file
    from hf_dgm.training.optimus.trainer import OptimusTrainingArguments

    default = OptimusTrainingArguments.__dataclass_fields__["kl_threshold"].default
    assert f"--kl_threshold KL_THRESHOLD" in text and f"(default: {default})" in text


MODULES = sorted({
    "hf_dgm.cli", "hf_dgm.convert", "hf_dgm.evaluate", "hf_dgm.hub", "hf_dgm.demo", "hf_dgm.vln.agents",
    "hf_dgm.training.optimus.main_job",
    *(spec.trainer for spec in families().values() if spec.trainer),
    *(spec.demo for spec in families().values() if spec.demo),
})


@pytest.mark.parametrize("module", MODULES)
def test_python_m_help(module):
    """`python -m <module> --help` (modules with a `__main__` guard or a `main(argv)`)."""
    imported = __import__(module, fromlist=["main"])
    if hasattr(imported, "main") and not (module.endswith(".convert") or module.endswith(".hub")
                                           or module.endswith(".demo")):
        code, text = _call(lambda: imported.main(["--help"]), argv_0=module)
    else:
        def run():
            saved = sys.argv[:]
            sys.argv[:] = [module, "--help"]
            try:
                return runpy.run_module(module, run_name="__main__", alter_sys=False)
            finally:
                sys.argv[:] = saved

        code, text = _call(run, argv_0=module)
    _check(code, text, f"python -m {module}")


SCRIPTS = sorted(str(p.relative_to(REPO_ROOT)) for folder in ("training", "upload") for p in (REPO_ROOT / folder).glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script):
    def run():
        saved = sys.argv[:]
        sys.argv[:] = [script, "--help"]
        try:
            return runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
        finally:
            sys.argv[:] = saved

    code, text = _call(run, argv_0=script)
    _check(code, text, f"python {script}")
