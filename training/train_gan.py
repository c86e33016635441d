#!/usr/bin/env python
"""Train FQ-BigGAN (or the BigGAN baseline, `--use_fq false`) with `GANTrainer`.

    accelerate launch training/train_gan.py --recipe training/recipes/fq_biggan_cifar10.yaml --output_dir runs/fqbg
    python training/train_gan.py --recipe training/recipes/fq_biggan_digits_cpu.yaml --output_dir runs/digits

A recipe is a YAML file whose keys are the flags below; flags given on the command line after `--recipe`
override the recipe. Arguments: model (`--preset`, `--use_fq`, `--config_overrides '{"fq_commitment": 2.0}'`,
`--model_name_or_path`), data (`--dataset`: a Hub dataset name, a local image folder or `sklearn-digits`;
`--resolution`, `--image_column`, `--label_column`, ...), evaluation (`--eval_num_samples`,
`--fid_feature_extractor`), and every `GANTrainingArguments` / `TrainingArguments` field.

Outputs in `--output_dir`: checkpoints (`checkpoint-N/`, resumable with `--resume_from_checkpoint`), the final
model folder (safetensors + config.json, loadable with `FQBigGANForImageGeneration.from_pretrained`), sample grids
(`samples/step_*.png`, fixed z and classes, EMA generator), `losses.png`, `train_log.json` and, when evaluated,
`eval_results.json`.

FID/KID/IS are comparable to published numbers only with `--fid_feature_extractor` pointing to the standard FID
Inception weights (`pt_inception-2015-12-05-6726825d.pth`, or a Hub repo holding them) and 50,000 samples against
the full training set. `--fid_feature_extractor random-conv` (used by the CPU digits recipe) measures distances in
the feature space of a fixed, randomly initialised conv net: useful to follow a run, NOT comparable to any
published FID; its results are stored under keys prefixed `randomconv_`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field, fields

import torch
import yaml
from transformers import HfArgumentParser, set_seed

import hf_dgm  # noqa: F401  (registers the model classes)
from hf_dgm.training.image_data import (
    ImageGANCollator,
    find_image_column,
    find_label_column,
    load_digits_dataset,
    load_image_dataset,
)
from hf_dgm.metrics.image_features import (
    extract_features,
    frechet_distance_from_features,
    inception_score,
    kernel_inception_distance,
    load_fid_inception,
)
from hf_dgm.models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from hf_dgm.training.gan_trainer import GANTrainer, GANTrainingArguments
from hf_dgm.training.plots import plot_gan_losses


logger = logging.getLogger("train_gan")

DIGITS = "sklearn-digits"
RANDOM_CONV = "random-conv"


@dataclass
class ModelArguments:
    preset: str = field(default="cifar10", metadata={"help": "FQBigGANConfig preset: cifar10, cifar100, imagenet64, imagenet128, tiny."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved FQ-BigGAN folder instead."})
    use_fq: bool | None = field(default=None, metadata={"help": "False: the plain BigGAN baseline."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "JSON mapping of FQBigGANConfig values (a YAML mapping in recipes)."}
    )


@dataclass
class DataArguments:
    dataset: str = field(default="uoft-cs/cifar10", metadata={"help": f"Hub dataset, local image folder, or {DIGITS!r}."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str = field(default="train")
    image_column: str | None = field(default=None, metadata={"help": "Default: the first Image column."})
    label_column: str | None = field(default=None, metadata={"help": "Default: the first ClassLabel column."})
    resolution: int | None = field(default=None, metadata={"help": "Default: the model's resolution."})
    interpolation: str = field(default="bilinear")
    random_flip: bool = field(default=False)
    max_train_samples: int | None = field(default=None)


@dataclass
class EvalArguments:
    eval_num_samples: int = field(default=0, metadata={"help": "Generated samples for FID/KID/IS after training (0: skip; 50000 for published-style FID)."})
    fid_feature_extractor: str | None = field(
        default=None, metadata={"help": f"Path/Hub id of the FID Inception weights, or {RANDOM_CONV!r} (not comparable)."}
    )
    eval_batch_size: int = field(default=100)
    eval_truncation: float | None = field(default=None, metadata={"help": "z truncation for evaluation samples."})
    kid_subset_size: int = field(default=1000)
    kid_num_subsets: int = field(default=100)


def parse_args(argv: list[str] | None = None):
    """`--recipe file.yaml` sets defaults for every dataclass field; other flags override them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--recipe", default=None)
    known, remaining = pre.parse_known_args(argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, EvalArguments, GANTrainingArguments))
    if known.recipe:
        with open(known.recipe) as f:
            recipe = yaml.safe_load(f) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"Recipe {known.recipe} must be a YAML mapping of argument names to values.")
        valid = {f.name for dc in parser.dataclass_types for f in fields(dc)}
        unknown = sorted(set(recipe) - valid)
        if unknown:
            raise ValueError(f"Recipe {known.recipe} has unknown keys {unknown}.")
        if isinstance(recipe.get("config_overrides"), dict):
            recipe["config_overrides"] = json.dumps(recipe["config_overrides"])
        parser.set_defaults(**recipe)
    model_args, data_args, eval_args, training_args = parser.parse_args_into_dataclasses(args=remaining)
    if training_args.output_dir is None:
        raise ValueError("Pass --output_dir (or set output_dir in the recipe).")
    return model_args, data_args, eval_args, training_args, known.recipe


