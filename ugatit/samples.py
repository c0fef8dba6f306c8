"""Training sample sheets of a U-GAT-IT model.

A sample sheet has one row per fixed test image and direction, with six columns:
input | generator attention (over the input) | translation | cycle reconstruction |
local discriminator attention (over the translation) | global discriminator attention.
Heatmaps are drawn by bench.core.visual; a heatmap a variant does not have (no G_CAM or no D_CAM) is a
grey tile.
"""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from bench.core.visual import overlay, to_unit


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
