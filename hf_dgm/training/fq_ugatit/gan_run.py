"""FQ-U-GAT-IT's GAN run code for `training/train_gan.py` (`model_type: fq_ugatit`; see `hf_dgm.training.gan_run`):
`ARGUMENT_CLASSES`, `build` (model, unpaired two-domain data, collator) and `evaluate` (translations.png, KID).

    accelerate launch training/train_gan.py --recipe training/recipes/fq_ugatit_selfie2anime.yaml --output_dir runs/fqu
    python training/train_gan.py --recipe training/recipes/fq_ugatit_digits_cpu.yaml --output_dir runs/fqu-digits

Objective and schedule (the original's, `FQUGATITConfig` defaults): least-squares adversarial losses on the
outputs and CAM logits of the four discriminators (weight 1), L1 cycle (10) and identity (10) losses, the
generators' CAM loss (1000), the FQ commitment loss in the D step (real and fake images) and in the G step
(translations); the dictionaries update in both, with TF's zero-debiased EMA, as FQ-U-GAT-IT
(`fq_zero_debias`, `fq_update_in_generator_step`); spectral norm updated in the port's order (`spectral_norm_order`)
and AdaLIN/ILN with the port's unbiased variance (`norm_variance`); ρ clipped to [0, 1] after every G step
(`after_generator_step`). One D step and one G step equal UGATIT-pytorch's (FQ off; `benchmarks/parity/fq_ugatit.py`). Adam,
lr 1e-4, betas (0.5, 0.999), weight decay 1e-4 on every parameter of both networks. The linear decay over the
second half of the run: `--lr_decay_second_half` (set by the recipes) selects `lr_scheduler_type:
warmup_stable_decay` with `lr_scheduler_kwargs: {num_decay_steps: N − N//2, decay_type: linear}` for `max_steps`
N.

Outputs in `--output_dir` (besides the run folder `hf_dgm.training.gan_run` writes: checkpoints, the model folder,
`samples/` grids with rows `[A, A→B, CAM, B, B→A, CAM]` of the first training pairs): `translations.png` (the same
columns for the first `--num_translation_images` test images) and, with `--eval_kid`, KID (mean, std) of A→B
translations against test B and of B→A against test A in `eval_results.json`.

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

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ...models.fq_ugatit import FQUGATITConfig, FQUGATITModel
from ..gan_run import GANRunSetup, parse_config_overrides
from ..unpaired_data import (
    UnpairedImageCollator,
    UnpairedImageDataset,
    digits_two_domains,
    digits_two_domains_labels,
    load_two_domains,
)


logger = logging.getLogger(__name__)

DIGITS = "sklearn-digits-styles"
RANDOM_CONV = "random-conv"


@dataclass
class FQUGATITModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved FQ-U-GAT-IT folder."})
    use_fq: bool | None = field(default=None, metadata={"help": "False: plain U-GAT-IT."})
    config_overrides: dict | str | None = field(
        default=None, metadata={"help": "FQUGATITConfig values: a mapping in recipes, a JSON string on the command line."}
    )


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
    random_flip: bool = field(default=True, metadata={"help": "Mirror half the training images (the original: always)."})
    max_train_samples: int | None = field(default=None)


@dataclass
class FQUGATITEvalArguments:
    eval_kid: bool = field(default=False, metadata={"help": "Compute KID of both directions on the test split."})
    kid_feature_extractor: str | None = field(
        default=None, metadata={"help": f"FID Inception weights (path/Hub id) or {RANDOM_CONV!r} (not comparable)."}
    )
    kid_subset_size: int | None = field(default=None, metadata={"help": "Default: min(100, smaller test set)."})
    kid_num_subsets: int = field(default=100)
    eval_digits_kept: bool = field(
        default=False,
        metadata={
            "help": f"{DIGITS!r} only: does a translation keep its digit? A logistic regression fitted on the target "
            "domain's training digits labels the translated test digits (accuracy against their classes); also the "
            "mean absolute pixel error against the same test digits drawn in the target style."
        },
    )
    eval_batch_size: int = field(default=50)
    num_translation_images: int = field(default=8, metadata={"help": "Test rows of translations.png."})
    lr_decay_second_half: bool = field(
        default=False, metadata={"help": "Constant lr for max_steps/2, then linear decay to 0 (the original)."}
    )


def build_domains(data_args: FQUGATITDataArguments, with_test: bool = True) -> dict[str, Any]:
    """`{"train_a", "train_b", "test_a", "test_b"}` (test entries None when there is no test data or `with_test` is
    False)."""
    if data_args.dataset == DIGITS:
        domains = digits_two_domains()
        if data_args.max_train_samples is not None:
            domains["train_a"] = domains["train_a"][: data_args.max_train_samples]
            domains["train_b"] = domains["train_b"][: data_args.max_train_samples]
        return domains
    common = dict(column_a=data_args.column_a, column_b=data_args.column_b)
    if data_args.dataset is not None:
        train_a, train_b = load_two_domains(source=data_args.dataset, split=data_args.train_split, **common)
    else:
        train_a, train_b = load_two_domains(
            source_a=data_args.dataset_a, source_b=data_args.dataset_b, config_a=data_args.dataset_a_config,
            config_b=data_args.dataset_b_config, split=data_args.train_split, **common,
        )  # fmt: skip
    test_a = test_b = None
    if not with_test:
        pass
    elif data_args.test_dataset_a or data_args.test_dataset_b:
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
    overrides = parse_config_overrides(model_args.config_overrides, FQUGATITConfig)
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


def translate_test_sets(model, domains, collator, batch_size: int, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per direction (`A2B`, `B2A`): the source domain's test images translated, and the target domain's test images
    (both `(N, C, S, S)` in [-1, 1], on the CPU) — computed once for every evaluation that compares them."""
    return {
        direction: (translate_domain(model, source, collator, direction, batch_size, device),
                    _images(target, collator, 0, len(target)))
        for direction, source, target in (("A2B", domains["test_a"], domains["test_b"]),
                                          ("B2A", domains["test_b"], domains["test_a"]))
    }  # fmt: skip


