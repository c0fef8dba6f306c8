"""Score a folder of translations against real images: KID x100 +- std (and FID), as a record.

Protocols (`protocol`):
  paper    the paper's: TF-GAN's block estimator (blocks of max_block_size = 10) between the
           translated test images and the real test images of the target domain; +- is the standard
           error over blocks. Metric name: kid_paper_block10.
  subsets  torch-fidelity's: `subsets` random subsets of `subset_size`, seed 2020; +- is the std over
           subsets. Metric name: kid_subsets100x1000_seed2020.
  mean     the first author's "mean KID": the average of the paper estimator against the target
           domain and against the source domain (needs the source images). Users have asked which
           one the paper reports; the harness computes both and always says which it shows.
The record carries the protocol, counts, folders, the Inception weights' sha256 (and whether they
are the official ones), package versions and, for `mean`, both components.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eval.features import FeatureSet, folder_features
from eval.fid import fid
from eval.inception import InceptionFeatures, InceptionWeights, resolve_weights
from eval.kid import KID, KIDError, kid_mean, kid_paper, kid_subsets
from safeio.environment import package_versions, resolve_device
from safeio.files import cache_root
from safeio.images import list_images

PROTOCOLS = ("paper", "subsets", "mean")


@dataclass(frozen=True)
class ScoreSettings:
    protocol: str = "paper"
    max_block_size: int = 10
    subsets: int = 100
    subset_size: int = 1000
    seed: int = 2020
    with_fid: bool = True

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")

    @property
    def metric(self) -> str:
        if self.protocol == "subsets":
            return f"kid_subsets{self.subsets}x{self.subset_size}_seed{self.seed}"
        return f"kid_{self.protocol}_block{self.max_block_size}"

    @property
    def std_meaning(self) -> str:
        if self.protocol == "subsets":
            return f"standard deviation over {self.subsets} subsets"
        return "standard error of the block estimates" + (" (average of the two components)" if self.protocol == "mean" else "")


def _finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _kid_record(kid: KID) -> dict[str, float | None]:
    return {"kid": kid.mean, "kid_std": _finite_or_none(kid.std),
            "kid_x100": kid.mean * 100, "kid_std_x100": _finite_or_none(kid.std * 100)}


def check_sample_counts(settings: ScoreSettings, counts: dict[str, int]) -> None:
    """Refuse, before any image is decoded, image counts the protocol's estimator cannot use."""
    real = counts["real"]
    for name in ("fake", "source"):
        if name not in counts:
            continue
        other = counts[name]
        if settings.protocol == "subsets":
            if min(real, other) < settings.subset_size:
                raise KIDError(f"too few samples for the subsets protocol: {real} real and {other} {name}, but each subset "
                               f"takes {settings.subset_size}; lower the subset size (--subset-size, eval.subset_size) "
                               "or use the paper protocol")
        else:
            n_blocks = math.ceil(max(real, other) / settings.max_block_size)
            if min(real, other) < 2 * n_blocks:
                raise KIDError(f"too few samples: {real} real and {other} {name} in {n_blocks} blocks of at most "
                               f"{settings.max_block_size} leave blocks of fewer than 2 images; each set needs at least "
                               f"{2 * n_blocks}")


class Scorer:
    """Scores folders; keeps the Inception network loaded between calls and reuses cached features."""

    def __init__(self, weights: str | None = None, device: str = "auto", cache_dir: str | Path | None = "default",
                 batch_size: int = 50, on_bad_image: str = "fail", progress: bool = True,
                 weights_setting: str = "eval.inception_weights"):
        self.weights: InceptionWeights = resolve_weights(weights, setting=weights_setting)
        self.device = resolve_device(device)
        self.cache_dir = (cache_root() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None))
        self.batch_size, self.on_bad_image, self.progress = batch_size, on_bad_image, progress
        self.extractor = InceptionFeatures(self.weights, self.device)

    def features(self, folder: str | Path) -> FeatureSet:
        return folder_features(folder, self.extractor, self.cache_dir, self.batch_size, self.on_bad_image, self.progress)

    def score(self, real_dir: str | Path, fake_dir: str | Path, source_dir: str | Path | None = None,
              settings: ScoreSettings = ScoreSettings()) -> dict[str, Any]:
        started = time.perf_counter()
        if settings.protocol == "mean" and source_dir is None:
            raise ValueError("the mean protocol needs the source domain's images (--source DIR)")
        check_sample_counts(settings, {name: len(list_images(folder)) for name, folder in
                                       (("real", real_dir), ("fake", fake_dir), ("source", source_dir)) if folder is not None})
        real, fake = self.features(real_dir), self.features(fake_dir)
        source = self.features(source_dir) if source_dir is not None else None
        device = self.device
        record: dict[str, Any] = {"metric": settings.metric, "protocol": settings.protocol, "std_meaning": settings.std_meaning}

        if settings.protocol == "subsets":
            record.update(_kid_record(kid_subsets(real.features, fake.features, settings.subsets, settings.subset_size,
                                                  settings.seed, device=device)))
        elif settings.protocol == "paper":
            record.update(_kid_record(kid_paper(real.features, fake.features, settings.max_block_size, device=device)))
        else:
            average, against_target, against_source = kid_mean(real.features, source.features, fake.features, kid_paper,
                                                                max_block_size=settings.max_block_size, device=device)
            record.update(_kid_record(average))
            record["components"] = {"target": _kid_record(against_target), "source": _kid_record(against_source)}
        if settings.with_fid:
            record["fid"] = fid(real.features, fake.features, device=device)

        record.update({
            "counts": {"real": len(real), "fake": len(fake), "source": len(source) if source else None},
            "skipped": {"real": list(real.skipped), "fake": list(fake.skipped), "source": list(source.skipped) if source else []},
            "folders": {"real": str(real_dir), "fake": str(fake_dir), "source": str(source_dir) if source_dir else None},
            "settings": asdict(settings),
            "weights": self.weights.record(),
            "comparable_with_paper": self.weights.official and settings.protocol in ("paper", "mean"),
            "features_from_cache": {"real": real.cache_hit, "fake": fake.cache_hit, "source": source.cache_hit if source else None},
            "versions": package_versions(),
            "device": str(device),
            "seconds": time.perf_counter() - started,
        })
        return record


def format_score(record: dict[str, Any]) -> str:
    """One line a person reads: KID x100 = a +- b, with what it was computed from."""
    std = record["kid_std_x100"]
    text = f"KID x100 = {record['kid_x100']:.2f} +- {std:.2f}" if std is not None else f"KID x100 = {record['kid_x100']:.2f} (no std: one block)"
    counts = record["counts"]
    text += f"  [{record['metric']}: {counts['real']} real, {counts['fake']} fake"
    text += f", {counts['source']} source]" if counts["source"] else "]"
    if "components" in record:
        parts = record["components"]
        text += f"\n  vs target {parts['target']['kid_x100']:.2f}, vs source {parts['source']['kid_x100']:.2f}"
    if "fid" in record:
        text += f"\n  FID = {record['fid']:.2f}"
    if not record["weights"]["official"]:
        text += f"\n  NOT COMPARABLE WITH THE PAPER: {record['weights']['label']}"
    return text
