"""Learning-rate multipliers: constant, and U-GAT-IT's constant-then-linear decay (Appendix B.2)."""

import pytest

from bench.core.config import TrainConfig
from bench.core.schedule import lr_multiplier, resolve_schedule


def test_linear_decay_matches_the_paper_at_one_million_iterations():
    total = 1_000_000
    assert lr_multiplier(0, total, "linear_decay") == 1.0
    assert lr_multiplier(499_999, total, "linear_decay") == 1.0          # 1-based iteration 500,000
    assert lr_multiplier(500_000, total, "linear_decay") == pytest.approx(1 - 1 / 500_000)
    assert lr_multiplier(749_999, total, "linear_decay") == pytest.approx(0.5)
    assert lr_multiplier(999_999, total, "linear_decay") == 0.0          # the last iteration


def test_linear_decay_equals_the_official_codes_running_subtraction():
    total, lr = 10, 1e-4
    running = lr
    for step in range(total):               # official: for t in 1..N: if t > N // 2: lr -= lr0 / (N // 2)
        if step + 1 > total // 2:
            running -= lr / (total // 2)
        assert lr * lr_multiplier(step, total, "linear_decay") == pytest.approx(running, abs=1e-15)


def test_step_schedule_halves_every_100k_iterations_like_units_steplr():
    assert lr_multiplier(0, 10**6, "step") == 1.0
    assert lr_multiplier(99_998, 10**6, "step") == 1.0
    assert lr_multiplier(99_999, 10**6, "step") == 0.5       # the scheduler has been stepped 100,000 times
    assert lr_multiplier(250_000, 10**6, "step") == 0.25


def test_constant_and_unknown():
    assert lr_multiplier(123, 200, "constant") == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        lr_multiplier(0, 10, "cosine")


def test_method_schedule_is_used_unless_overridden():
    assert resolve_schedule(TrainConfig(), "linear_decay") == "linear_decay"
    assert resolve_schedule(TrainConfig(schedule="constant"), "linear_decay") == "constant"
