"""Publishing optimus_dialog: a flat remote-code repo (the Optimus modules it builds on included), validated in an
interpreter that cannot import hf_dgm, pushed to the loopback Hub, and served by
`pipeline("dialog-response", model=repo, trust_remote_code=True)` there; the card carries the run's measured figures."""

from __future__ import annotations

import ast
import json

import pytest
import torch

import hf_dgm  # noqa: F401
from hf_dgm.models.optimus_dialog import OptimusForDialogResponse
from hf_dgm.registry import get_family
from optimus_tiny import SENTENCES, build_parts

FAMILY = get_family("optimus_dialog")
REPO_ID = "hf-dgm-tests/optimus-dialog-tiny"
S = SENTENCES


def tiny_model(tmp_path) -> OptimusForDialogResponse:
    enc, dec = build_parts(tmp_path)
    torch.manual_seed(0)
    return OptimusForDialogResponse.from_encoder_decoder_pretrained(str(enc), str(dec), latent_size=8).eval()


def test_repo_folder_is_flat_and_self_contained(tmp_path):
    """No validation (fast): the assembled folder holds the dialog code and the Optimus code it imports, reached by
    sibling imports only; the config names the Auto class and the dialog-response pipeline."""
    from hf_dgm.hub import prepare_repo_folder

    run = tmp_path / "run"
    tiny_model(tmp_path).save_pretrained(run)
    out = tmp_path / "repo"
    prepare_repo_folder(run, out, REPO_ID, validate=False)
    files = {p.name for p in out.iterdir()}
    assert {"modeling_optimus_dialog.py", "configuration_optimus_dialog.py", "pipeline_optimus_dialog.py",
            "processing_optimus_dialog.py", "modeling_optimus.py", "configuration_optimus.py", "pipelines_optimus.py",
            "processing_optimus.py", "handler.py", "model.safetensors", "decoder_tokenizer"} <= files
    assert "probe_optimus_dialog.py" not in files  # the probe is never part of the remote code
    for name in files:
        if name.endswith(".py"):
            for node in ast.walk(ast.parse((out / name).read_text())):
                if isinstance(node, ast.ImportFrom):
                    assert node.level in (0, 1) and (node.module or "").split(".")[0] != "hf_dgm", (name, node.module)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "optimus_dialog"
    assert config["auto_map"]["AutoModel"] == "modeling_optimus_dialog.OptimusForDialogResponse"
    assert config["custom_pipelines"] == {
        "dialog-response": {"impl": "pipeline_optimus_dialog.DialogResponsePipeline", "pt": ["AutoModel"], "type": "text"}
    }
    readme = (out / "README.md").read_text()
    assert "No benchmark run" in readme and "not evaluated" in readme  # no metrics file: no figures, and it says so


@pytest.mark.slow  # ~70 s: a tiny training run, a validated publish and a load from the Hub in fresh interpreters
def test_trained_run_publishes_and_serves_the_pipeline_from_the_hub(tmp_path):
    import huggingface_hub.constants

    from hf_dgm.hub import publish_model
    from hf_dgm.hub.cards import usage_snippets
    from hf_dgm.hub.validation import compare_probe_outputs, run_isolated_probe, run_reference_probe
    from hf_dgm.training.optimus_dialog.run import main
    from hub_server import DEFAULT_TOKEN, LoopbackHub
    from transformers import pipeline

    enc, dec = build_parts(tmp_path)
    data = tmp_path / "dialogs.jsonl"
    data.write_text("\n".join(json.dumps({"dialog": [S[i % 8], S[(i + 1) % 8], S[(i + 3) % 8]]}) for i in range(8)))
    run = tmp_path / "run"
    assert main([
        "--encoder", str(enc), "--decoder", str(dec), "--latent_size", "8", "--train_file", str(data),
        "--eval_file", str(data), "--max_steps", "12", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
        "--output_dir", str(run), "--report_to", "none", "--num_responses", "3", "--max_new_tokens", "8",
        "--save_strategy", "no", "--seed", "0", "--disable_tqdm", "true", "--dataset_name", "tiny test dialogs",
    ]) == 0
    measured = json.loads((run / "metrics.json").read_text())

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    try:
        with LoopbackHub() as hub:
            result = publish_model(run, REPO_ID, token=DEFAULT_TOKEN, endpoint=hub.endpoint)
            assert max(result.validation.max_abs_diff.values()) == 0.0
            assert result.validation.snippets_run == 3  # both card snippets and the handler.py request
            readme = hub.file_bytes(REPO_ID, "README.md").decode()
            assert f"{measured['eval_bleu_recall']:.4g}" in readme and "tiny test dialogs" in readme
            assert "No benchmark run" in readme
            assert {"metrics.json", "samples/generations.txt", "samples/samples.md"} <= set(hub.list_files(REPO_ID))

            env = {**hub.env(), "HF_HOME": str(tmp_path / "hf_home")}
            snippets = usage_snippets(readme)
            loaded = run_isolated_probe(REPO_ID, "dialog-response", FAMILY.hub.probe, env=env, offline=False,
                                        snippets=snippets)
    finally:
        huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet
    assert loaded.info["hf_dgm_in_modules"] == [] and loaded.info["pipeline_module"].startswith("transformers_modules.")
    assert loaded.info["snippets_run"] == 2 and loaded.info["snippet_outputs"][0].strip()
    source = OptimusForDialogResponse.from_pretrained(run).eval()
    reference = run_reference_probe(source, pipeline("dialog-response", model=source), FAMILY.hub.probe)
    compare_probe_outputs(reference, loaded)
    assert loaded.values["sampled"] == reference.values["sampled"]  # seeded sampling, same responses without hf_dgm
