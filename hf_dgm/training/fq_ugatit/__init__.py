"""FQ-U-GAT-IT training-side code (never shipped): `gan_run` is its run module for `training/train_gan.py`."""
