"""Publishing a Gradio Space next to a model: the folder, the push through the loopback Hub, and the app running
from the Space folder on a published (remote-code) model in an interpreter that cannot import hf_dgm."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
import yaml

from demo_browser import free_port, screenshot, start_browser, wait_for
from hf_dgm import FQBigGANConfig, FQBigGANForImageGeneration, OptimusForConditionalGeneration
from hf_dgm.hub.publish import PublishError, prepare_repo_folder
from hf_dgm.hub.space import prepare_space_folder, publish_space
from hub_server import DEFAULT_TOKEN, LoopbackHub
from optimus_tiny import build_parts

REPO_ROOT = Path(__file__).resolve().parents[1]
PINNED = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def optimus_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("optimus-run")
    enc_dir, dec_dir = build_parts(tmp)
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    model.save_pretrained(tmp / "optimus-tiny")
    (tmp / "optimus-tiny" / "run_metadata.json").write_text(json.dumps({"license": "mit"}))
    return tmp / "optimus-tiny"


@pytest.fixture(scope="module")
def biggan_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fq-biggan-run")
    torch.manual_seed(0)
    FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny")).save_pretrained(tmp / "fq-biggan-tiny")
    return tmp / "fq-biggan-tiny"


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---", 2)[1])


def _installed(name: str) -> str:
    return metadata.version(name).split("+")[0]


@pytest.mark.parametrize("family", ["optimus", "fq_biggan"])
def test_space_folder(family, optimus_run, biggan_run, tmp_path):
    run = optimus_run if family == "optimus" else biggan_run
    out = tmp_path / "space"
    files, model_type = prepare_space_folder("org/model", out, "org/model-demo", revision=PINNED, model_dir=run)
    assert model_type == family
    assert files == ["README.md", "app.py", "hf_dgm_demo/__init__.py", "hf_dgm_demo/common.py",
                     f"hf_dgm_demo/demo_{family}.py", "requirements.txt"]

    meta = _front_matter((out / "README.md").read_text())
    import gradio

    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__ and meta["app_file"] == "app.py"
    assert meta["models"] == ["org/model"] and meta["title"] == "model demo" and meta["emoji"]
    assert meta["license"] == ("apache-2.0" if family == "optimus" else "mit")  # the family's (no card in the run)
    assert PINNED in (out / "README.md").read_text()

    requirements = (out / "requirements.txt").read_text().split()
    pins = dict(line.split("==") for line in requirements)
    for name in ("torch", "transformers", "gradio", "huggingface_hub", "tokenizers", "safetensors"):
        assert pins[name] == _installed(name), name
    if family == "fq_biggan":  # the remote code imports numpy and PIL
        assert pins["numpy"] == _installed("numpy") and pins["pillow"] == _installed("pillow")

    app = (out / "app.py").read_text()
    assert f"MODEL_ID = 'org/model'" in app and f"REVISION = {PINNED!r}" in app
    for path in out.rglob("*.py"):  # nothing in a Space may need hf_dgm
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("hf_dgm."), (path, node.module)
            if isinstance(node, ast.Import):
                assert all(a.name != "hf_dgm" and not a.name.startswith("hf_dgm.") for a in node.names), path

    with pytest.raises(PublishError, match="not empty"):
        prepare_space_folder("org/model", out, "org/model-demo", model_dir=run)


@pytest.fixture
def hub():
    """The loopback Hub; this process's client must not try Xet storage (the server speaks LFS only)."""
    import huggingface_hub.constants

    disable_xet = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # read at call time
    with LoopbackHub() as server:
        yield server
    huggingface_hub.constants.HF_HUB_DISABLE_XET = disable_xet


