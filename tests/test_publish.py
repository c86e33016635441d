"""Publishing to the Hub: flat remote code, validation without hf_dgm, atomic upload, refusals.

Runs against the loopback Hub in `tests/hub_server.py`. The expensive parts (an interpreter that loads the repo
through remote code: ~15 s each) are shared through module-scoped fixtures: one validated publish, one load from
the Hub into a clean cache.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
import torch
from PIL import Image

from hf_dgm import OptimusForConditionalGeneration
from hf_dgm.hub import PublishError, RemoteCodeError, assemble_remote_code, publish_model
from hf_dgm.hub.cards import usage_snippets
from hf_dgm.registry import get_family

OPTIMUS_FAMILY = get_family("optimus")
OPTIMUS = OPTIMUS_FAMILY.hub
from hf_dgm.hub.publish import discover_family_code, validate_repo_folder
from hf_dgm.hub.validation import compare_probe_outputs, run_isolated_probe, run_reference_probe
from hub_server import DEFAULT_TOKEN, LoopbackHub
from optimus_tiny import build_parts

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "hf-dgm-tests/optimus-tiny"
SHARD = "150KB"  # the tiny model is ~0.4 MB: forces a sharded checkpoint with an index


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hub():
    """The loopback Hub; in this process the client must not try Xet storage (the server speaks LFS only)."""
    import huggingface_hub.constants

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # read at call time by `is_xet_available`
    with LoopbackHub() as server:
        yield server
    huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished tiny Optimus run: model, tokenizers, metrics, metadata, recipe, a plot and text samples."""
    tmp = tmp_path_factory.mktemp("optimus-run")
    enc_dir, dec_dir = build_parts(tmp)
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    run = tmp / "optimus-snli"
    model.save_pretrained(run)
    (run / "eval_results.json").write_text(json.dumps(
        {"eval_iw_nll": 31.25, "eval_ppl_per_token": 17.5, "eval_kl": 3.5, "eval_mutual_information": 1.75,
         "eval_active_units": 6, "epoch": 1.0, "eval_runtime": 2.0}))
    (run / "run_metadata.json").write_text(json.dumps({"dataset": "SNLI", "dataset_id": "stanfordnlp/snli",
                                                        "eval_split": "test"}))
    (run / "recipe.yaml").write_text("beta: 1.0\nkl_threshold: 0.5\nratio_zero: 0.5\nratio_increase: 0.25\n")
    (run / "plots").mkdir()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(run / "plots" / "kl_per_dim.png")
    (run / "interpolations.txt").write_text("a man is playing a guitar .\ntwo dogs run through the snow .\n")
    # Trainer bookkeeping that must never be read or published
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-10" / "optimizer.pt").write_bytes(b"not really a pickle")
    return run


@pytest.fixture(scope="module")
def source_model(run_dir):
    return OptimusForConditionalGeneration.from_pretrained(run_dir).eval()


@pytest.fixture(scope="module")
def published(hub, run_dir):
    """One validated publish through the loopback Hub (validation runs a remote-code interpreter)."""
    result = publish_model(run_dir, REPO_ID, token=DEFAULT_TOKEN, endpoint=hub.endpoint, max_shard_size=SHARD)
    return result, hub.list_files(REPO_ID)


@pytest.fixture(scope="module")
def reference(source_model):
    from transformers.pipelines import PIPELINE_REGISTRY

    impl = PIPELINE_REGISTRY.supported_tasks[OPTIMUS.probe_task]["impl"]
    pipe = impl(model=source_model, task=OPTIMUS.probe_task, device="cpu")
    return run_reference_probe(source_model, pipe, OPTIMUS.probe)


# --------------------------------------------------------------------------------------------- remote code
def _fake_package(root: Path) -> Path:
    pkg = root / "hf_dgm"
    for sub in ("", "models", "models/fam", "modules"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "modules" / "util.py").write_text("def helper():\n    return 2\n")
    (pkg / "modules" / "quant.py").write_text("import torch\nfrom .util import helper\nQ = helper()\n")
    (pkg / "models" / "fam" / "configuration_fam.py").write_text("C = 3\n")
    (pkg / "models" / "fam" / "modeling_fam.py").write_text(
        '"""Doc é."""\nfrom __future__ import annotations\n\nimport numpy as np\n'
        "from ...modules.quant import (  # keep me\n    Q,\n)\nfrom .configuration_fam import C\n\n\n"
        "def f():\n    from hf_dgm.modules.util import helper as h\n    return h() + Q + C\n"
    )
    return pkg


