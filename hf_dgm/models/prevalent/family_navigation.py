"""The Prevalent R2R agent's registry entry (see `hf_dgm.registry`): `prevalent_navigation`, the `vln-navigation`
pipeline, fine-tuning, val_seen evaluation and publishing."""

from __future__ import annotations

from ...registry import FamilySpec, HubEntry, MetricSpec, PipelineTask
from .configuration_prevalent import PrevalentNavigationConfig
from .modeling_prevalent import PrevalentForNavigation
from .pipeline_prevalent import VLNNavigationPipeline


def _connectivity(positions: dict[str, tuple[float, float, float]], edges: set[tuple[str, str]]) -> list[dict]:
    names = list(positions)
    entries = []
    for name in names:
        x, y, z = positions[name]
        linked = [(name, o) in edges or (o, name) in edges for o in names]
        pose = [1.0, 0.0, 0.0, x, 0.0, 1.0, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0]
        entries.append({"image_id": name, "pose": pose, "included": True, "visible": linked, "unobstructed": linked,
                        "height": 1.5})
    return entries


# an endpoint request carrying its graph inline (a three-viewpoint corridor), so it needs no connectivity files
ENDPOINT_CONNECTIVITY = {"demoScan": _connectivity({"a": (0.0, 0.0, 1.5), "b": (0.0, 3.0, 1.5), "c": (2.0, 3.0, 1.5)},
                                                   {("a", "b"), ("b", "c")})}


ENDPOINT_REQUEST = {
    "inputs": {"scan": "demoScan", "start": "a", "heading": 0.0, "instruction": "walk forward and turn right"},
    "parameters": {"task": "vln-navigation", "connectivity": ENDPOINT_CONNECTIVITY},
}


def _endpoint_request(config) -> dict:
    """The inline-graph request for a geometry-only agent; none for an agent with an image part, whose view
    features come from a feature store on the endpoint's disk (`features=` when the pipeline is built)."""
    return {} if config.vision_feature_size else dict(ENDPOINT_REQUEST)


FAMILY = FamilySpec(
    model_type="prevalent_navigation",
    package="hf_dgm.models.prevalent",
    description="The R2R-EnvDrop navigation agent on the Prevalent encoder (vln-navigation)",
    config_class=PrevalentNavigationConfig,
    auto_models={"AutoModel": PrevalentForNavigation},
    pipelines=(PipelineTask("vln-navigation", VLNNavigationPipeline),),
    hub=HubEntry(
        card_template="prevalent_navigation.md.j2",
        pipeline_tag="robotics",
        probe="hf_dgm.models.prevalent.probe_prevalent:prevalent_navigation_probe",
        probe_task="vln-navigation",
        task_type="vision-and-language-navigation",
        task_name="Vision-and-language navigation (R2R)",
        tags=("prevalent", "vision-and-language-navigation", "r2r", "custom_code", "hf-dgm"),
        license="apache-2.0",
        metrics={
            # keys written by hf_dgm.training.prevalent.finetune (finetune_metrics.json)
            "val_seen_success_rate": MetricSpec("success_rate", "Success rate on R2R val_seen (stop within 3 m)", True),
            "val_seen_spl": MetricSpec("spl", "SPL on R2R val_seen", True),
            "val_seen_nav_error": MetricSpec("navigation_error", "Navigation error on R2R val_seen (m)", False),
            "val_seen_ndtw": MetricSpec("ndtw", "nDTW on R2R val_seen", True),
        },
        endpoint_request=_endpoint_request,
        config_summary=(
            "hidden_size", "la_layers", "vl_layers", "vision_feature_size", "angle_feature_size", "nav_hidden_size",
            "max_action_length",
        ),
    ),
    evaluator="hf_dgm.training.prevalent.finetune",
    trainer="hf_dgm.training.prevalent.finetune",
    demo="hf_dgm.models.prevalent.demo_prevalent",
)
