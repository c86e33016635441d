"""Tests of the `class-conditional-image-generation` and `unconditional-image-generation` pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import hf_dgm  # noqa: F401  (registers the tasks)
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration, FQBigGANGeneratorModel
from hf_dgm.models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration
from hf_dgm.pipelines.image_generation import (
    ClassConditionalImageGenerationPipeline,
    ImagePipelineOutput,
    UnconditionalImageGenerationPipeline,
)

CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def conditional_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", class_names=CLASSES))
    path = tmp_path_factory.mktemp("fq_biggan_conditional")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def unconditional_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = FQBigGANForImageGeneration(FQBigGANConfig.from_preset("tiny", num_classes=0))
    path = tmp_path_factory.mktemp("fq_biggan_unconditional")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def conditional_pipeline(conditional_dir):
    return pipeline("class-conditional-image-generation", model=str(conditional_dir))


def arrays(images):
    return [np.asarray(image) for image in images]


def test_class_conditional_pipeline_from_saved_dir(conditional_pipeline):
    generate = conditional_pipeline
    assert isinstance(generate, ClassConditionalImageGenerationPipeline)
    out = generate(["cat", "Ship", 0], num_images=2, seed=0)
    assert isinstance(out, ImagePipelineOutput) and out.class_labels.tolist() == [3, 3, 8, 8, 0, 0]
    images = out.images
    assert len(images) == 6
    assert all(isinstance(image, Image.Image) and image.size == (16, 16) and image.mode == "RGB" for image in images)

    again = generate(class_labels=["cat", "Ship", 0], num_images_per_prompt=2, seed=0).images
    assert all(np.array_equal(a, b) for a, b in zip(arrays(images), arrays(again))), "same seed, same images"
    other = generate(["cat", "Ship", 0], num_images=2, seed=1).images
    assert not np.array_equal(arrays(images)[0], arrays(other)[0])

    # Images match the model's own generate() with the same labels and seed (class by class order).
    model = generate.model
    expected = model.generate([3, 3, 8, 8, 0, 0], truncation=1.0, generator=torch.Generator().manual_seed(0))
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(a, b) for a, b in zip(arrays(images), expected))

    # Chunked generation, a single class, no truncation.
    assert len(generate("dog", num_images=3, batch_size=2, truncation=None, seed=3).images) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes=["unicorn"]), "unknown class name"),
        (dict(classes=[10]), "out of range"),
        (dict(classes=[-1]), "out of range"),
        (dict(classes=[]), "at least one"),
        (dict(classes=[1.5]), "names"),
        (dict(classes="cat", truncation=0), "truncation"),
        (dict(classes="cat", truncation=-0.5), "truncation"),
        (dict(classes="cat", truncation=float("inf")), "truncation"),
        (dict(classes="cat", num_images=0), "num_images"),
        (dict(classes="cat", seed=-1), "seed"),
        (dict(classes="cat", batch_size=0), "batch_size"),
        (dict(classes="cat", guidance=2.0), "unexpected"),
        (dict(classes="cat", output_type="latent"), "output_type"),
        (dict(classes="cat", seed=0, generator=torch.Generator()), "not both"),
        (dict(classes="cat", generator=[torch.Generator()] * 2), "one generator per image"),
        (dict(classes="cat", generator=0), "torch.Generator"),
        (dict(classes="cat", class_labels="dog"), "not both"),
        (dict(classes="cat", num_images=2, num_images_per_prompt=3), "not both"),
    ],
)
def test_class_conditional_pipeline_rejects_bad_inputs(conditional_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conditional_pipeline(**kwargs)


def test_unconditional_pipeline(unconditional_dir, conditional_dir):
    generate = pipeline("unconditional-image-generation", model=str(unconditional_dir))
    assert isinstance(generate, UnconditionalImageGenerationPipeline)
    images = generate(num_images=3, seed=5).images
    assert len(images) == 3 and images[0].size == (16, 16)
    assert all(np.array_equal(a, b) for a, b in zip(arrays(images), arrays(generate(num_images=3, seed=5).images)))
    with pytest.raises(ValueError, match="unconditional"):
        pipeline("class-conditional-image-generation", model=str(unconditional_dir))("cat")
    # A class-conditional model can be sampled with random classes.
    out = pipeline("unconditional-image-generation", model=str(conditional_dir))(num_images=2, seed=0)
    assert len(out.images) == 2 and out.class_labels.shape == (2,)


def test_pipeline_with_generator_only_model(conditional_dir, conditional_pipeline):
    model = FQBigGANGeneratorModel.from_pretrained(conditional_dir)
    generate = ClassConditionalImageGenerationPipeline(model=model)
    full = conditional_pipeline
    a = arrays(generate(["frog", "truck"], seed=2).images)
    b = arrays(full(["frog", "truck"], seed=2).images)
    # bit-identical weights; tiny float differences may flip a rounding step of the uint8 conversion
    assert all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(a, b))


def test_diffusers_snippet_and_output_types(conditional_pipeline):
    """A diffusers user's call: class_labels, a torch.Generator, output_type, `.images`."""
    pipe = conditional_pipeline
    pt = pipe(class_labels=[1, 2], generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 3, 16, 16) and 0 <= pt.min() and pt.max() <= 1
    expected = pipe.model.generate([1, 2], generator=torch.Generator().manual_seed(0))
    assert torch.allclose(pt, (expected.clamp(-1, 1) + 1) / 2)
    np_images = pipe(class_labels=[1, 2], generator=torch.Generator().manual_seed(0), output_type="np").images
    assert isinstance(np_images, np.ndarray) and np_images.shape == (2, 16, 16, 3) and np_images.dtype == np.float32
    assert np.allclose(np_images, pt.permute(0, 2, 3, 1).numpy())
    pil = pipe(class_labels=[1, 2], generator=torch.Generator().manual_seed(0)).images
    assert np.array_equal(np.asarray(pil[1]), (pt[1].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    # return_dict=False: a tuple, as diffusers
    (images,) = pipe([1], seed=0, return_dict=False)
    assert isinstance(images, list) and len(images) == 1
    # seed is torch.Generator().manual_seed(seed)
    assert torch.equal(pipe([1, 2], seed=0, output_type="pt").images, pt)


def test_generator_list_is_one_generator_per_image(conditional_pipeline, unconditional_dir):
    pipe = conditional_pipeline
    generators = [torch.Generator().manual_seed(i) for i in range(4)]
    batch = pipe([1, 2], num_images_per_prompt=2, generator=generators, output_type="pt", batch_size=3).images
    # image i depends only on generator i: alone, or in another batch split, it is the same
    alone = pipe([2], generator=[torch.Generator().manual_seed(3)], output_type="pt").images
    assert torch.allclose(batch[3:], alone, atol=1e-6)
    # unconditional (and random classes): the classes come from the per-image generators too
    uncond = pipeline("unconditional-image-generation", model=str(unconditional_dir))
    a = uncond(num_images=3, generator=[torch.Generator().manual_seed(i) for i in (7, 8, 9)], output_type="pt").images
    b = uncond(num_images=1, generator=[torch.Generator().manual_seed(9)], output_type="pt").images
    assert torch.allclose(a[2:], b, atol=1e-6)
    model = pipe.model
    out = model.generate(generator=[torch.Generator().manual_seed(i) for i in (5, 6)], return_dict=True)
    single = model.generate(generator=[torch.Generator().manual_seed(6)], return_dict=True)
    assert out.class_labels[1] == single.class_labels[0] and torch.allclose(out.images[1:], single.images, atol=1e-6)


def test_model_generate_output_types(conditional_pipeline):
    model = conditional_pipeline.model
    raw = model.generate([0, 1], generator=torch.Generator().manual_seed(0))
    assert isinstance(raw, torch.Tensor) and raw.min() >= -1  # default: the raw [-1, 1] tensor, as before
    out = model.generate([0, 1], generator=torch.Generator().manual_seed(0), output_type="pil", return_dict=True)
    assert len(out.images) == 2 and out.images[0].size == (16, 16) and out.class_labels.tolist() == [0, 1]
    arr = model.generate(num_images=3, generator=torch.Generator().manual_seed(0), output_type="np")
    assert arr.shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match="output_type"):
        model.generate([0], output_type="latent")


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_stylegan_pipeline_generator_list(tmp_path, noise_mode):
    torch.manual_seed(0)
    FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset("tiny")).save_pretrained(tmp_path)
    pipe = pipeline("unconditional-image-generation", model=str(tmp_path))
    kwargs = dict(truncation_psi=0.7, noise_mode=noise_mode, output_type="pt")
    both = pipe(num_images=2, generator=[torch.Generator().manual_seed(i) for i in (0, 1)], **kwargs).images
    second = pipe(num_images=1, generator=[torch.Generator().manual_seed(1)], **kwargs).images
    assert both.shape == (2, 3, 32, 32) and torch.allclose(both[1:], second, atol=1e-5)
    assert torch.equal(pipe(num_images=2, seed=0, **kwargs).images,
                       pipe(num_images=2, generator=torch.Generator().manual_seed(0), **kwargs).images)
