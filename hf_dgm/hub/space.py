"""Publish a Gradio Space next to a published hf-dgm model: the family's demo app, pinned requirements, Space card.

```python
from hf_dgm.hub.space import publish_space

publish_space("ORG/optimus-snli", "ORG/optimus-snli-demo")                        # one atomic commit
publish_space("ORG/optimus-snli", "ORG/optimus-snli-demo", dry_run_dir="space/")  # the exact folder, nothing pushed
```

What the Space holds (one `create_commit`):
- `app.py`: serves the family's app (`hf_dgm.demo`, chosen by the model's `model_type`) for the model at a pinned
  commit; `python app.py [MODEL_DIR_OR_REPO]` runs the same app anywhere;
- `hf_dgm_demo/`: the app modules, `hf_dgm/demo/common.py` and the family's `demo_*.py` (its `...demo.common` import
  made a sibling import; they import nothing else from hf_dgm: the model loads through its remote code,
  `trust_remote_code=True`);
- `requirements.txt`: every third-party distribution the app and the model's remote code import, pinned to the
  versions installed here (the ones the model was validated with by `publish_model`);
- `README.md`: the Space card (`sdk: gradio`, `sdk_version`, `app_file`, `models: [repo id]`, title, emoji,
  license).
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .card_checks import ModelCardError, check_card_value, check_license, check_repo_id, check_revision
from .commit import commit_new_or_existing
from .publish_inputs import PublishError, resolve_token


logger = logging.getLogger(__name__)

APP_PACKAGE = "hf_dgm_demo"  # the app modules' package name inside a Space
DEMO_PACKAGE = "hf_dgm.demo"
# always pinned: what loads the model and serves the page, even where no module names them in an import
BASE_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "huggingface_hub", "gradio")
_PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml", "cv2": "opencv-python"}


@dataclass
class SpaceResult:
    space_id: str
    model_id: str
    revision: str | None  # the model commit the app is pinned to
    files: list[str]
    dry_run: bool = False
    folder: Path | None = None
    commit_url: str | None = None
    commit_oid: str | None = None
    space_url: str | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- inputs
def _model_head(api, model_id: str) -> str:
    """The commit the model repo's main branch points at; a readable error when there is no such repo."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return api.model_info(model_id).sha
    except RepositoryNotFoundError:
        raise PublishError(
            f"no model repo {model_id} on {api.endpoint} (or no access with this token): publish the model first "
            "(upload/publish.py), or pass --model-dir and --revision for a dry run"
        ) from None


def _model_files(model: str, revision: str | None, model_dir: str | os.PathLike | None, api) -> tuple[dict, str | None]:
    """(config.json, model card text or None) from `model_dir` when given, else from the Hub at `revision`."""
    if model_dir is not None:
        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise PublishError(f"{folder} is not a saved model folder: it has no config.json")
        card = folder / "README.md"
        return json.loads((folder / "config.json").read_text()), card.read_text(encoding="utf-8") if card.is_file() else None
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with tempfile.TemporaryDirectory(prefix="hf_dgm_space_") as cache:
        try:
            config_path = api.hf_hub_download(model, "config.json", revision=revision, cache_dir=cache)
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
            raise PublishError(f"cannot read config.json of {model} at {revision or 'main'}: {type(err).__name__}") from None
        config = json.loads(Path(config_path).read_text())
        try:
            card = Path(api.hf_hub_download(model, "README.md", revision=revision, cache_dir=cache)).read_text(encoding="utf-8")
        except EntryNotFoundError:
            card = None
    return config, card


def _card_license(card_text: str | None) -> str | None:
    if not card_text:
        return None
    from huggingface_hub import ModelCard

    license = ModelCard(card_text).data.to_dict().get("license")
    try:
        return check_license(license, "the model card's license")
    except ModelCardError as err:
        raise PublishError(f"{err}; pass --license to choose the Space's") from None


