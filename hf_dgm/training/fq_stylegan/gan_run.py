"""FQ-StyleGAN's GAN run code for `training/train_gan.py` (`model_type: fq_stylegan`; see `hf_dgm.training.gan_run`).

    accelerate launch training/train_gan.py --recipe training/recipes/fq_stylegan_ffhq256.yaml --output_dir runs/fqsg
    python training/train_gan.py --recipe training/recipes/fq_stylegan_digits_cpu.yaml --output_dir runs/fqsg-digits

Flags: model (`--preset`: an `FQStyleGANConfig` preset, `config-e`, `paper256`, `stylegan2` or `tiny`; `--use_fq`;
`--config_overrides '{"r1_gamma": 10}'`; `--model_name_or_path`), data and evaluation as FQ-BigGAN's run code
(`--dataset`: a Hub dataset name, a local image folder or `sklearn-digits`; `--resolution`, `--image_column`,
`--random_flip` (mirror augmentation), ...; `--eval_num_samples`, `--fid_feature_extractor`). The model is
unconditional: the dataset's labels are not used. For evaluation samples `--eval_truncation` is the w-space ψ
(None: no truncation).

StyleGAN2's training schedule comes from the model and its config: 1 D step per G step, non-saturating logistic
loss, lazy R1 and path length (counted by the trainer's `d_step` / `step`), style mixing, lr and Adam betas with
the lazy-regularisation correction, and the G-EMA half-life in images (`ema_kimg`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ...models.fq_stylegan import FQStyleGANConfig, FQStyleGANForImageGeneration
from ..fq_biggan.gan_run import DataArguments, EvalArguments, load_run_dataset
from ..fq_biggan.gan_run import evaluate as evaluate_image_gan
from ..gan_run import GANRunSetup, parse_config_overrides
from ..image_data import ImageGANCollator, find_image_column


logger = logging.getLogger("train_gan")


@dataclass
class ModelArguments:
    preset: str = field(default="config-e", metadata={"help": "FQStyleGANConfig preset: config-e, paper256, stylegan2, tiny."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from a saved FQ-StyleGAN folder instead."})
    use_fq: bool | None = field(default=None, metadata={"help": "False: the plain StyleGAN2 baseline."})
    config_overrides: dict | str | None = field(
        default=None, metadata={"help": "FQStyleGANConfig values: a mapping in recipes, a JSON string on the command line."}
    )


def build_model(model_args: ModelArguments) -> FQStyleGANForImageGeneration:
    overrides = parse_config_overrides(model_args.config_overrides, FQStyleGANConfig)
    if model_args.use_fq is not None:
        overrides["use_fq"] = model_args.use_fq
    if model_args.model_name_or_path:
        return FQStyleGANForImageGeneration.from_pretrained(model_args.model_name_or_path, **overrides)
    return FQStyleGANForImageGeneration(FQStyleGANConfig.from_preset(model_args.preset, **overrides))


ARGUMENT_CLASSES = (ModelArguments, DataArguments, EvalArguments)


def build(arguments: dict, training_args) -> GANRunSetup:
    """Dataset (Hub, folder or digits), FQ-StyleGAN model (preset + overrides) and an unlabelled image collator."""
    model_args, data_args = arguments["ModelArguments"], arguments["DataArguments"]
    if arguments["EvalArguments"].eval_classifier:
        raise ValueError("--eval_classifier scores the class of class-conditional samples; FQ-StyleGAN is unconditional "
                         "(use --eval_pixel_precision_recall)")  # fmt: skip
    dataset = load_run_dataset(arguments, "FID/KID")
    model = build_model(model_args)
    resolution = data_args.resolution or model.config.resolution
    if resolution != model.config.resolution:
        raise ValueError(f"--resolution {resolution} differs from the model's resolution {model.config.resolution}.")
    collator = ImageGANCollator(
        resolution=resolution,
        image_column=data_args.image_column or find_image_column(dataset),
        label_column=None,
        interpolation=data_args.interpolation,
        random_flip=data_args.random_flip,
        num_channels=model.config.num_channels,
    )
    hub_id = data_args.dataset if "/" in data_args.dataset and not os.path.isdir(data_args.dataset) else None
    description = (
        f"FQ-StyleGAN {model_args.preset} {model.config.resolution}px: {sum(p.numel() for p in model.parameters()):,} "
        f"parameters (G {sum(p.numel() for p in model.generator_parameters()):,}, "
        f"D {sum(p.numel() for p in model.discriminator_parameters()):,}), use_fq={model.config.use_fq}, "
        f"{len(dataset)} images, mirror={data_args.random_flip}"
    )
    return GANRunSetup(
        model=model,
        train_dataset=dataset,
        data_collator=collator,
        run_metadata={"dataset": data_args.dataset, "dataset_id": hub_id, "eval_split": data_args.dataset_split},
        description=description,
    )


def evaluate(setup: GANRunSetup, arguments: dict, training_args) -> dict:
    """After training, with `eval_num_samples > 0`: FQ-BigGAN's evaluation of unconditional samples — FID/KID when
    `fid_feature_extractor` is set, pixel-space precision/recall with `eval_pixel_precision_recall` (small images such
    as the digits), and the dictionary usage of FQ models (`eval_classifier` is refused by `build`)."""
    return evaluate_image_gan(setup, arguments, training_args)


def main(argv: list[str] | None = None) -> int:
    """`hf-dgm train fq_stylegan --recipe FILE [--flag value ...]`: `hf_dgm.training.gan_run.main` with this family."""
    import sys

    from ..gan_run import main as run_gan

    run_gan(["--model_type", "fq_stylegan", *(sys.argv[1:] if argv is None else argv)])
    return 0


__all__ = ["ARGUMENT_CLASSES", "ModelArguments", "build", "build_model", "evaluate", "main"]
