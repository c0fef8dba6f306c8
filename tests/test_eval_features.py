"""The feature path with a randomly initialised Inception saved to a temp file (never a download),
the content-keyed cache, weights resolution, bad inputs and `python -m eval score`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from eval.__main__ import main
from eval.features import folder_features
from eval.inception import (InceptionFeatures, InceptionWeights, WeightsError, resolve_weights, sha256_file,
                            write_random_weights)
from eval.kid import KIDError
from eval.score import Scorer, ScoreSettings
from safeio.images import BadImageError, DataError


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp("weights") / "random-inception.pth", seed=0)


def write_images(folder, count: int, seed: int, size: int = 32, mode: str = "RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        base = rng.integers(0, 256, (3,)).astype(np.float64)
        pixels = np.clip(base + rng.normal(0, 40 + 40 * seed, (size, size, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("L") if mode == "L" else image).save(folder / f"{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return {"real": write_images(root / "real", 12, seed=0), "fake": write_images(root / "fake", 12, seed=1),
            "source": write_images(root / "source", 12, seed=2, mode="L")}


def test_random_weights_give_non_degenerate_features_identical_to_torch_fidelitys(weights_file, folders):
    weights = InceptionWeights(weights_file, sha256_file(weights_file))
    extractor = InceptionFeatures(weights, torch.device("cpu"))
    result = folder_features(folders["real"], extractor, cache_dir=None, batch_size=5, progress=False)
    assert result.features.shape == (12, 2048) and result.features.dtype == torch.float32
    assert result.features.abs().mean() > 0.01
    # torch-fidelity's own network on the same uint8 images gives the same features.
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights_file))
    images = torch.stack([torch.from_numpy(np.array(Image.open(folders["real"] / name).convert("RGB"))).permute(2, 0, 1)
                          for name in result.names])
    with torch.no_grad():
        assert torch.allclose(theirs(images)[0], result.features, atol=1e-5)


def test_kid_subsets_end_to_end_equals_torch_fidelity_calculate_metrics(weights_file, folders, tmp_path):
    import torch_fidelity

    scorer = Scorer(str(weights_file), device="cpu", cache_dir=tmp_path, progress=False)
    ours = scorer.score(folders["real"], folders["fake"], settings=ScoreSettings("subsets", subsets=5, subset_size=10, with_fid=False))
    theirs = torch_fidelity.calculate_metrics(input1=str(folders["real"]), input2=str(folders["fake"]), kid=True,
                                              kid_subsets=5, kid_subset_size=10, feature_extractor_weights_path=str(weights_file),
                                              cuda=False, verbose=False, save_cpu_ram=True, cache=False)
    # torch-fidelity computes in float32, this harness in float64: agreement to float32 precision.
    assert ours["kid"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["kid_std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)


def test_cache_hit_miss_and_invalidation(weights_file, folders, tmp_path):
    folder = tmp_path / "changing"
    write_images(folder, 6, seed=3)
    scorer = Scorer(str(weights_file), device="cpu", cache_dir=tmp_path / "cache", progress=False)
    first = scorer.features(folder)
    assert not first.cache_hit
    fresh = Scorer(str(weights_file), device="cpu", cache_dir=tmp_path / "cache", progress=False)
    second = fresh.features(folder)
    assert second.cache_hit and torch.equal(first.features, second.features)
    assert fresh.extractor._network is None            # a hit never loads the network
    Image.new("RGB", (32, 32), (255, 0, 0)).save(folder / "002.png")   # changed bytes, same name
    third = fresh.features(folder)
    assert not third.cache_hit and not torch.equal(third.features[2], first.features[2])
    assert torch.equal(third.features[[0, 1, 3, 4, 5]], first.features[[0, 1, 3, 4, 5]])
    os.rename(folder / "005.png", folder / "006.png")  # a renamed file is another content
    assert not fresh.features(folder).cache_hit
    for entry in (tmp_path / "cache" / "features").rglob("*.pt"):   # a damaged entry is recomputed
        entry.write_bytes(b"garbage")
    assert not fresh.features(folder).cache_hit
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_bad_inputs(weights_file, folders, tmp_path):
    scorer = Scorer(str(weights_file), device="cpu", cache_dir=None, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        scorer.features(tmp_path / "empty")
    broken = write_images(tmp_path / "broken", 3, seed=4)
    (broken / "fake.png").write_text("not an image")
    with pytest.raises(BadImageError, match="fake.png"):
        scorer.features(broken)
    skipping = Scorer(str(weights_file), device="cpu", cache_dir=None, on_bad_image="skip", progress=False)
    result = skipping.features(broken)
    assert len(result) == 3 and result.skipped == ("fake.png",)
    one = write_images(tmp_path / "one", 1, seed=5)
    with pytest.raises(KIDError, match="too few samples"):
        scorer.score(folders["real"], one, settings=ScoreSettings(with_fid=False))
    with pytest.raises(ValueError, match="needs the source domain"):
        scorer.score(folders["real"], folders["fake"], settings=ScoreSettings("mean"))
    mixed = write_images(tmp_path / "mixed", 3, seed=6, size=40)   # other sizes and grayscale are fine
    write_images(tmp_path / "mixed_small", 2, seed=7, size=24, mode="L")
    for path in (tmp_path / "mixed_small").iterdir():
        path.rename(mixed / f"small_{path.name}")
    assert len(scorer.features(mixed)) == 5


def test_weights_resolution(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights(str(tmp_path / "missing.pth"))
    monkeypatch.setenv("UGATIT_BENCH_CACHE", str(tmp_path / "cache"))
    random_weights = resolve_weights("random")
    assert random_weights.path.parent == tmp_path / "cache" / "weights" and not random_weights.official
    assert "RANDOM stand-in" in random_weights.label and "not comparable" in random_weights.label
    monkeypatch.setenv("UGATIT_BENCH_INCEPTION", str(random_weights.path))
    by_path = resolve_weights(None)   # a weights file given by path is identified by its bytes
    assert by_path.path == random_weights.path and by_path.sha256 == sha256_file(random_weights.path)
    monkeypatch.delenv("UGATIT_BENCH_INCEPTION")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match="no Inception weights"):
        resolve_weights(None, allow_download=False)   # tests never download
    official = InceptionWeights(tmp_path / "x.pth", "6726825d" + "0" * 56)
    assert official.official and "official Inception-v3" in official.label


def test_command_line_prints_kid_and_writes_the_record(weights_file, folders, tmp_path, capsys):
    out = tmp_path / "record.json"
    code = main(["score", "--real", str(folders["real"]), "--fake", str(folders["fake"]), "--source", str(folders["source"]),
                 "--protocol", "mean", "--weights", str(weights_file), "--cache-dir", str(tmp_path / "c"),
                 "--json", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "KID x100 = " in printed and "NOT COMPARABLE WITH THE PAPER" in printed
    record = json.loads(out.read_text())
    assert record["protocol"] == "mean" and record["metric"] == "kid_mean_block10"
    assert record["counts"] == {"real": 12, "fake": 12, "source": 12}
    assert record["weights"]["sha256"] == sha256_file(weights_file) and record["weights"]["official"] is False
    assert record["comparable_with_paper"] is False and "torch" in record["versions"]
    assert record["kid_x100"] == pytest.approx(record["kid"] * 100)
    assert set(record["components"]) == {"target", "source"} and "fid" in record
    assert main(["score", "--real", str(tmp_path / "nope"), "--fake", str(folders["fake"]), "--weights", str(weights_file)]) == 2
    assert "image folder not found" in capsys.readouterr().err
