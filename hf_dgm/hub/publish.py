"""Publish a trained hf-dgm model folder to the Hugging Face Hub as a self-contained, validated repo.

```python
from hf_dgm.hub import publish_model

result = publish_model("runs/optimus-snli", "ORG/optimus-snli")        # validate, then one atomic commit
publish_model("runs/optimus-snli", "ORG/optimus-snli", dry_run_dir="out/")  # the exact folder, nothing pushed
```

What a published repo holds (one commit, `create_commit`):
- `model.safetensors` (or `model-0000k-of-0000n.safetensors` + index above `max_shard_size`), written by
  `save_pretrained` (tied weights are declared by the model, so shared storage is saved once);
- `config.json` with `auto_map` (every Auto class `import hf_dgm` registered for the config) and
  `custom_pipelines` (every pipeline task registered from the family's package, `pt` = transformers Auto classes);
- the family's code, flat: configuration/modeling/processing/pipeline files and the shared modules they import,
  with package imports rewritten to sibling imports (`hf_dgm.hub.remote_code`);
- tokenizer / processor files (Optimus: encoder tokenizer at the root, decoder tokenizer in `decoder_tokenizer/`);
- `README.md`, the model card rendered from the family's template and the run folder's metrics and recipe;
- sample images and plots of the run (`images/`) and text samples (`samples/`).

Before anything is pushed, the folder is loaded with `trust_remote_code=True` in a fresh interpreter that cannot
import hf_dgm, and the family's probe (fixed input) must give the source model's outputs.

Faults: the repo id (huggingface_hub's validator), licence (the Hub's licence ids), revision and Space id are checked
before anything else (dry runs too). A new repo is created only after the folder is assembled and validated, right
before the commit; a commit answered with 5xx is retried with exponential backoff (`COMMIT_ATTEMPTS`,
`COMMIT_BACKOFF_SECONDS`). Any upload failure ends in one `PublishError` line saying what failed and that the
remote is unchanged; an empty repo or branch this call created is deleted again, or, if that fails, named with the
command that removes it (`hf repos delete OWNER/NAME --repo-type model --yes`). A process killed (`kill -9`)
between the repo's creation and the end of the commit cannot clean up: that command is logged right before the
creation, and running the same publish again commits into the empty repo.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cards import (
    USAGE_REPO_PLACEHOLDER,
    ModelCardError,
    _hub_id,
    build_card,
    check_card_value,
    check_license,
    check_repo_id,
    check_revision,
    check_task,
    read_run,
)
from ..registry import FamilySpec, get_family
from .remote_code import RemoteCodeBundle, assemble_remote_code
from .validation import (
    ValidationReport,
    compare_probe_outputs,
    run_isolated_probe,
    run_reference_probe,
)


logger = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_SIZE = "5GB"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Folders of a run that the publisher reads from (besides the top level); pickles there are refused too.
_READ_SUBFOLDERS = ("decoder_tokenizer", "samples", "plots", "figures", "images")
# Remote files that a new upload makes stale and that could shadow the new weights or code: deleted in the same
# commit when the new folder does not hold them. Everything else already in the repo is left alone.
_STALE_PATTERNS = re.compile(r"(^|/)(model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json|[^/]+\.py)$")


class PublishError(ValueError):
    """The model folder cannot be published as asked (bad input, refused overwrite, missing token...)."""


@dataclass
class PreparedRepo:
    """A repo folder assembled (and, unless disabled, validated) by `prepare_repo_folder`."""

    folder: Path
    family: FamilySpec
    model_type: str
    files: list[str]
    code: RemoteCodeBundle
    auto_map: dict[str, str]
    custom_pipelines: dict[str, dict[str, Any]]
    validation: ValidationReport | None


@dataclass
class PublishResult:
    repo_id: str
    files: list[str]
    validation: ValidationReport | None
    dry_run: bool = False
    folder: Path | None = None  # the dry-run folder
    commit_url: str | None = None
    commit_oid: str | None = None
    pr_url: str | None = None
    revision: str | None = None
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- inputs
def check_no_pickles(model_dir: Path) -> None:
    """Refuse a run folder holding pickle files where the publisher reads (top level, tokenizer/sample folders).

    hf_dgm never unpickles anything: pickles can run arbitrary code on load, and a repo holding them next to
    safetensors weights invites exactly that. Convert or delete them first.
    """
    found = []
    for folder in (model_dir, *(model_dir / sub for sub in _READ_SUBFOLDERS)):
        if folder.is_dir():
            found += [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES]
    if found:
        names = ", ".join(str(p.relative_to(model_dir)) for p in found)
        raise PublishError(
            f"{model_dir} holds pickle files ({names}); hf_dgm publishes safetensors only and never loads pickles. "
            "Re-save the model with `save_pretrained` (safetensors), convert original checkpoints with "
            "`python -m hf_dgm.convert`, and move or delete the pickles (Trainer's `training_args.bin` included: "
            "the recipe is read from `training_args.json` / `recipe.yaml`)."
        )


def _has_safetensors(model_dir: Path) -> bool:
    return (model_dir / "model.safetensors").is_file() or (model_dir / "model.safetensors.index.json").is_file()


def read_model_type(model_dir: Path) -> str:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise PublishError(f"{model_dir} is not a saved model folder: no config.json")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if not model_type:
        raise PublishError(f"{config_path} has no `model_type`")
    return model_type


def _check_publish_inputs(repo_id: Any, license: Any, revision: Any = None, space_id: Any = None) -> None:
    """Before anything else (dry runs too): the repo id passes huggingface_hub's validator, the license is one of
    the Hub's licence ids, the revision is a git ref name and the Space id a repo id."""
    try:
        check_repo_id(repo_id, "repo_id (--repo_id)")
        check_card_value(license, "license (--license)")
        check_license(license, "license (--license)")
        check_revision(revision, "revision (--revision)")
        if space_id is not None:
            check_repo_id(space_id, "space_id (--space_id)")
    except ModelCardError as err:
        raise PublishError(str(err)) from None


