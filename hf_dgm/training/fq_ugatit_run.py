"""Training and evaluation of FQ-U-GAT-IT with `GANTrainer` (run code behind `training/train_gan.py` for recipes
with `model_type: fq_ugatit`).

    accelerate launch training/train_gan.py --recipe training/recipes/fq_ugatit_selfie2anime.yaml --output_dir runs/fqu
    python training/train_gan.py --recipe training/recipes/fq_ugatit_digits_cpu.yaml --output_dir runs/fqu-digits

Objective and schedule (the original's, `FQUGATITConfig` defaults): least-squares adversarial losses on the
outputs and CAM logits of the four discriminators (weight 1), L1 cycle (10) and identity (10) losses, the
generators' CAM loss (1000), the FQ commitment loss in the D step (real and fake images; the dictionaries update
there) and in the G step (translations); ρ clipped to [0, 1] after every G step (`after_generator_step`). Adam,
lr 1e-4, betas (0.5, 0.999), weight decay 1e-4 on every parameter of both networks. The linear decay over the
second half of the run is `lr_scheduler_type: warmup_stable_decay` with `lr_scheduler_kwargs:
{num_stable_steps: N/2, num_decay_steps: N/2, decay_type: linear}` (the recipes set it; `--lr_decay_second_half`
fills the kwargs from `max_steps`).

Outputs in `--output_dir`: checkpoints, the model folder (safetensors + config.json, `FQUGATITModel`),
`samples/` grids (`[A, A→B, CAM, B, B→A, CAM]` rows), `translations.png` (test images, same columns), and, when
`--eval_kid` is set, `eval_results.json` with KID (mean, std) of A→B translations against test B and of B→A
against test A.

**KID subset size.** The I2I test sets hold 100–500 images per domain and the project's KID (torch-fidelity's
estimator: unbiased MMD² of a cubic polynomial kernel averaged over random subsets) refuses subsets larger than the
smaller set. `--kid_subset_size` defaults to `min(100, n)` with n the smaller of the two sets, over
`--kid_num_subsets` 100 subsets; the value used is recorded in `eval_results.json`. The unbiased MMD² has the
same expectation for every subset size (only its variance changes), so the mean is comparable in expectation with
the FQ-U-GAT-IT code's block estimator (tf-gan, blocks of at most 10 images); the std is not. Published KID×100
uses the TF Inception pool3 features (`--kid_feature_extractor` = the `pt_inception-2015-12-05` weights);
`random-conv` (the CPU recipe) gives numbers that follow a run but are not comparable to any published KID.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from .unpaired_data import UnpairedImageCollator, UnpairedImageDataset, digits_two_domains, load_two_domains


logger = logging.getLogger(__name__)

DIGITS = "sklearn-digits-styles"
RANDOM_CONV = "random-conv"


@dataclass
class FQUGATITModelArguments:
    model_type: str = field(default="fq_ugatit", metadata={"help": "Model family of the recipe (fq_ugatit)."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved FQ-U-GAT-IT folder."})
    use_fq: bool | None = field(default=None, metadata={"help": "False: plain U-GAT-IT."})
    config_overrides: dict | None = field(default=None, metadata={"help": "FQUGATITConfig arguments (a mapping)."})


@dataclass
class FQUGATITDataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": f"One dataset with two image columns (Hub name or folder), or {DIGITS!r}."}
    )
    column_a: str | None = field(default=None, metadata={"help": "Image column of domain A (e.g. imageA)."})
    column_b: str | None = field(default=None, metadata={"help": "Image column of domain B (e.g. imageB)."})
    dataset_a: str | None = field(default=None, metadata={"help": "Domain A: Hub dataset or image folder (trainA)."})
    dataset_b: str | None = field(default=None, metadata={"help": "Domain B: Hub dataset or image folder (trainB)."})
    dataset_a_config: str | None = field(default=None, metadata={"help": "Hub configuration of domain A."})
    dataset_b_config: str | None = field(default=None, metadata={"help": "Hub configuration of domain B."})
    test_dataset_a: str | None = field(default=None, metadata={"help": "Test images of A (folder testA); default: the test split."})
    test_dataset_b: str | None = field(default=None, metadata={"help": "Test images of B (folder testB)."})
    train_split: str = field(default="train")
    test_split: str | None = field(default="test", metadata={"help": "Split for translations/KID (None: skip)."})
    resolution: int | None = field(default=None, metadata={"help": "Default: the model's image_size."})
    crop_margin: int = field(default=30, metadata={"help": "Resize to resolution + margin, then random crop (original: 30)."})
    max_train_samples: int | None = field(default=None)


@dataclass
class FQUGATITEvalArguments:
    eval_kid: bool = field(default=False, metadata={"help": "Compute KID of both directions on the test split."})
    kid_feature_extractor: str | None = field(
        default=None, metadata={"help": f"FID Inception weights (path/Hub id) or {RANDOM_CONV!r} (not comparable)."}
    )
    kid_subset_size: int | None = field(default=None, metadata={"help": "Default: min(100, smaller test set)."})
    kid_num_subsets: int = field(default=100)
    eval_batch_size: int = field(default=50)
    num_translation_images: int = field(default=8, metadata={"help": "Test rows of translations.png."})
    lr_decay_second_half: bool = field(
        default=False, metadata={"help": "Constant lr for max_steps/2, then linear decay to 0 (the original)."}
    )


def build_domains(data_args: FQUGATITDataArguments) -> dict[str, Any]:
    """`{"train_a", "train_b", "test_a", "test_b"}` (test entries None when there is no test data)."""
    if data_args.dataset == DIGITS:
        return digits_two_domains()
    common = dict(column_a=data_args.column_a, column_b=data_args.column_b)
    if data_args.dataset is not None:
        train_a, train_b = load_two_domains(source=data_args.dataset, split=data_args.train_split, **common)
    else:
        train_a, train_b = load_two_domains(
            source_a=data_args.dataset_a, source_b=data_args.dataset_b, config_a=data_args.dataset_a_config,
            config_b=data_args.dataset_b_config, split=data_args.train_split, **common,
        )  # fmt: skip
    test_a = test_b = None
    if data_args.test_dataset_a or data_args.test_dataset_b:
        test_a, test_b = load_two_domains(
            source_a=data_args.test_dataset_a, source_b=data_args.test_dataset_b, config_a=data_args.dataset_a_config,
            config_b=data_args.dataset_b_config, split=data_args.test_split or "test", **common,
        )  # fmt: skip
    elif data_args.test_split:
        try:
            if data_args.dataset is not None:
                test_a, test_b = load_two_domains(source=data_args.dataset, split=data_args.test_split, **common)
            else:
                test_a, test_b = load_two_domains(
                    source_a=data_args.dataset_a, source_b=data_args.dataset_b, config_a=data_args.dataset_a_config,
                    config_b=data_args.dataset_b_config, split=data_args.test_split, **common,
                )  # fmt: skip
        except (ValueError, ConnectionError) as err:
            logger.warning("no test split %r (%s): skipping translations.png and KID", data_args.test_split, err)
    if data_args.max_train_samples is not None:
        n = data_args.max_train_samples
        train_a = train_a.select(range(min(n, len(train_a)))) if hasattr(train_a, "select") else train_a[:n]
        train_b = train_b.select(range(min(n, len(train_b)))) if hasattr(train_b, "select") else train_b[:n]
    return {"train_a": train_a, "train_b": train_b, "test_a": test_a, "test_b": test_b}


def build_model(model_args: FQUGATITModelArguments, resolution: int | None) -> FQUGATITModel:
    overrides = dict(model_args.config_overrides or {})
    if model_args.use_fq is not None:
        overrides["use_fq"] = model_args.use_fq
    if model_args.model_name_or_path:
        return FQUGATITModel.from_pretrained(model_args.model_name_or_path, **overrides)
    if resolution is not None:
        overrides.setdefault("image_size", resolution)
    return FQUGATITModel(FQUGATITConfig(**overrides))


def _images(domain, collator: UnpairedImageCollator, start: int, stop: int) -> torch.Tensor:
    rows = [domain[i] for i in range(start, stop)]
    return torch.stack([collator.transform(r["image"] if isinstance(r, dict) else r) for r in rows])


@torch.no_grad()
def translate_domain(model, domain, collator, direction: str, batch_size: int, device) -> torch.Tensor:
    """All images of `domain` translated (`(N, C, S, S)` in [-1, 1], on the CPU)."""
    model.eval()
    outputs = []
    for start in range(0, len(domain), batch_size):
        x = _images(domain, collator, start, min(start + batch_size, len(domain))).to(device)
        outputs.append(model.translate(x, direction).images.float().cpu())
    return torch.cat(outputs)


def save_translation_grid(model, test_a, test_b, collator, path: str, num_rows: int, device) -> str:
    """`translations.png`: rows `[A, A→B, CAM, B, B→A, CAM]` of the first `num_rows` test images."""
    from .plots import save_image_grid

    n = min(num_rows, len(test_a), len(test_b))
    batch = {"pixel_values_a": _images(test_a, collator, 0, n), "pixel_values_b": _images(test_b, collator, 0, n)}
    grid = model.sample_images(n, batch=batch).cpu()
    save_image_grid(grid, path, columns=model.sample_grid_columns(n))
    return path


def evaluate_kid(model, domains, collator, eval_args: FQUGATITEvalArguments, device) -> dict[str, Any]:
    """KID of A→B translations vs test B and B→A vs test A (see the module docstring for the subset size)."""
    from ..metrics.image_features import extract_features, kernel_inception_distance, load_fid_inception

    if eval_args.kid_feature_extractor == RANDOM_CONV:
        from .gan_features import RandomConvFeatures

        extractor, prefix = RandomConvFeatures().to(device), "randomconv_"
    elif eval_args.kid_feature_extractor:
        extractor, prefix = load_fid_inception(eval_args.kid_feature_extractor).to(device), ""
    else:
        raise ValueError(f"--eval_kid needs --kid_feature_extractor (FID Inception weights or {RANDOM_CONV!r})")
    test_a, test_b = domains["test_a"], domains["test_b"]
    n = min(len(test_a), len(test_b))
    subset = eval_args.kid_subset_size or min(100, n)
    results: dict[str, Any] = {"kid_subset_size": subset, "kid_num_subsets": eval_args.kid_num_subsets}
    for direction, source, target in (("A2B", test_a, test_b), ("B2A", test_b, test_a)):
        fake = translate_domain(model, source, collator, direction, eval_args.eval_batch_size, device)
        real = torch.cat(
            [_images(target, collator, s, min(s + eval_args.eval_batch_size, len(target))) for s in range(0, len(target), eval_args.eval_batch_size)]
        )  # fmt: skip
        f_fake = extract_features(fake, extractor, device=device)
        f_real = extract_features(real, extractor, device=device)
        mean, std = kernel_inception_distance(f_real, f_fake, num_subsets=eval_args.kid_num_subsets, subset_size=subset)
        results[f"{prefix}kid_{direction}"] = mean
        results[f"{prefix}kid_{direction}_std"] = std
        results[f"num_{direction}"] = int(fake.shape[0])
    return results


def lr_decay_kwargs(max_steps: int) -> dict[str, Any]:
    """`lr_scheduler_kwargs` of `warmup_stable_decay` for the original's schedule: constant for the first half of
    `max_steps`, then linear to 0."""
    if max_steps < 2:
        raise ValueError(f"the second-half decay needs max_steps >= 2, got {max_steps}")
    stable = max_steps // 2
    return {"num_stable_steps": stable, "num_decay_steps": max_steps - stable, "decay_type": "linear"}


def train(model_args, data_args, eval_args, training_args) -> dict[str, Any]:
    """Build data and model, train with `GANTrainer`, save the model, `translations.png` and (optionally) KID.
    Returns the metrics written to `eval_results.json` (plus the training loss history under `log_history`)."""
    from transformers import set_seed

    from .gan_trainer import GANTrainer

    set_seed(training_args.seed)
    domains = build_domains(data_args)
    model = build_model(model_args, data_args.resolution)
    resolution = model.config.image_size
    if data_args.resolution is not None and data_args.resolution != resolution:
        raise ValueError(f"--resolution {data_args.resolution} differs from the model's image_size {resolution}")
    train_collator = UnpairedImageCollator(resolution, augment=True, crop_margin=data_args.crop_margin,
                                           num_channels=model.config.num_channels)  # fmt: skip
    eval_collator = UnpairedImageCollator(resolution, augment=False, num_channels=model.config.num_channels)
    if eval_args.lr_decay_second_half:
        if training_args.max_steps is None or training_args.max_steps < 2:
            raise ValueError("--lr_decay_second_half needs --max_steps")
        training_args.lr_scheduler_type = "warmup_stable_decay"
        training_args.lr_scheduler_kwargs = lr_decay_kwargs(training_args.max_steps)
    trainer = GANTrainer(
        model=model,
        args=training_args,
        train_dataset=UnpairedImageDataset(domains["train_a"], domains["train_b"]),
        data_collator=train_collator,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    model = trainer.model
    device = next(model.parameters()).device
    results: dict[str, Any] = {}
    if trainer.is_world_process_zero() and domains["test_a"] is not None:
        path = os.path.join(training_args.output_dir, "translations.png")
        save_translation_grid(model, domains["test_a"], domains["test_b"], eval_collator, path,
                              eval_args.num_translation_images, device)  # fmt: skip
        results["translations"] = path
        if eval_args.eval_kid:
            results.update(evaluate_kid(model, domains, eval_collator, eval_args, device))
        with open(os.path.join(training_args.output_dir, "eval_results.json"), "w") as f:
            json.dump(results, f, indent=2)
    results["log_history"] = trainer.state.log_history
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """`training/train_gan.py` entry for FQ-U-GAT-IT recipes (recipe + command-line flags)."""
    from .gan_trainer import GANTrainingArguments
    from .recipes import parse_recipe_args

    model_args, data_args, eval_args, training_args = parse_recipe_args(
        (FQUGATITModelArguments, FQUGATITDataArguments, FQUGATITEvalArguments, GANTrainingArguments), argv
    )
    if model_args.model_type != "fq_ugatit":
        raise ValueError(f"this runner trains fq_ugatit, the recipe says model_type={model_args.model_type!r}")
    return train(model_args, data_args, eval_args, training_args)


__all__ = [
    "FQUGATITDataArguments",
    "FQUGATITEvalArguments",
    "FQUGATITModelArguments",
    "build_domains",
    "build_model",
    "evaluate_kid",
    "lr_decay_kwargs",
    "main",
    "save_translation_grid",
    "train",
    "translate_domain",
]
