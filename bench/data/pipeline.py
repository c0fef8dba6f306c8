"""Images in, tensors out: unpaired training streams and ordered test sets.

Layout: `<root>/<dataset>/{trainA,trainB,testA,testB}/` holding image files (jpg, png, ...).

Training (paper, Appendix B.2; the official PyTorch code applies the same three steps in this
order): random horizontal flip (p = 0.5), resize to `load_size` x `load_size` (286 for 256 crops, i.e.
image_size * 286 / 256), random crop `image_size` x `image_size`, scale to [-1, 1].
Test: resize to `image_size` x `image_size`, scale to [-1, 1]. Resizing is PIL bilinear on the
image, as torchvision's Resize on PIL images in the official code.

That is the "paper" pipeline. A method whose authors' code prepares images otherwise names its own
(`Method.data_pipeline`); PIPELINES lists them, and bench/data/reference_pipelines.py holds them.

Sampling is by iteration, not by epoch: sample i of a domain's stream is image
`permutation_e[i mod n]` of epoch e = i // n, with a fresh permutation per epoch, and its flip and
crop are drawn from a generator seeded by (seed, domain, i). Both depend only on (seed, i), so the
order is reproducible with any number of loader workers, and a run resumed at iteration k simply
starts the stream at sample k * batch_size.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.data import reference_pipelines
from bench.data.reference_pipelines import to_tensor
from safeio.images import BadImageError, DataError, check_images, list_images, load_rgb

log = logging.getLogger(__name__)

_DOMAIN_IDS = {"A": 0, "B": 1, "B_smoothed": 2}   # B_smoothed: CartoonGAN's edge-smoothed cartoons
_STREAM_ORDER, _STREAM_AUGMENT = 0, 1


def default_load_size(image_size: int) -> int:
    """The paper resizes to 286 before cropping 256; other sizes keep that ratio."""
    return int(round(image_size * 286 / 256))


def augment(image: Image.Image, image_size: int, load_size: int, flip: bool, rng: np.random.Generator) -> torch.Tensor:
    """The paper's training augmentation: flip (p = 0.5), resize to load_size, random crop image_size."""
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.resize((load_size, load_size), Image.Resampling.BILINEAR)
    top = int(rng.integers(0, load_size - image_size + 1))
    left = int(rng.integers(0, load_size - image_size + 1))
    image = image.crop((left, top, left + image_size, top + image_size))
    return to_tensor(image)


