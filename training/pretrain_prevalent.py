#!/usr/bin/env python
"""Pretrain Prevalent (masked LM + action prediction) on R2R (+ synthesized) image-text-action triplets with Trainer.

    accelerate launch training/pretrain_prevalent.py --recipe training/recipes/prevalent_pretrain.yaml \
        --augmented runs/aug.json --output_dir runs/prevalent

Any recipe key can be overridden by a flag after `--recipe`; see `hf_dgm.training.prevalent.pretrain` for every
argument (plus all of `TrainingArguments`).
"""

import hf_dgm  # noqa: F401  (registers the Prevalent classes)
from hf_dgm.training.prevalent.pretrain import main


if __name__ == "__main__":
    main()