def save_translation_grid(model, test_a, test_b, collator, path: str, num_rows: int, device) -> str:
    """`translations.png`: rows `[A, A→B, CAM, B, B→A, CAM]` of the first `num_rows` test images."""
    from ..plots import save_image_grid

    n = min(num_rows, len(test_a), len(test_b))
    batch = {"pixel_values_a": _images(test_a, collator, 0, n), "pixel_values_b": _images(test_b, collator, 0, n)}
    grid = model.sample_images(n, batch=batch).cpu()
    save_image_grid(grid, path, ncol=model.sample_grid_columns(n))
    return path


def evaluate_kid(translations, eval_args: FQUGATITEvalArguments, device) -> dict[str, Any]:
    """KID of A→B translations vs test B and B→A vs test A ([`translate_test_sets`]; see the module docstring for the
    subset size)."""
    from ...metrics.image_features import extract_features, kernel_inception_distance, load_fid_inception

    if eval_args.kid_feature_extractor == RANDOM_CONV:
        from ..fq_biggan.gan_run import RandomConvFeatures  # the project's one random-conv extractor

        extractor, prefix = RandomConvFeatures().to(device), "randomconv_"
    elif eval_args.kid_feature_extractor:
        extractor, prefix = load_fid_inception(eval_args.kid_feature_extractor).to(device), ""
    else:
        raise ValueError(f"--eval_kid needs --kid_feature_extractor (FID Inception weights or {RANDOM_CONV!r})")
    n = min(fake.shape[0] for fake, _ in translations.values())  # the smaller test set
    subset = eval_args.kid_subset_size or min(100, n)
    comparable = eval_args.kid_feature_extractor != RANDOM_CONV
    results: dict[str, Any] = {
        "kid_subset_size": subset,
        "kid_num_subsets": eval_args.kid_num_subsets,
        "feature_extractor": eval_args.kid_feature_extractor,
        "comparable_to_published": comparable,
    }
    if not comparable:
        results["note"] = (
            "Features of a fixed random conv net, not the Inception network: NOT comparable to published KID."
        )
    for direction, (fake, real) in translations.items():
        f_fake = extract_features(fake, extractor, device=device)
        f_real = extract_features(real, extractor, device=device)
        mean, std = kernel_inception_distance(f_real, f_fake, num_subsets=eval_args.kid_num_subsets, subset_size=subset)
        results[f"{prefix}kid_{direction}"] = mean
        results[f"{prefix}kid_{direction}_std"] = std
        results[f"num_{direction}"] = int(fake.shape[0])
    return results


def evaluate_digits_kept(translations, domains, collator) -> dict[str, Any]:
    """Per direction (`A2B`, `B2A`, from [`translate_test_sets`]): [`class_conditional_accuracy`] of the translated test
    digits with their classes,
    the classifier fitted on the target domain's training digits (`digits_kept_*`, with that classifier's accuracy on
    held-out target-domain training digits as the ceiling), and the mean absolute pixel error of the translations
    against the same test digits drawn in the target style (`paired_l1_*`, images in [-1, 1])."""
    from ..gan_evaluation import class_conditional_accuracy

    labels = digits_two_domains_labels()
    results: dict[str, Any] = {}
    for direction, train_target, train_labels in (
        ("A2B", domains["train_b"], labels["labels_train_b"]),
        ("B2A", domains["train_a"], labels["labels_train_a"]),
    ):
        fake, real = translations[direction]
        train_images = _images(train_target, collator, 0, len(train_target))  # --max_train_samples keeps the first
        scores = class_conditional_accuracy(train_images, train_labels[: len(train_target)], fake, labels["labels_test"])
        results[f"digits_kept_{direction}"] = scores["classifier_accuracy_generated"]
        results[f"digits_kept_{direction}_per_class"] = scores["classifier_accuracy_generated_per_class"]
        results[f"digits_classifier_real_held_out_{direction}"] = scores["classifier_accuracy_real_held_out"]
        results[f"paired_l1_{direction}"] = float((fake - real).abs().mean())
    return results


