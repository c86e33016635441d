"""Packaging: card templates are package data, the `hf-dgm` command dispatches through the registry, and a built
wheel (installed without the source checkout on the path) publishes to the loopback Hub."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_dgm.cli import main as hf_dgm_main
from hf_dgm.hub.cards import templates_dir
from hf_dgm.registry import families

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent


def test_card_templates_resolve_through_importlib_resources():
    folder = templates_dir()
    assert folder.is_dir() and folder.resolve() == (REPO_ROOT / "model_cards").resolve()  # editable: the one source
    builtin = [f for f in families().values() if f.package.startswith("hf_dgm.")]
    assert builtin
    for family in builtin:
        assert (folder / family.hub.card_template).is_file(), family.hub.card_template
    assert (folder / "_base.md.j2").is_file()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"hf_dgm.model_cards" = "model_cards"' in pyproject and "[project.scripts]" in pyproject


def test_pyproject_lists_every_package():
    """`[tool.setuptools] packages` is explicit (it maps `model_cards/` into the package): it must name every
    package setuptools' discovery finds under hf_dgm/, so no new sub-package is left out of the wheel."""
    import tomllib

    from setuptools import find_namespace_packages

    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    discovered = {name for name in find_namespace_packages(where=str(REPO_ROOT), include=["hf_dgm*"])
                  if "__pycache__" not in name}
    assert discovered - listed == set(), f"add these to [tool.setuptools] packages in pyproject.toml: {discovered - listed}"
    assert listed - discovered == {"hf_dgm.model_cards"}


def test_hf_dgm_command_lists_commands_and_families(capsys):
    assert hf_dgm_main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("train", "evaluate", "convert", "publish", "demo"):
        assert f"  {command}" in out
    assert hf_dgm_main(["train", "--help"]) == 0
    assert "optimus" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # Optimus's demo module parses its own arguments
        hf_dgm_main(["demo", "optimus", "--help"])
    assert exit_info.value.code == 0 and "model" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown family"):
        hf_dgm_main(["train", "no_such_family"])
    with pytest.raises(SystemExit):
        hf_dgm_main(["convert", "--help"])
    assert "fq_biggan" in capsys.readouterr().out


def test_hf_dgm_command_says_when_a_family_lacks_a_role(capsys, monkeypatch):
    import hf_dgm.commands.utils as command_utils

    monkeypatch.setattr(command_utils, "families_with", lambda role: {})
    assert hf_dgm_main(["demo", "optimus"]) == 1
    assert "has no demo" in capsys.readouterr().out


PUBLISH_FROM_WHEEL = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import hf_dgm
    assert not Path(hf_dgm.__file__).resolve().is_relative_to(Path(sys.argv[1])), hf_dgm.__file__
    import huggingface_hub.constants
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    import torch
    from hf_dgm import FQBigGANConfig, FQBigGANForImageGeneration
    from hf_dgm.hub import publish_model
    from hub_server import DEFAULT_TOKEN, LoopbackHub
    torch.manual_seed(0)
    run = Path(sys.argv[2]) / "run"
    FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny")).save_pretrained(run)
    with LoopbackHub() as hub:
        result = publish_model(run, "hf-dgm-tests/wheel", token=DEFAULT_TOKEN, endpoint=hub.endpoint)
        card = hub.file_bytes("hf-dgm-tests/wheel", "README.md").decode()
    print(json.dumps({"module": hf_dgm.__file__, "validated": result.validation is not None,
                      "diff": max(result.validation.max_abs_diff.values()), "card": card[:200]}))
''')


@pytest.mark.slow
def test_publish_from_an_installed_wheel(tmp_path):
    """`pip wheel` the project, install it into a target folder, and publish from there with the checkout absent
    from sys.path (cwd elsewhere): the card templates must come from the wheel."""
    import shutil

    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # build from a copy, so setuptools' build/ and egg-info never land in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in ("hf_dgm", "model_cards"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, timeout=600)
    (wheel,) = wheels.glob("hf_dgm-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=600)
    assert (target / "hf_dgm" / "model_cards" / "optimus.md.j2").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(TESTS_DIR)])
    script = tmp_path / "publish_from_wheel.py"
    script.write_text(PUBLISH_FROM_WHEEL)
    proc = subprocess.run([sys.executable, str(script), str(REPO_ROOT), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["module"]).resolve().is_relative_to(target)
    assert result["validated"] and result["diff"] == 0.0
    assert "fq_biggan" in result["card"] or "fq-gan" in result["card"]


def test_core_install_loads_models_and_pipelines():
    """With every extra's package made unimportable, `import hf_dgm`, save -> load and the Optimus / GAN pipelines
    work: the core `dependencies` of pyproject.toml are enough for them (tests/core_install_check.py)."""
    proc = subprocess.run([sys.executable, str(TESTS_DIR / "core_install_check.py")], capture_output=True, text=True,
                          timeout=600, cwd=TESTS_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "core install OK: fq_biggan, fq_stylegan, fq_ugatit, optimus" in proc.stdout


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints" / "cpu.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints/cpu.txt pins with ==, got {line!r}"
            pins[name.strip()] = version.strip()
    return pins


def test_installed_versions_match_the_constraints_file():
    """scripts/setup.sh installs with `-c constraints/cpu.txt`: the environment running the tests holds exactly those
    versions (torch's local label, e.g. +cpu, aside)."""
    from importlib.metadata import version

    pins = _constraints()
    assert {"torch", "transformers", "huggingface-hub", "datasets", "accelerate"} <= set(pins)
    wrong = {name: (version(name), pin) for name, pin in pins.items() if version(name).split("+")[0] != pin}
    assert not wrong, f"installed (version, pinned): {wrong}; run `bash scripts/setup.sh`"


def test_every_declared_extra_is_installed_for_the_tests():
    """The test extra pulls every other extra: nothing the suite imports may be missing (no skip for a dependency of
    ours). Also the wheel that requirements/no-deps.txt installs without its dependencies."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {Requirement(r).name for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        names |= {Requirement(r).name for r in requirements if not r.startswith("hf-dgm")}
    for line in (REPO_ROOT / "requirements" / "no-deps.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.add(Requirement(line).name)
    missing = []
    for name in sorted(names):
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(name)
    assert not missing, f"not installed: {missing}; run `bash scripts/setup.sh`"


def test_version_flag(capsys):
    import hf_dgm

    assert hf_dgm_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hf-dgm {hf_dgm.__version__}"
    from importlib.metadata import version

    assert version("hf-dgm") == hf_dgm.__version__  # pyproject reads the version from hf_dgm.__version__