# ----------------------------------------------------------------------------------------------- code discovery
def _flat_ref(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def discover_family_code(family: FamilySpec) -> tuple[dict[str, str], dict[str, dict[str, Any]], list[Path]]:
    """What `import hf_dgm` registered for the family: (auto_map, custom_pipelines, entry code files)."""
    import importlib

    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.pipelines import PIPELINE_REGISTRY

    import hf_dgm  # noqa: F401  (registers every family)

    if family.model_type not in CONFIG_MAPPING:
        raise PublishError(f"model_type {family.model_type!r} is not registered by `import hf_dgm`")
    config_cls = CONFIG_MAPPING[family.model_type]
    classes: list[type] = [config_cls]
    auto_map = {"AutoConfig": _flat_ref(config_cls)}
    for name in sorted(dir(transformers)):
        if not name.startswith("AutoModel"):
            continue
        mapping = getattr(getattr(transformers, name), "_model_mapping", None)
        extra = getattr(mapping, "_extra_content", {}) if mapping is not None else {}
        if config_cls in extra:
            auto_map[name] = _flat_ref(extra[config_cls])
            classes.append(extra[config_cls])
    if len(auto_map) == 1:
        raise PublishError(f"no AutoModel* class is registered for {config_cls.__name__}")

    custom_pipelines: dict[str, dict[str, Any]] = {}
    declared = {entry.task for entry in family.pipelines}
    for task, info in sorted(PIPELINE_REGISTRY.supported_tasks.items()):
        impl = info.get("impl")
        if not inspect.isclass(impl) or not family.owns_pipeline(impl.__module__):
            continue
        # a shared pipeline module also serves tasks of other families; a family without pipelines (probe_task
        # None) shares its package with another family's pipeline (prevalent / prevalent_navigation): skip those
        if (declared or family.hub.probe_task is None) and task not in declared:
            continue
        pt_names = []
        for auto_cls in info.get("pt", ()):
            if getattr(transformers, auto_cls.__name__, None) is not auto_cls:
                raise PublishError(
                    f"pipeline task {task!r} is registered with pt_model={auto_cls.__name__}, which is not a "
                    "transformers Auto class; remote pipelines look `pt` names up on the transformers module "
                    "(transformers issue #33272): register it with e.g. pt_model=AutoModel"
                )
            pt_names.append(auto_cls.__name__)
        entry: dict[str, Any] = {"impl": _flat_ref(impl), "pt": pt_names}
        if info.get("type"):
            entry["type"] = info["type"]
        custom_pipelines[task] = entry
        classes.append(impl)
    for declared_entry in family.pipelines:  # names transformers reserves, usable only through custom_pipelines
        for alias in getattr(declared_entry, "hub_aliases", ()):
            if declared_entry.task in custom_pipelines:
                custom_pipelines.setdefault(alias, dict(custom_pipelines[declared_entry.task]))
    if not custom_pipelines and family.hub.probe_task is not None:
        raise PublishError(f"no pipeline task is registered for {family.model_type!r} by `import hf_dgm`")

    files = [Path(inspect.getfile(cls)).resolve() for cls in classes]
    files += [Path(importlib.import_module(f"{family.package}.{m}").__file__).resolve() for m in family.hub.extra_code_modules]
    return auto_map, custom_pipelines, list(dict.fromkeys(files))


def _code_package(family: FamilySpec) -> dict[str, Any]:
    """`package_root` / `package_name` for `assemble_remote_code`: the top-level package holding the family (hf_dgm
    for built-in families, the third-party package otherwise)."""
    import importlib

    top = family.package.split(".")[0]
    module = importlib.import_module(top)
    if not getattr(module, "__file__", None):
        raise PublishError(f"the package {top!r} of family {family.model_type!r} has no __init__.py file")
    return {"package_root": Path(module.__file__).resolve().parent, "package_name": top}


def _pipeline_descriptions(custom_pipelines: dict[str, dict[str, Any]]) -> dict[str, str]:
    from transformers.pipelines import PIPELINE_REGISTRY

    out = {}
    for task in custom_pipelines:
        if task not in PIPELINE_REGISTRY.supported_tasks:  # a reserved alias (image-to-image): repo config only
            continue
        doc = inspect.getdoc(PIPELINE_REGISTRY.supported_tasks[task]["impl"]) or ""
        out[task] = " ".join(doc.split("\n\n")[0].split())
    return out


# ----------------------------------------------------------------------------------------------- assembly
def _load_source_model(model_dir: Path, auto_class: str = "AutoModel"):
    """The run's model, with hf_dgm's classes. A `quantization_config` with `quant_method: gguf` left in a
    sub-model's config (from composing with a GGUF decoder) is dropped: safetensors folders hold the dequantized
    tensors, and with it transformers refuses to save the model again."""
    import transformers
    from transformers import AutoConfig

    import hf_dgm  # noqa: F401

    config = AutoConfig.from_pretrained(model_dir)
    for name, sub in [("", config), *((k, getattr(config, k)) for k in getattr(config, "sub_configs", {}))]:
        quant = getattr(sub, "quantization_config", None)
        method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
        if str(method).lower().endswith("gguf"):
            logger.warning("dropping the GGUF quantization_config of %s: the safetensors weights are dequantized",
                           name or "the model")
            del sub.quantization_config
    model = getattr(transformers, auto_class).from_pretrained(model_dir, config=config, dtype="auto")
    model.eval()
    return model


def _clean_config_json(path: Path, auto_map: dict[str, str], custom_pipelines: dict[str, dict[str, Any]]) -> None:
    """Add `auto_map` / `custom_pipelines`; replace sub-models' local `_name_or_path` (private paths of the
    training machine) by their Hub id, or drop them."""
    config = json.loads(path.read_text())
    config["auto_map"] = auto_map
    config["custom_pipelines"] = custom_pipelines
    for value in config.values():
        if isinstance(value, dict) and "_name_or_path" in value:
            hub_id = _hub_id(value["_name_or_path"])
            if hub_id:
                value["_name_or_path"] = hub_id
            else:
                del value["_name_or_path"]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


HANDLER_SOURCE = Path(__file__).resolve().with_name("endpoint_handler.py")


def write_endpoint_handler(path: Path, default_task: str | None, model_auto_class: str = "AutoModel") -> None:
    """Copy the Inference Endpoints handler into the repo as `handler.py`, with the family's default task and the
    Auto class it serves the model's forward with when the repo has no pipeline.

    Both values are validated (a task name; a transformers `AutoModel*` class) and written as Python literals;
    the result is parsed back and must assign exactly those values."""
    import ast

    import transformers

    try:
        check_task(default_task, "default_task (the family's pipeline task)")
    except ModelCardError as err:
        raise PublishError(str(err)) from None
    if not (isinstance(model_auto_class, str) and re.fullmatch(r"AutoModel\w*", model_auto_class)
            and isinstance(getattr(transformers, model_auto_class, None), type)):
        raise PublishError(
            f"model_auto_class {model_auto_class!r} is not a transformers Auto class (AutoModel, AutoModelFor...)")
    source = HANDLER_SOURCE.read_text(encoding="utf-8")
    for marker, value in (
        ("DEFAULT_TASK: str | None = None  # filled in by the publisher", f"DEFAULT_TASK: str | None = {default_task!r}"),
        ('MODEL_AUTO_CLASS: str = "AutoModel"  # filled in by the publisher', f"MODEL_AUTO_CLASS: str = {model_auto_class!r}"),
    ):
        if marker not in source:  # pragma: no cover - guards edits of endpoint_handler.py
            raise RuntimeError(f"{HANDLER_SOURCE} lost its marker line {marker!r}")
        source = source.replace(marker, value)
    assigned = {node.targets[0].id if isinstance(node, ast.Assign) else node.target.id: node.value
                for node in ast.parse(source).body
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
                    node.targets[0] if isinstance(node, ast.Assign) else node.target, ast.Name)}
    if (ast.literal_eval(assigned["DEFAULT_TASK"]) != default_task
            or ast.literal_eval(assigned["MODEL_AUTO_CLASS"]) != model_auto_class):  # pragma: no cover - defence
        raise PublishError("handler.py does not assign the validated DEFAULT_TASK / MODEL_AUTO_CLASS literals")
    path.write_text(source, encoding="utf-8")