def _cli():
    import importlib.util

    spec = importlib.util.spec_from_file_location("publish_space_cli", REPO_ROOT / "upload" / "publish_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_publish_space_through_the_loopback_hub(hub, optimus_run, tmp_path, capsys):
    """The command line pushes the Space in one commit, pinned to the model repo's head commit, with the model
    card's license; a dry run writes the same folder and pushes nothing."""
    card = "---\nlicense: mit\nlibrary_name: transformers\ninference: false\n---\n# optimus-tiny\n"
    model_sha = hub.seed_repo("org/optimus-tiny", {
        "config.json": (optimus_run / "config.json").read_bytes(), "README.md": card.encode()})
    args = ["--model", "org/optimus-tiny", "--space-id", "org/optimus-tiny-demo", "--endpoint", hub.endpoint,
            "--token", DEFAULT_TOKEN]
    main = _cli()
    assert main(args) == 0
    assert "published org/optimus-tiny-demo" in capsys.readouterr().out

    key = "spaces/org/optimus-tiny-demo"
    assert hub.repos[key].repo_type == "space" and hub.repos[key].sdk == "gradio"
    history = hub.commit_history(key)
    assert len(history) == 2 and history[0].title.startswith("Gradio demo of org/optimus-tiny")
    assert hub.list_files(key) == [".gitattributes", "README.md", "app.py", "hf_dgm_demo/__init__.py",
                                   "hf_dgm_demo/common.py", "hf_dgm_demo/demo_optimus.py", "requirements.txt"]
    assert f"REVISION = {model_sha!r}" in hub.file_bytes(key, "app.py").decode()
    meta = _front_matter(hub.file_bytes(key, "README.md").decode())
    assert meta["license"] == "mit" and meta["models"] == ["org/optimus-tiny"]
    # the model repo is untouched; the Space's files went through the Space routes
    assert hub.list_files("org/optimus-tiny") == [".gitattributes", "README.md", "config.json"]
    assert ("POST", "/api/spaces/org/optimus-tiny-demo/commit/main") in hub.requests

    assert main(args + ["--dry_run", str(tmp_path / "dry")]) == 0
    assert (tmp_path / "dry" / "app.py").read_bytes() == hub.file_bytes(key, "app.py")
    assert len(hub.commit_history(key)) == 2

    # a model repo that does not exist: a readable error, no Space created
    assert main(["--model", "org/missing", "--space-id", "org/missing-demo", "--endpoint", hub.endpoint,
                 "--token", DEFAULT_TOKEN]) == 1
    assert "spaces/org/missing-demo" not in hub.repos


def test_model_card_links_its_space(optimus_run, tmp_path):
    prepared = prepare_repo_folder(optimus_run, tmp_path / "repo", "org/optimus-tiny", validate=False,
                                   space_id="org/optimus-tiny-demo")
    card = (prepared.folder / "README.md").read_text()
    assert "(https://huggingface.co/spaces/org/optimus-tiny-demo)" in card
    assert _front_matter(card)["inference"] is False
    plain = prepare_repo_folder(optimus_run, tmp_path / "plain", "org/optimus-tiny", validate=False)
    assert "huggingface.co/spaces/" not in (plain.folder / "README.md").read_text()


_BLOCKED_RUN = r'''
import importlib.abc, runpy, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_dgm" or name.startswith("hf_dgm."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a Space has no hf_dgm)")
sys.meta_path.insert(0, _Block())
app = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(app, run_name="__main__")
'''


@pytest.mark.slow  # ~35 s on the shared 2-core machine: a fresh interpreter imports torch, transformers, gradio
def test_space_app_serves_a_published_model_without_hf_dgm(optimus_run, tmp_path):
    """`python OUT_DIR/app.py MODEL_DIR` on the published (remote-code) folder, with hf_dgm unimportable: typed
    sentences give the interpolation path in the page."""
    from selenium.webdriver.common.by import By

    repo = prepare_repo_folder(optimus_run, tmp_path / "repo", "org/optimus-tiny", validate=False).folder
    space = tmp_path / "space"
    prepare_space_folder("org/optimus-tiny", space, "org/optimus-tiny-demo", revision=PINNED, model_dir=optimus_run)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
                "HF_MODULES_CACHE": str(tmp_path / "modules")})
    proc = subprocess.Popen([sys.executable, "-I", "-c", _BLOCKED_RUN, str(space / "app.py"), str(repo),
                             "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    driver = start_browser()
    try:
        def page():
            if proc.poll() is not None:
                raise AssertionError(f"app.py exited:\n{proc.stdout.read()[-4000:]}")
            driver.get(f"http://127.0.0.1:{port}/")
            return driver.find_elements(By.ID, "interp-run")

        wait_for(page, 120, "app.py to serve the page")
        # the example sentences, 5 steps, sampling with the seed box's 0 (a random tiny decoder stops at once
        # under greedy decoding)
        driver.find_element(By.XPATH, "//*[@id='interp-decoding']//label[contains(., 'sampling')]").click()
        driver.find_element(By.ID, "interp-run").click()
        status = wait_for(lambda: "Decoded 5 points" in driver.find_element(By.ID, "interp-status").text, 60,
                          "the interpolation")
        assert status
        lines = driver.find_element(By.CSS_SELECTOR, "#interp-output textarea").get_attribute("value").splitlines()
        assert [line.split()[0] for line in lines] == ["α=0.00", "α=0.25", "α=0.50", "α=0.75", "α=1.00"]
        assert any(line.split("  ", 1)[1] != "(empty)" for line in lines), lines
        shot = screenshot(driver, tmp_path / "space-app-optimus.png")
        print(f"screenshot: {shot}")
    finally:
        driver.quit()
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "transformers_modules" not in out or "Traceback" not in out


# --------------------------------------------------------------------------------------------- issue 33: no code from data
PAYLOAD = 'open("MARKER", "w").write("x")'
INJECTIONS = [  # each tries to end the literal / docstring / line it lands in and run PAYLOAD
    f'o/x"""+{PAYLOAD}+"""',
    f"o/x'''+{PAYLOAD}+'''",
    f"o/x'+{PAYLOAD}+'",
    f'o/x"+{PAYLOAD}+"',
    f"o/x\n{PAYLOAD}\n",
    f"o/x\\\n{PAYLOAD}",
]


def _run_app_help(app: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run a Space's app.py as the Space does (`__main__`), with `--help`: every module-level statement runs and
    the argument parser exits before a server starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    return subprocess.run([sys.executable, "-I", str(app), "--help"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("flag, value", [("--model", v) for v in INJECTIONS] + [
    ("--space_id", INJECTIONS[0]), ("--revision", f'main"+{PAYLOAD}+"'), ("--revision", "main\nx"),
    ("--license", "mit\nmodels: [evil/x]"), ("--license", f'"+{PAYLOAD}+"'), ("--license", "MIT License"),
])
def test_injected_space_inputs_are_refused(flag, value, biggan_run, tmp_path, monkeypatch, capsys):
    """Every value bound for app.py or the Space card is validated first: one line naming the flag, nothing
    written, nothing run."""
    monkeypatch.chdir(tmp_path)
    args = {"--model": "org/model", "--space_id": "org/demo", "--revision": PINNED, "--license": "mit"}
    args[flag] = value
    argv = [a for pair in args.items() for a in pair] + ["--model_dir", str(biggan_run), "--dry_run", "D"]
    assert _cli()(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and flag.lstrip("-") in err.split("\n")[0], err
    assert ("licence identifier" in err or "line breaks" in err) if flag == "--license" else True
    assert not (tmp_path / "D").exists() and not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("value", INJECTIONS)
def test_app_py_holds_values_as_literals(value, biggan_run, tmp_path):
    """Even a value that bypassed validation stays a string: app.py, run as the Space runs it, executes nothing
    of it, and MODEL_ID / REVISION / FAMILY read back unchanged."""
    from hf_dgm.hub.space import render_app

    space = tmp_path / "space"
    prepare_space_folder("org/model", space, "org/demo", revision=PINNED, model_dir=biggan_run)
    proc = _run_app_help(space / "app.py", tmp_path)
    assert proc.returncode == 0 and "org/model" in proc.stdout, proc.stderr[-2000:]
    source = render_app(model_id=value, revision=value, family="fq_biggan", package="hf_dgm_demo", module="demo_fq_biggan",
                        function="build_demo", hf_dgm_version=value)
    (space / "app.py").write_text(source)
    proc = _run_app_help(space / "app.py", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "MARKER").exists() and not (space / "MARKER").exists()
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(source).body if isinstance(n, ast.Assign)}
    assert values["MODEL_ID"] == value and values["REVISION"] == value
    for bad in ("fq_biggan; import os", "build_demo()"):
        with pytest.raises(PublishError, match="not a Python identifier"):
            render_app(model_id="o/x", revision=None, family="fq_biggan", package="hf_dgm_demo", module=bad,
                       function="build_demo", hf_dgm_version="0")


def test_space_card_license_comes_from_the_hub_list(biggan_run, tmp_path):
    """A license read from the model's card must be a Hub licence id too; the YAML holds exactly the values."""
    from hf_dgm.hub.space import _card_license

    assert _card_license("---\nlicense: cc-by-4.0\n---\n# m\n") == "cc-by-4.0"
    for card in ("---\nlicense: \"mit\\nmodels: [evil/x]\"\n---\n", "---\nlicense: my own licence\n---\n"):
        with pytest.raises(PublishError, match="the model card's license .* not a Hugging Face Hub licence identifier"):
            _card_license(card)
    model = tmp_path / "model"
    shutil.copytree(biggan_run, model)
    (model / "README.md").write_text("---\nlicense: \"apache-2.0\\n\"\n---\n# m\n")
    with pytest.raises(PublishError, match="pass --license"):
        prepare_space_folder("org/model", tmp_path / "s1", "org/demo", revision=PINNED, model_dir=model)
    prepare_space_folder("org/model", tmp_path / "s2", "org/demo", revision=PINNED, model_dir=model, license="mit")
    meta = _front_matter((tmp_path / "s2" / "README.md").read_text())
    assert meta["license"] == "mit" and meta["models"] == ["org/model"] and meta["tags"] == ["hf-dgm", "fq-biggan"]


# --------------------------------------------------------------------------------------------- issue 33: faults
def test_failed_space_commit_deletes_the_new_space_in_one_line(hub, optimus_run, capsys, monkeypatch):
    """A 507 on the first commit of a new Space: exit 1, one line saying what failed and that the remote is
    unchanged, and the Space this call created is gone again."""
    from hf_dgm.hub import commit

    monkeypatch.setattr(commit, "COMMIT_ATTEMPTS", 1)  # a 5xx commit is retried; here the first answer is final
    hub.seed_repo("org/m507", {"config.json": (optimus_run / "config.json").read_bytes()})
    args = ["--model", "org/m507", "--space_id", "org/m507-demo", "--endpoint", hub.endpoint, "--token", DEFAULT_TOKEN]
    hub.fail_next("commit", status=507, message="Insufficient Storage")
    assert _cli()(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("error: the Hub answered 507 to the commit to org/m507-demo")
    assert err.endswith("the remote is unchanged; the empty Space org/m507-demo this run created was deleted again")
    assert "spaces/org/m507-demo" not in hub.repos

    # an existing Space is left as it was (its earlier commit stays; nothing deleted)
    assert _cli()(args) == 0
    capsys.readouterr()
    head = hub.head_sha("spaces/org/m507-demo")
    hub.fail_next("preupload", status=507, message="Insufficient Storage")
    assert _cli()(args + ["--license", "cc-by-4.0"]) == 1  # a changed card: something to upload
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "answered 507" in err, err
    assert "the remote is unchanged" in err and "deleted" not in err
    assert hub.head_sha("spaces/org/m507-demo") == head


def test_space_leftover_is_named_with_its_delete_command(hub, optimus_run, capsys, monkeypatch):
    """When the new Space cannot be deleted after a failed commit, the error names it and the `hf` command that
    removes it; that command works."""
    from huggingface_hub import HfApi

    hub.seed_repo("org/mleft", {"config.json": (optimus_run / "config.json").read_bytes()})
    hub.fail_next("commit", status=400, message="Bad request")

    def refuse(self, *args, **kwargs):
        raise ConnectionError("connection dropped")

    monkeypatch.setattr(HfApi, "delete_repo", refuse)
    args = ["--model", "org/mleft", "--space_id", "org/mleft-demo", "--endpoint", hub.endpoint, "--token", DEFAULT_TOKEN]
    assert _cli()(args) == 1
    err = capsys.readouterr().err.strip()
    command = f"HF_ENDPOINT={hub.endpoint} hf repos delete org/mleft-demo --repo-type space --yes"
    assert "\n" not in err and err.endswith(f"remove it with `{command}`"), err
    assert "the remote is unchanged" in err and "spaces/org/mleft-demo" in hub.repos
    env = {**os.environ, **hub.env(), "HF_HUB_DISABLE_XET": "1"}
    hf = Path(sys.executable).with_name("hf")
    proc = subprocess.run([str(hf), *command.split()[2:]], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "spaces/org/mleft-demo" not in hub.repos


def test_demo_modules_import_nothing_of_hf_dgm():
    """The Space publisher copies hf_dgm/demo/*.py into the Space, where hf_dgm is not installed: they may import
    each other (single-dot) but no other part of hf_dgm (`from ..x`, `import hf_dgm.x`, `from hf_dgm.x`)."""
    import ast

    demo_dir = Path(__file__).resolve().parents[1] / "hf_dgm" / "demo"
    offenders = []
    for path in sorted(demo_dir.glob("*.py")):
        if path.name in ("__main__.py", "__init__.py"):  # the local launcher and registry helpers, never copied
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 1 or (node.module or "").startswith("hf_dgm")):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name.startswith("hf_dgm.") for a in node.names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, offenders
