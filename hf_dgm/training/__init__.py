"""The training side of hf-dgm: trainers, data collation, evaluation, run folders and per-family main jobs.

Nothing here ships to the Hub; `hf_dgm.models.<family>` holds what does. Import the submodules directly
(`hf_dgm.training.gan_trainer`, `hf_dgm.training.image_data`, `hf_dgm.training.optimus.trainer`, ...).
"""
