"""FQ-BigGAN's training-side code: its GAN run module for `training/train_gan.py` (`gan_run`)."""
