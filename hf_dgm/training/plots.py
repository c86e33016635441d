"""Image grids and loss plots of GAN runs (training side; not shipped with models).

- [`image_grid`] / [`save_image_grid`]: `(N, C, H, W)` images in [-1, 1] -> a row-major uint8 grid / a PNG
  (greyscale, mode "L", for one-channel images; RGB otherwise).
- [`plot_gan_losses`]: the logged D/G losses of a `GANTrainer` run (its `state.log_history`) as a PNG.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch


def image_grid(images: torch.Tensor, ncol: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (rows·(H+p)+p, ncol·(W+p)+p, 3) uint8 grid, row-major."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1|3, H, W), got {tuple(images.shape)}")
    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    n, _, h, w = images.shape
    ncol = max(1, min(ncol, n))
    nrow = int(math.ceil(n / ncol))
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    fill = int(round((pad_value + 1) * 127.5))
    grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, 3), fill, dtype=np.uint8)
    for idx in range(n):
        r, c = divmod(idx, ncol)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = pixels[idx]
    return grid


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, ncol: int = 8, scale: int | None = None) -> None:
    """Save a grid PNG; small images are upscaled (nearest) so that the grid is at least 512 px wide. One-channel
    images give a greyscale (mode "L") PNG, three-channel images an RGB one."""
    from PIL import Image

    grid = image_grid(images, ncol=ncol)
    if scale is None:
        scale = max(1, math.ceil(512 / grid.shape[1]))
    img = Image.fromarray(grid[..., 0] if images.shape[1] == 1 else grid)
    if scale > 1:
        img = img.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)


def plot_gan_losses(log_history: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Plot the logged GAN fields against the G step, as PNG: every loss (`loss` = G's total, and each logged field
    ending in `loss`) on the left; quantizer statistics (fields containing `perplexity` or `usage`), when present,
    on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "d_loss" in r and "step" in r]
    if not rows:
        raise ValueError("No training logs to plot (set logging_steps).")
    keys = sorted({k for r in rows for k in r})
    loss_keys = ["loss"] + [k for k in keys if k.endswith("loss") and k != "loss"]
    stat_keys = [k for k in keys if "perplexity" in k or "usage" in k]
    fig, axes = plt.subplots(1, 2 if stat_keys else 1, figsize=(11 if stat_keys else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for key in loss_keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), label="G loss (total)" if key == "loss" else key)
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if stat_keys:
        ax = axes[0, 1]
        perplexities = [k for k in stat_keys if "perplexity" in k]
        for key in perplexities:
            ax.plot(*zip(*[(r["step"], r[key]) for r in rows if key in r]), label=key)
        ax.set_xlabel("generator step")
        ax.set_ylabel("FQ code perplexity")
        ax2 = ax.twinx()
        for i, key in enumerate(k for k in stat_keys if "usage" in k):
            ax2.plot(*zip(*[(r["step"], r[key]) for r in rows if key in r]), color=f"C{5 + i}", ls="--", label=key)
        ax2.set_ylabel("fraction of dictionary used")
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["image_grid", "plot_gan_losses", "save_image_grid"]