def build_dataset(data_args: DataArguments):
    if data_args.dataset == DIGITS:
        dataset = load_digits_dataset()
    else:
        dataset = load_image_dataset(data_args.dataset, split=data_args.dataset_split, name=data_args.dataset_config)
    if data_args.max_train_samples is not None:
        dataset = dataset.select(range(min(data_args.max_train_samples, len(dataset))))
    return dataset


def build_model(model_args: ModelArguments, class_names: list[str] | None) -> FQBigGANForImageGeneration:
    overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.use_fq is not None:
        overrides["use_fq"] = model_args.use_fq
    if model_args.model_name_or_path:
        return FQBigGANForImageGeneration.from_pretrained(model_args.model_name_or_path, **overrides)
    if class_names is not None and "num_classes" not in overrides:
        overrides["num_classes"] = len(class_names)
        overrides["class_names"] = class_names
    elif class_names is None and "num_classes" not in overrides:
        overrides["num_classes"] = 0
    config = FQBigGANConfig.from_preset(model_args.preset, **overrides)
    return FQBigGANForImageGeneration(config)


class RandomConvFeatures(torch.nn.Module):
    """A fixed, randomly initialised conv net (seed 0): 3 stride-2 convs + global average pooling -> 128-d.
    Distances in its feature space follow training progress on toy data; they are NOT FID."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.convs = torch.nn.ModuleList(
            [torch.nn.Conv2d(c_in, c_out, 3, stride=2, padding=1) for c_in, c_out in ((3, 32), (32, 64), (64, 128))]
        )
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) / (conv.weight[0].numel() ** 0.5))
                conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for conv in self.convs:
            x = torch.nn.functional.leaky_relu(conv(x), 0.2)
        return x.mean(dim=(2, 3))


@torch.no_grad()
def evaluate_samples(model, dataset, collator, eval_args: EvalArguments, device) -> dict[str, float | str | int]:
    """FID / KID (and IS with the Inception weights) of `eval_num_samples` EMA samples against as many real
    images (or the whole set if smaller)."""
    n = eval_args.eval_num_samples
    if eval_args.fid_feature_extractor == RANDOM_CONV:
        extractor, prefix, comparable = RandomConvFeatures().to(device), "randomconv_", False
    else:
        extractor = load_fid_inception(eval_args.fid_feature_extractor).to(device)
        prefix, comparable = "", True
    model.eval()
    num_classes = model.config.num_classes
    generator = torch.Generator().manual_seed(1234)

    def fake_batches():
        for start in range(0, n, eval_args.eval_batch_size):
            size = min(eval_args.eval_batch_size, n - start)
            if num_classes:
                labels = torch.arange(start, start + size) % num_classes
                yield model.generate(labels.to(device), truncation=eval_args.eval_truncation, generator=generator)
            else:
                yield model.generate(batch_size=size, truncation=eval_args.eval_truncation, generator=generator)

    def real_batches():
        count = min(n, len(dataset))
        for start in range(0, count, eval_args.eval_batch_size):
            rows = [dataset[i] for i in range(start, min(start + eval_args.eval_batch_size, count))]
            yield collator(rows)["pixel_values"]

    outputs = ("pool3", "logits_unbiased") if comparable else ("pool3",)
    fake = extract_features(fake_batches(), extractor, device=device, output=outputs, progress=True)
    real = extract_features(real_batches(), extractor, device=device, output="pool3", progress=True)
    subset = min(eval_args.kid_subset_size, len(fake["pool3"]), len(real))
    kid_mean, kid_std = kernel_inception_distance(
        real, fake["pool3"], num_subsets=eval_args.kid_num_subsets, subset_size=subset
    )
    results: dict[str, float | str | int] = {
        f"{prefix}fid": frechet_distance_from_features(real, fake["pool3"]),
        f"{prefix}kid_mean": kid_mean,
        f"{prefix}kid_std": kid_std,
        "num_generated": len(fake["pool3"]),
        "num_real": len(real),
        "kid_subset_size": subset,
        "kid_num_subsets": eval_args.kid_num_subsets,
        "feature_extractor": eval_args.fid_feature_extractor,
        "comparable_to_published": comparable,
    }
    if comparable:
        is_mean, is_std = inception_score(logits=fake["logits_unbiased"], splits=10)
        results.update(inception_score_mean=is_mean, inception_score_std=is_std, preprocessing="pytorch-fid")
    else:
        results["note"] = (
            "Features of a fixed random conv net, not the FID Inception network: NOT comparable to published FID/KID."
        )
    return results


def main(argv: list[str] | None = None) -> dict:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, eval_args, training_args, recipe = parse_args(argv)
    set_seed(training_args.seed)
    if eval_args.eval_num_samples > 0 and not eval_args.fid_feature_extractor:
        logger.warning(
            "No --fid_feature_extractor: FID/KID/IS will not be computed after training. Pass the path (or Hub id) "
            "of pt_inception-2015-12-05-6726825d.pth for published-comparable numbers."
        )
    try:
        dataset = build_dataset(data_args)
    except ConnectionError as err:
        raise SystemExit(f"error: {err}") from None
    image_column = data_args.image_column or find_image_column(dataset)
    label_column = data_args.label_column or find_label_column(dataset)
    class_names = dataset.features[label_column].names if label_column else None
    model = build_model(model_args, class_names)
    resolution = data_args.resolution or model.config.resolution
    if resolution != model.config.resolution:
        raise ValueError(f"--resolution {resolution} differs from the model's resolution {model.config.resolution}.")
    collator = ImageGANCollator(
        resolution=resolution,
        image_column=image_column,
        label_column=label_column if model.config.num_classes else None,
        interpolation=data_args.interpolation,
        random_flip=data_args.random_flip,
    )
    trainer = GANTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator)
    logger.info(
        "FQ-BigGAN %s: %s parameters (G %s, D %s), use_fq=%s, %d images, %d D steps per G step",
        model_args.preset,
        f"{sum(p.numel() for p in model.parameters()):,}",
        f"{sum(p.numel() for p in model.generator_parameters()):,}",
        f"{sum(p.numel() for p in model.discriminator_parameters()):,}",
        model.config.use_fq,
        len(dataset),
        trainer.d_steps_per_g_step,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    results: dict = {"recipe": recipe, "global_step": trainer.state.global_step}
    if trainer.is_world_process_zero():
        # Not trainer.save_model(): it adds a pickled training_args.bin, and run folders stay pickle-free (the Hub
        # publisher refuses pickles). The arguments are kept as JSON instead.
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(training_args.output_dir)
        with open(os.path.join(training_args.output_dir, "training_args.json"), "w") as f:
            f.write(training_args.to_json_string())
        hub_id = data_args.dataset if "/" in data_args.dataset and not os.path.isdir(data_args.dataset) else None
        with open(os.path.join(training_args.output_dir, "run_metadata.json"), "w") as f:
            metadata = {"dataset": data_args.dataset, "dataset_id": hub_id, "eval_split": data_args.dataset_split}
            json.dump(metadata, f, indent=2)
        trainer.save_sample_grid(os.path.join(training_args.output_dir, "samples", "final.png"))
        if any("d_loss" in row for row in trainer.state.log_history):
            plot_gan_losses(trainer.state.log_history, os.path.join(training_args.output_dir, "losses.png"))
        else:
            logger.warning("No training logs (logging_steps > steps run): losses.png not written.")
        with open(os.path.join(training_args.output_dir, "train_log.json"), "w") as f:
            json.dump(trainer.state.log_history, f, indent=1)
        if eval_args.eval_num_samples > 0 and eval_args.fid_feature_extractor:
            results.update(evaluate_samples(model, dataset, collator, eval_args, training_args.device))
            with open(os.path.join(training_args.output_dir, "eval_results.json"), "w") as f:
                json.dump(results, f, indent=2)
        print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