def test_remote_code_is_flat_with_sibling_imports(tmp_path):
    pkg = _fake_package(tmp_path)
    out = tmp_path / "out"
    bundle = assemble_remote_code([pkg / "models" / "fam" / "modeling_fam.py"], out, package_root=pkg, header="gen")
    assert sorted(bundle.files) == ["configuration_fam.py", "modeling_fam.py", "quant.py", "util.py"]
    assert bundle.requirements == ["numpy", "torch"]
    text = (out / "modeling_fam.py").read_text()
    assert "from .quant import (  # keep me\n    Q,\n)" in text  # only the module specifier changed
    assert "    from .util import helper as h\n" in text
    assert text.startswith("# gen (source: hf_dgm/models/fam/modeling_fam.py)\n")
    for path in out.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level in (0, 1) and (node.module or "").split(".")[0] != "hf_dgm", (path.name, node.module)
                assert node.level == 0 or "." not in node.module
    # the flat folder imports as a package of its own (sibling imports resolve)
    (out / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        assert importlib.import_module("out.modeling_fam").f() == 7
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "out" or m.startswith("out.")]:
            del sys.modules[name]


@pytest.mark.parametrize(
    "source, message",
    [
        ("from . import configuration_fam\n", "not followed by transformers' remote-code loader"),
        ("import hf_dgm.modules.util\n", "cannot be made flat"),
        ("from ...modules import util\n", "imports the package"),
        ('"""Example:\n    from .missing import thing\n"""\n', "missing.py"),
    ],
)
def test_remote_code_rejects_forms_the_loader_cannot_follow(tmp_path, source, message):
    pkg = _fake_package(tmp_path)
    bad = pkg / "models" / "fam" / "modeling_bad.py"
    bad.write_text(source)
    with pytest.raises(RemoteCodeError, match=message):
        assemble_remote_code([bad], tmp_path / "out", package_root=pkg)


def test_remote_code_refuses_two_modules_with_one_name(tmp_path):
    pkg = _fake_package(tmp_path)
    (pkg / "models" / "fam" / "util.py").write_text("X = 1\n")
    (pkg / "models" / "fam" / "modeling_two.py").write_text("from .util import X\nfrom ...modules.util import helper\n")
    with pytest.raises(RemoteCodeError, match="would both become `util.py`"):
        assemble_remote_code([pkg / "models" / "fam" / "modeling_two.py"], tmp_path / "out", package_root=pkg)


def test_family_code_comes_from_the_registrations():
    auto_map, pipelines, files = discover_family_code(OPTIMUS_FAMILY)
    assert auto_map == {
        "AutoConfig": "configuration_optimus.OptimusConfig",
        "AutoModel": "modeling_optimus.OptimusForConditionalGeneration",
        "AutoModelForPreTraining": "modeling_optimus.OptimusForConditionalGeneration",
    }
    assert set(pipelines) == {"sentence-interpolation", "sentence-analogy", "sentence-reconstruction", "sentence-latent"}
    assert all(p["pt"] == ["AutoModel"] and p["impl"].startswith("pipelines_optimus.") for p in pipelines.values())
    assert all(p["type"] == "text" for p in pipelines.values())
    assert {f.name for f in files} == {"configuration_optimus.py", "modeling_optimus.py", "pipelines_optimus.py",
                                       "processing_optimus.py"}


