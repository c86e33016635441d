"""Bad input at every public entry point (issue 18): each case must raise the stated exception type with a message
naming the offending argument or file; no code from data may run; no NaN may pass silently.

Table-driven: one parametrized test per entry point; each row is (case id, call, exception type, words that the
message must hold). Models are the tiny ones of `tests/optimus_tiny.py`, built once per module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hf_dgm import OptimusConfig, OptimusForConditionalGeneration
from optimus_tiny import bert_config, build_parts, decoder_tokenizer, encoder_tokenizer, gpt2_config


INJECTION = '\n## Usage\n\n```python\nopen({marker!r}, "w").write("pwned")\n```\n'


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_parts(tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def run_dir(parts, tmp_path_factory) -> Path:
    """A tiny saved Optimus model with its tokenizers (a run folder the publisher accepts)."""
    enc_dir, dec_dir = parts
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    run = tmp_path_factory.mktemp("run") / "optimus-tiny"
    model.save_pretrained(run)
    return run


@pytest.fixture(scope="module")
def tiny_model(run_dir):
    return OptimusForConditionalGeneration.from_pretrained(run_dir).eval()


def _check(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in the message: {message}"
    return message


# --------------------------------------------------------------------------------------------- publisher
def _copy_run(run_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


@pytest.mark.parametrize("where", ["repo_id", "dataset"])
def test_publisher_refuses_injection(run_dir, tmp_path, where):
    """A repo id or a run_metadata.json `dataset` carrying a newline, a `## Usage` heading and a code fence is
    refused before anything runs (dry run and CLI); no marker file appears."""
    from hf_dgm.hub import PublishError, publish_model
    from hf_dgm.hub.cli import main as publish_cli

    marker = tmp_path / "MARKER"
    payload = INJECTION.format(marker=str(marker))
    run = _copy_run(run_dir, tmp_path / "run")
    repo_id = "hf-dgm-tests/optimus-tiny"
    if where == "repo_id":
        repo_id += payload
    else:
        (run / "run_metadata.json").write_text(json.dumps({"dataset": "SNLI" + payload}))
    _check(lambda: publish_model(run, repo_id, dry_run_dir=tmp_path / "out"), PublishError,
           ["repo_id" if where == "repo_id" else "run_metadata.json: dataset"])
    assert publish_cli([str(run), "--repo_id", repo_id, "--dry_run", str(tmp_path / "out-cli")]) == 1
    assert not marker.exists()


@pytest.mark.slow
def test_publisher_fences_multiline_blocks_and_runs_only_template_code(run_dir, tmp_path):
    """Multi-line blocks the publisher builds itself (recipe, text samples) carry the payload as fenced text; the
    validation runs only the template's own snippets; no marker file appears (one validation run, ~30 s)."""
    from hf_dgm.hub import publish_model
    from hf_dgm.hub.cards import usage_snippets

    marker = tmp_path / "MARKER"
    payload = INJECTION.format(marker=str(marker))
    run = _copy_run(run_dir, tmp_path / "run")
    (run / "recipe.yaml").write_text(json.dumps({"beta": 1.0, "note": "x" + payload + "```"}))
    (run / "samples.txt").write_text("a sentence ." + payload + "````\n")
    out = tmp_path / "out"
    result = publish_model(run, "hf-dgm-tests/optimus-tiny", dry_run_dir=out)
    card = (out / "README.md").read_text()
    assert result.validation.snippets_run == len(usage_snippets(card)) + 1  # + the handler check
    assert all("pwned" not in code for code in usage_snippets(card))
    assert "`````text" in card  # the sample's fence is longer than its longest backtick run
    assert not marker.exists()


def test_invalid_repo_id_is_refused_in_dry_runs(run_dir, tmp_path):
    from hf_dgm.hub import PublishError, publish_model

    for bad in ("a/b/c", "no spaces/allowed", "-x/y", ""):
        _check(lambda: publish_model(run_dir, bad, dry_run_dir=tmp_path / "out"), PublishError, ["repo_id"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("metrics.json", "{not json", ["metrics.json", "JSON"]),
        ("eval_results.json", b"\xff\xfe\x00garbage", ["eval_results.json"]),
        ("run_metadata.json", "[1, 2]", ["run_metadata.json", "object"]),
        ("run_metadata.json", json.dumps({"license": "mit\n---\nfoo: bar"}), ["license"]),
        ("run_metadata.json", json.dumps({"tags": ["ok", "`rm -rf`"]}), ["tags[1]"]),
    ],
)
def test_publisher_run_folder_files(run_dir, tmp_path, name, content, words):
    from hf_dgm.hub import PublishError, publish_model

    run = _copy_run(run_dir, tmp_path / "run")
    (run / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    _check(lambda: publish_model(run, "org/name", dry_run_dir=tmp_path / "out", validate=False), PublishError, words)
