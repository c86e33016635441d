"""Small pieces that published (remote-code) configs share with the installed package."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig


def drop_locally_registered_pipelines(custom_pipelines: dict[str, Any] | None) -> dict[str, Any] | None:
    """
    A published `config.json` carries `custom_pipelines` so that `trust_remote_code=True` finds the pipeline code
    without hf_dgm. When hf_dgm is installed and imported, its own registration of the same task (same class
    name) must win, or `pipeline(task, model=repo)` would demand `trust_remote_code` for a task that is local.
    Returns the entries that are not registered locally (None when none remain).
    """
    if not custom_pipelines:
        return None
    from transformers.pipelines import PIPELINE_REGISTRY

    local = PIPELINE_REGISTRY.supported_tasks
    remaining = {}
    for task, info in custom_pipelines.items():
        local_impl = local.get(task, {}).get("impl")
        remote_name = str((info or {}).get("impl", "")).rsplit(".", 1)[-1]
        if getattr(local_impl, "__name__", None) != remote_name:
            remaining[task] = info
    return remaining or None


class HubCompatibleConfig(PreTrainedConfig):
    """Base of every hf-dgm config: drops the `custom_pipelines` entries of a published `config.json` whose task is
    registered locally under the same class name (see `drop_locally_registered_pipelines`), so that with hf_dgm
    imported `pipeline(task, model=<published folder>)` uses the installed pipeline without `trust_remote_code`,
    and without hf_dgm the remote-code entries stay."""

    def __init__(self, **kwargs: Any) -> None:
        custom_pipelines = drop_locally_registered_pipelines(kwargs.pop("custom_pipelines", None))
        if custom_pipelines:
            kwargs["custom_pipelines"] = custom_pipelines
        super().__init__(**kwargs)


__all__ = ["HubCompatibleConfig", "drop_locally_registered_pipelines"]
