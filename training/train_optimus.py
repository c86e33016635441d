#!/usr/bin/env python
"""Pretrain or fine-tune Optimus with `OptimusTrainer`.

    accelerate launch training/train_optimus.py --recipe training/recipes/optimus_finetune_snli.yaml \
        --output_dir runs/optimus-snli          # or --dataset NAME / --train_file FILE

Any recipe key can be overridden by a flag after `--recipe`. See `hf_dgm.training.optimus.run` for every
argument (model, data, and `OptimusTrainingArguments`: β schedule, λ, plus all of `TrainingArguments`).
"""

import json
import logging

import hf_dgm  # noqa: F401  (registers the Optimus classes)
from hf_dgm.training.optimus.run import parse_args, train_and_evaluate


def main() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, training_args = parse_args()
    metrics = train_and_evaluate(model_args, data_args, training_args, {"recipe": training_args.recipe_path})
    if training_args.process_index == 0:
        print(json.dumps({k: v for k, v in metrics.items() if k.startswith("eval_")}, indent=2))


if __name__ == "__main__":
    main()
