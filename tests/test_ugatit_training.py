"""U-GAT-IT training: every Table 1 variant trains, rho stays in [0, 1], the schedule, the same
gradients as the official iteration, exact resumption, atomic checkpoints, records and samples."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import interrupt_at

from bench.core.config import TrainConfig
from bench.core.methods import create_method
from bench.core.train import checkpoint_path, load_checkpoint, train
from bench.data.pipeline import StreamSettings, UnpairedTrainingSet
from safeio.files import DiskFullError
from ugatit.compat import discriminator_key, generator_key, official_to_project_states
from ugatit.networks import discriminator_downsamplings
from ugatit.official_reference import official_networks, official_optimizers, official_train_step

CPU = torch.device("cpu")
TINY = dict(width=2, n_res=1, light=True)


def batch(seed: int, size: int = 16) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


VARIANTS = [
    {}, {"norm": "in"}, {"norm": "ln"}, {"norm": "adain"}, {"norm": "gn"},
    {"g_cam": False, "d_cam": False}, {"g_cam": False}, {"d_cam": False},
    {"preset": "official_pytorch"}, {"light": False},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "paper")
def test_every_variant_trains_with_finite_losses_and_moving_weights(variant):
    torch.manual_seed(0)
    method = create_method("ugatit", train=TrainConfig(image_size=16, iterations=10), **{**TINY, **variant})
    before = {name: p.detach().clone() for name, p in method.networks.named_parameters()}
    for step in range(3):
        method.set_step(step)
        losses = method.train_step(batch(step), batch(100 + step))
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values()), losses
    unchanged = {name: p for name, p in method.networks.named_parameters() if torch.equal(before[name], p)}
    # Only a rho the optimiser pushed past a bound and the clip put back may be where it started.
    assert all(name.endswith("rho") and bool(((p == 0) | (p == 1)).all()) for name, p in unchanged.items()), list(unchanged)
    assert len(unchanged) <= 2
    if not method.options.g_cam:
        assert float(losses["G_cam"]) == 0.0


def test_rho_stays_in_the_unit_interval():
    torch.manual_seed(0)
    method = create_method("ugatit", train=TrainConfig(image_size=16, iterations=10, lr=0.5), **TINY)
    for step in range(4):
        method.train_step(batch(step), batch(50 + step))
    values = torch.cat([rho.detach().flatten() for rho in method.rhos])
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert ((values == 0.0) | (values == 1.0)).any()   # the big learning rate pushed some against a bound


def test_learning_rate_schedule_and_weight_decay_scope():
    method = create_method("ugatit", train=TrainConfig(image_size=16, iterations=100), **TINY)
    for step, expected in ((0, 1e-4), (49, 1e-4), (74, 0.5e-4), (99, 0.0)):
        method.set_step(step)
        for optimizer in (method.g_optim, method.d_optim):
            assert all(group["lr"] == pytest.approx(expected) for group in optimizer.param_groups)
    rho_ids = {id(rho) for rho in method.rhos}
    undecayed = [p for g in method.g_optim.param_groups if g["weight_decay"] == 0 for p in g["params"]]
    assert rho_ids <= {id(p) for p in undecayed}          # paper preset: no decay on rho, gamma, beta, biases
    official = create_method("ugatit", train=TrainConfig(image_size=16), preset="official_pytorch", **TINY)
    assert all(g["weight_decay"] == 1e-4 for g in official.g_optim.param_groups)   # official: decay on everything


def test_one_iteration_has_the_official_codes_losses_and_gradients():
    """Same mathematics, less work: one iteration of this project's step and of the official one, on the
    same weights and images, at learning rate 0 so that the gradients can be compared afterwards."""
    torch.manual_seed(0)
    size = 32
    official = official_networks(ngf=4, n_blocks=1, img_size=size, light=True,
                                 global_layers=discriminator_downsamplings(size, 5) + 2,
                                 local_layers=discriminator_downsamplings(size, 3) + 2)
    real_a, real_b = batch(1, size), batch(2, size)
    with torch.no_grad():   # converge the spectral-norm estimates: the two codes run different numbers of power iterations
        for name, network in official.items():
            for _ in range(60 if name.startswith("dis") else 0):
                network(torch.cat([real_a, real_b]))
    method = create_method("ugatit", train=TrainConfig(image_size=size, iterations=10, lr=1e-12), width=4, n_res=1,
                           light=True, preset="official_pytorch")
    method.load_networks(official_to_project_states({k: v.state_dict() for k, v in official.items()}))
    for optimizer in (method.g_optim, method.d_optim):
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    ours = method.train_step(real_a, real_b)

    g_optim, d_optim = official_optimizers(official, lr=0.0)
    gradients = {}
    d_loss, g_loss = official_train_step(official, g_optim, d_optim, real_a, real_b, gradients=gradients)
    assert float(ours["loss_D"]) == pytest.approx(d_loss, rel=1e-5)
    assert float(ours["loss_G"]) == pytest.approx(g_loss, rel=1e-5)
    ours_parameters = {name: dict(method.networks[name].named_parameters()) for name in official}
    compared = 0
    for kind, rename in (("dis", discriminator_key), ("gen", generator_key)):
        for network, grads in gradients[kind].items():
            for key, expected in grads.items():
                actual = ours_parameters[network][rename(key)].grad
                assert actual is not None, (network, key)
                scale = expected.abs().max().clamp_min(1e-6)
                assert (actual - expected).abs().max() / scale < 2e-3, (network, key)
                compared += 1
    assert compared == sum(len(list(n.parameters())) for n in official.values())


def test_three_iterations_match_the_official_code_at_a_real_learning_rate():
    """Three iterations at lr 1e-3, with unequal loss weights, against the official iteration: the losses
    of every step and the weights after the last. A step whose generator update saw the discriminators
    before their update, swapped loss weights, an unweighted discriminator loss or other Adam betas
    would all differ."""
    torch.manual_seed(0)
    size, lr, weights = 32, 1e-3, (1.5, 7.0, 3.0, 900.0)     # adversarial, cycle, identity, CAM
    official = official_networks(ngf=4, n_blocks=1, img_size=size, light=True,
                                 global_layers=discriminator_downsamplings(size, 5) + 2,
                                 local_layers=discriminator_downsamplings(size, 3) + 2)
    batches = [(batch(10 + step, size), batch(20 + step, size)) for step in range(3)]
    with torch.no_grad():   # converge the spectral-norm estimates, as in the one-iteration test
        for name, network in official.items():
            for _ in range(60 if name.startswith("dis") else 0):
                network(torch.cat([batches[0][0], batches[0][1]]))
    method = create_method("ugatit", train=TrainConfig(image_size=size, iterations=1000, lr=lr, schedule="constant"),
                           width=4, n_res=1, light=True, preset="official_pytorch", adv_weight=weights[0],
                           cycle_weight=weights[1], identity_weight=weights[2], cam_weight=weights[3])
    method.load_networks(official_to_project_states({k: v.state_dict() for k, v in official.items()}))
    start = {name: {k: v.detach().clone() for k, v in network.state_dict().items()} for name, network in official.items()}
    g_optim, d_optim = official_optimizers(official, lr=lr)
    # A larger Adam epsilon in both: gradients near zero, whose sign is rounding noise between two correct
    # implementations, would otherwise each take a full +-lr step one way or the other.
    for optimizer in (method.g_optim, method.d_optim, g_optim, d_optim):
        for group in optimizer.param_groups:
            group["eps"] = 1e-3
    for step, (real_a, real_b) in enumerate(batches):
        method.set_step(step)
        ours = method.train_step(real_a, real_b)
        d_loss, g_loss = official_train_step(official, g_optim, d_optim, real_a, real_b, weights=weights)
        assert float(ours["loss_D"]) == pytest.approx(d_loss, rel=1e-4), step
        assert float(ours["loss_G"]) == pytest.approx(g_loss, rel=1e-4), step
    # The weights after three updates: the change of each network, ours against the official code's.
    for name, network in official.items():
        rename = generator_key if name.startswith("gen") else discriminator_key
        ours_state = method.networks[name].state_dict()
        theirs = torch.cat([(v - start[name][k]).flatten() for k, v in network.state_dict().items()
                            if k in start[name] and v.is_floating_point() and not k.endswith(("_u", "_v"))])
        mine = torch.cat([(ours_state[rename(k)] - start[name][k]).flatten() for k, v in network.state_dict().items()
                          if k in start[name] and v.is_floating_point() and not k.endswith(("_u", "_v"))])
        assert theirs.norm() > 0 and (mine - theirs).norm() / theirs.norm() < 0.02, name


@pytest.fixture
def dataset(tiny_dataset):
    return UnpairedTrainingSet(tiny_dataset, StreamSettings(image_size=16, load_size=18, seed=0))


CONFIG = TrainConfig(iterations=8, checkpoint_every=4, log_every=1, sample_every=4, image_size=16, num_workers=0)


def fresh(seed: int = 0):
    torch.manual_seed(seed)
    return create_method("ugatit", train=CONFIG, **TINY)


def stats(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds_per_iteration"}
            for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_interrupted_training_resumes_exactly(dataset, tmp_path):
    train(fresh(), dataset, tmp_path / "full", CONFIG, {}, CPU, progress=False)
    crashing = interrupt_at(fresh(), 6)
    with pytest.raises(KeyboardInterrupt):
        train(crashing, dataset, tmp_path / "cut", CONFIG, {}, CPU, progress=False)
    torch.manual_seed(123)
    outcome = train(fresh(seed=7), dataset, tmp_path / "cut", CONFIG, {}, CPU, progress=False)
    assert outcome.resumed_from == 4
    assert stats(tmp_path / "cut") == stats(tmp_path / "full")


def test_records_and_sample_sheets(dataset, tmp_path, tiny_dataset):
    samples = (torch.stack([dataset.stream_a[i] for i in range(2)]), torch.stack([dataset.stream_b[i] for i in range(2)]))
    train(fresh(), dataset, tmp_path, CONFIG, {}, CPU, progress=False, sample_images=samples)
    record = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])
    assert {"loss_D", "loss_G", "G_adversarial", "G_cycle", "G_identity", "G_cam", "lr", "seconds_per_iteration"} <= set(record)
    assert "rho/a2b/decoder.0.norm1" in record and "rho/b2a/upsample.3" in record
    sheets = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert sheets == ["step_0000004.png", "step_0000008.png"]
    from PIL import Image
    with Image.open(tmp_path / "samples" / sheets[0]) as sheet:
        # 4 rows (2 images x 2 directions) of 6 tiles of 16 px with 2 px padding, enlarged 6 times, under titles.
        assert sheet.width == (6 * 18 + 2) * 6 and sheet.height > (4 * 18 + 2) * 6


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(dataset, tmp_path, fill_disk):
    train(fresh(), dataset, tmp_path, TrainConfig(**{**CONFIG.__dict__, "iterations": 4}), {}, CPU, progress=False)
    good = checkpoint_path(tmp_path).read_bytes()

    fill_disk(capacity=10_000)   # the next checkpoint is much larger: its write fails midway
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*latest\.pt \(.* free"):
        train(fresh(), dataset, tmp_path, CONFIG, {}, CPU, progress=False)
    assert checkpoint_path(tmp_path).read_bytes() == good
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 4
    assert [p.name for p in checkpoint_path(tmp_path).parent.iterdir()] == ["latest.pt"]


def test_translate_uses_eval_mode_and_restores_training_mode():
    method = create_method("ugatit", train=TrainConfig(image_size=16), **TINY)
    u_before = method.dis_local_a.encoder[1].parametrizations.weight[0]._u.clone()
    out, heatmap = method.translate_with_attention(batch(0), "a2b")
    assert out.shape == (1, 3, 16, 16) and heatmap.shape == (1, 1, 4, 4)
    method.sample_sheet(batch(1), batch(2))    # runs the discriminators too
    assert torch.equal(method.dis_local_a.encoder[1].parametrizations.weight[0]._u, u_before)  # no power iteration
    assert method.networks.training


@pytest.mark.slow
def test_compiled_step_matches_eager_on_cpu():
    """torch.compile (inductor, minutes to compile) gives the eager step's losses within 1e-3 relative."""
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        method = create_method("ugatit", train=TrainConfig(image_size=16, iterations=10), compile=compiled, **TINY)
        for step in range(2):
            losses = method.train_step(batch(step), batch(10 + step))
        results.append({k: float(v) for k, v in losses.items()})
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compiled", [False, True])
def test_cuda_fast_path_matches_fp32(compiled):
    """bf16 autocast + channels_last (+ torch.compile) against fp32 eager, same weights and inputs."""
    results = []
    for fast in (False, True):
        torch.manual_seed(0)
        method = create_method("ugatit", train=TrainConfig(image_size=64), device="cuda", width=8, n_res=2, light=True,
                               amp=fast, channels_last=fast, compile=fast and compiled)
        losses = method.train_step(batch(1, 64).cuda(), batch(2, 64).cuda())
        results.append({k: float(v) for k, v in losses.items()})
    for key in ("G_cycle", "G_identity", "G_cam"):
        assert results[1][key] == pytest.approx(results[0][key], rel=5e-2), key
