"""KID and FID estimators against references: torch-fidelity's code, an independent NumPy version of
TF-GAN's block estimator written here from docs/kid-protocol.md, and hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

import eval.kid as kid_module
from eval.fid import fid
from eval.kid import KIDError, kid_mean, kid_paper, kid_subsets


def features(n: int, d: int = 2048, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(shift, 1.0, size=(n, d))) * 0.3   # non-negative like pool_3 activations


def reference_block_kid(real: np.ndarray, fake: np.ndarray, max_block_size: int) -> tuple[float, float]:
    """TF-GAN's kernel_classifier_distance_and_std_from_activations, from the notes, in float64 NumPy."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    n_r, n_g, d = len(real), len(fake), real.shape[1]
    n_blocks = int(np.ceil(max(n_r, n_g) / max_block_size))

    def sizes(n):   # floor(n / blocks) each, and one more for the last (n mod blocks)
        return [n // n_blocks] * (n_blocks - n % n_blocks) + [n // n_blocks + 1] * (n % n_blocks)

    bounds_r = np.concatenate([[0], np.cumsum(sizes(n_r))])
    bounds_g = np.concatenate([[0], np.cumsum(sizes(n_g))])
    estimates = []
    for i in range(n_blocks):
        r, g = real[bounds_r[i]:bounds_r[i + 1]], fake[bounds_g[i]:bounds_g[i + 1]]
        m, n = len(r), len(g)
        k_rr, k_gg, k_rg = (r @ r.T / d + 1) ** 3, (g @ g.T / d + 1) ** 3, (r @ g.T / d + 1) ** 3
        estimates.append((k_rr.sum() - np.trace(k_rr)) / (m * (m - 1)) + (k_gg.sum() - np.trace(k_gg)) / (n * (n - 1))
                         - 2 * k_rg.mean())
    estimates = np.array(estimates)
    std = np.sqrt(estimates.var(ddof=1) / n_blocks) if n_blocks > 1 else float("nan")
    return float(estimates.mean()), float(std)


@pytest.mark.parametrize("n_real, n_fake, block", [(100, 100, 10), (100, 95, 10), (751, 400, 10), (95, 100, 7), (60, 45, 3)])
def test_paper_estimator_equals_independent_reference(n_real, n_fake, block):
    real, fake = features(n_real, seed=1), features(n_fake, seed=2, shift=0.2)
    expected = reference_block_kid(real, fake, block)
    result = kid_paper(real, fake, max_block_size=block)
    assert result.mean == pytest.approx(expected[0], rel=1e-10, abs=1e-14)
    assert result.std == pytest.approx(expected[1], rel=1e-10)


def test_paper_estimator_keeps_the_given_order():
    real, fake = features(40, seed=3), features(40, seed=4, shift=0.5)
    shuffled = fake[np.random.default_rng(0).permutation(40)]
    assert kid_paper(real, fake).std != pytest.approx(kid_paper(real, shuffled).std, rel=1e-6)


def test_hand_checkable_cases():
    zeros = np.zeros((4, 1))
    # k(0, y) = 1 everywhere; fake of ones: k = 8 within fake. Each block: 1 + 8 - 2 = 7.
    assert kid_paper(zeros, np.ones((4, 1)), max_block_size=2).mean == pytest.approx(7.0)
    assert kid_paper(zeros, np.ones((4, 1)), max_block_size=2).std == pytest.approx(0.0)
    # Second block's fake rows are 2: k = 125, estimate 124; mean 65.5; Bessel variance 2 * 58.5^2; std = 58.5.
    result = kid_paper(zeros, np.array([[1.0], [1.0], [2.0], [2.0]]), max_block_size=2)
    assert result.mean == pytest.approx(65.5) and result.std == pytest.approx(58.5)
    # One block: TF-GAN reports no standard error.
    assert math.isnan(kid_paper(zeros, np.ones((4, 1)), max_block_size=10).std)


@pytest.mark.parametrize("precompute_limit", [4096, 0])   # both code paths: gathered kernels, kernels per subset
def test_subset_estimator_equals_torch_fidelity(monkeypatch, precompute_limit):
    real, fake = features(220, seed=5), features(180, seed=6, shift=0.1)
    monkeypatch.setattr(kid_module, "PRECOMPUTE_KERNELS_UP_TO", precompute_limit)
    ours = kid_subsets(real, fake, subsets=12, subset_size=90, seed=2020)
    theirs = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=12,
                                    kid_subset_size=90, rng_seed=2020, verbose=False)
    assert abs(ours.mean - theirs[KEY_METRIC_KID_MEAN]) / abs(theirs[KEY_METRIC_KID_MEAN]) < 1e-6
    assert abs(ours.std - theirs[KEY_METRIC_KID_STD]) / abs(theirs[KEY_METRIC_KID_STD]) < 1e-6
    other_seed = kid_subsets(real, fake, subsets=12, subset_size=90, seed=1)
    assert other_seed.mean != pytest.approx(ours.mean, rel=1e-9)


def test_mean_variant_averages_target_and_source():
    target, source, fake = features(30, seed=7), features(30, seed=8, shift=1.0), features(30, seed=9, shift=0.3)
    average, against_target, against_source = kid_mean(target, source, fake, kid_paper, max_block_size=10)
    assert against_target == kid_paper(target, fake)
    assert average.mean == pytest.approx((against_target.mean + against_source.mean) / 2)
    assert average.std == pytest.approx((against_target.std + against_source.std) / 2)


def test_identical_distributions_score_near_zero_and_different_ones_do_not():
    real = features(200, seed=10)
    same = features(200, seed=11)
    other = features(200, seed=12, shift=1.0)
    assert abs(kid_paper(real, same).mean) < 5 * kid_paper(real, same).std + 1e-3
    assert kid_paper(real, other).mean > 20 * kid_paper(real, other).std


@pytest.mark.parametrize("call, message", [
    (lambda: kid_paper(features(1), features(1)), "too few samples"),
    (lambda: kid_paper(features(100), features(15)), "each set needs at least 20 images"),
    (lambda: kid_subsets(features(50), features(50), subset_size=100), "too few samples"),
    (lambda: kid_paper(features(20, d=8), features(20, d=16)), "feature widths differ"),
    (lambda: kid_paper(np.full((20, 4), np.nan), features(20, d=4)), "NaN or infinite"),
    (lambda: kid_paper(np.zeros(20), features(20, d=4)), "must be a 2-d array"),
])
def test_bad_inputs_are_refused_clearly(call, message):
    with pytest.raises(KIDError, match=message):
        call()


@pytest.mark.parametrize("n_1, n_2, d", [(100, 95, 2048), (150, 120, 16)])
def test_fid_equals_torch_fidelity(n_1, n_2, d):
    x, y = features(n_1, d=d, seed=13), features(n_2, d=d, seed=14, shift=0.4)
    expected = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(x)),
                                        fid_features_to_statistics(torch.from_numpy(y)), verbose=False)
    assert fid(x, y) == pytest.approx(expected["frechet_inception_distance"], rel=1e-6)
