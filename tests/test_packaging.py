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
    assert folder.is_dir() and folder.resolve().parent.name == "hub"
    builtin = [f for f in families().values() if f.package.startswith("hf_dgm.")]
    assert builtin
    for family in builtin:
        assert (folder / family.hub.card_template).is_file(), family.hub.card_template
    assert (folder / "_base.md.j2").is_file()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"hub/templates/*.j2"' in pyproject and "[project.scripts]" in pyproject


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
    import hf_dgm.cli as cli

    monkeypatch.setattr(cli, "families_with", lambda role: {})
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
    shutil.copytree(REPO_ROOT / "hf_dgm", source / "hf_dgm", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(source)], check=True, timeout=600)
    (wheel,) = wheels.glob("hf_dgm-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=600)
    assert (target / "hf_dgm" / "hub" / "templates" / "optimus.md.j2").is_file()
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