# --------------------------------------------------------------------------------------------- publish + load
def test_publish_is_one_validated_commit(hub, published, reference):
    result, _ = published
    assert result.commit_oid == hub.head_sha(REPO_ID)
    history = hub.commit_history(REPO_ID)
    assert [c.title for c in history][1:] == ["initial commit"]  # exactly one commit on top of the repo's creation
    assert "Validated before upload" in history[0].description
    files = hub.list_files(REPO_ID)
    assert set(files) == set(result.files) | {".gitattributes"}
    shards = [f for f in files if f.startswith("model-") and f.endswith(".safetensors")]
    assert len(shards) >= 2 and "model.safetensors.index.json" in files and "model.safetensors" not in files
    for name in ("handler.py", "configuration_optimus.py", "modeling_optimus.py", "processing_optimus.py", "pipelines_optimus.py",
                 "tokenizer.json", "decoder_tokenizer/tokenizer.json", "README.md", "images/kl_per_dim.png",
                 "samples/interpolations.txt", "recipe.yaml"):
        assert name in files, name
    assert "eval_results.json" in files  # the metrics file the card cites is published with it
    assert yaml.safe_load(hub.file_bytes(REPO_ID, "recipe.yaml")) == {"beta": 1.0, "kl_threshold": 0.5, "ratio_zero": 0.5,
                                                                     "ratio_increase": 0.25}
    assert not any(f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for f in files)
    config = json.loads(hub.file_bytes(REPO_ID, "config.json"))
    assert config["model_type"] == "optimus"
    assert config["auto_map"]["AutoModel"] == "modeling_optimus.OptimusForConditionalGeneration"
    assert config["custom_pipelines"]["sentence-interpolation"] == {
        "impl": "pipelines_optimus.SentenceInterpolationPipeline", "pt": ["AutoModel"], "type": "text"}
    assert "_name_or_path" not in config["encoder"]  # the training machine's local paths are not published
    for name in files:
        if name.endswith(".py"):
            tree = ast.parse(hub.file_bytes(REPO_ID, name).decode())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    assert node.level in (0, 1) and (node.module or "").split(".")[0] != "hf_dgm", (name, node.module)
    # the validation compared the published folder with the source model on the fixed input
    assert set(result.validation.max_abs_diff) == set(reference.tensors)
    assert max(result.validation.max_abs_diff.values()) <= 1e-5
    assert result.validation.model_module.startswith("transformers_modules.")
    # the card's two usage snippets ran against the folder, then handler.py served the card's example request
    assert result.validation.snippets_run == 3
    assert '"alpha": 1.0' in result.validation.snippet_outputs[-1]
    assert result.validation.warnings == []  # e.g. no "Do you wish to run the custom code?" prompt on the way


def test_loads_from_the_hub_without_hf_dgm(hub, published, reference, tmp_path):
    """snapshot into a clean cache, AutoModel + pipeline with trust_remote_code=True where hf_dgm cannot import."""
    env = {**hub.env(), "HF_HOME": str(tmp_path / "hf_home")}
    snippets = usage_snippets(hub.file_bytes(REPO_ID, "README.md").decode())
    loaded = run_isolated_probe(REPO_ID, OPTIMUS.probe_task, OPTIMUS.probe, env=env, offline=False, snippets=snippets)
    report = compare_probe_outputs(reference, loaded)
    assert report.model_module.startswith("transformers_modules.")
    assert loaded.info["pipeline_module"].startswith("transformers_modules.")
    assert loaded.info["hf_dgm_in_modules"] == []
    assert reference.values["interpolation"] == loaded.values["interpolation"]
    # the card's usage snippets, copied verbatim from the pushed README, ran there against the Hub
    assert loaded.info["snippets_run"] == 2
    assert "1.00  " in loaded.info["snippet_outputs"][0]  # the interpolation loop printed its last step
    cached = list((tmp_path / "hf_home").rglob("decoder_tokenizer/tokenizer.json"))
    assert cached, "the pipeline's processor must come from the Hub cache (root + decoder_tokenizer/)"


def test_installed_hf_dgm_needs_no_trust_remote_code(hub, published, reference, tmp_path):
    """With hf_dgm imported, the local classes and tasks serve a downloaded repo without trust_remote_code."""
    from huggingface_hub import snapshot_download
    from transformers import AutoModel, pipeline

    folder = snapshot_download(REPO_ID, endpoint=hub.endpoint, token=DEFAULT_TOKEN, cache_dir=tmp_path)
    model = AutoModel.from_pretrained(folder)
    assert type(model) is OptimusForConditionalGeneration
    pipe = pipeline(OPTIMUS.probe_task, model=folder, device="cpu")
    assert type(pipe).__module__ == "hf_dgm.models.optimus.pipelines_optimus"
    local = run_reference_probe(model, pipe, OPTIMUS.probe)
    compare_probe_outputs(reference, local)


def test_dry_run_writes_exactly_what_is_pushed(hub, published, run_dir, tmp_path):
    out = tmp_path / "dry"
    before = hub.head_sha(REPO_ID)
    result = publish_model(run_dir, REPO_ID, dry_run_dir=out, max_shard_size=SHARD, validate=False)
    assert result.dry_run and result.commit_oid is None
    assert hub.head_sha(REPO_ID) == before
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(published[0].files)
    for name in written:
        assert (out / name).read_bytes() == hub.file_bytes(REPO_ID, name), name


