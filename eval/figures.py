"""Figures generated from run folders: a comparison sheet per task and training curves per run.

Comparison sheet (like the paper's Figure 4, with Figure 5's attention column): one row per source
test image (the first few, in file-name order); columns: the source image, the attention over it of
each model that has one (U-GAT-IT's generator attention, AGGAN's mask), then every model's
translation of it, titled with the model's name.
Training curves: the losses, the learning rate and the mean rho of every AdaLIN/LIN layer against
the iteration, from stats.jsonl.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from safeio.files import atomic_write_bytes, read_step_records  # noqa: E402
from safeio.images import list_images, load_rgb  # noqa: E402


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _title(name: str, width: int = 16) -> str:
    return "\n".join(textwrap.wrap(name, width, break_long_words=True)) or name


def _translation_of(folder: Path, stem: str) -> Path:
    """The translation of input `stem`: <stem>.png, or the first of several per input (<stem>-k0.png)."""
    single = folder / f"{stem}.png"
    return single if single.exists() or not (folder / f"{stem}-k0.png").exists() else folder / f"{stem}-k0.png"


def comparison_sheet(task: str, source_dir: Path, columns: list[tuple[str, Path]], out_path: Path,
                     attention: list[tuple[str, Path]] = (), rows: int = 5, image_size: int = 128,
                     scores: dict[str, str] | None = None) -> Path:
    """`columns` is a list of (model name, folder of its translations of `source_dir`); `attention` a list
    of (model name, folder of its attention overlays); `scores` maps a model name to the text shown
    under its title (its KID)."""
    sources = list_images(source_dir)[:rows]
    scores = scores or {}
    headers = ["source"] + [f"{name} attention" for name, _ in attention] + [name for name, _ in columns]
    titles = [_title(name) + (f"\n{scores[name]}" if name in scores else "") for name in headers]
    title_lines = max(title.count("\n") + 1 for title in titles)
    figure, axes = plt.subplots(len(sources), len(headers), squeeze=False,
                                figsize=(1.9 * len(headers), 1.75 * len(sources) + 0.16 * title_lines),
                                gridspec_kw={"wspace": 0.08, "hspace": 0.08})
    for row, source in enumerate(sources):
        tiles = [load_rgb(source)]
        tiles += [_open_or_blank(Path(folder) / f"{source.stem}.png") for _, folder in attention]
        tiles += [_open_or_blank(_translation_of(Path(folder), source.stem)) for _, folder in columns]
        for column, tile in enumerate(tiles):
            axis = axes[row][column]
            axis.imshow(np.asarray(tile.resize((image_size, image_size), Image.Resampling.BILINEAR)))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[column], fontsize=7, pad=4)
    figure.suptitle(task + (" (KID x100 ± std under each model)" if scores else ""), fontsize=10)
    return _save(figure, out_path)


def _open_or_blank(path: Path) -> Image.Image:
    return load_rgb(path) if path.is_file() else Image.new("RGB", (8, 8), (128, 128, 128))


def _rho_groups(keys: list[str]) -> dict[str, list[str]]:
    """rho/<direction>/<layer> keys grouped by direction and kind: the decoder's AdaLIN layers and the
    up-sampling LIN layers."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        _, direction, layer = key.split("/", 2)
        kind = "up-sampling LIN" if layer.startswith("upsample") else "decoder AdaLIN"
        groups.setdefault(f"{direction} {kind}", []).append(key)
    return groups


def training_curves(stats_path: Path, out_path: Path, title: str) -> Path | None:
    """Losses (log scale), learning rate and rho from a run's stats.jsonl; None when it has no losses
    (a method that does not train, like the identity reference)."""
    lines = read_step_records(stats_path)   # a torn last line (a killed run) is skipped with a warning
    if not lines:
        return None
    steps = [line["step"] for line in lines]
    keys = [k for k in lines[-1] if k not in ("step", "seconds_per_iteration", "lr") and not k.startswith("rho/")]
    if not keys:
        return None
    rho_keys = [k for k in lines[-1] if k.startswith("rho/")]
    panels = ["losses"] + (["rho"] if rho_keys else []) + (["lr"] if "lr" in lines[-1] else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False, layout="constrained")
    axis = axes[0][0]
    for key in keys:
        axis.plot(steps, [abs(line.get(key, np.nan)) for line in lines], label=key, linewidth=1)
    axis.set_xlabel("iteration")
    axis.set_yscale("log")
    axis.set_title("losses (absolute value)", fontsize=9)
    axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    panel = 1
    if rho_keys:
        axis = axes[0][panel]
        for (group, members), colour in zip(_rho_groups(rho_keys).items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            values = np.array([[line.get(key, np.nan) for key in members] for line in lines])
            axis.fill_between(steps, np.nanmin(values, axis=1), np.nanmax(values, axis=1), color=colour, alpha=0.2, linewidth=0)
            axis.plot(steps, np.nanmean(values, axis=1), color=colour, linewidth=1.2, label=f"{group} ({len(members)} layers)")
        axis.set_ylim(-0.05, 1.05)
        axis.set_xlabel("iteration")
        axis.set_title("rho: mean over layers, band from min to max", fontsize=9)
        axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        panel += 1
    if "lr" in lines[-1]:
        axis = axes[0][panel]
        axis.plot(steps, [line["lr"] for line in lines])
        axis.set_xlabel("iteration")
        axis.set_title("learning rate", fontsize=9)
        axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    figure.suptitle(title, fontsize=10)
    return _save(figure, out_path)
