"""FQ-StyleGAN's filter ops in plain PyTorch (no custom CUDA kernels): FIR resampling with the semantics of
StyleGAN2-ADA's `upfirdn2d` reference implementation, and the fused bias + activation + gain + clamp of its
`bias_act`. Used by the layers in `modeling_fq_stylegan.py`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fir_filter(taps: list[int] | tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """2-D FIR filter `(k, k)`: the outer product of the 1-D `taps` with itself, normalised to sum 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32, device=device)
    f = torch.outer(f, f)
    return (f / f.sum()).to(dtype)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    r"""
    Upsample by zero insertion, pad (negative = crop), filter with the 2-D FIR `f`, downsample by keeping every
    `down`-th sample — the semantics of StyleGAN2's `upfirdn2d` (filter not flipped, i.e. a true convolution; the
    filters used here are symmetric).

    Args:
        x (`torch.FloatTensor` of shape `(B, C, H, W)`): Input.
        f (`torch.FloatTensor` of shape `(kh, kw)`): Filter.
        up, down (`int`): Integer up/downsampling factors (both axes).
        padding (`(x0, x1, y0, y1)`): Padding after upsampling (left, right, top, bottom).
        gain (`float`): Multiplies the filter (`up**2` keeps the signal level when upsampling).

    Returns:
        `(B, C, (H·up + y0 + y1 − kh + 1) // down, (W·up + x0 + x1 − kw + 1) // down)` (ceil division).
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    x0, x1, y0, y1 = padding
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    kernel = (f * gain).to(x.dtype).flip([0, 1])
    kernel = kernel[None, None].expand(channels, 1, *kernel.shape)
    x = F.conv2d(x, kernel, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """FIR upsampling by `up`: `(B, C, H, W)` → `(B, C, H·up, W·up)`."""
    kh, kw = f.shape
    padding = ((kw + up - 1) // 2, (kw - up) // 2, (kh + up - 1) // 2, (kh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """FIR downsampling by `down`: `(B, C, H, W)` → `(B, C, H/down, W/down)`."""
    kh, kw = f.shape
    padding = ((kw - down + 1) // 2, (kw - down) // 2, (kh - down + 1) // 2, (kh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=padding)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float, clamp: float | None):
    """`clamp(act(x + bias) · gain)`; `activation` is `"lrelu"` (slope 0.2) or `"linear"`, bias along dim 1."""
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.dim() - 2)).to(x.dtype)
    if activation == "lrelu":
        x = F.leaky_relu(x, 0.2)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


__all__ = ["bias_act", "downsample2d", "fir_filter", "upfirdn2d", "upsample2d"]
