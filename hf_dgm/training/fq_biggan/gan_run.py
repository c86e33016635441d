"""FQ-BigGAN's GAN run code for `training/train_gan.py` (`model_type: fq_biggan`; see `hf_dgm.training.gan_run`).

Flags: model (`--preset`, `--use_fq`, `--config_overrides '{"fq_commitment": 2.0}'`, `--model_name_or_path`), data
(`--dataset`: a Hub dataset name, a local image folder or `sklearn-digits`; `--resolution`, `--image_column`,
`--label_column`, ...) and evaluation (`--eval_num_samples`, `--fid_feature_extractor`).

FID/KID/IS are comparable to published numbers only with `--fid_feature_extractor` pointing to the standard FID
Inception weights (`pt_inception-2015-12-05-6726825d.pth`, or a Hub repo holding them) and 50,000 samples against
the full training set. `--fid_feature_extractor random-conv` (used by the CPU digits recipe) measures distances in
the feature space of a fixed, randomly initialised conv net: useful to follow a run, NOT comparable to any
published FID; its results are stored under keys prefixed `randomconv_`. Greyscale models (`num_channels: 1`)
repeat their channel three times for these feature extractors.

`--eval_classifier true` (class-conditional models) fits a logistic regression on the real images' pixels and reports
the fraction of `eval_num_samples` generated images it labels with the class they were generated for
(`classifier_accuracy_generated`, see `hf_dgm.training.gan_evaluation`), next to the classifier's accuracy on
held-out real images. With feature quantization, the evaluation also reports how many of the K dictionary entries
of each quantized D layer the real and generated evaluation images use (`fq_used_entries_layer<i>`) and the
perplexity of that assignment (`fq_perplexity_layer<i>`: the effective number of entries in use).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch

from ...metrics.image_features import (
    extract_features,
    frechet_distance_from_features,
    inception_score,
    kernel_inception_distance,
    load_fid_inception,
    precision_recall,
)
from ...models.fq_biggan import FQBigGANConfig, FQBigGANForImageGeneration
from ..gan_evaluation import class_conditional_accuracy
from ..gan_run import GANRunSetup, parse_config_overrides
from ..image_data import ImageGANCollator, find_image_column, find_label_column, load_digits_dataset, load_image_dataset


logger = logging.getLogger("train_gan")

DIGITS = "sklearn-digits"
RANDOM_CONV = "random-conv"


@dataclass
class ModelArguments:
    preset: str = field(default="cifar10", metadata={"help": "FQBigGANConfig preset: cifar10, cifar100, imagenet64, imagenet128, tiny."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved FQ-BigGAN folder instead."})
    use_fq: bool | None = field(default=None, metadata={"help": "False: the plain BigGAN baseline."})
    config_overrides: dict | str | None = field(
        default=None, metadata={"help": "FQBigGANConfig values: a mapping in recipes, a JSON string on the command line."}
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
    eval_classifier: bool = field(
        default=False,
        metadata={
            "help": "Class-conditional models: fit a logistic regression on the real images and report the fraction of "
            "eval_num_samples generated images it labels with their class."
        },
    )
    eval_classifier_max_real: int = field(
        default=10000,
        metadata={"help": "At most this many real images (the first ones) fit the classifier and make the pixel "
                  "precision/recall's real sets."},
    )
    eval_pixel_precision_recall: bool = field(
        default=False,
        metadata={
            "help": "Small images (e.g. the digits): improved precision and recall (k = 3) of eval_num_samples generated "
            "images against 80 percent of the real ones in pixel space, with the other 20 percent scored the same way as the real "
            "ceiling. Not comparable to published (VGG-feature) values."
        },
    )


def build_dataset(data_args: DataArguments):
    if data_args.dataset == DIGITS:
        dataset = load_digits_dataset()
    else:
        dataset = load_image_dataset(data_args.dataset, split=data_args.dataset_split, name=data_args.dataset_config)
    if data_args.max_train_samples is not None:
        dataset = dataset.select(range(min(data_args.max_train_samples, len(dataset))))
    return dataset


def build_model(model_args: ModelArguments, class_names: list[str] | None) -> FQBigGANForImageGeneration:
    overrides = parse_config_overrides(model_args.config_overrides, FQBigGANConfig)
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


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    """Greyscale (B, 1, H, W) -> (B, 3, H, W) for the 3-channel feature extractors; RGB unchanged."""
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


@torch.no_grad()
def generate_evaluation_samples(model, num_samples: int, eval_args: EvalArguments, device):
    """`(images, labels)` batches of `num_samples` EMA samples, class `i % num_classes` for sample i (labels None for
    unconditional models), from a generator seeded with 1234."""
    model.eval()
    num_classes = model.config.num_classes
    generator = torch.Generator().manual_seed(1234)
    for start in range(0, num_samples, eval_args.eval_batch_size):
        size = min(eval_args.eval_batch_size, num_samples - start)
        if num_classes:
            labels = torch.arange(start, start + size) % num_classes
            yield model.generate(labels.to(device), truncation=eval_args.eval_truncation, generator=generator), labels
        else:
            yield model.generate(batch_size=size, truncation=eval_args.eval_truncation, generator=generator), None


def real_evaluation_batches(dataset, collator, count: int, batch_size: int):
    """Collated batches of the first `count` rows of `dataset`."""
    for start in range(0, count, batch_size):
        yield collator([dataset[i] for i in range(start, min(start + batch_size, count))])


@torch.no_grad()
def dictionary_usage(model, image_batches) -> dict[str, float | int]:
    """Per quantized D layer: how many of the K entries the images are assigned to (`fq_used_entries_layer<i>`) and
    the perplexity of the assignment over all of them (`fq_perplexity_layer<i>`), with D in eval mode (the
    dictionaries are not updated). `image_batches` yields `(pixel_values, labels)`."""
    quantizers = dict(model.discriminator.quantizers.items())
    if not quantizers:
        return {}
    counts = {key: torch.zeros(q.num_embeddings, dtype=torch.float64) for key, q in quantizers.items()}

    def count_indices(key):
        def hook(module, args, output):
            counts[key] += torch.bincount(output.indices.reshape(-1).cpu(), minlength=module.num_embeddings).double()

        return hook

    hooks = [quantizer.register_forward_hook(count_indices(key)) for key, quantizer in quantizers.items()]
    model.eval()
    try:
        for pixel_values, labels in image_batches:
            model.discriminator(pixel_values, None if labels is None else labels.to(pixel_values.device))
    finally:
        for hook in hooks:
            hook.remove()
    results: dict[str, float | int] = {"num_fq_dictionary_entries": int(model.config.fq_num_embeddings)}
    for key, count in counts.items():
        probs = count / count.sum().clamp_min(1.0)
        results[f"fq_used_entries_layer{key}"] = int((count > 0).sum())
        results[f"fq_perplexity_layer{key}"] = float(torch.exp(-(probs * torch.log(probs + 1e-12)).sum()))
    return results


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

    def fake_batches():
        for images, _ in generate_evaluation_samples(model, n, eval_args, device):
            yield _three_channels(images)

    def real_batches():
        for batch in real_evaluation_batches(dataset, collator, min(n, len(dataset)), eval_args.eval_batch_size):
            yield _three_channels(batch["pixel_values"])

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


def load_run_dataset(arguments: dict, metrics: str):
    """The training images of a GAN run (`build_dataset`), after warning when `metrics` (e.g. "FID/KID") will not be
    computed for lack of a feature extractor; an unreachable Hub is one `error:` line, not a traceback."""
    evaluation = arguments["EvalArguments"]
    if evaluation.eval_num_samples > 0 and not evaluation.fid_feature_extractor:
        logger.warning(
            f"No --fid_feature_extractor: {metrics} will not be computed after training. Pass the path (or Hub id) "
            "of pt_inception-2015-12-05-6726825d.pth for published-comparable numbers."
        )
    try:
        return build_dataset(arguments["DataArguments"])
    except ConnectionError as err:
        raise SystemExit(f"error: {err}") from None


ARGUMENT_CLASSES = (ModelArguments, DataArguments, EvalArguments)


def build(arguments: dict, training_args) -> GANRunSetup:
    """Dataset (Hub, folder or digits), FQ-BigGAN model (preset + overrides, classes from the dataset) and collator."""
    model_args, data_args = arguments["ModelArguments"], arguments["DataArguments"]
    dataset = load_run_dataset(arguments, "FID/KID/IS")
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
        num_channels=model.config.num_channels,
    )
    hub_id = data_args.dataset if "/" in data_args.dataset and not os.path.isdir(data_args.dataset) else None
    description = (
        f"FQ-BigGAN {model_args.preset}: {sum(p.numel() for p in model.parameters()):,} parameters "
        f"(G {sum(p.numel() for p in model.generator_parameters()):,}, "
        f"D {sum(p.numel() for p in model.discriminator_parameters()):,}), use_fq={model.config.use_fq}, "
        f"{len(dataset)} images"
    )
    return GANRunSetup(
        model=model,
        train_dataset=dataset,
        data_collator=collator,
        run_metadata={"dataset": data_args.dataset, "dataset_id": hub_id, "eval_split": data_args.dataset_split},
        description=description,
    )


@torch.no_grad()
def evaluate_classifier(model, dataset, collator, eval_args: EvalArguments, device) -> dict[str, float | int | list]:
    """[`class_conditional_accuracy`] of `eval_num_samples` EMA samples (class `i % num_classes`), the classifier
    fitted on the first `eval_classifier_max_real` real images."""
    if not model.config.num_classes or collator.label_column is None:
        raise ValueError("--eval_classifier needs a class-conditional model and a labelled dataset")
    count = min(eval_args.eval_classifier_max_real, len(dataset))
    real = [b for b in real_evaluation_batches(dataset, collator, count, eval_args.eval_batch_size)]
    fake = list(generate_evaluation_samples(model, eval_args.eval_num_samples, eval_args, device))
    return class_conditional_accuracy(
        torch.cat([b["pixel_values"] for b in real]),
        torch.cat([b["labels"] for b in real]),
        torch.cat([images.cpu() for images, _ in fake]),
        torch.cat([labels for _, labels in fake]),
    )


@torch.no_grad()
def evaluate_pixel_precision_recall(model, dataset, collator, eval_args: EvalArguments, device) -> dict[str, float | int]:
    """[`precision_recall`] (k = 3) in pixel space: `eval_num_samples` EMA samples against a random 80% of the first
    `eval_classifier_max_real` real images (seed 0), and the other 20% against the same 80% (the real ceiling)."""
    count = min(eval_args.eval_classifier_max_real, len(dataset))
    real = torch.cat([b["pixel_values"] for b in real_evaluation_batches(dataset, collator, count, eval_args.eval_batch_size)])
    fake = torch.cat([images.cpu() for images, _ in generate_evaluation_samples(model, eval_args.eval_num_samples, eval_args, device)])
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
    reference, held_out = real[order[: count * 4 // 5]].flatten(1), real[order[count * 4 // 5 :]].flatten(1)
    precision, recall = precision_recall(reference, fake.flatten(1), k=3)
    real_precision, real_recall = precision_recall(reference, held_out, k=3)
    return {
        "pixel_precision": precision, "pixel_recall": recall,
        "pixel_precision_real_held_out": real_precision, "pixel_recall_real_held_out": real_recall,
        "pixel_precision_recall_k": 3, "num_pixel_pr_generated": int(fake.shape[0]),
        "num_pixel_pr_real_reference": int(reference.shape[0]), "num_pixel_pr_real_held_out": int(held_out.shape[0]),
    }  # fmt: skip


def evaluate(setup: GANRunSetup, arguments: dict, training_args) -> dict:
    """After training, with `eval_num_samples > 0`: FID/KID(/IS) when `fid_feature_extractor` is set, the classifier
    accuracy with `eval_classifier`, pixel-space precision/recall with `eval_pixel_precision_recall`, and the
    dictionary usage of FQ models."""
    eval_args = arguments["EvalArguments"]
    if eval_args.eval_num_samples <= 0:
        return {}
    model, dataset, collator, device = setup.model, setup.train_dataset, setup.data_collator, training_args.device
    results: dict = {}
    if eval_args.fid_feature_extractor:
        results.update(evaluate_samples(model, dataset, collator, eval_args, device))
    if eval_args.eval_classifier:
        results.update(evaluate_classifier(model, dataset, collator, eval_args, device))
    if eval_args.eval_pixel_precision_recall:
        results.update(evaluate_pixel_precision_recall(model, dataset, collator, eval_args, device))
    if model.config.use_fq:
        count = min(eval_args.eval_num_samples, len(dataset))

        def batches():
            for batch in real_evaluation_batches(dataset, collator, count, eval_args.eval_batch_size):
                yield batch["pixel_values"].to(device), batch.get("labels", None)
            for images, labels in generate_evaluation_samples(model, eval_args.eval_num_samples, eval_args, device):
                yield images, labels

        results.update(dictionary_usage(model, batches()))
    return results


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train fq_biggan --recipe FILE [--flag value ...]`: `hf_dgm.training.gan_run.main` with this family."""
    import sys

    from ..gan_run import main as run_gan

    run_gan(["--model_type", "fq_biggan", *(sys.argv[1:] if argv is None else argv)])
    return 0


__all__ = [
    "ARGUMENT_CLASSES",
    "DataArguments",
    "EvalArguments",
    "ModelArguments",
    "build",
    "dictionary_usage",
    "evaluate",
    "evaluate_classifier",
    "generate_evaluation_samples",
    "main",
]
