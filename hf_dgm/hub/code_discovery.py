"""What `import hf_dgm` registered for a family, as the published repo declares it: the Auto classes (`auto_map`),
the pipeline tasks (`custom_pipelines`) and the code files those come from."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..registry import FamilySpec
from .publish_inputs import PublishError


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


def code_package(family: FamilySpec) -> dict[str, Any]:
    """`package_root` / `package_name` for `assemble_remote_code`: the top-level package holding the family (hf_dgm
    for built-in families, the third-party package otherwise)."""
    import importlib

    top = family.package.split(".")[0]
    module = importlib.import_module(top)
    if not getattr(module, "__file__", None):
        raise PublishError(f"the package {top!r} of family {family.model_type!r} has no __init__.py file")
    return {"package_root": Path(module.__file__).resolve().parent, "package_name": top}


def pipeline_descriptions(custom_pipelines: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Task -> the first paragraph of its pipeline class's docstring (for the model card)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    out = {}
    for task in custom_pipelines:
        if task not in PIPELINE_REGISTRY.supported_tasks:  # a reserved alias (image-to-image): repo config only
            continue
        doc = inspect.getdoc(PIPELINE_REGISTRY.supported_tasks[task]["impl"]) or ""
        out[task] = " ".join(doc.split("\n\n")[0].split())
    return out
