"""The datasets the benchmark knows: the paper's five, and the embedded synthetic one.

Every dataset uses the unpaired layout `<root>/<name>/{trainA,trainB,testA,testB}/`, with A the
paper's source domain (selfie2anime: A = selfies). A dataset not in this catalogue can still be used:
put it in that layout under the data root; its tasks are then named `<name>_a2b` and `<name>_b2a`.
Facts in docs/datasets.md and the paper's Appendix C.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("trainA", "trainB", "testA", "testB")


@dataclass(frozen=True)
class ArchiveSource:
    url: str                               # where the archive is downloaded from
    sha256: str | None = None              # known checksum of the archive, if any
    swap_ab: bool = False                  # this archive's A is the paper's B (used when counts cannot tell)
    note: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str                              # folder name under the data root
    domain_a: str                          # the paper's source domain, e.g. "selfie"
    domain_b: str                          # the paper's target domain, e.g. "anime"
    sources: tuple[ArchiveSource, ...] = ()
    train_counts: tuple[int, int] | None = None  # (A, B) training images the paper reports; orients archives
    test_counts: tuple[int, int] | None = None
    manual_download: str = ""              # how to get the archive by hand when no source works
    synthetic: bool = False                # generated on demand by bench.data.synthetic, never downloaded

    def task_name(self, direction: str) -> str:
        """The paper's name for a translation task, e.g. selfie2anime (a2b) or anime2selfie (b2a)."""
        source, target = (self.domain_a, self.domain_b) if direction == "a2b" else (self.domain_b, self.domain_a)
        return f"{source}2{target}"


_CYCLEGAN_MIRRORS = (
    "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{}.zip",
    "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip",
)

CATALOGUE: dict[str, DatasetInfo] = {
    "selfie2anime": DatasetInfo(
        name="selfie2anime", domain_a="selfie", domain_b="anime",
        sources=(
            # The Dropbox mirror used by Council-GAN and LS4GAN. LS4GAN's download script swaps A and B
            # after unzipping it, noting the archive's domains are the other way round.
            ArchiveSource(
                url="https://www.dropbox.com/s/9lz6gwwwyyxpdnn/selfie2anime.zip?dl=1",
                sha256="2e8fe7563088971696d29af9f5153772733ac879c155c709b1aad741735ad7bc",
                swap_ab=True,
                note="Council-GAN/LS4GAN mirror; its trainA holds anime faces",
            ),
        ),
        train_counts=(3400, 3400), test_counts=(100, 100),
        manual_download=(
            "The official archive is on Google Drive (file id 1xOWj1UVgp6NKMT3HbPhBbtq2A4EDkghF, linked from "
            "github.com/taki0112/UGATIT); its trainA holds selfies. Download it in a browser and run "
            "`python run_bench.py --download selfie2anime --archive selfie2anime.zip --no-swap`."
        ),
    ),
    "horse2zebra": DatasetInfo(
        name="horse2zebra", domain_a="horse", domain_b="zebra",
        sources=tuple(ArchiveSource(url.format("horse2zebra")) for url in _CYCLEGAN_MIRRORS),
        train_counts=(1067, 1334), test_counts=(120, 140),
    ),
    "photo2vangogh": DatasetInfo(
        name="photo2vangogh", domain_a="photo", domain_b="vangogh",
        # The CycleGAN archive is vangogh2photo: its A is Van Gogh; the counts below swap it.
        sources=tuple(ArchiveSource(url.format("vangogh2photo"), swap_ab=True) for url in _CYCLEGAN_MIRRORS),
        train_counts=(6287, 400), test_counts=(751, 400),
    ),
    "cat2dog": DatasetInfo(
        name="cat2dog", domain_a="cat", domain_b="dog",
        sources=tuple(ArchiveSource(f"{scheme}://vllab.ucmerced.edu/hylee/DRIT/datasets/cat2dog.zip") for scheme in ("https", "http")),
        # DRIT's counts for the whole of each domain (the paper's test counts are a copy of horse2zebra's).
        train_counts=(871, 1364),
    ),
    "photo2portrait": DatasetInfo(
        name="photo2portrait", domain_a="photo", domain_b="portrait",
        sources=tuple(ArchiveSource(f"{scheme}://vllab.ucmerced.edu/hylee/DRIT/datasets/portrait.zip") for scheme in ("https", "http")),
        train_counts=(6452, 1811),
    ),
    "shapes": DatasetInfo(
        name="shapes", domain_a="discs", domain_b="polygons", synthetic=True,
    ),
}

PAPER_DATASETS = ("selfie2anime", "horse2zebra", "cat2dog", "photo2portrait", "photo2vangogh")


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry, or a plain one for a user's own dataset folder."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    return _UserDataset(name=name, domain_a="A", domain_b="B")


@dataclass(frozen=True)
class _UserDataset(DatasetInfo):
    def task_name(self, direction: str) -> str:
        return f"{self.name}_{direction}"


def missing_splits(dataset_dir: Path) -> list[str]:
    """The split folders a dataset folder lacks or that hold no image ("testA (empty)"); all four if the
    folder does not exist. Files are counted by name, none is decoded."""
    from safeio.images import count_images

    problems = []
    for split in SPLITS:
        if not (dataset_dir / split).is_dir():
            problems.append(split)
        elif count_images(dataset_dir / split) == 0:
            problems.append(f"{split} (empty: no image files)")
    return problems


def how_to_get(name: str, data_root: Path) -> str:
    """One sentence telling the user how to obtain a dataset that is missing."""
    info = CATALOGUE.get(name)
    if info is None:
        return (f"put it in {data_root / name} with sub-folders {', '.join(SPLITS)} "
                "(or point data.root or the UGATIT_BENCH_DATA environment variable at its parent folder)")
    if info.synthetic:
        return "it is generated on demand; run the experiment (not --dry-run) to generate it"
    return f"download it with: python run_bench.py --download {name} --data-root {data_root}"
