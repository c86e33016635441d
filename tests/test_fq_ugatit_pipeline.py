"""`image-to-image` pipeline of FQ-U-GAT-IT: inputs, sizes, batches, CAM heat maps, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import hf_dgm  # noqa: F401  (registers the task)
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from hf_dgm.models.fq_ugatit.modeling_fq_ugatit import jet_heatmap
from hf_dgm.models.fq_ugatit.pipeline_fq_ugatit import FQUGATITImageToImagePipeline


torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = FQUGATITConfig(
        image_size=32, ngf=4, n_res_blocks=1, ndf=4, global_discriminator_layers=5, local_discriminator_layers=4,
        fq_num_embeddings=[8, 8, 8],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("fq_ugatit")
    FQUGATITModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline("image-to-image", model=str(model_dir), device="cpu")


def rgb(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_task_resolves_to_the_pipeline(pipe):
    assert isinstance(pipe, FQUGATITImageToImagePipeline)


def test_output_is_the_model_translation(pipe):
    image = rgb(32, 32)
    out = pipe(image, direction="B2A")
    assert isinstance(out, Image.Image) and out.size == (32, 32) and out.mode == "RGB"
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = pipe.model.translate(x, "B2A").images
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(out), expected)
    assert not np.array_equal(np.asarray(pipe(image, direction="A2B")), expected)  # the other generator


def test_inputs_sizes_and_batches(pipe, tmp_path):
    path = tmp_path / "x.png"
    rgb(50, 30, seed=1).save(path)
    inputs = [rgb(70, 40), np.random.default_rng(0).random((20, 24, 3)), str(path), path]
    out = pipe(inputs, keep_size=True, batch_size=3)
    assert [o.size for o in out] == [(70, 40), (24, 20), (50, 30), (50, 30)]
    resized = pipe(inputs)
    assert all(o.size == (32, 32) for o in resized)
    # batching does not change results (beyond float rounding in batched kernels: at most 1 grey level)
    one_by_one = [pipe(i) for i in inputs]
    for a, b in zip(resized, one_by_one):
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 1


def test_base64_input(pipe):
    import base64
    import io

    image = rgb(32, 32, seed=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    expected = np.asarray(pipe(image))
    assert np.array_equal(np.asarray(pipe(encoded)), expected)
    assert np.array_equal(np.asarray(pipe("data:image/png;base64," + encoded)), expected)
    with pytest.raises(ValueError, match="not a readable image"):
        pipe(base64.b64encode(b"not an image at all, just some bytes" * 3).decode("ascii"))


def test_attention_maps(pipe):
    out = pipe([rgb(40, 36), rgb(32, 32, 2)], return_attention=True, keep_size=True)
    assert out[0]["image"].size == out[0]["attention"].size == (40, 36)
    attention = np.asarray(out[1]["attention"])
    assert attention.shape == (32, 32, 3) and attention.dtype == np.uint8
    assert attention.std() > 0
    # jet: 0 -> dark blue, 0.5 -> green, 1 -> dark red
    colours = jet_heatmap(torch.tensor([[[[0.0, 0.5, 1.0]]]]), (1, 3))[0, :, 0].T  # (3 values, RGB)
    assert colours[0].argmax() == 2 and colours[1].argmax() == 1 and colours[2].argmax() == 0


def test_mode_conversion_with_a_note(pipe, caplog):
    grey = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), mode="L")
    with caplog.at_level("WARNING"):
        out = pipe(grey)
    assert out.mode == "RGB"
    assert "converting mode L to RGB" in caplog.text
    rgba = rgb(32, 32).convert("RGBA")
    assert np.array_equal(np.asarray(pipe(rgba)), np.asarray(pipe(rgb(32, 32))))


@pytest.mark.parametrize(
    "bad, message",
    [
        (Image.new("RGB", (0, 4)), "zero-size"),
        (np.zeros((0, 5, 3), dtype=np.uint8), "zero-size"),
        (Image.new("F", (8, 8)), "16-bit or float"),
        (Image.new("I;16", (8, 8)), "16-bit or float"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "numpy images"),
        (np.full((4, 4), 2.0), r"\[0, 1\]"),
        ("does/not/exist.png", "not a file"),
        ("data:image/png;base64,@@@", "valid base64"),
        (torch.zeros(3, 8, 8), "expected a PIL"),
        (42, "expected a PIL"),
    ],
)
def test_bad_images_raise(pipe, bad, message):
    with pytest.raises(ValueError, match=message):
        pipe(bad)


def test_bad_arguments_raise(pipe, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        pipe(str(text))
    with pytest.raises(ValueError, match="direction"):
        pipe(rgb(8, 8), direction="C2D")
    with pytest.raises(ValueError, match="no images"):
        pipe([])
    with pytest.raises(ValueError, match="batch_size"):
        pipe([rgb(8, 8)], batch_size=0)
    with pytest.raises(ValueError, match="unexpected.*seed"):
        pipe(rgb(8, 8), seed=3)
    with pytest.raises(ValueError, match="unexpected.*directoin"):  # a misspelt keyword is named, never dropped
        pipe(rgb(8, 8), directoin="B2A")
    with pytest.raises(TypeError, match="directions"):
        pipe.model.translate(torch.zeros(1, 3, 8, 8), directions="B2A")


@pytest.mark.slow
def test_remote_code_folder_serves_image_to_image_without_hf_dgm(model_dir, tmp_path):
    """The publisher's folder (flat remote code, `custom_pipelines`) loads in an interpreter that cannot import
    hf_dgm: `pipeline("image-to-image", trust_remote_code=True)` and the model give the source model's outputs
    (the fq_ugatit probe), and the card's snippet and handler.py run there."""
    from hf_dgm.hub import prepare_repo_folder

    prepared = prepare_repo_folder(model_dir, tmp_path / "repo", "hf-dgm-tests/fq-ugatit-tiny")
    assert {"modeling_fq_ugatit.py", "pipeline_fq_ugatit.py", "feature_quantizer.py", "handler.py"} <= set(prepared.files)
    assert prepared.custom_pipelines["image-to-image"]["impl"] == "pipeline_fq_ugatit.FQUGATITImageToImagePipeline"
    report = prepared.validation
    assert report.pipeline_class == "FQUGATITImageToImagePipeline"
    assert report.model_module.startswith("transformers_modules")
    # as tests/test_publish.py: the validation child process may reduce in another thread order (seen: 1.02e-6)
    assert max(report.max_abs_diff.values()) <= 1e-5
    assert report.snippets_run == 2  # the card's usage snippet and the endpoint handler request
