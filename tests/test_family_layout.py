"""Where a family lives (issue 31): one model folder, one training folder, one line in `FAMILY_MODULES` and one card
template. The built-in families are checked against that rule, the published remote code is checked to leave the
family's converter, probe, demo and registry entry out, and a toy family added to a copy of the package in exactly
those four places is found by every command (train, evaluate, convert, demo, publish)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_dgm.registry import FAMILY_MODULES, families
from test_registry import TOY_FILES

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hf_dgm"
ENTRY_ROLES = ("converter", "evaluator", "trainer", "demo")
NOT_REMOTE_CODE = ("convert_", "probe_", "demo_", "family")


def _family_folder(spec) -> str:
    """`hf_dgm.models.<folder>` -> folder."""
    prefix = "hf_dgm.models."
    assert spec.package.startswith(prefix) and spec.package.count(".") == 2, spec.package
    return spec.package[len(prefix):]


@pytest.mark.parametrize("model_type", sorted(families()))
def test_family_entry_points_live_in_its_two_folders(model_type):
    spec = families()[model_type]
    folder = _family_folder(spec)
    assert any(m.startswith(f"{spec.package}.") for m in FAMILY_MODULES), "the registry line names the model folder"
    allowed = (f"{spec.package}.", f"hf_dgm.training.{folder}.")
    if spec.demo is not None:  # an app may serve several families (the VLN app: speaker and navigator)
        owner = spec.demo.rsplit(".", 1)[0]
        assert owner in {s.package for s in families().values()} and spec.demo.rsplit(".", 1)[1].startswith("demo_")
    for role in ("converter", "evaluator", "trainer"):
        dotted = getattr(spec, role)
        if dotted is not None:
            assert dotted.startswith(allowed), f"{model_type}.{role} = {dotted}: not in {allowed}"
            importlib.import_module(dotted)
    if spec.converter is not None:
        assert spec.converter.startswith(f"{spec.package}.convert_")
    if spec.hub is not None:
        assert spec.hub.probe.startswith(f"{spec.package}.probe_")
        assert spec.hub.templates_package == "hf_dgm.model_cards"
        assert (REPO / "model_cards" / spec.hub.card_template).is_file()


def test_no_family_code_outside_its_folders():
    """No module outside models/<folder>/ and training/<folder>/ is named after a family (the old
    convert/<family>.py, demo/<family>.py, training/<family>_*.py spread)."""
    folders = {_family_folder(spec) for spec in families().values()}
    own = {PACKAGE / "models" / f for f in folders} | {PACKAGE / "training" / f for f in folders}
    stray = []
    for path in PACKAGE.rglob("*.py"):
        if any(parent in own for parent in path.parents):
            continue
        stem = path.stem
        if any(stem == f or stem.startswith(f + "_") or stem.endswith("_" + f) for f in folders):
            stray.append(str(path.relative_to(REPO)))
    assert not stray, f"family modules outside the family's two folders: {stray}"


@pytest.mark.parametrize("model_type", sorted(m for m, s in families().items() if s.hub is not None))
def test_remote_code_leaves_out_converter_probe_demo_and_registry_entry(model_type, tmp_path):
    from hf_dgm.hub.publish import discover_family_code
    from hf_dgm.hub.remote_code import assemble_remote_code

    _, _, entry_files = discover_family_code(families()[model_type])
    bundle = assemble_remote_code(entry_files, tmp_path)
    assert bundle.files, "the family publishes some code"
    leaked = [name for name in bundle.files if name.startswith(NOT_REMOTE_CODE)]
    assert not leaked, f"{model_type}: {leaked} would be published as remote code"
    assert not any("training" in Path(src).parts for src in map(str, bundle.files.values()))


# ------------------------------------------------------------------ a new built-in family, in exactly four places
def _builtin_toy(name: str) -> str:
    """test_registry's toy family file, with this family's model type and task."""
    return TOY_FILES[name].replace('"toy_dgm"', '"toy_builtin"')


TOY_MODEL_FILES = {
    "__init__.py": '"""The toy family (tests only)."""\n',
    **{name: _builtin_toy(name) for name in ("configuration_toy.py", "modeling_toy.py", "pipeline_toy.py", "probe_toy.py")},
    "convert_toy.py": '''
        """Convert a toy original (a JSON file of a hidden size) into a saved toy model."""


        def add_arguments(parser):
            parser.add_argument("original")
            parser.add_argument("output_dir")


        def run(args):
            import json

            from .configuration_toy import ToyConfig
            from .modeling_toy import ToyModel

            size = json.load(open(args.original))["hidden_size"]
            ToyModel(ToyConfig(hidden_size=size)).save_pretrained(args.output_dir)
            return 0
    ''',
    "demo_toy.py": '''
        """Toy demo: the family's app module (its `main` parses the command line)."""
        from ...demo.common import run_app


        def build_demo(model, revision=None, device=None):
            raise RuntimeError("not served in tests")


        def main(argv=None):
            run_app(build_demo, argv, prog="hf-dgm demo toy_builtin")
    ''',
    "family.py": '''
        from ...registry import FamilySpec, HubEntry, PipelineTask
        from .configuration_toy import ToyConfig
        from .modeling_toy import ToyModel
        from .pipeline_toy import ToySamplingPipeline

        FAMILY = FamilySpec(
            model_type="toy_builtin",
            package="hf_dgm.models.toy_builtin",
            description="a toy built-in family (tests only)",
            config_class=ToyConfig,
            auto_models={"AutoModel": ToyModel},
            pipelines=(PipelineTask("toy-builtin-sampling", ToySamplingPipeline),),
            hub=HubEntry(card_template="toy_builtin.md.j2", pipeline_tag="unconditional-image-generation",
                         probe="hf_dgm.models.toy_builtin.probe_toy:toy_probe", probe_task="toy-builtin-sampling",
                         task_type="unconditional-image-generation", task_name="Toy sampling", tags=("hf-dgm",)),
            converter="hf_dgm.models.toy_builtin.convert_toy",
            evaluator="hf_dgm.training.toy_builtin.evaluate",
            trainer="hf_dgm.training.toy_builtin.run",
            demo="hf_dgm.models.toy_builtin.demo_toy",
        )
    ''',
}
TOY_TRAINING_FILES = {
    "__init__.py": '"""Training of the toy family (tests only)."""\n',
    "run.py": '''
        """Train the toy family: writes a saved model (`hf-dgm train toy_builtin --output_dir DIR`)."""
        import argparse


        def main(argv=None):
            parser = argparse.ArgumentParser(prog="hf-dgm train toy_builtin")
            parser.add_argument("--output_dir", required=True)
            args = parser.parse_args(argv)
            from hf_dgm.models.toy_builtin.configuration_toy import ToyConfig
            from hf_dgm.models.toy_builtin.modeling_toy import ToyModel

            ToyModel(ToyConfig()).save_pretrained(args.output_dir)
            return 0
    ''',
    "evaluate.py": '''
        """Evaluate a saved toy model: the mean of its output on a fixed input."""


        def add_arguments(parser):
            parser.add_argument("model")


        def run(args):
            import torch
            from transformers import AutoModel

            model = AutoModel.from_pretrained(args.model)
            return {"toy_mean": float(model(torch.ones(1, model.config.hidden_size)).mean())}
    ''',
}
TOY_CARD = """{% extends "_base.md.j2" %}
{% block summary %}
The toy built-in family, added in four places.
{% endblock %}
"""

TOY_SCRIPT = r'''
import json, os, sys
from hf_dgm.cli import main
from hf_dgm.registry import families

