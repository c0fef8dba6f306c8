"""Is one method's KID really lower than another's? A paired bootstrap over the test images.

Two methods translate the same source test images; their KIDs against the same real images are
correlated, and their difference is what a reader of Table 3 wants to judge. For a pair (1, 2):

  difference  KID_1 - KID_2 (x100 when reported), by the protocol's own estimator (TF-GAN's blocks for
              `paper` and `mean`; for `subsets`, the all-pairs estimate its random subsets estimate);
  95% CI      a paired bootstrap: each resample draws the test images with replacement, applies the
              same draw to both methods, and draws the real images with replacement too; the interval
              is the 2.5th and 97.5th percentiles of the resampled differences;
  p-value     of "both KIDs are equal", two-sided, from the same resamples: twice the smaller share of
              resampled differences on either side of 0, p = 2 (1 + #{d* <= 0}) / (1 + B) or with >= 0,
              at most 1 (the inverted percentile interval: p < 0.05 when the 95% interval leaves 0 out,
              up to the +1 terms and the quantiles' interpolation).
With several pairs, Holm's step-down correction controls the family-wise error (`holm`).

What is resampled is the unbiased MMD^2 over all pairs of images (real x real, fake x fake without the
diagonal, real x fake): what every protocol's number estimates, with the least variance. Resampling
TF-GAN's blocks instead would centre the bootstrap on this all-pairs estimate (a resample's blocks mix
all images) but spread it as widely as a block estimate, which piles p towards 1 under the null.
Pairs of copies of one drawn image are left out of the within-set means, as the diagonal is, so a
resample's estimate stays unbiased. Every kernel value is computed once (float64, on the GPU when
present) and a resample is a gather. At 30 images the bootstrap overestimates the spread of these
U-statistics by about a fifth, so p is a little conservative (tests/test_eval_compare.py).

Why not a permutation test (swap the two methods' translations of random images)? It is the obvious
paired test, but it tests another null, "the two methods' translations are exchangeable": two methods
that miss the real images by the same amount in different ways have equal KIDs, yet it calls them
different most of the time (18 of 30 rejections at 5% in tests/test_eval_compare.py's case). A table
asks whether the KIDs differ, so the p-value comes from the bootstrap, like the interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from eval.kid import KIDError, block_sizes, polynomial_kernel, prepare_features

DEFAULT_RESAMPLES = 2000
CHUNK = 256                     # resamples per gather


@dataclass(frozen=True)
class PairComparison:
    first: str
    second: str
    kid_first_x100: float
    kid_second_x100: float
    difference_x100: float        # first - second
    ci_low_x100: float            # 95% paired bootstrap interval of the difference (all-pairs estimate)
    ci_high_x100: float
    p_value: float                # two-sided, of equal KIDs, from the paired bootstrap
    p_holm: float                 # Holm-adjusted over the comparisons made together

    def record(self) -> dict:
        return asdict(self)


class _Kernel:
    """The kernel over the concatenation [reals..., fakes...] and the offset of each set in it."""

    def __init__(self, sets: list[torch.Tensor]):
        self.offsets = [0]
        for features in sets[:-1]:
            self.offsets.append(self.offsets[-1] + features.shape[0])
        stacked = torch.cat(sets)
        self.values = polynomial_kernel(stacked, stacked)

    def within(self, index: torch.Tensor) -> torch.Tensor:
        """Mean kernel over pairs of distinct images of each row of `index` (B x m) -> B."""
        values = self.values[index[:, :, None], index[:, None, :]]
        distinct = index[:, :, None] != index[:, None, :]
        return (values * distinct).sum((1, 2)) / distinct.sum((1, 2)).clamp_min(1)

    def between(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.values[first[:, :, None], second[:, None, :]].mean((1, 2))


def _kid(kernel: _Kernel, real: torch.Tensor, fake: torch.Tensor, max_block_size: int | None) -> torch.Tensor:
    """KID of each resample: rows of `real` (B x n_r) and `fake` (B x n_f) index the kernel. Blocks of
    the given order as TF-GAN's estimator (max_block_size), or the whole sets at once (None)."""
    n_real, n_fake = real.shape[1], fake.shape[1]
    n_blocks = 1 if max_block_size is None else math.ceil(max(n_real, n_fake) / max_block_size)
    estimates, r0, f0 = [], 0, 0
    for r_size, f_size in zip(block_sizes(n_real, n_blocks), block_sizes(n_fake, n_blocks)):
        r, f = real[:, r0:r0 + r_size], fake[:, f0:f0 + f_size]
        estimates.append(kernel.within(r) + kernel.within(f) - 2 * kernel.between(r, f))
        r0, f0 = r0 + r_size, f0 + f_size
    return torch.stack(estimates, dim=1).mean(dim=1)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compare_pair(real, first, second, source=None, protocol: str = "paper", max_block_size: int = 10,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = 0, device: torch.device | None = None,
                 names: tuple[str, str] = ("first", "second")) -> PairComparison:
    """Compare two translation sets of the same source images (row i of `first` and of `second` translate
    the same image) against `real` (and `source`, for the `mean` protocol). Raw p_holm = p_value."""
    if protocol not in ("paper", "subsets", "mean"):
        raise ValueError(f"unknown protocol {protocol!r}; allowed: paper, subsets, mean")
    if protocol == "mean" and source is None:
        raise ValueError("the mean protocol needs the source domain's features")
    real, first = prepare_features(real, first, device)
    _, second = prepare_features(real, second, real.device)
    if first.shape != second.shape:
        raise KIDError(f"the two translation sets differ in size ({first.shape[0]} and {second.shape[0]} images): "
                       "a paired comparison needs translations of the same source images")
    references = [real] + ([prepare_features(real, source, real.device)[1]] if protocol == "mean" else [])
    kernel = _Kernel(references + [first, second])
    block = None if protocol == "subsets" else max_block_size
    n, dev = first.shape[0], real.device
    first_offset, second_offset = kernel.offsets[-2], kernel.offsets[-1]
    images = torch.arange(n, device=dev)

    def difference(real_rows: list[torch.Tensor], first_rows: torch.Tensor, second_rows: torch.Tensor,
                   block_size: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kid_first = torch.stack([_kid(kernel, rows, first_rows, block_size) for rows in real_rows]).mean(0)
        kid_second = torch.stack([_kid(kernel, rows, second_rows, block_size) for rows in real_rows]).mean(0)
        return kid_first - kid_second, kid_first, kid_second

    identity_rows = [(offset + torch.arange(ref.shape[0], device=dev))[None] for offset, ref in zip(kernel.offsets, references)]
    observed, kid_first, kid_second = difference(identity_rows, (first_offset + images)[None],
                                                 (second_offset + images)[None], block)
    observed = float(observed)

    generator = torch.Generator(device=dev).manual_seed(seed)
    bootstrap = []
    for start in range(0, resamples, CHUNK):
        b = min(CHUNK, resamples - start)
        # The same draw of test images for both methods (they translate the same sources); the reference
        # sets are drawn too, since they are samples of their domains as well.
        drawn = torch.randint(0, n, (b, n), generator=generator, device=dev)
        real_rows = [offset + torch.randint(0, ref.shape[0], (b, ref.shape[0]), generator=generator, device=dev)
                     for offset, ref in zip(kernel.offsets, references)]
        resampled, _, _ = difference(real_rows, first_offset + drawn, second_offset + drawn, None)   # all pairs
        bootstrap.append(resampled)
    bootstrap = torch.cat(bootstrap)
    low, high = torch.quantile(bootstrap, torch.tensor([0.025, 0.975], dtype=bootstrap.dtype, device=dev)).tolist()
    at_or_below, at_or_above = int((bootstrap <= 0).sum()), int((bootstrap >= 0).sum())
    p_value = min(1.0, 2 * (1 + min(at_or_below, at_or_above)) / (1 + resamples))
    return PairComparison(names[0], names[1], float(kid_first) * 100, float(kid_second) * 100, observed * 100,
                          low * 100, high * 100, p_value, p_value)


def compare_all(real, fakes: dict[str, object], source=None, protocol: str = "paper", max_block_size: int = 10,
                resamples: int = DEFAULT_RESAMPLES, seed: int = 0, device: torch.device | None = None,
                pairs: list[tuple[str, str]] | None = None) -> list[PairComparison]:
    """Every pair of `fakes` (or the given `pairs`), Holm-corrected together."""
    names = list(fakes)
    pairs = pairs if pairs is not None else [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    results = [compare_pair(real, fakes[a], fakes[b], source, protocol, max_block_size, resamples, seed, device, (a, b))
               for a, b in pairs]
    adjusted = holm([r.p_value for r in results])
    return [PairComparison(**{**r.record(), "p_holm": p}) for r, p in zip(results, adjusted)]
