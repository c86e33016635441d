#!/usr/bin/env python
"""Fine-tune the Prevalent R2R agent (stage 1: encoder frozen; stage 2: cross-modal layers at a lower learning rate;
`feedback sample` = imitation x ml_weight + A2C) with an `accelerate` loop, then evaluate on val_seen.

    accelerate launch training/finetune_r2r.py --recipe training/recipes/prevalent_r2r.yaml --pretrained runs/prevalent

Without --pretrained the agent starts from scratch (text layers from --init_bert). Checkpoints are accelerate
`save_state` folders (`checkpoint-N/`, written atomically): rerun the same command to resume exactly. `--report_to
tensorboard` (or any accelerate tracker) logs the history. See `hf_dgm.training.prevalent.finetune` for every
argument.
"""

import hf_dgm  # noqa: F401  (registers the Prevalent classes)
from hf_dgm.training.prevalent.finetune import main


if __name__ == "__main__":
    main()
