"""Pictures of a U-GAT-IT model: attention heatmaps, overlays and training sample sheets.

A sample sheet has one row per fixed test image and direction, with six columns:
input | generator attention (over the input) | translation | cycle reconstruction |
local discriminator attention (over the translation) | global discriminator attention.
Heatmaps are the channel sums the networks return (as the official code's `cam()` shows them),
min-max scaled per image, up-sampled to the image size and coloured with the jet colour map.
A heatmap a variant does not have (no G_CAM or no D_CAM) is drawn as a grey tile.
"""

from __future__ import annotations

import matplotlib
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

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


def sample_sheet(method, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
    """The six-column sheet described in the module docstring, 3 x H x W in [0, 1]."""
    rows = []
    with method.evaluating():
        for real, forward, backward, local_d, global_d in (
            (real_a, method.gen_a2b, method.gen_b2a, method.dis_local_b, method.dis_global_b),
            (real_b, method.gen_b2a, method.gen_a2b, method.dis_local_a, method.dis_global_a),
        ):
            real = method._prepare(real)
            fake, _, attention = forward(real)
            reconstruction, _, _ = backward(fake)
            _, _, local_heatmap = local_d(fake)
            _, _, global_heatmap = global_d(fake)
            columns = [to_unit(real), overlay(real, attention), to_unit(fake), to_unit(reconstruction),
                       overlay(fake, local_heatmap), overlay(fake, global_heatmap)]
            rows.append(torch.stack(columns, dim=1).flatten(0, 1))     # (N * 6) x 3 x H x W, row by row
    return make_grid(torch.cat(rows).cpu(), nrow=6, padding=2, pad_value=1.0)
