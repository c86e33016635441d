"""Trainers."""

from .gan_trainer import (
    GANTrainer,
    GANTrainingArguments,
    GANTrainingDivergedError,
    image_grid,
    plot_gan_losses,
    save_image_grid,
)

__all__ = [
    "GANTrainer",
    "GANTrainingArguments",
    "GANTrainingDivergedError",
    "image_grid",
    "plot_gan_losses",
    "save_image_grid",
]
