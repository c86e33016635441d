"""The Gradio demos in a real browser: Debian's headless Chromium, driven as a person would.

Each test starts the family's app on 127.0.0.1 with a tiny saved model, types / picks / drags in the page, reads
the result back from the page, compares it with the pipeline called directly, and saves a screenshot PNG under the
test's tmp_path. Skipped (with the reason) only where chromium / chromedriver are not installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from demo_browser import fetch_image, free_port, screenshot, serve, start_browser, wait_for
from hf_dgm import FQBigGANConfig, FQBigGANForImageGeneration, OptimusForConditionalGeneration
from hf_dgm.demo import app_builder, build_demo, demo_modules
from hf_dgm.demo.common import guarded, parse_seed
from hf_dgm.models.optimus.demo_optimus import DECODINGS, format_path
from optimus_tiny import build_parts

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def optimus_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("optimus")
    enc_dir, dec_dir = build_parts(tmp)
    torch.manual_seed(0)
    model = OptimusForConditionalGeneration.from_encoder_decoder_pretrained(str(enc_dir), str(dec_dir), latent_size=8)
    model.save_pretrained(tmp / "optimus-tiny")
    return tmp / "optimus-tiny"


@pytest.fixture(scope="module")
def biggan_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("fq-biggan")
    torch.manual_seed(0)
    config = FQBigGANConfig.from_preset("tiny", class_names=[f"digit {i}" for i in range(10)])
    FQBigGANForImageGeneration(config).save_pretrained(tmp / "fq-biggan-tiny")
    return tmp / "fq-biggan-tiny"


@pytest.fixture(scope="module")
def driver():
    browser = start_browser()
    yield browser
    browser.quit()


# --------------------------------------------------------------------------------------------- no browser
def test_every_registered_family_has_an_importable_app():
    import importlib

    assert {"optimus", "fq_biggan"} <= set(demo_modules())
    for model_type, module in demo_modules().items():
        assert callable(app_builder(model_type)) and callable(importlib.import_module(module).main)
    with pytest.raises(ValueError, match="no demo app for model_type 'nope'"):
        app_builder("nope")


def test_seed_box_and_errors_are_readable():
    assert parse_seed("") is None and parse_seed(" ") is None and parse_seed("7") == 7 and parse_seed(3.0) == 3
    for bad in ("-1", "1.5", "seven"):
        with pytest.raises(ValueError, match="whole number"):
            parse_seed(bad)

    def fails(kind):
        if kind == "value":
            raise ValueError("the first sentence must be a non-empty string")
        raise RuntimeError("boom")

    assert guarded(fails, ("",))("value") == ("", "⚠️ the first sentence must be a non-empty string")
    assert guarded(fails, ([],))("runtime") == ([], "⚠️ RuntimeError: boom")


def test_analogy_tab_and_unconditional_gan_app(optimus_dir, tmp_path):
    """The app objects behind the pages: analogy as the pipeline computes it; an unconditional GAN gets no class
    picker and the number of images asked for."""
    from hf_dgm.models.fq_biggan.demo_fq_biggan import GANDemo

    app = build_demo(optimus_dir).optimus
    a, b, c = "a man rides a bike .", "a dog rides a bike .", "a man is reading a book ."
    text, status = app.analogy_(a, b, c, 1.0, "sampling (top-p 0.9)", "5", 12)
    expected = app.analogy((a, b, c), degree=1.0, seed=5, max_new_tokens=12, **DECODINGS["sampling (top-p 0.9)"])
    assert text == (expected[0]["text"].strip() or "(empty)") and "degree 1" in status

    torch.manual_seed(0)
    FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", num_classes=0)).save_pretrained(tmp_path / "uncond")
    gan = GANDemo(tmp_path / "uncond")
    assert not gan.conditional and gan.pipe.task == "unconditional-image-generation"
    pairs = gan.generate(None, 3, 0.7, "2")
    assert [caption for _, caption in pairs] == ["#0", "#1", "#2"]
    assert all(image.size == (16, 16) for image, _ in pairs)


# --------------------------------------------------------------------------------------------- browser helpers
def _type(driver, css: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, css)
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def _drag_slider(driver, elem_id: str, key_presses: int) -> float:
    """Move a slider with the keyboard as a person would (arrow keys on the focused range); returns its value."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    rng = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=range]")
    rng.click()  # clicking jumps to the clicked point (the middle): read the value afterwards
    key = Keys.ARROW_RIGHT if key_presses > 0 else Keys.ARROW_LEFT
    for _ in range(abs(key_presses)):
        rng.send_keys(key)
    shown = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
    wait_for(lambda: shown.get_attribute("value") == rng.get_attribute("value"), 10, f"{elem_id} to show its value")
    return float(rng.get_attribute("value"))


