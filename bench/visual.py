"""Pictures of attention: heatmaps coloured with the jet map and laid over images.

Heatmaps are what the networks return (N x 1 x h x w channel sums, as the official code's `cam()`
shows them), min-max scaled per image, up-sampled to the image size and coloured with jet.
"""

from __future__ import annotations

import matplotlib
import torch
import torch.nn.functional as F

_JET = torch.tensor(matplotlib.colormaps["jet"](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def colour_heatmap(heatmap: torch.Tensor, size: int) -> torch.Tensor:
    """N x 1 x h x w heatmaps -> N x 3 x size x size jet-coloured images in [0, 1]."""
    flat = heatmap.float().flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    scaled = ((flat - low) / (high - low).clamp_min(1e-12)).view_as(heatmap)
    scaled = F.interpolate(scaled, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    index = (scaled[:, 0] * 255).round().long()                     # N x size x size
    return _JET.to(heatmap.device)[index].permute(0, 3, 1, 2)      # N x 3 x size x size


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def overlay(images: torch.Tensor, heatmap: torch.Tensor | None, alpha: float = 0.5) -> torch.Tensor:
    """Heatmap over images ([-1, 1]) -> [0, 1]; a grey tile when there is no heatmap."""
    if heatmap is None:
        return torch.full_like(to_unit(images), 0.5)
    return (1 - alpha) * to_unit(images) + alpha * colour_heatmap(heatmap, images.shape[-1])