work = sys.argv[1]
assert "toy_builtin" in families(), sorted(families())
out = {}
for argv in (["train", "toy_builtin", "--help"], ["evaluate", "toy_builtin", "--help"],
             ["convert", "toy_builtin", "--help"], ["demo", "toy_builtin", "--help"]):
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    out[" ".join(argv)] = code
run = os.path.join(work, "run")
out["train"] = main(["train", "toy_builtin", "--output_dir", run])
json.dump({"hidden_size": 6}, open(os.path.join(work, "original.json"), "w"))
out["convert"] = main(["convert", "toy_builtin", os.path.join(work, "original.json"), os.path.join(work, "converted")])
out["evaluate"] = main(["evaluate", "toy_builtin", run])
out["publish"] = main(["publish", run, "--repo_id", "org/toy", "--dry_run", os.path.join(work, "repo")])
json.dump(out, open(os.path.join(work, "result.json"), "w"))
'''


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def _copy_package(dest: Path) -> Path:
    package = dest / "hf_dgm"
    shutil.copytree(PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "model_cards", package / "model_cards", ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_a_new_builtin_family_needs_exactly_four_places(tmp_path):
    package = _copy_package(tmp_path / "src")
    before = {p.relative_to(package) for p in package.rglob("*") if p.is_file()}
    # the four places
    _write(package / "models" / "toy_builtin", TOY_MODEL_FILES)
    _write(package / "training" / "toy_builtin", TOY_TRAINING_FILES)
    registry = package / "registry.py"
    text = registry.read_text()
    anchor = "FAMILY_MODULES: list[str] = [\n"
    assert anchor in text
    registry.write_text(text.replace(anchor, anchor + '    "hf_dgm.models.toy_builtin.family",\n', 1))
    (package / "model_cards" / "toy_builtin.md.j2").write_text(TOY_CARD)

    after = {p.relative_to(package) for p in package.rglob("*") if p.is_file()}
    touched = {p.parts[0] if p.parts[0] != "models" and p.parts[0] != "training" else "/".join(p.parts[:2])
               for p in after - before} | {"registry.py"}
    assert touched == {"models/toy_builtin", "training/toy_builtin", "model_cards", "registry.py"}

    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(tmp_path / "src")
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", TOY_SCRIPT, str(work)], env=env, cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((work / "result.json").read_text())
    assert all(code in (0, None) for code in result.values()), result
    assert "hf-dgm train toy_builtin" in proc.stdout  # the family's own parser answered --help
    assert (work / "converted" / "config.json").is_file()
    assert json.loads((work / "converted" / "config.json").read_text())["hidden_size"] == 6
    repo = work / "repo"
    published = {p.name for p in repo.iterdir()}
    assert {"configuration_toy.py", "modeling_toy.py", "pipeline_toy.py", "README.md"} <= published
    assert not [n for n in published if n.startswith(NOT_REMOTE_CODE)], published
    assert "The toy built-in family, added in four places." in (repo / "README.md").read_text()
