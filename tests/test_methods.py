"""The method registry and the Method contract, on the two simple methods."""

from __future__ import annotations

import io

import pytest
import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, create_method, method_class, register_method, registered_methods
from bench.core.schema import ConfigError


def test_registry_lists_simple_methods():
    assert {"identity", "dummy"} <= set(registered_methods())


def test_unknown_name_lists_registered_and_suggests():
    with pytest.raises(KeyError) as caught:
        create_method("dumm")
    assert "Did you mean 'dummy'?" in str(caught.value) and "identity" in str(caught.value)


def test_planned_method_says_it_is_not_implemented(planned_method):
    with pytest.raises(KeyError, match="planned but not implemented"):
        method_class(planned_method)


def test_options_are_validated():
    with pytest.raises(ConfigError, match="options.learning_rate: unknown key"):
        create_method("dummy", learning_rate=1.0)
    assert create_method("dummy", lr=0.5).options.lr == 0.5


def test_registering_twice_under_one_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        @register_method("dummy")
        class Other(Method):
            pass
    with pytest.raises(TypeError):
        register_method("not_a_method")(object)


def random_batch(seed: int, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=generator) * 2 - 1


def test_dummy_trains_and_translates():
    method = create_method("dummy", train=TrainConfig(iterations=50))
    before = {k: v.clone() for k, v in method.state_dict().items() if torch.is_tensor(v)}
    for step in range(5):
        method.set_step(step)
        losses = method.train_step(random_batch(step), random_batch(100 + step) * 0.5)
    assert set(losses) == {"moments_a2b", "moments_b2a"}
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    after = method.state_dict()
    assert not torch.equal(before["scale"], after["scale"])
    images = random_batch(7)
    for direction in ("a2b", "b2a"):
        out = method.translate(images, direction)
        assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match="direction must be"):
        method.translate(images, "a2a")


def test_state_dict_round_trips_through_weights_only_load():
    method = create_method("dummy")
    method.train_step(random_batch(0), random_batch(1))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = create_method("dummy")
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    images = random_batch(3)
    assert torch.equal(restored.translate(images, "a2b"), method.translate(images, "a2b"))
    # The optimizer state came back too: the next step is identical.
    a, b = random_batch(4), random_batch(5)
    assert method.train_step(a, b)["moments_a2b"] == restored.train_step(a, b)["moments_a2b"]


def test_identity_translates_to_itself():
    method = create_method("identity")
    images = random_batch(0)
    assert torch.equal(method.translate(images, "b2a"), images)
    assert method.train_step(images, images) == {}


def test_learning_rate_schedule_follows_train_settings():
    method = create_method("dummy", train=TrainConfig(iterations=100, schedule="linear_decay", lr=0.1))
    method.set_step(0)
    assert method.extra_stats()["lr"] == pytest.approx(0.1)
    method.set_step(74)
    assert method.extra_stats()["lr"] == pytest.approx(0.05)
    method.set_step(99)
    assert method.extra_stats()["lr"] == pytest.approx(0.0)


def test_iterations_default_to_the_methods_reference_length():
    from bench.core.methods import method_class, resolve_training
    from bench.core.schema import ConfigError

    assert create_method("dummy").train_config.iterations == 1000
    assert create_method("dummy", train=TrainConfig(iterations=7)).train_config.iterations == 7
    assert resolve_training(method_class("ugatit"), method_class("ugatit").Options(), TrainConfig(), None).iterations == 1_000_000

    class NoReference(Method):
        train_step = translate = state_dict = load_state_dict = lambda *a: None

    NoReference.name = "no_reference"
    with pytest.raises(ConfigError, match="no reference training length without its dataset; set train.iterations"):
        resolve_training(NoReference, None, TrainConfig(), None)
