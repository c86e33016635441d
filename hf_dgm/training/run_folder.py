"""The one run-folder writer of hf-dgm: what every training run leaves next to its saved model.

A run folder holds the model (`save_pretrained`: safetensors weights, config, tokenizers/processor) and:

- `metrics.json`: the run's measured numbers (plus any context the caller adds);
- `run_metadata.json`: what the model card and the publisher read (`dataset`, `dataset_id`, `eval_split`,
  `base_model`, `license`, `tags`, `comparable_to_published`, ...; see `hf_dgm.hub.cards`);
- `recipe.yaml`: the arguments the run used (the merged recipe and command-line flags);
- `training_args.json`: the `TrainingArguments` as JSON (never the pickled `training_args.bin`);
- `README.md`: the family's model card rendered from the above (when the family has a Hub entry).

Training code calls `write_run_folder` once, on the main process, after training and evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import yaml

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
RUN_METADATA_FILE = "run_metadata.json"
RECIPE_FILE = "recipe.yaml"
TRAINING_ARGS_FILE = "training_args.json"


def _plain(value: Any) -> Any:
    """Dataclasses and other objects as YAML/JSON-friendly values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_run_folder(
    out_dir: str | Path,
    *,
    model: Any = None,
    metrics: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    training_args: Any = None,
    model_card: bool = True,
) -> Path:
    """Write the run folder `out_dir` (created if missing) and return it.

    Args:
        model: a `PreTrainedModel` to `save_pretrained` into the folder (None: already saved there).
        metrics: written to `metrics.json`.
        metadata: written to `run_metadata.json` (None values dropped).
        recipe: the arguments of the run, e.g. `{"model": model_args, "data": data_args}` (dataclasses allowed),
            written to `recipe.yaml`.
        training_args: a `TrainingArguments` (its `to_json_string()` goes to `training_args.json`).
        model_card: render the family's card into `README.md` (needs jinja2 and a registered Hub entry).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.save_pretrained(out_dir)
    if metrics is not None:
        (out_dir / METRICS_FILE).write_text(json.dumps(_plain(metrics), indent=2))
    if metadata is not None:
        clean = {k: v for k, v in _plain(metadata).items() if v is not None}
        (out_dir / RUN_METADATA_FILE).write_text(json.dumps(clean, indent=2))
    if recipe is not None:
        (out_dir / RECIPE_FILE).write_text(yaml.safe_dump(_plain(recipe), sort_keys=False))
    if training_args is not None:
        (out_dir / TRAINING_ARGS_FILE).write_text(training_args.to_json_string())
    if model_card:
        write_model_card(out_dir)
    return out_dir


def write_model_card(out_dir: str | Path) -> Path | None:
    """Render the family's model card into `out_dir/README.md` from what the run recorded there (None when the
    family has no Hub entry)."""
    from transformers import AutoConfig

    from ..hub.cards import build_card, read_run
    from ..registry import get_family

    out_dir = Path(out_dir)
    config = AutoConfig.from_pretrained(out_dir)
    family = get_family(config.model_type)
    if family.hub is None:
        logger.info("family %s has no Hub entry: no model card written", config.model_type)
        return None
    card = build_card(family.hub, config, read_run(out_dir), str(out_dir))
    path = out_dir / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return path


__all__ = ["write_run_folder", "write_model_card", "METRICS_FILE", "RUN_METADATA_FILE", "RECIPE_FILE",
           "TRAINING_ARGS_FILE"]
