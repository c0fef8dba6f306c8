"""Figures generated from run folders: a comparison sheet per task and training curves per run.

Comparison sheet (like the paper's Figure 4, with Figure 5's attention column): one row per source
test image (the first few, in file-name order); columns: the source image, U-GAT-IT's generator
attention over it, then every model's translation of it, titled with the model's name.
Training curves: the losses, the learning rate and the mean rho of every AdaLIN/LIN layer against
the iteration, from stats.jsonl.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench.data import list_images, load_rgb  # noqa: E402
from bench.files import atomic_write_bytes  # noqa: E402


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def comparison_sheet(task: str, source_dir: Path, columns: list[tuple[str, Path]], out_path: Path,
                     attention_dir: Path | None = None, rows: int = 5, image_size: int = 128) -> Path:
    """`columns` is a list of (model name, folder of its translations of `source_dir`)."""
    sources = list_images(source_dir)[:rows]
    headers = ["source"] + (["U-GAT-IT attention"] if attention_dir is not None else []) + [name for name, _ in columns]
    figure, axes = plt.subplots(len(sources), len(headers), figsize=(1.6 * len(headers), 1.6 * len(sources)), squeeze=False)
    for row, source in enumerate(sources):
        tiles = [load_rgb(source)]
        if attention_dir is not None:
            tiles.append(_open_or_blank(Path(attention_dir) / f"{source.stem}.png"))
        tiles += [_open_or_blank(Path(folder) / f"{source.stem}.png") for _, folder in columns]
        for column, tile in enumerate(tiles):
            axis = axes[row][column]
            axis.imshow(np.asarray(tile.resize((image_size, image_size), Image.Resampling.BILINEAR)))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(headers[column], fontsize=7)
    figure.suptitle(task, fontsize=10)
    return _save(figure, out_path)


def _open_or_blank(path: Path) -> Image.Image:
    return load_rgb(path) if path.is_file() else Image.new("RGB", (8, 8), (128, 128, 128))


def training_curves(stats_path: Path, out_path: Path, title: str) -> Path | None:
    """Losses (log scale), learning rate and rho from a run's stats.jsonl; None when it has no lines."""
    lines = [json.loads(line) for line in Path(stats_path).read_text().splitlines() if line.strip()] if Path(stats_path).exists() else []
    if not lines:
        return None
    steps = [line["step"] for line in lines]
    keys = [k for k in lines[-1] if k not in ("step", "seconds_per_iteration", "lr") and not k.startswith("rho/")]
    rho_keys = [k for k in lines[-1] if k.startswith("rho/")]
    panels = 1 + bool(rho_keys) + ("lr" in lines[-1])
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    axis = axes[0][0]
    for key in keys:
        values = [abs(line.get(key, np.nan)) for line in lines]
        axis.plot(steps, values, label=key, linewidth=1)
    axis.set_xlabel("iteration")
    if keys:
        axis.set_yscale("log")
        axis.set_title("losses (absolute value)")
        axis.legend(fontsize=6)
    else:
        axis.set_title("no losses (the method does not train)")
    panel = 1
    if rho_keys:
        axis = axes[0][panel]
        for key in rho_keys:
            axis.plot(steps, [line.get(key, np.nan) for line in lines], linewidth=0.8,
                      linestyle="--" if "upsample" in key else "-", label=key.removeprefix("rho/"))
        axis.set_ylim(-0.05, 1.05)
        axis.set_xlabel("iteration")
        axis.set_title("mean rho per AdaLIN (solid) / LIN (dashed) layer")
        axis.legend(fontsize=5, ncol=2)
        panel += 1
    if "lr" in lines[-1]:
        axis = axes[0][panel]
        axis.plot(steps, [line["lr"] for line in lines])
        axis.set_xlabel("iteration")
        axis.set_title("learning rate")
    figure.suptitle(title, fontsize=10, y=1.04)
    return _save(figure, out_path)