def _handler_check(folder: Path, request: dict[str, Any]) -> str:
    """A snippet that serves `request` through the repo's handler.py, as an Inference Endpoint would."""
    return (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "from handler import EndpointHandler\n"
        f"response = EndpointHandler({str(folder)!r})({request!r})\n"
        "print(json.dumps(response))\n"
    )


def _unique_name(name: str, used: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, i = name, 1
    while candidate in used:
        i += 1
        candidate = f"{stem}-{i}{suffix}"
    used.add(candidate)
    return candidate


def prepare_repo_folder(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    repo_id: str,
    *,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    license: str | None = None,
    validate: bool = True,
    space_id: str | None = None,
) -> PreparedRepo:
    """Write the exact repo folder for `model_dir` into `out_dir` (must be missing or empty) and validate it."""
    import hf_dgm

    _check_publish_inputs(repo_id, license, space_id=space_id)
    model_dir = Path(model_dir).resolve()
    out_dir = Path(out_dir)
    if not model_dir.is_dir():
        raise PublishError(f"{model_dir} is not a directory")
    check_no_pickles(model_dir)
    model_type = read_model_type(model_dir)
    if not _has_safetensors(model_dir):
        raise PublishError(f"{model_dir} holds no safetensors weights (model.safetensors or its index)")
    try:
        family = get_family(model_type)
    except ValueError as err:
        raise PublishError(str(err)) from None
    if family.hub is None:
        raise PublishError(f"family {model_type!r} declares no Hub entry (FamilySpec.hub); it cannot be published")
    hub = family.hub
    if out_dir.exists() and any(out_dir.iterdir()):
        raise PublishError(f"{out_dir} exists and is not empty; the repo folder must be written into an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    auto_map, custom_pipelines, entry_files = discover_family_code(family)
    logger.info("loading the %s model from %s", model_type, model_dir)
    model = _load_source_model(model_dir, hub.model_auto_class)
    logger.info("saving weights (max shard size %s)", max_shard_size)
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)
    for sub in hub.required_subfolders:
        if not (out_dir / sub).is_dir():
            raise PublishError(
                f"the saved model lacks `{sub}/` (for {model_type}: saved next to the weights by save_pretrained); "
                f"is it missing from {model_dir}?"
            )
    code = assemble_remote_code(
        entry_files, out_dir, header=f"Generated by hf_dgm {hf_dgm.__version__} (hf_dgm.hub); edit the package, not this copy",
        **_code_package(family),
    )
    _clean_config_json(out_dir / "config.json", auto_map, custom_pipelines)
    write_endpoint_handler(out_dir / "handler.py", hub.task_for(model.config), hub.model_auto_class)

    try:
        run = read_run(model_dir)
    except ValueError as err:
        raise PublishError(str(err)) from None
    used: set[str] = set()
    images: dict[str, str] = {}
    for src in run.images:
        dest = f"images/{_unique_name(src.name, used)}"
        (out_dir / "images").mkdir(exist_ok=True)
        shutil.copyfile(src, out_dir / dest)
        images[dest] = src.stem.replace("_", " ").replace("-", " ")
    texts: dict[str, str] = {}
    for src in run.text_samples:
        dest = f"samples/{_unique_name(src.name, used)}"
        (out_dir / "samples").mkdir(exist_ok=True)
        shutil.copyfile(src, out_dir / dest)
        texts[dest] = str(src)
    # the card cites the run's metrics and recipe files: publish them next to it (the recipe without local paths)
    for name in run.metrics_sources:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out_dir / name)
    if run.recipe and run.recipe_source:
        recipe_text = (json.dumps(run.recipe, indent=2) if run.recipe_source.endswith(".json")
                       else yaml.safe_dump(run.recipe, sort_keys=False))
        (out_dir / run.recipe_source).write_text(recipe_text, encoding="utf-8")
    try:
        card = build_card(
            hub, model.config, run, repo_id, requirements=code.requirements, repo_images=images,
            repo_text_samples=texts, pipelines=_pipeline_descriptions(custom_pipelines), license=license,
            space_id=space_id,
        )
    except ModelCardError as err:
        raise PublishError(f"{model_dir}: {err}") from None
    (out_dir / "README.md").write_text(str(card), encoding="utf-8")

    report = None
    if validate:
        # Only code rendered from the template's usage block runs (`card.usage_code`, built with a placeholder
        # repo id), never code found in the card's text: values from the run folder cannot add code to it.
        placeholder = json.dumps(USAGE_REPO_PLACEHOLDER)
        snippets = [code.replace(placeholder, repr(str(out_dir.resolve()))) for code in card.usage_code]
        request = hub.request_for(model.config)
        if request:  # a family may have no request that runs without local files (e.g. a feature store)
            snippets.append(_handler_check(out_dir.resolve(), request))
        report = validate_repo_folder(out_dir, model, family, snippets=snippets)
    for cache in list(out_dir.rglob("__pycache__")):  # never publish bytecode, whoever imported the folder
        shutil.rmtree(cache)
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    return PreparedRepo(
        folder=out_dir, family=family, model_type=model_type, files=files, code=code, auto_map=auto_map,
        custom_pipelines=custom_pipelines, validation=report,
    )


