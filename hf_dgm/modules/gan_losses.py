"""Temporary re-export while the FQ-StyleGAN / FQ-U-GAT-IT steps move to training (removed by issue 31 item 2)."""
from ..training.gan_losses import *  # noqa: F401,F403
