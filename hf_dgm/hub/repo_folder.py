"""Assembling the exact repo folder of a run: weights (`save_pretrained`), flat remote code, `config.json` with
`auto_map` / `custom_pipelines`, the Inference Endpoints handler, the run's images, samples, metrics and recipe, and
the model card; then, unless disabled, its validation (:func:`hf_dgm.hub.validation.validate_repo_folder`)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..registry import FamilySpec, get_family
from .card_checks import ModelCardError, check_task
from .cards import USAGE_REPO_PLACEHOLDER, build_card
from .code_discovery import code_package, discover_family_code, pipeline_descriptions
from .publish_inputs import PublishError, check_no_pickles, check_publish_inputs, has_safetensors, read_model_type
from .remote_code import RemoteCodeBundle, assemble_remote_code
from .run_info import RunInfo, _hub_id, read_run
from .validation import ValidationReport, validate_repo_folder

logger = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_SIZE = "5GB"


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
    check_publish_inputs(repo_id, license, space_id=space_id)
    model_dir, model_type, family = _resolve_source(model_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise PublishError(f"{out_dir} exists and is not empty; the repo folder must be written into an empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    model, code, auto_map, custom_pipelines = _write_model_and_code(model_dir, out_dir, family, max_shard_size)
    try:
        run = read_run(model_dir)
    except ValueError as err:
        raise PublishError(str(err)) from None
    images, texts = _copy_run_files(run, model_dir, out_dir)
    try:
        card = build_card(
            family.hub, model.config, run, repo_id, requirements=code.requirements, repo_images=images,
            repo_text_samples=texts, pipelines=pipeline_descriptions(custom_pipelines), license=license,
            space_id=space_id,
        )
    except ModelCardError as err:
        raise PublishError(f"{model_dir}: {err}") from None
    (out_dir / "README.md").write_text(str(card), encoding="utf-8")

    report = _validate_folder(out_dir, model, family, card.usage_code) if validate else None
    for cache in list(out_dir.rglob("__pycache__")):  # never publish bytecode, whoever imported the folder
        shutil.rmtree(cache)
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    return PreparedRepo(
        folder=out_dir, family=family, model_type=model_type, files=files, code=code, auto_map=auto_map,
        custom_pipelines=custom_pipelines, validation=report,
    )


def _resolve_source(model_dir: str | os.PathLike) -> tuple[Path, str, FamilySpec]:
    """(the run folder, its model_type, its family), after checking it is a saved model with safetensors weights,
    no pickles, and a family that declares a Hub entry."""
    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise PublishError(f"{model_dir} is not a directory")
    check_no_pickles(model_dir)
    model_type = read_model_type(model_dir)
    if not has_safetensors(model_dir):
        raise PublishError(f"{model_dir} holds no safetensors weights (model.safetensors or its index)")
    try:
        family = get_family(model_type)
    except ValueError as err:
        raise PublishError(str(err)) from None
    if family.hub is None:
        raise PublishError(f"family {model_type!r} declares no Hub entry (FamilySpec.hub); it cannot be published")
    return model_dir, model_type, family


def _write_model_and_code(model_dir: Path, out_dir: Path, family: FamilySpec, max_shard_size: str | int):
    """Weights (`save_pretrained`), flat remote code, `config.json`'s `auto_map` / `custom_pipelines` and
    `handler.py` into `out_dir`. Returns (the source model, the code bundle, auto_map, custom_pipelines)."""
    import hf_dgm

    hub, model_type = family.hub, family.model_type
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
        **code_package(family),
    )
    _clean_config_json(out_dir / "config.json", auto_map, custom_pipelines)
    write_endpoint_handler(out_dir / "handler.py", hub.task_for(model.config), hub.model_auto_class)
    return model, code, auto_map, custom_pipelines


def _copy_run_files(run: RunInfo, model_dir: Path, out_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Copy the run's images (`images/`), text samples (`samples/`), metrics files and recipe (without local
    paths) next to the card. Returns ({repo path: caption} of the images, {repo path: source} of the samples)."""
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
    return images, texts


def _validate_folder(out_dir: Path, model, family: FamilySpec, usage_code: list[str]) -> ValidationReport:
    """Validate the folder against the source model, also running the card's usage code and one request through
    handler.py there.

    Only code rendered from the template's usage block runs (`card.usage_code`, built with a placeholder repo id),
    never code found in the card's text: values from the run folder cannot add code to it."""
    placeholder = json.dumps(USAGE_REPO_PLACEHOLDER)
    snippets = [code.replace(placeholder, repr(str(out_dir.resolve()))) for code in usage_code]
    request = family.hub.request_for(model.config)
    if request:  # a family may have no request that runs without local files (e.g. a feature store)
        snippets.append(_handler_check(out_dir.resolve(), request))
    return validate_repo_folder(out_dir, model, family, snippets=snippets)
