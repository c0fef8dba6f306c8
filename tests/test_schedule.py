"""Learning-rate multipliers: constant, and U-GAT-IT's constant-then-linear decay (Appendix B.2)."""

import pytest

from bench.config import TrainConfig
from bench.schedule import lr_multiplier, resolve_schedule


def test_linear_decay_matches_the_paper_at_one_million_iterations():
    total = 1_000_000
    assert lr_multiplier(0, total, "linear_decay") == 1.0
    assert lr_multiplier(499_999, total, "linear_decay") == 1.0
    assert lr_multiplier(500_000, total, "linear_decay") == pytest.approx(1.0)
    assert lr_multiplier(750_000, total, "linear_decay") == pytest.approx(0.5)
    assert lr_multiplier(1_000_000, total, "linear_decay") == pytest.approx(0.0)


def test_constant_and_unknown():
    assert lr_multiplier(123, 200, "constant") == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        lr_multiplier(0, 10, "cosine")


def test_method_schedule_is_used_unless_overridden():
    assert resolve_schedule(TrainConfig(), "linear_decay") == "linear_decay"
    assert resolve_schedule(TrainConfig(schedule="constant"), "linear_decay") == "constant"
