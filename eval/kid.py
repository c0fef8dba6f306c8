"""Kernel Inception Distance estimators, in float64 (on the GPU when present). Raw values; x100 is
applied only when reported.

All use the cubic polynomial kernel k(x, y) = (x . y / d + 1)^3 of Binkowski et al. (2018).

`kid_paper`: the paper's estimator, TF-GAN's kernel_classifier_distance_and_std_from_activations
with max_block_size = 10 (the first author's script; docs/kid-protocol.md):
  n_blocks = ceil(max(n_real, n_fake) / max_block_size); each set is split in its given order into
  n_blocks contiguous blocks whose sizes differ by at most one (the last n mod n_blocks blocks get
  the extra row); per block, the unbiased MMD^2 with off-diagonal means within each set;
  mean = average over blocks; std = sqrt(Bessel variance / n_blocks), the standard error.

`kid_subsets`: torch-fidelity's estimator, kid_features_to_metric: `subsets` random subsets of
`subset_size` rows of each set, drawn without replacement by numpy's RandomState(seed) in its call
order; per subset the "unbiased" MMD^2 of torch-fidelity (cross term over m^2); mean and population
std over subsets. Gives torch-fidelity's numbers for the same features and seed.

`kid_mean`: the first author's "mean KID" variant: the average of KID(fake, real target) and
KID(fake, real source), and of their stds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from safeio.files import InputError

# Up to this many rows per set, kid_subsets computes every kernel value once and gathers the subsets'
# entries; beyond it (large sample sets), each subset's kernels are computed afresh.
PRECOMPUTE_KERNELS_UP_TO = 4096


class KIDError(InputError, ValueError):
    """Inputs a KID estimator cannot use: too few samples, mismatched widths, non-finite values."""


@dataclass(frozen=True)
class KID:
    mean: float     # raw KID (not x100)
    std: float      # the protocol's spread: standard error (paper) or std over subsets (subsets)


def _as_float64(features, name: str, device: torch.device | None) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
    if tensor.dim() != 2:
        raise KIDError(f"{name} features must be a 2-d array (samples x dimensions), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise KIDError(f"{name} features contain NaN or infinite values")
    return tensor.to(device=device or _default_device(), dtype=torch.float64)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_features(real, fake, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature matrices as float64 on `device`, refused (KIDError) when their widths differ or a row is not finite."""
    real, fake = _as_float64(real, "real", device), _as_float64(fake, "fake", device)
    if real.shape[1] != fake.shape[1]:
        raise KIDError(f"feature widths differ: real {real.shape[1]}, fake {fake.shape[1]}")
    return real, fake


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def block_sizes(n: int, n_blocks: int) -> list[int]:
    """How TF-GAN's block estimator splits n rows into n_blocks blocks: sizes differing by at most one."""
    base, extra = divmod(n, n_blocks)
    return [base] * (n_blocks - extra) + [base + 1] * extra


def kid_paper(real, fake, max_block_size: int = 10, device: torch.device | None = None) -> KID:
    """TF-GAN's block estimator (see the module docstring); NaN std for a single block, as TF-GAN."""
    real, fake = prepare_features(real, fake, device)
    n_real, n_fake = real.shape[0], fake.shape[0]
    if max_block_size < 2:
        raise KIDError(f"max_block_size must be at least 2, got {max_block_size}")
    n_blocks = math.ceil(max(n_real, n_fake) / max_block_size)
    if min(n_real, n_fake) < 2 * n_blocks:
        raise KIDError(
            f"too few samples: {n_real} real and {n_fake} fake split into {n_blocks} blocks (max_block_size "
            f"{max_block_size}) leave blocks with fewer than 2 rows; each set needs at least {2 * n_blocks} images"
        )
    estimates = []
    real_start = fake_start = 0
    for real_size, fake_size in zip(block_sizes(n_real, n_blocks), block_sizes(n_fake, n_blocks)):
        r = real[real_start:real_start + real_size]
        g = fake[fake_start:fake_start + fake_size]
        real_start += real_size
        fake_start += fake_size
        k_rr, k_gg, k_rg = polynomial_kernel(r, r), polynomial_kernel(g, g), polynomial_kernel(r, g)
        m, n = float(real_size), float(fake_size)
        estimates.append((k_rr.sum() - k_rr.trace()) / (m * (m - 1)) + (k_gg.sum() - k_gg.trace()) / (n * (n - 1))
                         - 2 * k_rg.mean())
    ests = torch.stack(estimates)
    mean = ests.mean()
    std = torch.sqrt(ests.var(correction=1) / n_blocks) if n_blocks > 1 else torch.tensor(float("nan"))
    return KID(float(mean), float(std))


def kid_subsets(real, fake, subsets: int = 100, subset_size: int = 1000, seed: int = 2020,
                device: torch.device | None = None) -> KID:
    """torch-fidelity's subset estimator, same subsets for the same seed (see the module docstring)."""
    real, fake = prepare_features(real, fake, device)
    n_real, n_fake = real.shape[0], fake.shape[0]
    if subset_size < 2 or subsets < 1:
        raise KIDError(f"subset_size must be at least 2 and subsets at least 1 (got {subset_size}, {subsets})")
    if min(n_real, n_fake) < subset_size:
        raise KIDError(f"too few samples: the subset size {subset_size} is larger than the real ({n_real}) or fake "
                       f"({n_fake}) set; lower eval.subset_size (or --subset-size)")
    rng = np.random.RandomState(seed)
    index_real, index_fake = [], []
    for _ in range(subsets):   # the same call order as torch-fidelity: real subset, then fake subset
        index_real.append(rng.choice(n_real, subset_size, replace=False))
        index_fake.append(rng.choice(n_fake, subset_size, replace=False))
    m = float(subset_size)
    estimates = torch.empty(subsets, dtype=torch.float64, device=real.device)
    precompute = max(n_real, n_fake) <= PRECOMPUTE_KERNELS_UP_TO
    if precompute:
        k_rr, k_gg, k_rg = polynomial_kernel(real, real), polynomial_kernel(fake, fake), polynomial_kernel(real, fake)
    for index, (ir, ig) in enumerate(zip(index_real, index_fake)):
        ir = torch.as_tensor(ir, device=real.device)
        ig = torch.as_tensor(ig, device=real.device)
        if precompute:
            s_rr, s_gg, s_rg = k_rr[ir][:, ir], k_gg[ig][:, ig], k_rg[ir][:, ig]
        else:
            r, g = real[ir], fake[ig]
            s_rr, s_gg, s_rg = polynomial_kernel(r, r), polynomial_kernel(g, g), polynomial_kernel(r, g)
        estimates[index] = ((s_rr.sum() - s_rr.trace()) + (s_gg.sum() - s_gg.trace())) / (m * (m - 1)) - 2 * s_rg.sum() / (m * m)
    return KID(float(estimates.mean()), float(estimates.std(correction=0)))


def kid_mean(target, source, fake, estimator, **kwargs) -> tuple[KID, KID, KID]:
    """The "mean KID" variant: (average, KID vs target, KID vs source) with the same estimator."""
    against_target = estimator(target, fake, **kwargs)
    against_source = estimator(source, fake, **kwargs)
    average = KID((against_target.mean + against_source.mean) / 2, (against_target.std + against_source.std) / 2)
    return average, against_target, against_source
