#!/usr/bin/env python
"""Train a GAN of the zoo with `GANTrainer`: the recipe's `model_type` (or `--model_type`) selects the family
(default `fq_biggan`); see `hf_dgm.training.gan_run` for recipes, family modules and the run folder, and
`hf_dgm.training.<family>.gan_run` for each family's flags.

    accelerate launch training/train_gan.py --recipe training/recipes/fq_biggan_cifar10.yaml --output_dir runs/fqbg
    python training/train_gan.py --recipe training/recipes/fq_biggan_digits_cpu.yaml --output_dir runs/digits
    python training/train_gan.py --recipe training/recipes/fq_biggan_cifar10.yaml --use_fq false ...  # BigGAN
"""

from __future__ import annotations

import hf_dgm  # noqa: F401  (registers the model classes)
from hf_dgm.training.gan_run import main, parse_args  # noqa: F401  (parse_args: for tests and tools)


if __name__ == "__main__":
    main()