def validate_repo_folder(
    folder: Path, source_model, family: FamilySpec, snippets: list[str] | None = None
) -> ValidationReport:
    """Compare the source model with the folder loaded through remote code in an interpreter without hf_dgm;
    also run the card's usage `snippets` there (pointed at the folder)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    task = family.hub.task_for(source_model.config)
    pipe = None  # a family without a pipeline: the probe drives the model alone
    if task is not None:
        impl = PIPELINE_REGISTRY.supported_tasks[task]["impl"]
        pipe = impl(model=source_model, task=task, device="cpu")
    reference = run_reference_probe(source_model, pipe, family.hub.probe)
    logger.info("validating %s in an interpreter without hf_dgm", folder)
    candidate = run_isolated_probe(folder, task, family.hub.probe, snippets=snippets,
                                   model_auto_class=family.hub.model_auto_class)
    report = compare_probe_outputs(reference, candidate)
    logger.info("validated: max |diff| %s", report.max_abs_diff)
    for warning in report.warnings:
        logger.warning("validation warning: %s", warning)
    return report


# ----------------------------------------------------------------------------------------------- pushing
def resolve_token(token: str | None) -> str:
    """`token`, else `HF_TOKEN`, else the token stored by `hf auth login`."""
    from huggingface_hub import get_token

    resolved = token or get_token()
    if not resolved:
        raise PublishError(
            "no Hugging Face token: pass token=... (CLI: --token), set HF_TOKEN, or run `hf auth login`"
        )
    return resolved


def _remote_state(api, repo_id: str, revision: str | None) -> tuple[bool, str | None, str | None, list[str]]:
    """(repo exists, head sha of the target revision or None if that branch is missing, the model_type of the
    config.json there (None if there is none), remote files). Network errors propagate: an unanswered check must
    not read as "no config.json" and allow an overwrite."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        api.model_info(repo_id)
    except RepositoryNotFoundError:
        return False, None, None, []
    target = revision or "main"
    try:
        sha = api.model_info(repo_id, revision=target).sha
    except RevisionNotFoundError:
        sha = None  # a new branch starts from main: check main's model type
    ref = sha or api.model_info(repo_id, revision="main").sha
    files = api.list_repo_files(repo_id, revision=ref)
    remote_type = None
    if "config.json" in files:
        with tempfile.TemporaryDirectory() as cache:
            path = api.hf_hub_download(repo_id, "config.json", revision=ref, cache_dir=cache)
            try:
                remote_type = json.loads(Path(path).read_text()).get("model_type")
            except json.JSONDecodeError:
                remote_type = "<unreadable config.json>"
    return True, sha, remote_type, files


