"""The scorer from Python (a notebook, a script): the same records `python -m eval score` writes.

    import eval
    record = eval.calculate_kid(real="data/selfie2anime/testB", fake="runs/.../translations/a2b")
    record["kid_x100"], record["kid_std_x100"], record["weights"]["official"]

    records = eval.calculate_kids(real="data/horse2zebra/testB",
                            fake={"CycleGAN": "out/cyclegan/a2b", "U-GAT-IT": "out/ugatit/a2b"})

Features are cached by content (the same cache as the command line), so scoring again is fast. Nothing
here imports the harness: scoring two folders needs only this package and safeio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from eval.score import Scorer, ScoreSettings


def calculate_kid(real: str | Path, fake: str | Path, source: str | Path | None = None, *, protocol: str = "paper",
        weights: str | None = None, device: str = "auto", max_block_size: int = 10, subsets: int = 100,
        subset_size: int = 1000, seed: int = 2020, fid: bool = True, cache_dir: str | Path | None = "default",
        batch_size: int = 50, skip_bad_images: bool = False, progress: bool = False) -> dict[str, Any]:
    """Score the translations in `fake` against the real images in `real`: KID x100 +- std (and FID).

    protocol: "paper" (the paper's TF-GAN block estimator, blocks of `max_block_size`), "subsets"
    (torch-fidelity's `calculate_metrics` KID: `subsets` x `subset_size`, `seed`), or "mean" (the mean of
    KID against `real` and against `source`, the source domain's images). weights: a path to the Inception
    weights, "random" for a stand-in (not comparable with the paper), or None for $UGATIT_BENCH_INCEPTION
    or torch-fidelity's own file. Returns the record `python -m eval score` writes: kid_x100,
    kid_std_x100, fid, metric, protocol, counts, folders, weights (sha256, official), versions, seconds.
    """
    return _scorer(weights, device, cache_dir, batch_size, skip_bad_images, progress).score(
        real, fake, source, ScoreSettings(protocol, max_block_size, subsets, subset_size, seed, with_fid=fid))


def calculate_kids(real: str | Path, fake: Mapping[str, str | Path], source: str | Path | None = None,
             **options: Any) -> dict[str, dict[str, Any]]:
    """`calculate_kid` of several translation folders against the same real images, {label: record}; the real
    images' features are extracted once."""
    settings = ScoreSettings(options.pop("protocol", "paper"), options.pop("max_block_size", 10), options.pop("subsets", 100),
                             options.pop("subset_size", 1000), options.pop("seed", 2020), with_fid=options.pop("fid", True))
    scorer = _scorer(**options)
    return {label: scorer.score(real, folder, source, settings) for label, folder in fake.items()}


def _scorer(weights: str | None = None, device: str = "auto", cache_dir: str | Path | None = "default", batch_size: int = 50,
            skip_bad_images: bool = False, progress: bool = False) -> Scorer:
    return Scorer(weights, device, cache_dir, batch_size, "skip" if skip_bad_images else "fail", progress=progress,
                  weights_setting="weights=")
