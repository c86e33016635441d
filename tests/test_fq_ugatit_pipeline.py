"""`image-translation` pipeline of FQ-U-GAT-IT: inputs, sizes, batches, output types, CAM heat maps, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import hf_dgm  # noqa: F401  (registers the task)
from hf_dgm.models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from hf_dgm.models.fq_ugatit.modeling_fq_ugatit import jet_heatmap
from hf_dgm.models.fq_ugatit.pipeline_fq_ugatit import FQUGATITImageToImagePipeline, ImageTranslationPipelineOutput


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
    return pipeline("image-translation", model=str(model_dir), device="cpu")


def rgb(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_task_resolves_to_the_pipeline(pipe, model_dir):
    assert isinstance(pipe, FQUGATITImageToImagePipeline)
    # transformers reserves `image-to-image`; hf_dgm does not unreserve it (published repos list it in
    # custom_pipelines instead)
    with pytest.raises(KeyError, match="removed"):
        pipeline("image-to-image", model=str(model_dir), device="cpu")


def one(out):
    """The single image of a one-image call."""
    assert isinstance(out, ImageTranslationPipelineOutput) and len(out.images) == 1
    return out.images[0]


def test_output_is_the_model_translation(pipe):
    image = rgb(32, 32)
    out = one(pipe(image, direction="B2A"))
    assert isinstance(out, Image.Image) and out.size == (32, 32) and out.mode == "RGB"
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = pipe.model.translate(x, "B2A").images
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(out), expected)
    assert not np.array_equal(np.asarray(one(pipe(image, direction="A2B"))), expected)  # the other generator


def test_inputs_sizes_and_batches(pipe, tmp_path):
    path = tmp_path / "x.png"
    rgb(50, 30, seed=1).save(path)
    inputs = [rgb(70, 40), np.random.default_rng(0).random((20, 24, 3)), str(path), path]
    out = pipe(inputs, keep_size=True, batch_size=3).images
    assert [o.size for o in out] == [(70, 40), (24, 20), (50, 30), (50, 30)]
    resized = pipe(inputs).images
    assert all(o.size == (32, 32) for o in resized)
    # batching does not change results (beyond float rounding in batched kernels: at most 1 grey level)
    one_by_one = [one(pipe(i)) for i in inputs]
    for a, b in zip(resized, one_by_one):
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 1


def test_base64_input(pipe):
    import base64
    import io

    image = rgb(32, 32, seed=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    expected = np.asarray(one(pipe(image)))
    assert np.array_equal(np.asarray(one(pipe(encoded))), expected)
    assert np.array_equal(np.asarray(one(pipe("data:image/png;base64," + encoded))), expected)
    with pytest.raises(ValueError, match="not a readable image"):
        pipe(base64.b64encode(b"not an image at all, just some bytes" * 3).decode("ascii"))


def test_attention_maps(pipe):
    out = pipe([rgb(40, 36), rgb(32, 32, 2)], return_attention=True, keep_size=True)
    assert out.images[0].size == out.attention[0].size == (40, 36)
    attention = np.asarray(out.attention[1])
    assert attention.shape == (32, 32, 3) and attention.dtype == np.uint8
    assert attention.std() > 0
    # jet: 0 -> dark blue, 0.5 -> green, 1 -> dark red
    colours = jet_heatmap(torch.tensor([[[[0.0, 0.5, 1.0]]]]), (1, 3))[0, :, 0].T  # (3 values, RGB)
    assert colours[0].argmax() == 2 and colours[1].argmax() == 1 and colours[2].argmax() == 0


def test_mode_conversion_with_a_note(pipe, caplog):
    grey = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), mode="L")
    with caplog.at_level("WARNING"):
        out = one(pipe(grey))
    assert out.mode == "RGB"
    assert "converting mode L to RGB" in caplog.text
    rgba = rgb(32, 32).convert("RGBA")
    assert np.array_equal(np.asarray(one(pipe(rgba))), np.asarray(one(pipe(rgb(32, 32)))))


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
    with pytest.raises(ValueError, match="unexpected.*seed.*deterministic"):
        pipe(rgb(8, 8), seed=3)
    with pytest.raises(ValueError, match="output_type"):
        pipe(rgb(8, 8), output_type="latent")
    with pytest.raises(ValueError, match="one size"):
        pipe([rgb(8, 8), rgb(9, 9)], keep_size=True, output_type="pt")
    with pytest.raises(ValueError, match="max_pixels"):
        pipe(rgb(8, 8), max_pixels=0)
    with pytest.raises(ValueError, match="unexpected.*directoin"):  # a misspelt keyword is named, never dropped
        pipe(rgb(8, 8), directoin="B2A")
    with pytest.raises(TypeError, match="directions"):
        pipe.model.translate(torch.zeros(1, 3, 8, 8), directions="B2A")


@pytest.mark.slow
def test_remote_code_folder_serves_image_to_image_without_hf_dgm(model_dir, tmp_path):
    """The publisher's folder (flat remote code, `custom_pipelines`) loads in an interpreter that cannot import
    hf_dgm: `pipeline("image-translation" or "image-to-image", trust_remote_code=True)` and the model give the source model's outputs
    (the fq_ugatit probe), and the card's snippet and handler.py run there."""
    from hf_dgm.hub import prepare_repo_folder

    prepared = prepare_repo_folder(model_dir, tmp_path / "repo", "hf-dgm-tests/fq-ugatit-tiny")
    assert {"modeling_fq_ugatit.py", "pipeline_fq_ugatit.py", "feature_quantizer.py", "handler.py"} <= set(prepared.files)
    for task in ("image-translation", "image-to-image"):  # the reserved name works through custom_pipelines
        assert prepared.custom_pipelines[task]["impl"] == "pipeline_fq_ugatit.FQUGATITImageToImagePipeline"
    report = prepared.validation
    assert report.pipeline_class == "FQUGATITImageToImagePipeline"
    assert report.model_module.startswith("transformers_modules")
    # as tests/test_publish.py: the validation child process may reduce in another thread order (seen: 1.02e-6)
    assert max(report.max_abs_diff.values()) <= 1e-5
    assert report.snippets_run == 2  # the card's usage snippet and the endpoint handler request