COMMIT_ATTEMPTS = 4
COMMIT_BACKOFF_SECONDS = 2.0  # waits 2, 4, 8 s between attempts


def _commit_with_retries(api, repo_id: str, operations, **kwargs):
    """`api.create_commit`, retried with exponential backoff while the Hub answers 5xx (the commit did not land:
    `parent_commit` makes a retry of a commit that did land fail instead of duplicating it). After the last
    attempt, a `PublishError` with one line saying what the Hub answered."""
    import time

    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return api.create_commit(repo_id, operations, **kwargs)
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status is None or status < 500:
                raise
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            if attempt == COMMIT_ATTEMPTS:
                times = f" {COMMIT_ATTEMPTS} times" if COMMIT_ATTEMPTS > 1 else ""
                raise PublishError(
                    f"the Hub answered {status} to the commit to {repo_id}{times} ({first_line}); "
                    "try again later; nothing was committed"
                ) from None
            wait = COMMIT_BACKOFF_SECONDS * 2 ** (attempt - 1)
            logger.warning("commit to %s failed with %s (attempt %d/%d); retrying in %.1f s",
                           repo_id, status, attempt, COMMIT_ATTEMPTS, wait)
            time.sleep(wait)


def _one_line(err: BaseException) -> str:
    """What an upload error says, on one line: the HTTP status and the first line of the message."""
    from huggingface_hub.errors import HfHubHTTPError

    def first_line(e: BaseException) -> str:
        text = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
        return text if len(text) <= 300 else text[:297] + "..."

    text = first_line(err)
    if not isinstance(err, (HfHubHTTPError, PublishError)):
        text = f"{type(err).__name__}: {text}"
    cause, seen = err, set()
    while cause is not None and id(cause) not in seen:  # the Hub's answer behind a wrapper ("Error while uploading")
        seen.add(id(cause))
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(cause, HfHubHTTPError) and status is not None:
            if cause is not err:
                text += f" (HTTP {status}: {first_line(cause)})"
            elif str(status) not in text:
                text = f"HTTP {status}: {text}"
            break
        cause = cause.__cause__ or cause.__context__
    return text