def _textarea(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input").get_attribute("value")


def _text(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, elem_id).text


def _open(driver, url: str, ready_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(lambda: driver.find_elements(By.ID, ready_id), 30, f"#{ready_id} on {url}")


# --------------------------------------------------------------------------------------------- browser tests
def test_optimus_page_interpolates_and_reconstructs(driver, optimus_dir, tmp_path):
    from selenium.webdriver.common.by import By

    demo = build_demo(optimus_dir)
    app = demo.optimus
    first, second = "a man rides a bike .", "the cat sits on the mat ."
    with serve(demo) as url:
        started = time.monotonic()
        _open(driver, url, "interp-run")
        _type(driver, "#interp-first textarea", first)
        _type(driver, "#interp-second textarea", second)
        steps = int(_drag_slider(driver, "interp-steps", -2))
        driver.find_element(By.XPATH, "//*[@id='interp-decoding']//label[contains(., 'sampling')]").click()
        _type(driver, "#interp-seed textarea, #interp-seed input", "3")
        driver.find_element(By.ID, "interp-run").click()
        shown = wait_for(lambda: _textarea(driver, "interp-output"), 30, "the interpolation path in the page")
        expected = app.interpolation((first, second), num_steps=steps, seed=3, max_new_tokens=30,
                                     **DECODINGS["sampling (top-p 0.9)"])
        assert shown == format_path(expected)
        lines = shown.splitlines()
        assert len(lines) == steps and lines[0].startswith("α=0.00") and lines[-1].startswith("α=1.00")
        assert any(line.split("  ", 1)[1] != "(empty)" for line in lines), "sampling decoded nothing at all"
        assert f"Decoded {steps} points" in _text(driver, "interp-status")
        shot = screenshot(driver, tmp_path / "optimus-interpolation.png")

        # bad input: an empty sentence gives the pipeline's sentence in the page, no stack trace
        _type(driver, "#interp-first textarea", "")
        driver.find_element(By.ID, "interp-run").click()
        message = wait_for(lambda: "non-empty" in _text(driver, "interp-status") and _text(driver, "interp-status"),
                           30, "the error message")
        assert message.startswith("⚠️") and "the first sentence must be a non-empty string" in message
        assert "Traceback" not in driver.page_source
        screenshot(driver, tmp_path / "optimus-error.png")

        # another tab: reconstruction, greedy
        driver.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Reconstruction')]").click()
        _type(driver, "#recon-input textarea", first)
        driver.find_element(By.ID, "recon-run").click()
        wait_for(lambda: "posterior mean" in _text(driver, "recon-status"), 30, "the reconstruction")
        expected = app.reconstruction(first, seed=0, max_new_tokens=30)[0]["text"].strip() or "(empty)"
        assert _textarea(driver, "recon-output") == expected
        elapsed = time.monotonic() - started
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot} (page driven in {elapsed:.1f} s)")


def test_fq_biggan_page_generates_the_picked_class(driver, biggan_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    demo = build_demo(biggan_dir)
    app = demo.gan
    assert app.classes == [f"digit {i}" for i in range(10)]
    with serve(demo) as url:
        _open(driver, url, "gan-run")
        # pick "digit 3", then drop the preselected "digit 0"
        picker = driver.find_element(By.CSS_SELECTOR, "#gan-classes input[role=combobox]")
        picker.click()
        picker.send_keys("digit 3")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li[role=option][aria-label='digit 3']"),
                 10, "the class list").__getitem__(0).click()
        picker.send_keys(Keys.ESCAPE)
        driver.find_element(By.XPATH, "//*[@id='gan-classes']//div[contains(@class,'token')][contains(., 'digit 0')]"
                                      "//div[contains(@class,'token-remove')]").click()
        tokens = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#gan-classes .token")]
        assert tokens == ["digit 3"], tokens
        truncation = _drag_slider(driver, "gan-truncation", -4)
        per_class = int(_drag_slider(driver, "gan-count", -2))
        assert 0 < truncation < 2 and per_class >= 1
        driver.find_element(By.ID, "gan-run").click()
        wait_for(lambda: "images" in _text(driver, "gan-status"), 30, "the generation to finish")
        sources = wait_for(lambda: [img.get_attribute("src") for img in
                                    driver.find_elements(By.CSS_SELECTOR, "#gan-gallery .grid-container img")],
                           30, "the gallery images")
        assert len(sources) == per_class, sources
        images = [fetch_image(src) for src in sources]
        assert all(image.size == (16, 16) for image in images)
        expected = app.pipe(["digit 3"], num_images=per_class, truncation=truncation, seed=3).images  # seed box 0 + class 3
        for got, want in zip(images, expected):
            assert np.array_equal(np.asarray(got), np.asarray(want))
        captions = driver.find_element(By.ID, "gan-gallery").text
        assert "digit 3 #0" in captions
        shot = screenshot(driver, tmp_path / "fq-biggan-grid.png")

        # no class picked: a sentence in the page, not a stack trace
        driver.find_element(By.CSS_SELECTOR, "#gan-classes .remove-all").click()
        driver.find_element(By.ID, "gan-run").click()
        wait_for(lambda: "pick at least one class" in _text(driver, "gan-status"), 30, "the error message")
        assert "Traceback" not in driver.page_source
    assert shot.stat().st_size > 5_000
    print(f"screenshot: {shot}")


def test_gallery_command_line_builds_the_family_app(optimus_dir, biggan_dir, monkeypatch):
    """`python -m hf_dgm.demo MODEL_DIR --port P` picks the app by model_type and launches it on the address given."""
    import hf_dgm.demo.common as common
    from hf_dgm.demo.__main__ import main

    launched = []
    monkeypatch.setattr(common, "launch", lambda demo, host, port, **kw: launched.append((demo, host, port)))
    main([str(optimus_dir), "--port", "7999"])
    main([str(biggan_dir), "--host", "0.0.0.0", "--port", "8001"])
    (optimus, host, port), (gan, gan_host, gan_port) = launched
    assert hasattr(optimus, "optimus") and (host, port) == ("127.0.0.1", 7999)
    assert hasattr(gan, "gan") and (gan_host, gan_port) == ("0.0.0.0", 8001)
    with pytest.raises(SystemExit, match="holds no config.json"):  # one line from the command, no traceback
        main([str(optimus_dir.parent)])

    # `hf-dgm demo FAMILY MODEL ...` goes through the family registry's `demo` entry
    from hf_dgm.cli import main as hf_dgm_main

    assert hf_dgm_main(["demo", "fq_biggan", str(biggan_dir), "--port", "8002"]) == 0
    assert hasattr(launched[-1][0], "gan") and launched[-1][2] == 8002


@pytest.mark.slow  # 10-30 s on the shared 2-core machine: a fresh interpreter imports torch, transformers, gradio
def test_local_gallery_command_serves_any_saved_folder(optimus_dir):
    """`python -m hf_dgm.demo MODEL_DIR --port P` (the command the main job prints) serves the family's app."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "hf_dgm.demo", str(optimus_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def config():
            if proc.poll() is not None:
                raise AssertionError(f"the gallery exited:\n{proc.stdout.read()}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                return json.loads(response.read())

        served = wait_for(config, 120, "the local gallery to serve its page")
        ids = {c.get("props", {}).get("elem_id") for c in served["components"]}
        assert {"interp-first", "interp-second", "interp-steps", "interp-run", "recon-run", "analogy-run"} <= ids
        assert re.search(r"Optimus", json.dumps(served))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
