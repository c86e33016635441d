"""A model card's metadata: the metrics table, the `model-index` (Hub evaluation results: only metrics the family
declares, measured on a named dataset with the standard protocol), the base models, and the `ModelCardData`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import HubEntry
from .run_info import RunInfo, _hub_id


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


@dataclass
class MetricsIndex:
    """The run's metrics as the card shows them: every row of the table, the rows in the model index, and the
    model index's `EvalResult`s."""

    table: list[dict[str, Any]] = field(default_factory=list)
    indexed: list[dict[str, Any]] = field(default_factory=list)
    eval_results: list[Any] = field(default_factory=list)
    comparable: bool = True
    dataset_name: Any = None
    dataset_id: Any = None


def metrics_index(family: HubEntry, run: RunInfo) -> MetricsIndex:
    """The metrics table and the model index of `run`: a metric the family declares (`HubEntry.metrics`) enters
    the index when the dataset is named and the run's numbers are comparable to published ones (a non-standard
    protocol, e.g. FID on random features, keeps them out: `comparable_to_published: false`)."""
    from huggingface_hub import EvalResult

    dataset_name = run.metadata.get("dataset") or run.metadata.get("dataset_name")
    dataset_id = run.metadata.get("dataset_id") or dataset_name
    comparable = run.metadata.get("comparable_to_published", True) is not False
    index = MetricsIndex(comparable=comparable, dataset_name=dataset_name, dataset_id=dataset_id)
    for key, value in run.metrics.items():
        spec = family.metrics.get(key)
        row = {"key": key, "name": spec.name if spec else key, "value": value,
               "direction": "" if spec is None or spec.higher_is_better is None
               else ("higher is better" if spec.higher_is_better else "lower is better")}
        index.table.append(row)
        if spec is not None and dataset_id and comparable:
            index.eval_results.append(EvalResult(
                task_type=family.task_type, task_name=family.task_name, dataset_type=str(dataset_id),
                dataset_name=str(dataset_name or dataset_id), dataset_split=run.metrics_split, metric_type=spec.type,
                metric_name=spec.name, metric_value=round(value, 6),
                dataset_config=run.metadata.get("dataset_config"),
            ))
            index.indexed.append(row)
    return index


def card_data(family: HubEntry, config: Any, run: RunInfo, repo_id: str, index: MetricsIndex,
              datasets: list[Any], license: str | None = None):
    """The card's YAML metadata (`huggingface_hub.ModelCardData`): language, licence (the argument, else the
    run's, else the family's), tags, datasets, base models and the model index."""
    from huggingface_hub import ModelCardData

    bases = base_models(config, run)
    extra = {"base_model_relation": "finetune"} if bases else {}  # several bases would otherwise read as a merge
    return ModelCardData(
        language=run.metadata.get("language", ["en"] if family.pipeline_tag == "text-generation" else None),
        license=license or run.metadata.get("license") or family.license,
        library_name="transformers",
        pipeline_tag=family.pipeline_tag,
        tags=list(dict.fromkeys([*family.tags, *run.metadata.get("tags", [])])),
        datasets=datasets or None,
        base_model=bases or None,
        model_name=repo_id.split("/")[-1],
        eval_results=index.eval_results or None,
        inference=False,
        **extra,
    )