def test_create_pr_and_revision_leave_main_alone(hub, published, run_dir):
    """The CLI (in-process) with --create-pr, then --revision: main keeps its commit."""
    sys.path.insert(0, str(REPO_ROOT / "upload"))
    try:
        import publish as cli
    finally:
        sys.path.remove(str(REPO_ROOT / "upload"))
    main_sha = hub.head_sha(REPO_ID)
    common = [str(run_dir), "--repo-id", REPO_ID, "--token", DEFAULT_TOKEN, "--max-shard-size", SHARD, "--no-validate",
              "--endpoint", hub.endpoint]
    assert cli.main(common + ["--create-pr", "--commit-message", "Propose a re-upload"]) == 0
    assert hub.head_sha(REPO_ID) == main_sha
    pr_ref = [r for r in hub.repos[REPO_ID].refs if r.startswith("refs/pr/")]
    assert pr_ref and hub.commit_history(REPO_ID, pr_ref[-1])[0].title == "Propose a re-upload"
    assert cli.main(common + ["--revision", "dev"]) == 0
    assert hub.head_sha(REPO_ID) == main_sha
    assert "config.json" in hub.list_files(REPO_ID, "dev")


# --------------------------------------------------------------------------------------------- refusals
def test_missing_token_is_refused_before_any_request(hub, run_dir, monkeypatch, tmp_path):
    import huggingface_hub.constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    requests = len(hub.requests)
    with pytest.raises(PublishError, match="no Hugging Face token"):
        publish_model(run_dir, "hf-dgm-tests/no-token", endpoint=hub.endpoint, validate=False)
    assert len(hub.requests) == requests
    assert "hf-dgm-tests/no-token" not in hub.repos


def test_repo_holding_another_model_type_needs_force(hub, run_dir):
    repo = "hf-dgm-tests/taken"
    sha = hub.seed_repo(repo, {"config.json": json.dumps({"model_type": "bert"}).encode(), "model.safetensors": b"x" * 64})
    with pytest.raises(PublishError, match="holds a 'bert' model.*force"):
        publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False)
    assert hub.head_sha(repo) == sha
    result = publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False, force=True,
                           max_shard_size=SHARD)
    assert json.loads(hub.file_bytes(repo, "config.json"))["model_type"] == "optimus"
    # the old single-file weights would shadow the new sharded index: deleted in the same commit
    assert result.deleted == ["model.safetensors"] and "model.safetensors" not in hub.list_files(repo)
    assert "model.safetensors.index.json" in hub.list_files(repo)
    assert len(hub.commit_history(repo)) == 3  # initial, seed, one publish


def test_private_repo_is_created_private(hub, run_dir):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = "hf-dgm-tests/private-optimus"
    publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False, private=True)
    assert hub.repos[repo].private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).model_info(repo)
    assert HfApi(endpoint=hub.endpoint, token=DEFAULT_TOKEN).model_info(repo).private


@pytest.fixture
def retrained_run(run_dir, tmp_path) -> Path:
    """The run with different weights, so its LFS objects are new to the Hub (nothing to deduplicate)."""
    from safetensors.torch import load_file, save_file

    run = tmp_path / "retrained"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = load_file(run / "model.safetensors")
    save_file({k: v + 0.01 for k, v in weights.items()}, run / "model.safetensors", metadata={"format": "pt"})
    return run


