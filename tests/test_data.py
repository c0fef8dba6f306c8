"""Image loading, the paper's augmentation, seeded sampling order, test-set order, bad images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.pipeline import (DomainStream, SortedImageFolder, StreamSettings, UnpairedTrainingSet, augment,
                                 default_load_size, resize_for_test, training_batches)
from safeio.images import BadImageError, DataError, list_images, load_rgb


def test_default_load_size_keeps_the_papers_ratio():
    assert default_load_size(256) == 286
    assert default_load_size(128) == 143
    assert default_load_size(64) == 72


def gradient_image(width: int = 40, height: int = 30) -> Image.Image:
    """Left-to-right ramp in red, top-to-bottom in green: every flip and crop is visible."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).astype(np.uint8))


@pytest.mark.parametrize("image_size", [16, 32, 64, 256])
def test_augmentation_shapes_and_range(image_size):
    load = default_load_size(image_size)
    for seed in range(5):
        out = augment(gradient_image(), image_size, load, True, np.random.default_rng(seed))
        assert out.shape == (3, image_size, image_size) and out.dtype == torch.float32
        assert out.min() >= -1.0 and out.max() <= 1.0
    test = resize_for_test(gradient_image(), image_size)
    assert test.shape == (3, image_size, image_size) and test.min() >= -1 and test.max() <= 1


def test_flip_happens_about_half_the_time_and_crops_vary():
    flips, offsets = 0, set()
    for seed in range(200):
        out = augment(gradient_image(), 16, 24, True, np.random.default_rng(seed))
        red = out[0]
        flips += int(red[:, 0].mean() > red[:, -1].mean())  # red ramp reversed
        offsets.add(round(float(out[1, 0, 0]), 3))            # green at the top edge tells the crop's row
    assert 70 < flips < 130
    assert len(offsets) > 3
    never = [augment(gradient_image(), 16, 24, False, np.random.default_rng(s))[0] for s in range(20)]
    assert all(r[:, 0].mean() < r[:, -1].mean() for r in never)


def test_test_transform_is_deterministic_and_unflipped():
    a, b = resize_for_test(gradient_image(), 32), resize_for_test(gradient_image(), 32)
    assert torch.equal(a, b) and a[0, :, 0].mean() < a[0, :, -1].mean()


def settings(seed: int = 0, **kwargs) -> StreamSettings:
    return StreamSettings(image_size=16, load_size=18, seed=seed, **kwargs)


def test_sampling_order_is_a_seeded_permutation_per_epoch(tiny_dataset):
    stream = DomainStream(tiny_dataset / "trainA", "A", settings(seed=3))
    n = len(stream)
    first_epoch = [stream.file_at(i) for i in range(n)]
    second_epoch = [stream.file_at(i) for i in range(n, 2 * n)]
    assert sorted(first_epoch) == sorted(stream.files) == sorted(second_epoch)  # every image once per epoch
    assert first_epoch != second_epoch                                            # reshuffled each epoch
    again = DomainStream(tiny_dataset / "trainA", "A", settings(seed=3))
    assert [again.file_at(i) for i in range(2 * n)] == first_epoch + second_epoch
    other_seed = DomainStream(tiny_dataset / "trainA", "A", settings(seed=4))
    assert [other_seed.file_at(i) for i in range(n)] != first_epoch
    # Domain B's order is independent of A's (unpaired).
    stream_b = DomainStream(tiny_dataset / "trainB", "B", settings(seed=3))
    assert [p.name for p in (stream_b.file_at(i) for i in range(n))] != [p.name for p in first_epoch]


def collect(loader) -> list[torch.Tensor]:
    return [torch.cat([a, b]) for a, b in loader]


def test_batches_are_reproducible_resumable_and_worker_independent(tiny_dataset):
    dataset = UnpairedTrainingSet(tiny_dataset, settings(seed=1))
    full = collect(training_batches(dataset, batch_size=2, start_step=0, steps=10))
    again = collect(training_batches(UnpairedTrainingSet(tiny_dataset, settings(seed=1)), 2, 0, 10))
    assert all(torch.equal(x, y) for x, y in zip(full, again))
    resumed = collect(training_batches(dataset, batch_size=2, start_step=6, steps=4))
    assert all(torch.equal(x, y) for x, y in zip(full[6:], resumed))
    with_workers = collect(training_batches(dataset, batch_size=2, start_step=0, steps=10, num_workers=2))
    assert all(torch.equal(x, y) for x, y in zip(full, with_workers))
    other = collect(training_batches(UnpairedTrainingSet(tiny_dataset, settings(seed=2)), 2, 0, 10))
    assert not all(torch.equal(x, y) for x, y in zip(full, other))


def test_test_images_come_in_sorted_file_name_order(tmp_path):
    folder = tmp_path / "testA"
    folder.mkdir()
    for name in ["b.png", "10.png", "2.jpg", "a.PNG"]:
        gradient_image().save(folder / name, format="PNG" if name.lower().endswith("png") else "JPEG")
    (folder / "notes.txt").write_text("not an image")
    images = SortedImageFolder(folder, 16)
    assert [name for _, name in images] == ["10.png", "2.jpg", "a.PNG", "b.png"]


# ------------------------------------------------------------------------------------------------
# Odd and broken images


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16"])
def test_odd_modes_become_rgb(tmp_path, mode):
    base = gradient_image()
    if mode == "I;16":
        image = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    elif mode == "P":
        image = base.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = base.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK",) else "x.png")
    image.save(path)
    rgb = load_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == base.size
    if mode == "I;16":  # 16-bit values are scaled, not clipped to white
        assert 100 < np.asarray(rgb).mean() < 160


def make_folder_with_bad_files(tmp_path: Path) -> Path:
    folder = tmp_path / "trainA"
    folder.mkdir()
    for index in range(3):
        gradient_image().save(folder / f"good{index}.png")
    (folder / "fake.png").write_text("this is not a png")
    good = (folder / "good0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    return folder


def test_bad_image_fails_with_its_path_by_default(tmp_path):
    folder = make_folder_with_bad_files(tmp_path)
    with pytest.raises(BadImageError) as caught:
        SortedImageFolder(folder, 16)
    message = str(caught.value)
    assert str(folder / "fake.png") in message and "on_bad_image: skip" in message


def test_bad_images_are_skipped_and_counted(tmp_path):
    folder = make_folder_with_bad_files(tmp_path)
    test_set = SortedImageFolder(folder, 16, on_bad_image="skip")
    assert [name for _, name in test_set] == ["good0.png", "good1.png", "good2.png"]
    assert sorted(p.name for p in test_set.skipped) == ["fake.png", "truncated.png"]
    stream = DomainStream(folder, "A", settings(on_bad_image="skip"))
    assert "fake.png" in {p.name for p in stream.skipped}
    for sample in range(12):  # the truncated file passes the header check; reading it skips onwards
        assert stream[sample].shape == (3, 16, 16)


def test_empty_missing_and_single_image_folders(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        list_images(tmp_path / "empty")
    (tmp_path / "one").mkdir()
    gradient_image().save(tmp_path / "one" / "x.png")
    assert len(SortedImageFolder(tmp_path / "one", 16)) == 1
    (tmp_path / "allbad").mkdir()
    (tmp_path / "allbad" / "x.png").write_text("no")
    with pytest.raises(DataError, match="none of the 1 image files can be read"):
        SortedImageFolder(tmp_path / "allbad", 16, on_bad_image="skip")
