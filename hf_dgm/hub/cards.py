"""Model cards: render the family's Jinja template into a `ModelCard` (:func:`build_card`: checks -> model index ->
render). What a run folder recorded is read by :mod:`hf_dgm.hub.run_info`, the values checked by
:mod:`hf_dgm.hub.card_checks`, the metadata and model index built by :mod:`hf_dgm.hub.model_index`.

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
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..registry import HubEntry
from .card_checks import (  # noqa: F401  (re-exported: the established import path)
    HUB_LICENSES,
    ModelCardError,
    _UNSAFE_CHARS,
    check_card,
    check_card_inputs,
    check_card_value,
    check_language,
    check_license,
    check_repo_id,
    check_revision,
    check_tags,
    check_task,
)
from .model_index import MetricsIndex, base_models, card_data, metrics_index
from .run_info import (  # noqa: F401  (re-exported)
    KNOWN_LOCAL_CHECKPOINTS,
    METRICS_FILES,
    RECIPE_FILES,
    RUN_METADATA_FILE,
    RunInfo,
    _hub_id,
    public_recipe,
    read_metrics,
    read_recipe,
    read_run,
)


TEMPLATES_PACKAGE = "hf_dgm.model_cards"


def templates_dir(package: str = TEMPLATES_PACKAGE) -> Path:
    """The folder of a templates package (package data, found through `importlib.resources`)."""
    from importlib.resources import files

    return Path(str(files(package)))


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
    """Render the family's card for `repo_id`: the inputs are checked (:func:`check_card_inputs`), the metrics
    table and model index built (:func:`hf_dgm.hub.model_index.metrics_index`), then the template rendered and the
    card parsed back (:func:`check_card`). Returns a `huggingface_hub.ModelCard` whose `usage_code` holds the
    template's usage snippets (for the publisher's validation)."""
    check_card_inputs(run, repo_id, license=license, space_id=space_id, repo_images=repo_images,
                      repo_text_samples=repo_text_samples)
    index = metrics_index(family, run)
    datasets = run.metadata.get("datasets") or ([index.dataset_id] if index.dataset_id else [])
    data = card_data(family, config, run, repo_id, index, datasets, license)
    variables = _card_variables(
        family, config, run, repo_id, index, data, datasets, requirements=requirements, repo_images=repo_images,
        repo_text_samples=repo_text_samples, pipelines=pipelines, space_id=space_id,
    )
    return _render(family, variables, data, template_dirs)


def _card_variables(
    family: HubEntry, config: Any, run: RunInfo, repo_id: str, index: MetricsIndex, data, datasets: list[Any], *,
    requirements: list[str] | None, repo_images: Mapping[str, str] | None,
    repo_text_samples: Mapping[str, str] | None, pipelines: Mapping[str, Any] | None, space_id: str | None,
) -> dict[str, Any]:
    """The template's variables: the family's `card_variables`, then what the run, the config and the publisher
    give (blocks the publisher builds itself are `Markup`, every other value goes through `_finalize`)."""
    from markupsafe import Markup

    recipe_yaml = yaml.safe_dump(run.recipe, sort_keys=False).strip() if run.recipe else None
    config_rows = []
    for dotted in family.config_summary:
        value = _config_value(config, dotted)
        if value is not None:
            config_rows.append({"name": dotted, "value": value})
    variables = dict(family.card_variables)
    variables.update(
        repo_id=repo_id,
        model_name=repo_id.split("/")[-1],
        family=family,
        config=config,
        config_rows=config_rows,
        base_models=data.base_model or [],
        datasets=datasets,
        dataset_name=index.dataset_name,
        dataset_id=index.dataset_id,
        split=run.metrics_split,
        metrics_table=index.table,
        metrics_indexed=index.indexed,
        metrics_sources=run.metrics_sources,
        metrics_comparable=index.comparable,
        recipe_yaml=Markup(recipe_yaml) if recipe_yaml else None,
        recipe_fence=Markup(fence_for(recipe_yaml or "")),
        recipe_source=run.recipe_source,
        recipe=run.recipe or {},  # the same settings as a mapping, for templates that describe them
        metadata=run.metadata,
        requirements=requirements or [],
        images=dict(repo_images or {}),
        text_samples={path: Markup(_excerpt(src)) for path, src in (repo_text_samples or {}).items()},
        pipelines=dict(pipelines or {}),
        space_id=space_id,  # the Gradio Space demoing this model (upload/publish_space.py), linked from the card
        endpoint_request=Markup(json.dumps(request, indent=2)) if (request := family.request_for(config)) else None,
    )
    return variables


def _render(family: HubEntry, variables: dict[str, Any], data, template_dirs: Sequence[Path] | None):
    """Render the family's template (strict undefined, every printed value checked), parse the card back against
    `data`, and attach the usage code the publisher may run."""
    import jinja2
    from huggingface_hub import ModelCard
    from markupsafe import Markup

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
    variables["card_data"] = Markup(data.to_yaml())
    card = ModelCard(template.render(**variables))
    check_card(card, data)
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


__all__ = ["check_repo_id", "check_card_value", "fence_for", "usage_snippets_from_template", "RunInfo", "read_run", "usage_snippets", "read_metrics", "read_recipe", "base_models", "build_card", "check_card",
           "ModelCardError", "TEMPLATES_PACKAGE", "templates_dir"]