def delete_command(repo_id: str, repo_type: str = "model", endpoint: str | None = None) -> str:
    """The `hf` command (huggingface_hub's CLI) that deletes `repo_id`."""

    prefix = f"HF_ENDPOINT={endpoint} " if endpoint and endpoint.rstrip("/") != "https://huggingface.co" else ""
    return f"{prefix}hf repos delete {repo_id} --repo-type {repo_type} --yes"


def commit_new_or_existing(
    api, repo_id: str, operations, *, repo_type: str, exists: bool, parent_sha: str | None, private: bool = False,
    revision: str | None = None, create_pr: bool = False, space_sdk: str | None = None, **commit_kwargs,
):
    """Create the repo (when it does not exist) or the branch (when missing), then make ONE commit, retried on 5xx.

    Any failure ends in a one-line `PublishError` that says what failed and that nothing was committed. A repo or
    branch this call created and that still holds nothing of ours is deleted again; if that is impossible, the
    error names it and the command that removes it. A process killed (`kill -9`) between the creation and the
    commit cannot clean up: the command was logged right before the creation, and publishing again commits into
    the empty repo."""
    from huggingface_hub.errors import HfHubHTTPError

    kind = "Space" if repo_type == "space" else "repo"
    created_repo = created_branch = False
    try:
        if not exists:
            logger.info("creating the %s %s; if this process is killed before its first commit lands, remove the "
                        "empty %s with `%s` (or publish again into it)", kind, repo_id, kind,
                        delete_command(repo_id, repo_type, api.endpoint))
            try:
                api.create_repo(repo_id, private=private, exist_ok=False, repo_type=repo_type,
                                **({"space_sdk": space_sdk} if space_sdk else {}))
            except HfHubHTTPError as err:
                if err.response is not None and err.response.status_code == 409:
                    raise PublishError(f"{repo_id} was created by someone else while publishing; run again") from None
                raise
            created_repo = True
            parent_sha = api.repo_info(repo_id, repo_type=repo_type).sha
        if revision is not None and parent_sha is None and create_pr:
            raise PublishError(f"cannot open a pull request against {revision!r}: no such branch in {repo_id}")
        if revision is not None and parent_sha is None:
            api.create_branch(repo_id, branch=revision, revision="main", exist_ok=False, repo_type=repo_type)
            created_branch = True
            parent_sha = api.repo_info(repo_id, revision=revision, repo_type=repo_type).sha
        return _commit_with_retries(
            api, repo_id, operations, revision=revision, create_pr=create_pr, parent_commit=parent_sha,
            repo_type=repo_type, **commit_kwargs,
        )
    except BaseException as err:
        # One commit: nothing of the upload landed. Undo the empty repo / branch this call created, unless
        # someone committed to it meanwhile.
        leftover = ""
        if created_repo or created_branch:
            what = f"{kind} {repo_id}" if created_repo else f"branch {revision!r} of {repo_id}"
            try:
                head = api.repo_info(repo_id, revision=revision if created_branch else "main", repo_type=repo_type).sha
                if head != parent_sha:
                    leftover = f"; the {what} this run created has commits from elsewhere and was kept"
                elif created_repo:
                    api.delete_repo(repo_id, repo_type=repo_type)
                    leftover = f"; the empty {kind} {repo_id} this run created was deleted again"
                else:
                    api.delete_branch(repo_id, branch=revision, repo_type=repo_type)
                    leftover = f"; the branch {revision!r} this run created was deleted again"
            except Exception as cleanup_error:
                command = (delete_command(repo_id, repo_type, api.endpoint) if created_repo else
                           f"hf repos branch delete {repo_id} {revision} --repo-type {repo_type}")
                leftover = (f"; the empty {what} this run created could not be deleted "
                            f"({_one_line(cleanup_error)}): remove it with `{command}`")
        if not isinstance(err, Exception):  # KeyboardInterrupt / SystemExit: stop, after cleaning up
            if leftover:
                logger.error("interrupted before the commit landed%s", leftover)
            raise
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 412:
            raise PublishError(
                f"{repo_id} changed while publishing (a commit landed on {revision or 'main'} after this run read it: "
                f"{_one_line(err)}); nothing was committed, the remote is unchanged. Run again to publish on top of "
                f"it{leftover}"
            ) from None
        what_failed = (str(err) if isinstance(err, PublishError) else
                       f"uploading {len(operations)} files to the {kind} {repo_id} failed ({_one_line(err)})")
        if "nothing was committed" not in what_failed:
            what_failed += "; nothing was committed"
        raise PublishError(f"{what_failed.rstrip('.')}, the remote is unchanged{leftover}") from None