def lr_decay_kwargs(max_steps: int) -> dict[str, Any]:
    """`lr_scheduler_kwargs` of `warmup_stable_decay` for the original's schedule: constant for the first half of
    `max_steps`, then linear to 0 over the last `max_steps − max_steps // 2` steps (the stable phase is what remains
    of `num_training_steps`, which the Trainer passes)."""
    if max_steps < 2:
        raise ValueError(f"the second-half decay needs max_steps >= 2, got {max_steps}")
    return {"num_decay_steps": max_steps - max_steps // 2, "decay_type": "linear"}


ARGUMENT_CLASSES = (FQUGATITModelArguments, FQUGATITDataArguments, FQUGATITEvalArguments)


def build(arguments: dict, training_args) -> GANRunSetup:
    """Model, unpaired training set and augmenting collator for `GANTrainer` (see `hf_dgm.training.gan_run`).
    With `--lr_decay_second_half`, sets `lr_scheduler_type`/`lr_scheduler_kwargs` of `training_args`."""
    model_args = arguments["FQUGATITModelArguments"]
    data_args = arguments["FQUGATITDataArguments"]
    eval_args = arguments["FQUGATITEvalArguments"]
    if eval_args.eval_digits_kept and data_args.dataset != DIGITS:
        raise ValueError(f"--eval_digits_kept needs --dataset {DIGITS} (its digits have known classes)")
    domains = build_domains(data_args, with_test=False)
    model = build_model(model_args, data_args.resolution)
    resolution = model.config.image_size
    if data_args.resolution is not None and data_args.resolution != resolution:
        raise ValueError(f"--resolution {data_args.resolution} differs from the model's image_size {resolution}")
    if eval_args.lr_decay_second_half:
        if training_args.max_steps is None or training_args.max_steps < 2:
            raise ValueError("--lr_decay_second_half needs --max_steps >= 2")
        training_args.lr_scheduler_type = "warmup_stable_decay"
        training_args.lr_scheduler_kwargs = lr_decay_kwargs(training_args.max_steps)
    collator = UnpairedImageCollator(resolution, augment=True, crop_margin=data_args.crop_margin,
                                     num_channels=model.config.num_channels, random_flip=data_args.random_flip)  # fmt: skip
    c = model.config
    return GANRunSetup(
        model=model,
        train_dataset=UnpairedImageDataset(domains["train_a"], domains["train_b"]),
        data_collator=collator,
        run_metadata={
            "family": "fq_ugatit",
            "dataset": data_args.dataset or [data_args.dataset_a, data_args.dataset_b],
            "num_train_a": len(domains["train_a"]),
            "num_train_b": len(domains["train_b"]),
            "resolution": resolution,
            "crop_margin": data_args.crop_margin,
            "random_flip": data_args.random_flip,
        },
        description=(
            f"FQ-U-GAT-IT {resolution}px, light={c.light}, use_fq={c.use_fq}, {len(domains['train_a'])} A / "
            f"{len(domains['train_b'])} B training images"
        ),
    )


def evaluate(setup: GANRunSetup, arguments: dict, training_args) -> dict[str, Any]:
    """`translations.png` of the first test images; with `--eval_kid`, KID of both directions; with
    `--eval_digits_kept` (the digits), whether the translations keep their digits."""
    data_args = arguments["FQUGATITDataArguments"]
    eval_args = arguments["FQUGATITEvalArguments"]
    domains = build_domains(data_args, with_test=True)
    if domains["test_a"] is None:
        return {}
    model = setup.model
    device = next(model.parameters()).device
    collator = UnpairedImageCollator(model.config.image_size, augment=False, num_channels=model.config.num_channels)
    path = os.path.join(training_args.output_dir, "translations.png")
    save_translation_grid(model, domains["test_a"], domains["test_b"], collator, path,
                          eval_args.num_translation_images, device)  # fmt: skip
    results: dict[str, Any] = {
        "translations": path,
        "split": "test" if data_args.dataset == DIGITS else (data_args.test_split or "test"),
        "num_test_a": len(domains["test_a"]),
        "num_test_b": len(domains["test_b"]),
    }
    if eval_args.eval_kid or eval_args.eval_digits_kept:
        translations = translate_test_sets(model, domains, collator, eval_args.eval_batch_size, device)
        if eval_args.eval_kid:
            results.update(evaluate_kid(translations, eval_args, device))
        if eval_args.eval_digits_kept:
            results.update(evaluate_digits_kept(translations, domains, collator))
    return results


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train fq_ugatit --recipe FILE [--flag value ...]`: `hf_dgm.training.gan_run.main` with this family."""
    import sys

    from ..gan_run import main as run_gan

    run_gan(["--model_type", "fq_ugatit", *(sys.argv[1:] if argv is None else argv)])
    return 0


__all__ = [
    "ARGUMENT_CLASSES",
    "FQUGATITDataArguments",
    "FQUGATITEvalArguments",
    "FQUGATITModelArguments",
    "build_domains",
    "build_model",
    "evaluate_digits_kept",
    "evaluate_kid",
    "build",
    "evaluate",
    "lr_decay_kwargs",
    "main",
    "save_translation_grid",
    "translate_domain",
    "translate_test_sets",
]
