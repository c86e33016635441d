"""The FID Inception network: the Inception-v3 graph of 2015-12-05 used for FID, KID and IS, in PyTorch
(architecture of pytorch-fid's `fid_inception_v3`, key layout of torchvision's Inception3, so that
`pt_inception-2015-12-05-6726825d.pth` loads with strict key checking), and its input preprocessing.

Loading and hash-checking its weights is :mod:`hf_dgm.metrics.inception_weights` (`load_fid_inception`).

Preprocessing (`preprocessing=`): `"pytorch-fid"` (default) resizes with `F.interpolate(bilinear,
align_corners=False)` to 299×299 and maps [0, 255] to [-1, 1] by x/127.5 - 1; `"torch-fidelity"` resizes with
TF1's legacy bilinear (`align_corners=False`, no half-pixel centers — what the original TF FID/IS code did) and maps
by (x - 128)/128. By default float images are first quantized to 8-bit levels (`quantize=True`), exactly as if they
had been written to PNG files and read back, because that is what the reference implementations measure. Published
numbers use 50,000 generated samples for FID and IS (`fid50k`), and the full training set (CIFAR: 50,000 images) as
reference statistics. Report the preprocessing mode and sample counts with every number; clean-fid's "clean"
resizing gives different (higher) values and is not implemented here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PREPROCESSING_MODES = ("pytorch-fid", "torch-fidelity")


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    # TF's average pooling excludes the padding from the count.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class FIDInceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], dim=1)


class FIDInceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([b1, b7, b7d, bp], dim=1)


class FIDInceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class FIDInceptionE(nn.Module):
    """Mixed_7b uses average pooling (padding excluded) in its pool branch, Mixed_7c max pooling — a quirk of
    the 2015 TF graph that pytorch-fid reproduces (`FIDInceptionE_1` / `FIDInceptionE_2`)."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        if self.pool == "avg":
            bp = _avg_pool_no_pad(x)
        else:
            bp = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(bp)
        return torch.cat([b1, b3, b3d, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """The Inception-v3 graph of 2015-12-05 used for FID, KID and IS (1008 classes), in PyTorch.

    Input: images (B, 3, H, W). `forward` takes float images in [-1, 1] (hf-dgm's convention) and applies the
    chosen `preprocessing` (see the module docstring: quantization to 8 bits, resizing to 299×299 and the
    reference implementation's value mapping). Output: a dict with `pool3` (B, 2048) — the FID/KID features —
    and `logits_unbiased` (B, 1008) = pool3 @ fc.weight.T — the IS logits. Call :meth:`extract` for raw,
    already-preprocessed input in [-1, 1] at 299×299.

    Parameter names follow torchvision's `Inception3`, the layout of `pt_inception-2015-12-05-6726825d.pth`.
    """

    def __init__(self, preprocessing: str = "pytorch-fid", quantize: bool = True):
        super().__init__()
        if preprocessing not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing must be one of {PREPROCESSING_MODES}, got {preprocessing!r}")
        self.preprocessing = preprocessing
        self.quantize = quantize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = FIDInceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = FIDInceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)
        self.eval()

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, 299, 299) in [-1, 1] -> {"pool3": (B, 2048), "logits_unbiased": (B, 1008)}."""
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
            self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,
        ):  # fmt: skip
            x = block(x)
        pool3 = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return {"pool3": pool3, "logits_unbiased": pool3 @ self.fc.weight.T}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Float images (B, 3, H, W) in [-1, 1] -> network input (B, 3, 299, 299)."""
        x = (images.float().clamp(-1, 1) + 1) * 127.5  # [0, 255]
        if self.quantize:
            x = x.round()
        if self.preprocessing == "pytorch-fid":
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return x / 127.5 - 1.0
        x = resize_bilinear_tf1(x, (299, 299))
        return (x - 128.0) / 128.0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extract(self.preprocess(images))

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a torchvision-layout state dict, checking every key (BatchNorm `num_batches_tracked` and the
        unused auxiliary classifier excepted)."""
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("AuxLogits.")}
        missing, unexpected = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(
                f"Not FID Inception weights: missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}."
            )


def resize_bilinear_tf1(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 `tf.image.resize_bilinear(align_corners=False)` without half-pixel centers: output pixel i samples
    input coordinate i * in/out (the resize the original TF FID/IS code and torch-fidelity use).

    The arithmetic is TF1's kernel (`resize_bilinear_op.cc`), operation for operation, as torch-fidelity's
    `interpolate_bilinear_2d_like_tensorflow1x(method="slow")` reproduces it, so the result is bit-identical to
    torch-fidelity's: the scale `in / out` rounded to float32, source coordinate `i * scale` in the input's dtype,
    `lerp = src - floor(src)`, then `top = tl + (tr - tl) * x_lerp`, `bottom = bl + (br - bl) * x_lerp`,
    `out = top + (bottom - top) * y_lerp`. (A weighted sum `(1 - w) * a + w * b` with float64 weights gives the
    same values to ~1 ulp only, and the FID Inception amplifies 1-ulp input differences ~1000-fold: issue 32.)
    """

    def grid(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=x.dtype, device=x.device) * torch.tensor(n_in / n_out, dtype=torch.float32)
        lo = src.long()  # src >= 0: truncation is floor
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, src - lo.to(src.dtype)

    y_lo, y_hi, dy = grid(x.shape[-2], size[0])
    x_lo, x_hi, dx = grid(x.shape[-1], size[1])
    top, bottom = x.index_select(-2, y_lo), x.index_select(-2, y_hi)
    top_left, top_right = top.index_select(-1, x_lo), top.index_select(-1, x_hi)
    bottom_left, bottom_right = bottom.index_select(-1, x_lo), bottom.index_select(-1, x_hi)
    top = top_left + (top_right - top_left) * dx.view(1, 1, 1, -1)
    bottom = bottom_left + (bottom_right - bottom_left) * dx.view(1, 1, 1, -1)
    return top + (bottom - top) * dy.view(1, 1, -1, 1)
