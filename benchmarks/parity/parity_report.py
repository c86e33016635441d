"""The table every parity script prints: for each compared quantity, the max absolute and max relative difference
between ours and the original.

"max rel" is max |ours - original| / max |original|, taken over the whole tensor, or over a group of tensors (say, the
gradients of one network) with `relative_to="group"`: a tensor whose exact value is 0 (the gradient of a conv bias
followed by batch norm, an attention key bias) holds only rounding noise on both sides, and its own scale would show
that noise as a 100% difference. `relative_to="tensor"` takes each tensor on its own scale and reports the worst.
"""

from __future__ import annotations

from typing import Sequence

import torch


class ParityReport:
    def __init__(self, relative_to: str = "group"):
        if relative_to not in ("group", "tensor"):
            raise ValueError(f"relative_to must be 'group' or 'tensor', got {relative_to!r}")
        self.relative_to = relative_to
        self.rows: list[tuple[str, float, float]] = []

    def add(self, name: str, ours, original) -> tuple[float, float]:
        """Compare one tensor, or two equally long lists of tensors, and record (name, max abs, max rel)."""
        if isinstance(original, (list, tuple)):
            if not isinstance(ours, (list, tuple)) or len(ours) != len(original):
                raise ValueError(f"{name}: {len(ours) if isinstance(ours, (list, tuple)) else 1} tensors vs "
                                 f"{len(original)} in the original")
            pairs = list(zip(ours, original))
        else:
            pairs = [(ours, original)]
        max_abs = group_scale = tensor_rel = 0.0
        for a, b in pairs:
            a = torch.as_tensor(a).detach().double()
            b = torch.as_tensor(b).detach().double()
            if a.shape != b.shape:
                raise ValueError(f"{name}: shape {tuple(a.shape)} vs {tuple(b.shape)} in the original")
            if not b.numel():
                continue
            diff, scale = float((a - b).abs().max()), float(b.abs().max())
            max_abs, group_scale = max(max_abs, diff), max(group_scale, scale)
            tensor_rel = max(tensor_rel, _relative(diff, scale))
        max_rel = _relative(max_abs, group_scale) if self.relative_to == "group" else tensor_rel
        self.rows.append((name, max_abs, max_rel))
        return max_abs, max_rel

    @property
    def worst_relative(self) -> float:
        return max((rel for _, _, rel in self.rows), default=0.0)

    def print(self, rows: Sequence[tuple[str, float, float]] | None = None) -> None:
        rows = self.rows if rows is None else rows
        width = max(len(name) for name, _, _ in rows)
        print(f"{'quantity':<{width}}  {'max abs':>10}  {'max rel':>10}")
        for name, max_abs, max_rel in rows:
            print(f"{name:<{width}}  {max_abs:10.3e}  {max_rel:10.3e}")


def _relative(diff: float, scale: float) -> float:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else float("inf")
