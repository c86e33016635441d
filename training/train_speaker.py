#!/usr/bin/env python
"""Train the Prevalent (R2R-EnvDrop) speaker on R2R train with `Trainer`; BLEU-4 on val_seen at the end.

    python training/train_speaker.py --recipe training/recipes/speaker_r2r.yaml --output_dir runs/speaker
    python training/train_speaker.py --recipe training/recipes/speaker_r2r_cpu.yaml --output_dir runs/speaker-cpu

Any recipe key can be overridden by a flag after `--recipe`; see `hf_dgm.training.speaker.SpeakerArguments` plus
every `TrainingArguments` flag (resume with `--resume_from_checkpoint`).
"""

import json
import logging

from hf_dgm.training.speaker import parse_args, train_speaker


def main() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    speaker_args, training_args, recipe = parse_args()
    metrics = train_speaker(speaker_args, training_args, recipe)
    if training_args.process_index == 0:
        print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
