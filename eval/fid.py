"""Frechet Inception Distance from the same features as KID (torch-fidelity's formula).

FID = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2}). torch-fidelity takes the last
trace from the eigenvalues of the 2048 x 2048 product S_1 S_2, seconds on a CPU. The same trace is
the nuclear norm of S_1^{1/2} S_2^{1/2}, and, with centred features A_i (n_i x d) and
S_i = A_i^T A_i / (n_i - 1), the nuclear norm of A_1 A_2^T / sqrt((n_1 - 1)(n_2 - 1)): an n_1 x n_2
matrix. With fewer images than feature dimensions (test sets of 100 to 751) that is exact and fast.
"""

from __future__ import annotations

import torch

from eval.kid import KIDError, prepare_features


def fid(features_1, features_2, device: torch.device | None = None) -> float:
    x, y = prepare_features(features_1, features_2, device)
    n_1, n_2, d = x.shape[0], y.shape[0], x.shape[1]
    if min(n_1, n_2) < 2:
        raise KIDError(f"FID needs at least 2 samples per set, got {n_1} and {n_2}")
    mu_1, mu_2 = x.mean(dim=0), y.mean(dim=0)
    a_1, a_2 = x - mu_1, y - mu_2
    trace_1 = a_1.square().sum() / (n_1 - 1)
    trace_2 = a_2.square().sum() / (n_2 - 1)
    if max(n_1, n_2) <= d:
        cross = (a_1 @ a_2.T) / ((n_1 - 1) * (n_2 - 1)) ** 0.5                # n_1 x n_2
    else:
        cross = _psd_sqrt(a_1.T @ a_1 / (n_1 - 1)) @ _psd_sqrt(a_2.T @ a_2 / (n_2 - 1))   # d x d
    trace_sqrt_product = torch.linalg.svdvals(cross).sum()
    return float((mu_1 - mu_2).square().sum() + trace_1 + trace_2 - 2 * trace_sqrt_product)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T
