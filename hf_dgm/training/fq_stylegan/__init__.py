"""FQ-StyleGAN training-side code (never shipped with a model)."""
