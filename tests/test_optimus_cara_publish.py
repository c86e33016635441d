"""Publishing Optimus-CARA: the flat remote-code repo folder (fast), and a validated loopback-Hub publish loaded with
`pipeline("label-conditional-generation", model=repo, trust_remote_code=True)` where hf_dgm cannot be imported (slow)."""

from __future__ import annotations

import json

import pytest
import torch

import hf_dgm  # noqa: F401
from hf_dgm import OptimusForConditionalGeneration
from hf_dgm.models.optimus_cara import OptimusForLabelConditionalGeneration
from hf_dgm.registry import get_family
from optimus_tiny import build_parts

CARA = get_family("optimus_cara").hub
REPO_ID = "hf-dgm-tests/optimus-cara-tiny"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained-looking Optimus-CARA run folder: model, tokenizers, metrics, samples."""
    tmp = tmp_path_factory.mktemp("optimus-cara-run")
    enc_dir, dec_dir = build_parts(tmp)
    torch.manual_seed(0)
    optimus = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    model = OptimusForLabelConditionalGeneration.from_optimus(optimus, id2label=["negative", "positive"], hidden_size=16)
    model.set_latent_statistics(torch.randn(20, 8))
    run = tmp / "cara-yelp"
    model.save_pretrained(run)
    (run / "metrics.json").write_text(json.dumps({"label_accuracy": 0.8125, "judge_accuracy": 0.9375,
                                                  "plain_decoder_ppl": 55.5, "distinct_1": 0.25, "distinct_2": 0.5}))
    (run / "run_metadata.json").write_text(json.dumps({"dataset": "Yelp", "eval_split": "dev"}))
    (run / "samples.md").write_text("# Samples\n\n| sentence | judge |\n|---|---|\n| great food . | positive |\n")
    return run


def test_repo_folder_is_flat_and_self_contained(run_dir, tmp_path):
    from hf_dgm.hub import prepare_repo_folder

    out = tmp_path / "repo"
    prepare_repo_folder(run_dir, out, REPO_ID, validate=False)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"modeling_optimus_cara.py", "configuration_optimus_cara.py", "pipeline_optimus_cara.py",
            "modeling_optimus.py", "configuration_optimus.py", "processing_optimus.py", "handler.py",
            "decoder_tokenizer/tokenizer.json", "README.md"} <= files
    for name in files:
        if name.endswith(".py"):
            imports = [line for line in (out / name).read_text().splitlines() if line.lstrip().startswith(("from ", "import "))]
            assert not any("hf_dgm" in line for line in imports), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "optimus_cara" and config["optimus"]["model_type"] == "optimus"
    assert config["auto_map"]["AutoModel"] == "modeling_optimus_cara.OptimusForLabelConditionalGeneration"
    assert config["custom_pipelines"]["label-conditional-generation"]["impl"] == \
        "pipeline_optimus_cara.LabelConditionalGenerationPipeline"
    readme = (out / "README.md").read_text()
    assert "0.8125" in readme and "0.9375" in readme and "frozen" in readme


@pytest.mark.slow
def test_publish_and_load_through_the_loopback_hub_with_remote_code(run_dir, tmp_path):
    import huggingface_hub.constants

    from hf_dgm.hub import publish_model
    from hf_dgm.hub.cards import usage_snippets
    from hf_dgm.hub.validation import compare_probe_outputs, run_isolated_probe, run_reference_probe
    from hub_server import DEFAULT_TOKEN, LoopbackHub
    from transformers import pipeline

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    try:
        with LoopbackHub() as hub:
            result = publish_model(run_dir, REPO_ID, token=DEFAULT_TOKEN, endpoint=hub.endpoint)
            assert max(result.validation.max_abs_diff.values()) <= 1e-5
            assert result.validation.snippets_run >= 2  # the card's snippets and the handler.py request
            source = OptimusForLabelConditionalGeneration.from_pretrained(run_dir).eval()
            local_pipe = pipeline(CARA.probe_task, model=str(run_dir))
            reference = run_reference_probe(source, local_pipe, CARA.probe)
            env = {**hub.env(), "HF_HOME": str(tmp_path / "hf_home")}
            snippets = usage_snippets(hub.file_bytes(REPO_ID, "README.md").decode())
            loaded = run_isolated_probe(REPO_ID, CARA.probe_task, CARA.probe, env=env, offline=False, snippets=snippets)
    finally:
        huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet
    compare_probe_outputs(reference, loaded)
    assert loaded.info["pipeline_module"].startswith("transformers_modules.")
    assert loaded.info["hf_dgm_in_modules"] == []
    assert loaded.values["pipeline"] == reference.values["pipeline"]
    assert [row[0] for row in loaded.values["pipeline"]] == ["negative", "negative", "positive", "positive"]