def test_interrupted_upload_changes_nothing(hub, retrained_run, monkeypatch):
    from hf_dgm.hub import commit

    monkeypatch.setattr(commit, "COMMIT_ATTEMPTS", 1)  # a 5xx commit is retried; here the first answer is final
    run_dir = retrained_run
    repo = "hf-dgm-tests/interrupted"
    sha = hub.seed_repo(repo, {"config.json": json.dumps({"model_type": "optimus"}).encode()})
    files = hub.list_files(repo)
    puts = sum(1 for method, _ in hub.requests if method == "PUT")
    hub.fail_next("lfs_put", status=507, after=1)  # the second LFS object fails mid-upload (not retried)
    with pytest.raises(PublishError, match="507") as failure:
        publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False, max_shard_size=SHARD)
    assert "\n" not in str(failure.value) and str(failure.value).endswith("the remote is unchanged")
    assert sum(1 for method, _ in hub.requests if method == "PUT") - puts >= 2  # it did fail mid-way
    assert hub.head_sha(repo) == sha and hub.list_files(repo) == files
    hub.fail_next("commit", status=500)  # every object uploaded, the commit itself fails
    with pytest.raises(Exception, match="500|injected"):
        publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False, max_shard_size=SHARD)
    assert hub.head_sha(repo) == sha and hub.list_files(repo) == files
    # a branch or a repo created by the failed call itself is removed again
    hub.fail_next("commit", status=500)
    with pytest.raises(Exception, match="500|injected"):
        publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False, revision="feature")
    assert "feature" not in hub.repos[repo].refs and hub.head_sha(repo) == sha
    hub.fail_next("commit", status=500)
    with pytest.raises(PublishError, match="500") as failure:
        publish_model(run_dir, "hf-dgm-tests/brand-new", token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False)
    assert "hf-dgm-tests/brand-new" not in hub.repos
    assert str(failure.value).endswith(
        "the remote is unchanged; the empty repo hf-dgm-tests/brand-new this run created was deleted again")


def test_a_concurrent_commit_is_not_overwritten(hub, run_dir, monkeypatch):
    """The commit names its parent: if the branch moved while the folder was being assembled, it is refused."""
    import hf_dgm.hub.publish as publish_module

    repo = "hf-dgm-tests/concurrent"
    hub.seed_repo(repo, {"config.json": json.dumps({"model_type": "optimus"}).encode()})
    prepare = publish_module.prepare_repo_folder

    def prepare_while_someone_pushes(*args, **kwargs):
        prepared = prepare(*args, **kwargs)
        hub.seed_repo(repo, {"notes.md": b"pushed meanwhile"}, message="someone else's commit")
        return prepared

    monkeypatch.setattr(publish_module, "prepare_repo_folder", prepare_while_someone_pushes)
    with pytest.raises(Exception, match="412|commit has happened since"):
        publish_model(run_dir, repo, token=DEFAULT_TOKEN, endpoint=hub.endpoint, validate=False)
    assert hub.commit_history(repo)[0].title == "someone else's commit"
    assert "model.safetensors" not in hub.list_files(repo)


def test_stale_gguf_quantization_config_is_dropped(run_dir, tmp_path):
    """A model composed from a GGUF decoder keeps `quantization_config` in its decoder config although the saved
    weights are dequantized; transformers would refuse to re-save it. The publisher drops it."""
    run = tmp_path / "gguf-run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((run / "config.json").read_text())
    config["decoder"]["quantization_config"] = {"quant_method": "gguf", "gguf_file": "x.gguf", "dequantize": False}
    (run / "config.json").write_text(json.dumps(config))
    publish_model(run, REPO_ID, dry_run_dir=tmp_path / "out", validate=False)
    published = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in published["decoder"] and "quantization_config" not in published