def check_space_inputs(model_id: Any, space_id: Any, revision: Any = None, license: Any = None) -> None:
    """Every value that goes into the generated app.py or the Space card, checked before anything is written:
    repo ids with huggingface_hub's validator, the revision as a git ref, the license against the Hub's ids."""
    try:
        check_repo_id(model_id, "model (--model)")
        if "/" not in model_id:
            raise ModelCardError(f"model (--model) must be a Hub repo id owner/name; got {model_id!r}")
        check_repo_id(space_id, "space_id (--space_id)")
        check_revision(revision, "revision (--revision)")
        check_card_value(license, "license (--license)")
        check_license(license, "license (--license)")
    except ModelCardError as err:
        raise PublishError(str(err)) from None


def _third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


def _demo_module(model_type: str) -> str:
    from hf_dgm.demo import demo_module

    return demo_module(model_type)


def _app_modules(model_type: str) -> tuple[str, str, dict[str, str]]:
    """(app module name, builder function, {file name in the Space's app package: source text}).

    The app is `hf_dgm/demo/common.py` plus the family's app module (`FamilySpec.demo`, a `demo_*.py` in the family's
    model folder). The Space has no hf_dgm: the app module may import only third-party packages and
    `...demo.common`, which becomes the sibling import `.common` in the Space; common.py imports nothing of hf_dgm.
    """
    module_name, function = _demo_module(model_type), "build_demo"
    stem = module_name.rsplit(".", 1)[1]
    if not (module_name.startswith("hf_dgm.models.") and stem.startswith("demo_")):
        raise PublishError(f"the app of {model_type!r} ({module_name}) must be a demo_*.py module of a family folder "
                           "(hf_dgm/models/<family>/) to ship in a Space")
    module = importlib.import_module(module_name)
    if not callable(getattr(module, function, None)):
        raise PublishError(f"{module_name} has no {function}(model, revision=None, device=None)")
    common = Path(importlib.import_module(f"{DEMO_PACKAGE}.common").__file__)
    sources = {"common.py": _space_source(common, allowed_relative=set())}
    sources[f"{stem}.py"] = _space_source(Path(module.__file__), allowed_relative={(3, "demo.common")})
    return stem, function, sources


_COMMON_IMPORT = re.compile(r"from\s+\.\.\.demo\.common\s+import")


def _space_source(path: Path, allowed_relative: set[tuple[int, str]]) -> str:
    """The source of one app file for the Space: its imports checked (third parties, plus the `allowed_relative`
    (level, module) pairs), `from ...demo.common import` rewritten to `from .common import`."""
    text = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.ImportFrom):
            if (node.level, node.module or "") not in allowed_relative:
                raise PublishError(f"{path} imports {'.' * node.level}{node.module or ''}; a Space app module may "
                                   f"only import third-party packages and ...demo.common")
            continue
        else:
            continue
        if any(n == "hf_dgm" or n.startswith("hf_dgm.") for n in names):
            raise PublishError(f"{path} imports hf_dgm ({names}); a Space has no hf_dgm")
    return _COMMON_IMPORT.sub("from .common import", text)


def _remote_code_imports(model_type: str) -> set[str]:
    """Third-party distributions the model's remote code imports (as `publish_model` assembles it)."""
    from ..registry import get_family
    from .code_discovery import discover_family_code
    from .remote_code import assemble_remote_code

    _, _, entry_files = discover_family_code(get_family(model_type))
    with tempfile.TemporaryDirectory(prefix="hf_dgm_space_code_") as tmp:
        return set(assemble_remote_code(entry_files, tmp).requirements)


def pinned_requirements(names: set[str]) -> list[str]:
    """`name==version` of the installed distributions (local version labels such as `+cpu` dropped)."""
    lines = []
    for name in sorted({_PIP_NAMES.get(n, n) for n in names} | set(BASE_REQUIREMENTS), key=str.lower):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise PublishError(
                f"{name} is imported by the app or the model's code but is not installed here, so its validated "
                "version is unknown; install the project's `demo` extra (pip install -e '.[demo]')"
            ) from None
        lines.append(f"{name}=={version.split('+')[0]}")
    return lines


