#!/usr/bin/env python
"""Pretrain or fine-tune Optimus with `OptimusTrainer` (alias of `hf-dgm train optimus`).

    accelerate launch training/train_optimus.py --recipe training/recipes/optimus_finetune_snli.yaml \
        --output_dir runs/optimus-snli          # or --dataset NAME / --train_file FILE

Any recipe key can be overridden by a flag (`--key value`, underscores; dashes are accepted too). See
`hf_dgm.training.optimus.run` for every argument (model, data, and `OptimusTrainingArguments`: β schedule, λ, plus
all of `TrainingArguments`) and `hf_dgm.training.recipes` for the recipe rules.
"""

import sys

import hf_dgm  # noqa: F401  (registers the Optimus classes)
from hf_dgm.training.optimus.run import main

if __name__ == "__main__":
    sys.exit(main())