def test_diffusers_style_batch_and_output_types(pipe):
    """The U-GAT-IT equivalent of a diffusers call: a batch in, `.images` out, in the asked output_type."""
    images = [rgb(32, 32, seed=5), rgb(32, 32, seed=6)]
    pt = pipe(image=images, direction="B2A", output_type="pt").images
    x = torch.stack([torch.from_numpy(np.asarray(i, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for i in images])
    with torch.no_grad():
        expected = (pipe.model.translate(x, "B2A").images.clamp(-1, 1) + 1) / 2
    assert pt.shape == (2, 3, 32, 32) and torch.allclose(pt, expected, atol=1e-6)
    out = pipe(images, direction="B2A", output_type="np", return_attention=True)
    assert out.images.shape == (2, 32, 32, 3) and out.images.dtype == np.float32
    assert np.allclose(out.images, pt.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert out.attention.shape == (2, 32, 32, 3) and 0 <= out.attention.min() and out.attention.max() <= 1
    pil = pipe(images, direction="B2A").images
    assert np.array_equal(np.asarray(pil[0]), (pt[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    resized = pipe([rgb(40, 30), rgb(40, 30, 1)], output_type="pt", keep_size=True, batch_size=1).images
    assert resized.shape == (2, 3, 30, 40)
    images_only, attention = pipe(images, return_attention=True, return_dict=False)
    assert len(images_only) == len(attention) == 2


def write_huge_png(path, width=20000, height=20000):
    """A valid greyscale PNG of width×height black pixels (~1.7 MB on disk for 20000², written in ~3 s)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(1)
    row = bytes(width + 1)  # filter byte 0, then one grey byte per pixel
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_image_gives_a_clear_error(pipe, tmp_path):
    """Issue 33: a 20000×20000 PNG names the image and the limit, never PIL's DecompressionBombError; the cap has an
    override (`max_pixels`), and an image under PIL's own limit passes with it."""
    path = tmp_path / "huge.png"
    write_huge_png(path)  # 400 megapixels decoded
    with pytest.raises(ValueError, match=r"huge\.png.*20000×20000 = 400,000,000 pixels exceeds `max_pixels`=67,108,864"):
        pipe(str(path))
    with pytest.raises(ValueError, match=r"huge\.png.*PIL\.Image\.MAX_IMAGE_PIXELS"):  # PIL's own cap is named
        pipe(str(path), max_pixels=None)
    with pytest.raises(ValueError, match=r"image 0: 64×48 = 3,072 pixels exceeds `max_pixels`=1,000"):
        pipe(rgb(64, 48), max_pixels=1000)
    assert one(pipe(rgb(64, 48), max_pixels=5000)).size == (32, 32)