APP_TEMPLATE = '''"""Gradio demo of an hf-dgm model (MODEL_ID below, family FAMILY). Generated by upload/publish_space.py.

On the Space it serves MODEL_ID at the commit REVISION. Anywhere else:

    pip install -r requirements.txt
    python app.py                       # the same model, from the Hub
    python app.py path/to/saved-model   # any saved folder of the same family
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from {package}.common import run_app  # noqa: E402
from {package}.{module} import {function}  # noqa: E402

MODEL_ID = {model_id!r}
REVISION = {revision!r}  # the model commit this Space was published against
FAMILY = {family!r}
HF_DGM_VERSION = {hf_dgm_version!r}

if __name__ == "__main__":
    run_app({function}, prog="app.py", default_model=MODEL_ID, default_revision=REVISION)
'''
# the statements app.py may hold, in order (anything else means a value escaped its literal)
_APP_SHAPE = ["Expr", "Import", "ImportFrom", "Expr", "ImportFrom", "ImportFrom", "Assign", "Assign", "Assign",
              "Assign", "If"]


def render_app(*, model_id: str, revision: str | None, family: str, package: str, module: str, function: str,
               hf_dgm_version: str) -> str:
    """The Space's app.py. Values are Python literals (`repr`); names are checked identifiers; the source is
    parsed back and must have the template's statements and assign exactly the given values."""
    import ast

    for label, name in (("package", package), ("module", module), ("function", function)):
        if not (isinstance(name, str) and name.isidentifier()):
            raise PublishError(f"the app's {label} {name!r} is not a Python identifier")
    source = APP_TEMPLATE.format(model_id=model_id, revision=revision, family=family, package=package, module=module,
                                 function=function, hf_dgm_version=hf_dgm_version)
    tree = ast.parse(source)
    shape = [type(node).__name__ for node in tree.body]
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}
    expected = {"MODEL_ID": model_id, "REVISION": revision, "FAMILY": family, "HF_DGM_VERSION": hf_dgm_version}
    if shape != _APP_SHAPE or values != expected:  # pragma: no cover - a guard on edits of APP_TEMPLATE
        raise PublishError(f"the generated app.py does not have the template's shape ({shape}, {values})")
    return source


def _space_card(*, model_id: str, revision: str | None, model_type: str, license: str,
                meta: dict[str, Any], requirements: list[str]) -> str:
    from huggingface_hub import SpaceCard, SpaceCardData

    try:
        import gradio
    except ImportError:
        raise PublishError("gradio is not installed: install the `demo` extra (pip install -e '.[demo]')") from None

    name = model_id.split("/")[-1]
    check_card_value(dict(meta), "the app's SPACE metadata:")
    data = SpaceCardData(
        title=f"{name} demo"[:60], sdk="gradio", sdk_version=gradio.__version__,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}", app_file="app.py", license=license,
        models=[model_id], tags=["hf-dgm", model_type.replace("_", "-")],
        emoji=meta.get("emoji", "🧪"), colorFrom=meta.get("colorFrom", "gray"), colorTo=meta.get("colorTo", "gray"),
        short_description=meta.get("short_description", f"Try {name}")[:60], pinned=False,
    )
    pinned = f" at commit `{revision}`" if revision else " (latest commit; publish with a revision to pin one)"
    reqs = "\n".join(f"- `{r}`" for r in requirements)
    body = f"""
# {name} demo

Try [`{model_id}`](https://huggingface.co/{model_id}){pinned} in the browser. The app loads the model with
`transformers.pipeline(..., trust_remote_code=True)`: the modelling code is the repository's own (`auto_map` in its
`config.json`); the app's code is in `app.py` and `{APP_PACKAGE}/`.

Run it on your machine, on this model or any saved {model_type} folder:

```bash
pip install -r requirements.txt
python app.py                       # {model_id}
python app.py path/to/saved-model
```

Requirements, pinned to the versions the model was validated with when it was published:

{reqs}
"""
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}")
    parsed = card.data.to_dict()
    for key in ("license", "models", "title", "tags", "sdk", "app_file"):  # the YAML holds the values, unchanged
        if parsed.get(key) != getattr(data, key, None):  # pragma: no cover - defence in depth
            raise PublishError(f"the Space card's {key} reads back as {parsed.get(key)!r}, not {getattr(data, key)!r}")
    return str(card)


