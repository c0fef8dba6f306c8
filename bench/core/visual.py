"""Pictures of attention, and sample sheets a person can read.

Heatmaps are what the networks return (N x 1 x h x w channel sums, as the official code's `cam()`
shows them), min-max scaled per image, up-sampled to the image size and coloured with jet.
`titled_sheet` enlarges a grid of small tiles and writes a title over each column.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

_JET = torch.tensor(matplotlib.colormaps["jet"](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def colour_heatmap(heatmap: torch.Tensor, size: int, scale: bool = True) -> torch.Tensor:
    """N x 1 x h x w heatmaps -> N x 3 x size x size jet-coloured images in [0, 1]; `scale`: min-max
    per image (U-GAT-IT's channel sums), else the values are taken as they are in [0, 1] (AGGAN's masks)."""
    flat = heatmap.float().flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    if not scale:
        low, high = torch.zeros_like(low), torch.ones_like(high)
    scaled = ((flat - low) / (high - low).clamp_min(1e-12)).view_as(heatmap)
    scaled = F.interpolate(scaled, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    index = (scaled[:, 0] * 255).round().long()                     # N x size x size
    return _JET.to(heatmap.device)[index].permute(0, 3, 1, 2)      # N x 3 x size x size


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def overlay(images: torch.Tensor, heatmap: torch.Tensor | None, alpha: float = 0.5, scale: bool = True) -> torch.Tensor:
    """Heatmap over images ([-1, 1]) -> [0, 1]; a grey tile when there is no heatmap."""
    if heatmap is None:
        return torch.full_like(to_unit(images), 0.5)
    return (1 - alpha) * to_unit(images) + alpha * colour_heatmap(heatmap, images.shape[-1], scale)


def titled_sheet(grid: np.ndarray, columns: list[str], padding: int = 2, min_tile: int = 96) -> Image.Image:
    """A make_grid image (H x W x 3 uint8, `len(columns)` tiles a row with `padding` pixels around
    each) enlarged by a whole factor so that tiles are at least `min_tile` pixels wide (nearest
    neighbour: pixels stay sharp), with each column's title written above it."""
    n = len(columns)
    tile = (grid.shape[1] - padding) // n - padding
    factor = max(1, math.ceil(min_tile / max(tile, 1)))
    image = Image.fromarray(grid).resize((grid.shape[1] * factor, grid.shape[0] * factor), Image.Resampling.NEAREST)
    font = ImageFont.load_default(size=11)
    step = (tile + padding) * factor
    wrapped = [textwrap.wrap(title, max(4, step // 7)) or [title] for title in columns]
    header = 6 + 13 * max(len(lines) for lines in wrapped)
    sheet = Image.new("RGB", (image.width, image.height + header), (255, 255, 255))
    sheet.paste(image, (0, header))
    draw = ImageDraw.Draw(sheet)
    for column, lines in enumerate(wrapped):
        centre = padding * factor + column * step + tile * factor // 2
        for line_number, line in enumerate(lines):
            draw.text((centre, 3 + 13 * line_number), line, fill=(0, 0, 0), font=font, anchor="mt")
    return sheet