def publish_model(
    model_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    commit_description: str | None = None,
    token: str | None = None,
    force: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    license: str | None = None,
    endpoint: str | None = None,
    validate: bool = True,
    space_id: str | None = None,
) -> PublishResult:
    """Assemble, validate and push `model_dir` to `repo_id` in one atomic commit.

    Args:
        model_dir: a folder written by `save_pretrained` (plus the run's metrics/recipe/samples files).
        repo_id: `owner/name` (a bare name is put in the token owner's namespace).
        private: create the repo private (an existing repo keeps its visibility).
        create_pr: open a pull request instead of committing to the branch.
        revision: branch to commit to (created from `main` if missing); defaults to `main`.
        commit_message / commit_description: of the commit (defaults describe the upload and its validation).
        token: Hub token; defaults to `HF_TOKEN` or the stored login.
        force: overwrite a repo whose `config.json` has another `model_type`.
        dry_run_dir: write the exact repo folder there and push nothing (no token needed).
        max_shard_size: weights are sharded above this size (`save_pretrained`'s `max_shard_size`).
        license: card license (default: the run's `run_metadata.json`, else the family's).
        endpoint: Hub endpoint (defaults to `HF_ENDPOINT`).
        validate: load the folder through remote code without hf_dgm and compare outputs (keep it on).
        space_id: the model's Gradio Space (`upload/publish_space.py`), linked from the card.

    Raises:
        PublishError: bad input (pickles, no safetensors, unknown family), missing token, refused overwrite.
        ValidationError: the assembled repo does not reproduce the source model.
        PublishError: the upload failed (one line: what failed; the remote is left as it was, single commit).
    """
    _check_publish_inputs(repo_id, license, revision, space_id)
    if dry_run_dir is not None:
        prepared = prepare_repo_folder(model_dir, dry_run_dir, repo_id, max_shard_size=max_shard_size,
                                       license=license, validate=validate, space_id=space_id)
        return PublishResult(repo_id=repo_id, files=prepared.files, validation=prepared.validation, dry_run=True,
                             folder=Path(dry_run_dir),
                             warnings=list(prepared.validation.warnings) if prepared.validation else [])

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    import hf_dgm

    token = resolve_token(token)
    api = HfApi(endpoint=endpoint, token=token)
    if "/" not in repo_id:
        repo_id = f"{api.whoami()['name']}/{repo_id}"
    # Fail fast, before the (slow) assembly: does the target hold another kind of model?
    model_type = read_model_type(Path(model_dir))
    exists, parent_sha, remote_type, remote_files = _remote_state(api, repo_id, revision)
    warnings = []
    if remote_type is not None and remote_type != model_type and not force:
        raise PublishError(
            f"{repo_id} holds a {remote_type!r} model (config.json) and this is a {model_type!r} model; "
            "refusing to overwrite it (pass force=True / --force to replace it)"
        )
    if exists and private and not api.model_info(repo_id).private:
        warnings.append(f"{repo_id} already exists and is public; --private only applies to new repos")
        logger.warning(warnings[-1])

    with tempfile.TemporaryDirectory(prefix="hf_dgm_publish_") as tmp:
        folder = Path(tmp) / "repo"
        prepared = prepare_repo_folder(model_dir, folder, repo_id, max_shard_size=max_shard_size,
                                       license=license, validate=validate, space_id=space_id)
        additions = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in prepared.files]
        stale = sorted(f for f in remote_files if f not in prepared.files and _STALE_PATTERNS.search(f))
        operations = additions + [CommitOperationDelete(path_in_repo=f) for f in stale]
        if commit_message is None:
            commit_message = f"Upload {prepared.model_type} model ({Path(model_dir).name}) with hf_dgm {hf_dgm.__version__}"
        if commit_description is None and prepared.validation is not None:
            diffs = ", ".join(f"{k} {v:.2e}" for k, v in prepared.validation.max_abs_diff.items())
            commit_description = (
                "Validated before upload: loaded with trust_remote_code=True in an interpreter without hf_dgm; "
                f"max |difference| from the source model: {diffs}."
            )

        info = commit_new_or_existing(
            api, repo_id, operations, repo_type="model", exists=exists, parent_sha=parent_sha, private=private,
            revision=revision, create_pr=create_pr, commit_message=commit_message,
            commit_description=commit_description,
        )
    if prepared.validation is not None:
        warnings += prepared.validation.warnings
    return PublishResult(
        repo_id=repo_id, files=prepared.files, validation=prepared.validation, commit_url=info.commit_url,
        commit_oid=info.oid, pr_url=info.pr_url, revision=info.pr_revision or revision or "main", deleted=stale,
        warnings=warnings,
    )


__all__ = [
    "publish_model",
    "prepare_repo_folder",
    "validate_repo_folder",
    "discover_family_code",
    "check_no_pickles",
    "resolve_token",
    "PublishError",
    "PublishResult",
    "PreparedRepo",
    "DEFAULT_MAX_SHARD_SIZE",
]