def prepare_space_folder(
    model_id: str,
    out_dir: str | os.PathLike,
    space_id: str,
    *,
    revision: str | None = None,
    model_dir: str | os.PathLike | None = None,
    license: str | None = None,
    api=None,
) -> tuple[list[str], str]:
    """Write the Space folder for `model_id` into `out_dir` (missing or empty); returns (files, model_type)."""
    check_space_inputs(model_id, space_id, revision, license)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PublishError(f"{out} exists and is not empty; the Space folder must be written into an empty folder")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    config, card_text = _model_files(model_id, revision, model_dir, api)
    family = _space_family(model_id, config)
    model_type = family.model_type
    module, function, sources = _app_modules(model_type)
    meta = getattr(importlib.import_module(_demo_module(model_type)), "SPACE", {})

    out.mkdir(parents=True, exist_ok=True)
    requirements = _write_app(out, sources, model_id=model_id, revision=revision, model_type=model_type,
                              module=module, function=function)
    license = license or _card_license(card_text) or family.hub.license
    (out / "README.md").write_text(_space_card(
        model_id=model_id, revision=revision, model_type=model_type, license=license, meta=meta,
        requirements=requirements,
    ), encoding="utf-8")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return files, model_type


def _space_family(model_id: str, config: dict[str, Any]):
    """The hf-dgm family (with a Hub entry) of the model whose config.json is `config`; a PublishError otherwise."""
    from ..registry import get_family

    model_type = config.get("model_type")
    if not model_type:
        raise PublishError(f"the config.json of {model_id} names no model_type")
    try:
        family = get_family(model_type) if isinstance(model_type, str) else None
    except ValueError:
        family = None
    if family is None or family.model_type != model_type or not model_type.replace("_", "").isalnum():
        raise PublishError(f"the config.json of {model_id} names model_type {model_type!r}, which is not an hf-dgm "
                           "family; a Space is published for hf-dgm models only")
    if family.hub is None:
        raise PublishError(f"family {model_type!r} declares no Hub entry (FamilySpec.hub); its models are not published")
    return family


def _write_app(out: Path, sources: dict[str, str], *, model_id: str, revision: str | None, model_type: str, module: str,
               function: str) -> list[str]:
    """The app package (the family's demo modules, copied), `requirements.txt` (pinned) and `app.py`; returns the
    requirements."""
    import hf_dgm

    (out / APP_PACKAGE).mkdir()
    (out / APP_PACKAGE / "__init__.py").write_text(
        '"""The Gradio app of the model named in ../app.py, copied from hf_dgm (demo/common.py and the family\'s '
        'demo module)."""\n',
        encoding="utf-8")
    imports: set[str] = set()
    for name, text in sources.items():
        (out / APP_PACKAGE / name).write_text(text, encoding="utf-8")
        imports |= _third_party_imports(out / APP_PACKAGE / name)
    imports |= _remote_code_imports(model_type)
    requirements = pinned_requirements(imports)
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    (out / "app.py").write_text(render_app(
        model_id=model_id, family=model_type, hf_dgm_version=str(hf_dgm.__version__), package=APP_PACKAGE,
        module=module, function=function, revision=revision,
    ), encoding="utf-8")
    return requirements


