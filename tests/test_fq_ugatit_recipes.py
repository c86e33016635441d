"""The full-size FQ-U-GAT-IT recipes (the five benchmarks of FQ-GAN: selfie2anime, cat2dog, horse2zebra,
photo2portrait, photo2vangogh): each parses into the original setup, and each reads the original repos' folder
layout (trainA/trainB/testA/testB) with the domains the recipe names, photo2vangogh swapping CycleGAN's A and B."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hf_dgm.models.fq_ugatit import FQUGATITConfig
from hf_dgm.training.fq_ugatit.gan_run import build_domains
from hf_dgm.training.gan_run import parse_args, parse_config_overrides


REPO = Path(__file__).resolve().parents[1]
# recipe -> (data folder, which original folder feeds domain A / domain B)
BENCHMARKS = {
    "fq_ugatit_selfie2anime": ("selfie2anime", "A", "B"),
    "fq_ugatit_cat2dog": ("cat2dog", "A", "B"),
    "fq_ugatit_horse2zebra": ("horse2zebra", "A", "B"),
    "fq_ugatit_photo2portrait": ("portrait", "A", "B"),  # DRIT's portrait set: A photos, B portraits
    "fq_ugatit_photo2vangogh": ("vangogh2photo", "B", "A"),  # CycleGAN's vangogh2photo: A paintings, B photos
}


def _parse(name: str):
    return parse_args(["--recipe", str(REPO / "training/recipes" / f"{name}.yaml"), "--output_dir", "unused"])


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_recipe_is_the_original_setup(name):
    family, arguments, training_args, _ = _parse(name)
    assert family.__name__ == "hf_dgm.training.fq_ugatit.gan_run"
    model_args, data_args = arguments["FQUGATITModelArguments"], arguments["FQUGATITDataArguments"]
    config = FQUGATITConfig(**parse_config_overrides(model_args.config_overrides, FQUGATITConfig))
    assert config.use_fq and not config.light and config.image_size == data_args.resolution == 256
    assert (config.adv_weight, config.cycle_weight, config.identity_weight, config.cam_weight) == (1, 10, 10, 1000)
    assert config.fq_layers == [1, 2, 3] and config.fq_num_embeddings == [64, 128, 128]
    assert config.fq_decay == 0.85 and config.fq_commitment == 2.0
    assert data_args.crop_margin == 30 and training_args.per_device_train_batch_size == 1
    assert training_args.max_steps == 1_000_000 and arguments["FQUGATITEvalArguments"].lr_decay_second_half
    assert arguments["FQUGATITEvalArguments"].eval_kid


def _write_original_layout(root: Path, folder: str) -> None:
    """Two images per folder, each folder's images one flat colour: red trainA, blue trainB, green testA, grey testB."""
    colours = {"trainA": (255, 0, 0), "trainB": (0, 0, 255), "testA": (0, 255, 0), "testB": (128, 128, 128)}
    for sub, colour in colours.items():
        (root / "data" / folder / sub).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), colour).save(root / "data" / folder / sub / f"{i}.png")


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_recipe_reads_the_original_folders(name, tmp_path, monkeypatch):
    folder, source_a, source_b = BENCHMARKS[name]
    _write_original_layout(tmp_path, folder)
    monkeypatch.chdir(tmp_path)  # the recipes name data/<set>/... relative to the working directory
    _, arguments, _, _ = _parse(name)
    domains = build_domains(arguments["FQUGATITDataArguments"])
    colour = {"A": ((255, 0, 0), (0, 255, 0)), "B": ((0, 0, 255), (128, 128, 128))}  # (train, test) of each folder
    for key, source in (("a", source_a), ("b", source_b)):
        for split, expected in zip(("train", "test"), colour[source]):
            images = domains[f"{split}_{key}"]["image"]
            assert len(images) == 2
            assert tuple(np.asarray(images[0].convert("RGB"))[0, 0]) == expected, (name, split, key)