def resize_for_test(image: Image.Image, image_size: int) -> torch.Tensor:
    return to_tensor(image.resize((image_size, image_size), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class StreamSettings:
    image_size: int
    load_size: int
    flip: bool = True
    seed: int = 0
    on_bad_image: str = "fail"
    pipeline: str = "paper"       # a key of PIPELINES


@dataclass(frozen=True)
class Pipeline:
    """How one training image is augmented and one test image resized."""

    train: Callable[[Image.Image, StreamSettings, np.random.Generator], torch.Tensor]
    test: Callable[[Image.Image, int], torch.Tensor]
    description: str
    paired_rows: bool = False     # AGGAN: fixed rows (A[i mod |A|], B[i mod |B|]), one flip and crop per row
    uses_data_settings: bool = False   # whether data.load_size and data.flip apply


def _paper_train(image: Image.Image, settings: StreamSettings, rng: np.random.Generator) -> torch.Tensor:
    return augment(image, settings.image_size, settings.load_size, settings.flip, rng)


def _tf_ugatit_train(image: Image.Image, settings: StreamSettings, rng: np.random.Generator) -> torch.Tensor:
    return reference_pipelines.tf_ugatit_train(image, settings.image_size, settings.seed, rng)


_R = reference_pipelines
PIPELINES = {
    "paper": Pipeline(_paper_train, resize_for_test,
                      "flip p=0.5, PIL bilinear resize to load_size (286 for 256), random crop; test: PIL bilinear resize",
                      uses_data_settings=True),
    "tf_ugatit": Pipeline(_tf_ugatit_train, _R.tf_ugatit_test,
                          "official TF U-GAT-IT: TF1 bilinear resize; one coin per run: flip + resize +30 + crop every "
                          "image, or none; test: cv2 bilinear resize"),
    "cyclegan": Pipeline(lambda image, s, rng: _R.cyclegan_train(image, s.image_size, default_load_size(s.image_size), rng),
                         _R.cyclegan_test, "CycleGAN's: bicubic resize to 286/256 of the size, random crop, flip; "
                                           "test: bicubic resize"),
    "unit": Pipeline(lambda image, s, rng: _R.unit_train(image, s.image_size, rng), _R.unit_test,
                     "UNIT's and MUNIT's: flip, shorter side to the size, random crop (square images: flip only); "
                     "test: shorter side to the size"),
    "drit": Pipeline(lambda image, s, rng: _R.drit_train(image, s.image_size, rng), _R.drit_test,
                     "DRIT's: bicubic resize to the size, random crop 216/256 of it, flip; test: the centre crop"),
    "aggan": Pipeline(lambda image, s, rng: _R.aggan_train(image, s.image_size, default_load_size(s.image_size), rng),
                      _R.aggan_test, "AGGAN's: fixed rows of an A and a B image, TF1 bilinear resize to 286/256 of the "
                                     "size, one flip and crop per row; test: TF1 bilinear resize", paired_rows=True),
    "cartoongan": Pipeline(lambda image, s, rng: _R.cartoongan_train(image, s.image_size, rng), _R.cartoongan_test,
                           "CartoonGAN's: bilinear resize to the size, flip (no crop); test: the same resize"),
}


def pipeline(name: str) -> Pipeline:
    if name not in PIPELINES:
        raise ValueError(f"unknown data pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return PIPELINES[name]


class DomainStream:
    """The infinite, seeded sequence of augmented training images of one domain."""

    def __init__(self, folder: Path, domain: str, settings: StreamSettings):
        self.folder = Path(folder)
        self.domain_id = _DOMAIN_IDS[domain]
        self.settings = settings
        self.files, self.skipped = check_images(list_images(folder), settings.on_bad_image)
        self._permutations: dict[int, np.ndarray] = {}
        self.rows: int | None = None   # fixed rows (a paired_rows pipeline): sample i shows file (i mod rows) mod n

    def __len__(self) -> int:
        return len(self.files)

    def file_at(self, sample: int) -> Path:
        """Which file sample `sample` of the stream shows."""
        if self.rows is not None:   # the reference's fixed order: row r holds file r mod n, never shuffled
            return self.files[(sample % self.rows) % len(self.files)]
        epoch, position = divmod(sample, len(self.files))
        if epoch not in self._permutations:
            if len(self._permutations) > 4:   # keep memory flat over a million iterations
                self._permutations.clear()
            order_rng = np.random.default_rng([self.settings.seed, self.domain_id, _STREAM_ORDER, epoch])
            self._permutations[epoch] = order_rng.permutation(len(self.files))
        return self.files[self._permutations[epoch][position]]

    def __getitem__(self, sample: int) -> torch.Tensor:
        s = self.settings
        # Rows of a paired pipeline share one generator: both images get the same flip and crop.
        domain = 0 if self.rows is not None else self.domain_id
        rng = np.random.default_rng([s.seed, domain, _STREAM_AUGMENT, sample])
        path = self.file_at(sample)
        for _ in range(len(self.files)):
            try:
                image = load_rgb(path)
                break
            except BadImageError:
                # The header check passed but the pixels do not decode (e.g. a truncated JPEG).
                if s.on_bad_image == "fail":
                    raise
                log.warning("skipping unreadable image %s", path)
                self.skipped.append(path)
                path = self.files[(self.files.index(path) + 1) % len(self.files)]
        else:
            raise DataError(f"{self.folder}: no readable image left")
        return pipeline(s.pipeline).train(image, s, rng)


class UnpairedTrainingSet(Dataset):
    """Item i is (sample i of domain A's stream, sample i of domain B's stream): unpaired, independent;
    or, for a pipeline with paired_rows (AGGAN's), row i of the reference's fixed list of pairs."""

    def __init__(self, dataset_dir: Path, settings: StreamSettings):
        self.stream_a = DomainStream(Path(dataset_dir) / "trainA", "A", settings)
        self.stream_b = DomainStream(Path(dataset_dir) / "trainB", "B", settings)
        if pipeline(settings.pipeline).paired_rows:
            self.stream_a.rows = self.stream_b.rows = max(len(self.stream_a), len(self.stream_b))

    def __getitem__(self, sample: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stream_a[sample], self.stream_b[sample]

    def __len__(self) -> int:  # only for information; the stream is infinite
        return max(len(self.stream_a), len(self.stream_b))


class StreamSampler(Sampler[int]):
    """0-based sample indices start, start + 1, ... forever (or `count` of them)."""

    def __init__(self, start: int = 0, count: int | None = None):
        self.start, self.count = start, count

    def __iter__(self) -> Iterator[int]:
        index = self.start
        while self.count is None or index < self.start + self.count:
            yield index
            index += 1

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("an endless stream has no length")
        return self.count


def training_batches(dataset: UnpairedTrainingSet, batch_size: int, start_step: int, steps: int,
                     num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Batches for iterations start_step .. start_step + steps - 1 (batch k holds samples k*B .. k*B+B-1)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StreamSampler(start_step * batch_size, steps * batch_size),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
        drop_last=True,
        # Its own generator: a DataLoader otherwise draws a seed from torch's global generator each
        # time it starts, and a resumed run would then see different noise than one never stopped.
        generator=torch.Generator().manual_seed(0),
    )


_WORKER_DATA_ERROR = re.compile(r"^(?:[\w.]+\.)?(?:BadImageError|DataError): (?P<message>.+)$", re.MULTILINE)


def without_worker_wrapping(batches: Iterable) -> Iterator:
    """Iterate a DataLoader, giving back a bad image met in one of its worker processes as the DataError
    it was. torch re-raises a worker's exception as a RuntimeError (or a rebuilt copy) whose message is
    the worker's whole traceback; the run's one-line report needs the image's own message."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as error:
            found = _WORKER_DATA_ERROR.findall(str(error)) if "Original Traceback" in str(error) else []
            if not found:
                raise
            raise DataError(found[-1]) from None
        yield batch


class SortedImageFolder(Dataset):
    """The test images of one domain, in sorted file-name order: item i is (tensor, file name)."""

    def __init__(self, folder: Path, image_size: int, on_bad_image: str = "fail", pipeline_name: str = "paper"):
        self.folder = Path(folder)
        self.image_size = image_size
        self.resize = pipeline(pipeline_name).test
        # Test sets are small: decode every image now, so a broken one never stops an evaluation midway.
        self.files, self.skipped = check_images(list_images(folder), on_bad_image, full_decode=True)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        path = self.files[index]
        return self.resize(load_rgb(path), self.image_size), path.name

    def batches(self, batch_size: int, num_workers: int = 0) -> DataLoader:
        return DataLoader(self, batch_size=batch_size, shuffle=False, num_workers=num_workers)


