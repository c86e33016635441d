"""The family registry: one `FamilySpec` per model family, declared once inside the family's own package.

A family module (e.g. `hf_dgm/models/optimus/family.py`) defines a module-level `FAMILY = FamilySpec(...)`
holding everything the rest of the package needs to know about the family:

- the config class and its Auto registrations (`auto_models`: Auto class name -> model class; `processor_class`
  for `AutoProcessor`);
- its pipeline tasks (`PipelineTask`: task name, pipeline class, Auto class, `type`);
- its Hub entry (`HubEntry`: card template, probe, metric specs, endpoint request, ...);
- its converter, evaluator, trainer and demo as *dotted module paths*, imported only when the command runs, so
  importing a model never imports training code or plotting libraries.

`FAMILY_MODULES` below lists the built-in family modules; adding a family = its folder + one line here. A family
defined outside hf_dgm registers itself with `register_family(spec)` (after `import hf_dgm`). `import hf_dgm`
calls `register_all()`, which registers every listed family with transformers (`AutoConfig`, `AutoModel*`,
`AutoProcessor`, `PIPELINE_REGISTRY`); registration is idempotent. `registration.py`, the publisher,
`python -m hf_dgm.convert`, `python -m hf_dgm.evaluate` and the `hf-dgm` command iterate over `families()`.

Entry-point modules named by `converter` and `evaluator` expose `add_arguments(parser)` and `run(args)` (the
evaluator's returns the metrics dict); `trainer` and `demo` modules expose `main(argv) -> int | None` (they parse
their own arguments, trainers with `hf_dgm.training.recipes`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping


# Built-in families: adding one = its folder under hf_dgm/models/ + one line here.
FAMILY_MODULES: list[str] = [
    "hf_dgm.models.optimus.family",
    "hf_dgm.models.fq_biggan.family",
    "hf_dgm.models.prevalent_speaker.family",
    "hf_dgm.models.fq_ugatit.family",
    "hf_dgm.models.fq_stylegan.family",
    "hf_dgm.models.prevalent.family",
    "hf_dgm.models.prevalent.family_navigation",
    "hf_dgm.models.optimus_cara.family",
    "hf_dgm.models.optimus_dialog.family",
]


@dataclass(frozen=True)
class MetricSpec:
    """How a metric key of a run's metrics JSON appears in the card's model index."""

    type: str
    """Model-index metric type (the Hub metric id where one exists)."""
    name: str
    """Human-readable name."""
    higher_is_better: bool | None = None


@dataclass(frozen=True)
class PipelineTask:
    """One pipeline task of a family, registered with `transformers.pipelines.PIPELINE_REGISTRY`."""

    task: str
    pipeline_class: type
    pt_model: str = "AutoModel"
    """Name of the transformers Auto class the pipeline loads models with (remote pipelines look it up by name)."""
    type: str = "multimodal"
    """`"text"`, `"image"`, `"multimodal"` or `"audio"`: what the pipeline's inputs are."""
    default: dict[str, Any] | None = None
    hub_aliases: tuple[str, ...] = ()
    """Extra task names for the same pipeline in a published repo's `custom_pipelines` only (names transformers
    reserves, e.g. `image-to-image`: never registered locally, since that would need patching transformers;
    `pipeline(name, model=repo, trust_remote_code=True)` resolves them from the repo's config)."""