def test_pickles_in_the_run_folder_are_refused(run_dir, tmp_path):
    bad = tmp_path / "run"
    shutil.copytree(run_dir, bad, ignore=shutil.ignore_patterns("checkpoint-*"))
    (bad / "training_args.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(PublishError, match=r"pickle files \(training_args.bin\).*safetensors only"):
        publish_model(bad, REPO_ID, dry_run_dir=tmp_path / "out", validate=False)
    assert not (tmp_path / "out").exists()
    (bad / "training_args.bin").unlink()
    (bad / "model.safetensors").unlink()
    with pytest.raises(PublishError, match="no safetensors weights"):
        publish_model(bad, REPO_ID, dry_run_dir=tmp_path / "out", validate=False)


def test_comparison_reports_every_difference():
    from hf_dgm.hub import ValidationError
    from hf_dgm.hub.validation import ProbeOutput

    ref = ProbeOutput(tensors={"a": torch.zeros(2, 3), "b": torch.ones(4)}, values={"text": ["x"]})
    same = ProbeOutput(tensors={"a": torch.full((2, 3), 1e-7), "b": torch.ones(4)}, values={"text": ["x"]}, info={})
    assert compare_probe_outputs(ref, same).max_abs_diff == {"a": pytest.approx(1e-7), "b": 0.0}
    other = ProbeOutput(tensors={"a": torch.full((2, 3), 1e-3), "b": torch.ones(5)}, values={"text": ["y"]})
    with pytest.raises(ValidationError) as err:
        compare_probe_outputs(ref, other)
    assert "a: max |difference| 0.001" in str(err.value) and "b: shape (4,) vs (5,)" in str(err.value)
    assert "values differ" in str(err.value)


@pytest.mark.slow
def test_validation_catches_a_folder_that_computes_something_else(run_dir, source_model, tmp_path):
    """Corrupt one weight in an assembled folder: the remote-code load must be reported as different."""
    from safetensors.torch import load_file, save_file

    out = tmp_path / "dry"
    publish_model(run_dir, REPO_ID, dry_run_dir=out, validate=False)
    weights = load_file(out / "model.safetensors")
    weights["posterior.weight"] = weights["posterior.weight"] + 0.5
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    from hf_dgm.hub import ValidationError

    with pytest.raises(ValidationError, match="encoder_mean"):
        validate_repo_folder(out, source_model, OPTIMUS_FAMILY)


@pytest.mark.slow
def test_fq_biggan_publishes_with_its_shared_quantizer(hub, tmp_path):
    """FQ-BigGAN through the same path: the shared FeatureQuantizer module is flattened next to the model."""
    from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration

    torch.manual_seed(0)
    run = tmp_path / "fq-run"
    FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny")).save_pretrained(run)
    (run / "eval_results.json").write_text(json.dumps({"fid": 80.5, "feature_extractor": "random-conv",
                                                       "comparable_to_published": False, "note": "random features"}))
    result = publish_model(run, "hf-dgm-tests/fq-biggan-tiny", token=DEFAULT_TOKEN, endpoint=hub.endpoint)
    files = hub.list_files("hf-dgm-tests/fq-biggan-tiny")
    assert {"feature_quantizer.py", "modeling_fq_biggan.py", "image_generation.py"} <= set(files)
    modeling = hub.file_bytes("hf-dgm-tests/fq-biggan-tiny", "modeling_fq_biggan.py").decode()
    assert "from .feature_quantizer import FeatureQuantizer" in modeling and "...modules" not in modeling
    assert result.validation.pipeline_class == "ClassConditionalImageGenerationPipeline"
    assert result.validation.max_abs_diff["images"] <= 1e-5 and result.validation.snippets_run == 3
    assert '"image": "' in result.validation.snippet_outputs[-1]  # handler.py returned base64 PNGs
    assert result.validation.warnings == []  # no tokenizer, no remote-code prompt
    card = hub.file_bytes("hf-dgm-tests/fq-biggan-tiny", "README.md").decode()
    assert "model-index" not in card and "Not comparable with published numbers" in card


# --------------------------------------------------------------------------------------------- issue 33
PAYLOAD = 'open("MARKER", "w").write("x")'


def test_upload_failure_is_one_line_from_the_command_line(hub, retrained_run, monkeypatch, capsys):
    """`hf-dgm publish` / upload/publish.py on an LFS 507 mid-upload: exit 1, ONE line (no traceback) saying what
    failed and that the remote is unchanged; a 412 (the branch moved) too."""
    from hf_dgm.hub import commit
    from hf_dgm.hub.cli import main

    from safetensors.torch import load_file, save_file

    monkeypatch.setattr(commit, "COMMIT_ATTEMPTS", 1)
    weights = load_file(retrained_run / "model.safetensors")  # new LFS objects: nothing the Hub already holds
    save_file({k: v + 0.0625 for k, v in weights.items()}, retrained_run / "model.safetensors", metadata={"format": "pt"})
    repo = "hf-dgm-tests/cli-507"
    sha = hub.seed_repo(repo, {"config.json": json.dumps({"model_type": "optimus"}).encode()})
    hub.fail_next("lfs_put", status=507, message="Insufficient Storage")
    args = [str(retrained_run), "--repo_id", repo, "--endpoint", hub.endpoint, "--token", DEFAULT_TOKEN,
            "--no_validate", "--max_shard_size", SHARD]
    def error_lines() -> list[str]:  # progress bars may come first; the error is one line, and the last
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err, err
        assert err.splitlines()[-1].startswith("error: "), err
        return [line for line in err.splitlines() if line.startswith("error")]

    assert main(args) == 1
    [err] = error_lines()
    assert err.startswith(f"error: uploading 20 files to the repo {repo} failed (") and "HTTP 507" in err, err
    assert err.endswith("nothing was committed, the remote is unchanged"), err
    assert hub.head_sha(repo) == sha

    # the Hub refusing anything before the upload (here: a bad token on the first request) is one line too
    assert main([str(retrained_run), "--repo_id", repo, "--endpoint", hub.endpoint, "--token", "hf_wrong",
                 "--no_validate"]) == 1
    [err] = error_lines()
    assert "401" in err and err.endswith("the remote is unchanged"), err
    assert hub.head_sha(repo) == sha


@pytest.mark.slow  # ~25 s: a fresh interpreter imports hf_dgm and assembles the repo before it is killed
def test_killed_between_create_and_commit_names_the_leftover(hub, run_dir, tmp_path):
    """kill -9 after the repo was created and before its commit: the command that removes the empty repo was
    logged before the creation, and it works; publishing again would commit into it."""
    import os
    import signal
    import subprocess

    repo = "hf-dgm-tests/killed"
    reached, release = hub.hold_next("preupload")  # the first request of the commit waits
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(hub.env(), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "upload" / "publish.py"), str(run_dir), "--repo_id", repo,
                             "--no_validate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert reached.wait(300), "the publish never reached its commit"
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.communicate(timeout=60)[0]
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert repo in hub.repos and hub.list_files(repo) == [".gitattributes"]  # the empty leftover
    command = f"HF_ENDPOINT={hub.endpoint} hf repos delete {repo} --repo-type model --yes"
    assert f"remove the empty repo with `{command}`" in out, out[-3000:]
    proc = subprocess.run([str(Path(sys.executable).with_name("hf")), *command.split()[2:]], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and repo not in hub.repos, proc.stderr[-2000:]


def test_handler_py_values_are_validated_literals(tmp_path):
    """handler.py gets the task and Auto class as Python literals, after validation; importing it runs nothing."""
    import importlib.util

    from hf_dgm.hub.publish import write_endpoint_handler

    for task, auto in ((f'x"+{PAYLOAD}+"', "AutoModel"), ("text-generation\nimport os", "AutoModel"),
                       ("text-generation", f"AutoModel\n{PAYLOAD}"), ("text-generation", "os.system")):
        with pytest.raises(PublishError, match="default_task|model_auto_class"):
            write_endpoint_handler(tmp_path / "handler.py", task, auto)
    assert not (tmp_path / "handler.py").exists()
    write_endpoint_handler(tmp_path / "handler.py", "optimus-interpolation", "AutoModelForCausalLM")
    spec = importlib.util.spec_from_file_location("published_handler", tmp_path / "handler.py")
    module = importlib.util.module_from_spec(spec)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        spec.loader.exec_module(module)
    finally:
        os.chdir(cwd)
    assert module.DEFAULT_TASK == "optimus-interpolation" and module.MODEL_AUTO_CLASS == "AutoModelForCausalLM"
    assert not (tmp_path / "MARKER").exists()


def test_remote_code_header_cannot_add_code(tmp_path):
    """The provenance comment written atop every remote-code file refuses line breaks; the flat files import
    (as transformers loads them) without running anything else."""
    pkg = _fake_package(tmp_path)
    entry = [pkg / "models" / "fam" / "modeling_fam.py"]
    for header in (f"gen\n{PAYLOAD}", f"gen\r{PAYLOAD}", f"gen\u2028{PAYLOAD}"):
        with pytest.raises(RemoteCodeError, match="header .* line breaks"):
            assemble_remote_code(entry, tmp_path / "bad", package_root=pkg, header=header)
    bad = pkg / "models" / "fam" / "not-an-identifier.py"
    bad.write_text("X = 1\n")
    with pytest.raises(RemoteCodeError, match="<identifier>.py"):
        assemble_remote_code([bad], tmp_path / "bad2", package_root=pkg)
    out = tmp_path / "flat"
    assemble_remote_code(entry, out, package_root=pkg, header='gen """ + open("MARKER", "w") # \'')
    (out / "__init__.py").write_text("")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        assert importlib.import_module("flat.modeling_fam").f() == 7
    finally:
        os.chdir(cwd)
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "flat" or m.startswith("flat.")]:
            del sys.modules[name]
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("where, value, message", [
    ("license", "mit\nmodels: [evil/x]", r"license \(--license\) = .* line breaks"),
    ("license", "MIT License", r"license \(--license\) 'MIT License' is not a Hugging Face Hub licence identifier"),
    ("metadata", {"license": "gpl\ntags: [x]"}, r"run_metadata.json: license"),
    ("metadata", {"license": "proprietary"}, r"run_metadata.json: license 'proprietary' is not a Hugging Face Hub"),
    ("metadata", {"tags": ["ok", "a\nb"]}, r"run_metadata.json:? tags"),
    ("metadata", {"tags": "vae"}, r"run_metadata.json: tags must be a list"),
    ("metadata", {"language": "en\n- fr"}, r"run_metadata.json:? language"),
    ("metadata", {"dataset": f'x"+{PAYLOAD}+"`'}, r"run_metadata.json: dataset"),
    ("space_id", f'o/x"+{PAYLOAD}+"', r"space_id \(--space_id\) .* not a valid Hugging Face repo id"),
    ("revision", 'main"\nx', r"revision \(--revision\) .* is not a git revision"),
])
def test_model_card_values_are_validated(where, value, message, run_dir, tmp_path):
    """Every value bound for the model card's YAML has its allowed form: a Hub licence id, tags, language codes,
    no line breaks; the error names the argument or file. Nothing is written, nothing runs."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    kwargs = {"dry_run_dir": tmp_path / "out", "validate": False}
    if where == "metadata":
        (run / "run_metadata.json").write_text(json.dumps(value))
    else:
        kwargs[where] = value
    with pytest.raises(PublishError, match=message):
        publish_model(run, REPO_ID, **kwargs)
    assert not (tmp_path / "MARKER").exists()
    assert not (tmp_path / "out").exists() or where == "metadata"


def test_model_card_with_hub_licence_reads_back(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    (run / "run_metadata.json").write_text(json.dumps({"license": "cc-by-sa-4.0", "tags": ["snli", "vae"],
                                                        "language": ["en"]}))
    publish_model(run, REPO_ID, dry_run_dir=tmp_path / "out", validate=False)
    meta = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---", 2)[1])
    assert meta["license"] == "cc-by-sa-4.0" and {"snli", "vae"} <= set(meta["tags"]) and meta["language"] == ["en"]


def test_rollback_deletes_only_what_this_run_created_and_names_what_it_cannot():
    """The rollback step alone: nothing created -> nothing done; an empty new repo or branch is deleted; one that
    got commits from elsewhere is kept; a failed deletion is named with the command that removes it."""
    from types import SimpleNamespace

    from hf_dgm.hub.commit import CommitTarget, rollback

    class FakeApi:
        endpoint = "https://huggingface.co"

        def __init__(self, head, fail_delete=False):
            self.head, self.fail_delete, self.deleted = head, fail_delete, []

        def repo_info(self, repo_id, revision=None, repo_type=None):
            return SimpleNamespace(sha=self.head)

        def delete_repo(self, repo_id, repo_type=None):
            if self.fail_delete:
                raise RuntimeError("403 forbidden")
            self.deleted.append(("repo", repo_id, repo_type))

        def delete_branch(self, repo_id, branch, repo_type=None):
            self.deleted.append(("branch", branch, repo_type))

    api = FakeApi("a")
    assert rollback(api, CommitTarget("o/n", "model", None, "a")) == "" and api.deleted == []
    assert rollback(api, CommitTarget("o/n", "model", None, "a", created_repo=True)) == (
        "; the empty repo o/n this run created was deleted again")
    assert api.deleted == [("repo", "o/n", "model")]
    moved = FakeApi("b")
    assert rollback(moved, CommitTarget("o/n", "model", None, "a", created_repo=True)) == (
        "; the repo o/n this run created has commits from elsewhere and was kept")
    assert moved.deleted == []
    branch = FakeApi("a")
    assert rollback(branch, CommitTarget("o/n", "model", "dev", "a", created_branch=True)) == (
        "; the branch 'dev' this run created was deleted again")
    assert branch.deleted == [("branch", "dev", "model")]
    text = rollback(FakeApi("a", fail_delete=True), CommitTarget("o/s", "space", None, "a", created_repo=True))
    assert text == ("; the empty Space o/s this run created could not be deleted (RuntimeError: 403 forbidden): "
                    "remove it with `hf repos delete o/s --repo-type space --yes`")
