#!/usr/bin/env python
"""Train the Prevalent (R2R-EnvDrop) speaker on R2R train with `Trainer`; BLEU-4 on val_seen at the end.

    python training/train_speaker.py --recipe training/recipes/speaker_r2r.yaml --output_dir runs/speaker
    python training/train_speaker.py --recipe training/recipes/speaker_r2r_cpu.yaml --output_dir runs/speaker-cpu

Any recipe key can be overridden by a flag after `--recipe`; see `hf_dgm.training.prevalent_speaker.run.SpeakerArguments` plus
every `TrainingArguments` flag (resume with `--resume_from_checkpoint`). Same as `hf-dgm train prevalent_speaker`.
"""

import sys

from hf_dgm.training.prevalent_speaker.run import main


if __name__ == "__main__":
    sys.exit(main())