@dataclass(frozen=True)
class HubEntry:
    """What publishing a family needs beyond its Auto classes and pipelines."""

    card_template: str
    """File name of the family's Jinja card template (found in `templates_package`, then `hf_dgm.model_cards`)."""
    pipeline_tag: str
    """Hub task shown on the model page."""
    probe: str
    """`"module.path:function"` of a fixed-input probe `(model, pipe) -> {"tensors": ..., "values": ...}`. The
    module is loaded by file path in an interpreter that cannot import hf_dgm: it may import torch and
    transformers only."""
    probe_task: str | Callable[[Any], str] | None
    """Pipeline task the probe drives (or a function of the config). None for a family without a pipeline (e.g. a
    pretraining checkpoint): the probe gets `pipe=None` and drives the model directly, and the repo's `handler.py`
    serves the model's forward (`model_auto_class`)."""
    task_type: str
    """Model-index `task.type`."""
    task_name: str
    """Model-index `task.name`."""
    model_auto_class: str = "AutoModel"
    """transformers Auto class the publisher loads and saves the source model with, and the validation loads the repo
    with (e.g. `"AutoModelForPreTraining"`, so the pretraining heads are published too)."""
    extra_code_modules: tuple[str, ...] = ()
    """Modules of the family package that the Auto classes do not import but the repo must hold."""
    pipeline_modules: tuple[str, ...] = ()
    """Modules outside the family package whose registered pipeline tasks serve this family (shared pipelines)."""
    required_subfolders: tuple[str, ...] = ()
    """Folders the saved model must contain (e.g. a second tokenizer)."""
    tags: tuple[str, ...] = ()
    license: str = "apache-2.0"
    metrics: Mapping[str, MetricSpec] = field(default_factory=dict)
    card_variables: Mapping[str, Any] = field(default_factory=dict)
    """Static template variables."""
    config_summary: tuple[str, ...] = ()
    """Dotted config attributes worth a line in the card's "Configuration" table."""
    endpoint_request: Mapping[str, Any] | Callable[[Any], dict[str, Any]] = field(default_factory=dict)
    """An Inference Endpoints request body for `handler.py` (or a function of the config); shown on the card and
    sent to the handler during validation."""
    templates_package: str = "hf_dgm.model_cards"
    """Package holding `card_template` (a third-party family ships its own; `_base.md.j2` stays reachable)."""

    def task_for(self, config: Any) -> str | None:
        """The pipeline task the probe drives for this config."""
        return self.probe_task(config) if callable(self.probe_task) else self.probe_task

    def request_for(self, config: Any) -> dict[str, Any]:
        """The endpoint request body for this config."""
        return self.endpoint_request(config) if callable(self.endpoint_request) else dict(self.endpoint_request)


@dataclass(frozen=True)
class FamilySpec:
    """Everything hf_dgm knows about one model family. Declared once, in the family's package."""

    model_type: str
    """The config's `model_type`."""
    package: str
    """Package holding the family's shipped code, e.g. `"hf_dgm.models.optimus"`."""
    config_class: type
    auto_models: Mapping[str, type]
    """transformers Auto class name (`"AutoModel"`, `"AutoModelForPreTraining"`, ...) -> model class."""
    pipelines: tuple[PipelineTask, ...] = ()
    processor_class: type | None = None
    """Registered with `AutoProcessor` when given."""
    hub: HubEntry | None = None
    """Publishing support; None = the family cannot be published."""
    converter: str | None = None
    """Dotted module converting original checkpoints (`add_arguments`, `run`)."""
    evaluator: str | None = None
    """Dotted module evaluating a saved model (`add_arguments`, `run` returning a metrics dict)."""
    trainer: str | None = None
    """Dotted module training the family (`main(argv)`; `hf-dgm train FAMILY ...`)."""
    gan_steps: str | None = None
    """GAN families: `"module.path:Class"` of the training-side `hf_dgm.modules.gan_protocol.GANSteps` (losses and
    regularisers), built as `Class(model)` by `GANTrainer` (imported only when training)."""
    demo: str | None = None
    """Dotted module of an interactive demo (`main(argv)`; `hf-dgm demo FAMILY ...`)."""
    description: str = ""
    """One line, shown by the command-line help."""

    def owns_pipeline(self, module: str) -> bool:
        """Whether a pipeline class defined in `module` serves this family."""
        shared = self.hub.pipeline_modules if self.hub is not None else ()
        return module == self.package or module.startswith(self.package + ".") or module in shared


_FAMILIES: dict[str, FamilySpec] = {}
_BUILTINS_LOADED = False