def publish_space(
    model_id: str,
    space_id: str,
    *,
    revision: str | None = None,
    model_dir: str | os.PathLike | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    license: str | None = None,
    commit_message: str | None = None,
) -> SpaceResult:
    """Write the Space for the published model `model_id` and push it to `space_id` in one commit.

    Args:
        model_id: the model repo (`owner/name`) the Space serves.
        space_id: the Space repo (`owner/name`); created (Gradio SDK) when missing.
        revision: model commit to pin the app to; by default the model's current `main` commit (read from the Hub).
        model_dir: read the model's config.json / README.md from this local folder instead of the Hub (dry runs
            offline); the app still loads `model_id` from the Hub.
        dry_run_dir: write the exact Space folder there and push nothing (no token needed).
        token / endpoint: Hub token (default `HF_TOKEN` or the stored login) and endpoint (default `HF_ENDPOINT`).
        private: create the Space private (an existing Space keeps its visibility).
        license: Space license (default: the model card's, else the family's).
    """
    from huggingface_hub import HfApi

    check_space_inputs(model_id, space_id, revision, license)
    if dry_run_dir is not None:
        return _dry_run_space(model_id, space_id, revision=revision, model_dir=model_dir, dry_run_dir=dry_run_dir,
                              endpoint=endpoint, token=token, license=license)
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    if "/" not in space_id:
        space_id = f"{api.whoami()['name']}/{space_id}"
    if revision is None:
        revision = _model_head(api, model_id)  # pin the app to what the model repo holds now
    check_space_inputs(model_id, space_id, revision, license)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_space_") as tmp:
        folder = Path(tmp) / "space"
        files, model_type = prepare_space_folder(model_id, folder, space_id, revision=revision, model_dir=model_dir,
                                                 license=license, api=api)
        info = _commit_space(api, space_id, folder, files, private=private,
                             commit_message=commit_message or f"Gradio demo of {model_id} ({model_type}) at {revision[:12]}",
                             commit_description=f"Generated by hf_dgm's upload/publish_space.py for {model_id}@{revision}.")
    space_url = f"{api.endpoint.rstrip('/')}/spaces/{space_id}"
    return SpaceResult(space_id=space_id, model_id=model_id, revision=revision, files=files,
                       commit_url=info.commit_url, commit_oid=info.oid, space_url=space_url, warnings=[])


def _dry_run_space(model_id: str, space_id: str, *, revision: str | None, model_dir, dry_run_dir, endpoint: str | None,
                   token: str | None, license: str | None) -> SpaceResult:
    """The exact Space folder in `dry_run_dir`, nothing pushed (the revision is read from the Hub unless given or
    the model is read from `model_dir`)."""
    from huggingface_hub import HfApi

    warnings: list[str] = []
    api = HfApi(endpoint=endpoint, token=token or False)
    if revision is None and model_dir is None:
        revision = _model_head(api, model_id)
    if revision is None:
        warnings.append("no --revision given: the dry-run app loads the model's latest commit")
    files, _ = prepare_space_folder(model_id, dry_run_dir, space_id, revision=revision, model_dir=model_dir,
                                    license=license, api=api)
    return SpaceResult(space_id=space_id, model_id=model_id, revision=revision, files=files, dry_run=True,
                       folder=Path(dry_run_dir), warnings=warnings)


def _commit_space(api, space_id: str, folder: Path, files: list[str], *, private: bool, commit_message: str,
                  commit_description: str):
    """ONE commit of the Space folder; a Space this call created is deleted again if it fails (or named with its
    delete command): :func:`hf_dgm.hub.commit.commit_new_or_existing`."""
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import RepositoryNotFoundError

    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
    try:
        parent_sha, exists = api.repo_info(space_id, repo_type="space").sha, True
    except RepositoryNotFoundError:
        parent_sha, exists = None, False
    return commit_new_or_existing(
        api, space_id, operations, repo_type="space", space_sdk="gradio", exists=exists, parent_sha=parent_sha,
        private=private, commit_message=commit_message, commit_description=commit_description,
    )


__all__ = ["publish_space", "prepare_space_folder", "pinned_requirements", "SpaceResult", "APP_PACKAGE"]