def _register_with_transformers(spec: FamilySpec) -> None:
    import transformers
    from transformers import AutoConfig
    from transformers.pipelines import PIPELINE_REGISTRY

    try:
        AutoConfig.register(spec.model_type, spec.config_class)
    except ValueError:  # already registered (re-import)
        pass
    for auto_name, model_cls in spec.auto_models.items():
        auto_cls = getattr(transformers, auto_name, None)
        if auto_cls is None or not hasattr(auto_cls, "register"):
            raise ValueError(f"{spec.model_type}: {auto_name!r} is not a transformers Auto class")
        try:
            auto_cls.register(spec.config_class, model_cls)
        except ValueError:
            pass
    if spec.processor_class is not None:
        try:
            transformers.AutoProcessor.register(spec.config_class, spec.processor_class)
        except ValueError:
            pass
    for entry in spec.pipelines:
        current = PIPELINE_REGISTRY.supported_tasks.get(entry.task, {}).get("impl")
        if current is entry.pipeline_class:
            continue
        pt_model = getattr(transformers, entry.pt_model, None)
        if pt_model is None:
            raise ValueError(f"{spec.model_type}: pipeline {entry.task!r} names unknown Auto class {entry.pt_model!r}")
        kwargs: dict[str, Any] = {"pipeline_class": entry.pipeline_class, "pt_model": pt_model, "type": entry.type}
        if entry.default is not None:
            kwargs["default"] = entry.default
        PIPELINE_REGISTRY.register_pipeline(entry.task, **kwargs)


def register_family(spec: FamilySpec) -> FamilySpec:
    """Register a family with transformers and with hf_dgm (publisher, converters, evaluators, `hf-dgm`).

    Re-registering the same `model_type` replaces the entry (idempotent for the same spec).
    """
    if not isinstance(spec, FamilySpec):
        raise TypeError(f"register_family expects a FamilySpec, got {type(spec).__name__}")
    if getattr(spec.config_class, "model_type", spec.model_type) != spec.model_type:
        raise ValueError(
            f"{spec.config_class.__name__}.model_type is {spec.config_class.model_type!r}, not {spec.model_type!r}"
        )
    if not spec.auto_models:
        raise ValueError(f"family {spec.model_type!r} declares no Auto model class")
    _register_with_transformers(spec)
    _FAMILIES[spec.model_type] = spec
    return spec


def register_all() -> None:
    """Import every module of `FAMILY_MODULES` and register its `FAMILY`. Called by `import hf_dgm`."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    for module_name in FAMILY_MODULES:
        module = importlib.import_module(module_name)
        spec = getattr(module, "FAMILY", None)
        if not isinstance(spec, FamilySpec):
            raise TypeError(f"{module_name} must define `FAMILY = FamilySpec(...)`")
        register_family(spec)
    _BUILTINS_LOADED = True


def families() -> dict[str, FamilySpec]:
    """Every registered family, by model type (built-ins first, in `FAMILY_MODULES` order)."""
    register_all()
    return dict(_FAMILIES)


def get_family(model_type: str) -> FamilySpec:
    """The family of `model_type`; a ValueError naming the registered ones otherwise."""
    registered = families()
    if model_type not in registered:
        raise ValueError(
            f"no hf-dgm family for model_type {model_type!r}; registered: {sorted(registered)} "
            "(add the family module to hf_dgm.registry.FAMILY_MODULES, or call hf_dgm.registry.register_family)"
        )
    return registered[model_type]


def load_entry_point(dotted: str) -> ModuleType:
    """Import an entry-point module named by a `FamilySpec` (converter, evaluator, trainer, demo)."""
    return importlib.import_module(dotted)


def resolve_callable(dotted: str) -> Callable[..., Any]:
    """`"package.module:function"` -> the function."""
    module_name, sep, attr = dotted.partition(":")
    if not sep or not attr:
        raise ValueError(f"expected 'module.path:function', got {dotted!r}")
    return getattr(importlib.import_module(module_name), attr)


__all__ = [
    "FAMILY_MODULES",
    "FamilySpec",
    "HubEntry",
    "MetricSpec",
    "PipelineTask",
    "families",
    "get_family",
    "load_entry_point",
    "register_all",
    "register_family",
    "resolve_callable",
]
