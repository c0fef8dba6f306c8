"""Methods whose translation depends on a random code (MUNIT's style, DRIT's attribute), and how the
harness draws those codes at test time so that scores are reproducible.

A multimodal method implements, besides the Method contract:

    code_dim                                   the length of its code (8 for both reference models)
    translate_with_codes(images, direction, codes)   codes: N x code_dim, one per image
    encode_codes(images, domain)               the codes of images of domain "a" or "b" (exemplars)

and takes three test-time options in its `options:` (they never change training, so they are left out
of the run's identity; a run trained once is scored under any of them):

    test_style    "random"   (default) z ~ N(0, I), drawn for test image i and sample k from a generator
                             seeded by (test_seed, i, k): the same translations whatever the batch size,
                             the device or the order of evaluation
                  "mean"     the prior mean, z = 0: one deterministic output per image
                  "exemplar" the code encoded from a target-domain test image chosen at random by the
                             same seeded generator (example-guided translation)
    test_samples  K translations per test image, all scored (default 1). The paper's KID estimator
                  splits both sets into blocks of at most 10 of the larger one: K times more
                  translations mean K times more blocks, so fewer real images per block
    test_seed     the base seed (default 0); recorded with every evaluation

`translate(images, direction)` without codes uses the prior mean, so that anything that needs one
plain translation (sample sheets' cycle, quick checks) is deterministic.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Any, Callable, ClassVar

import torch

from bench.core.methods import Method, check_direction

TEST_FIELDS = ("test_style", "test_samples", "test_seed")
TEST_STYLES = ("random", "mean", "exemplar")
DEFAULT_TEST_SETTINGS = {"style": "random", "samples": 1, "seed": 0}
SHEET_STYLES = 3   # seeded random codes per row of a sample sheet, beside the prior mean


def code_generator(base_seed: int, image_index: int, sample: int) -> torch.Generator:
    """A CPU generator seeded by (base seed, image index, sample), mixed through SHA-256 so that nearby
    triples give unrelated streams."""
    digest = hashlib.sha256(f"{base_seed}:{image_index}:{sample}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def prior_code(base_seed: int, image_index: int, sample: int, dim: int) -> torch.Tensor:
    """z ~ N(0, I_dim) for one (image, sample): drawn on the CPU, so equal on every device."""
    return torch.randn(dim, generator=code_generator(base_seed, image_index, sample))


def exemplar_index(base_seed: int, image_index: int, sample: int, exemplars: int) -> int:
    """Which target-domain image lends its code to (image, sample)."""
    generator = code_generator(base_seed, image_index, sample)
    generator.manual_seed(generator.initial_seed() ^ 0x5EED)   # a stream apart from prior_code's
    return int(torch.randint(exemplars, (1,), generator=generator))


def test_settings_of(options: Any) -> dict[str, Any]:
    return {"style": options.test_style, "samples": options.test_samples, "seed": options.test_seed}


def evaluation_key(direction: str, settings: dict[str, Any]) -> str:
    """The name of an evaluation in a run's records and translation folders: the direction, followed by
    the test-time settings where they are not the default ("a2b", "a2b-mean", "b2a-random-k5-seed3")."""
    if not settings or settings == DEFAULT_TEST_SETTINGS:
        return direction
    parts = [direction, settings["style"]]
    if settings["samples"] != 1:
        parts.append(f"k{settings['samples']}")
    if settings["seed"] != 0 and settings["style"] != "mean":
        parts.append(f"seed{settings['seed']}")
    return "-".join(parts)


def settings_problems(options: Any) -> list[str]:
    problems = []
    if options.test_style not in TEST_STYLES:
        problems.append(f"test_style must be one of {', '.join(TEST_STYLES)}, got {options.test_style!r}")
    if not 1 <= options.test_samples <= 100:
        problems.append(f"test_samples must be between 1 and 100, got {options.test_samples}")
    return problems


def settings_notes(label: str, options: Any, reference: str) -> list[str]:
    """Footnotes for test-time settings other than the default one seeded code per image."""
    notes = []
    if options.test_style == "mean":
        notes.append(f"{label}: code = prior mean (z = 0) at test time ({reference})")
    elif options.test_style == "exemplar":
        notes.append(f"{label}: code encoded from a random target-domain test image (seed {options.test_seed}) "
                     f"at test time ({reference})")
    if options.test_samples > 1:
        notes.append(f"{label}: {options.test_samples} translations per test image, all scored "
                     "(KID over that many more images)")
    return notes


class MultimodalMethod(Method):
    """A method whose translations depend on a code; see the module docstring."""

    code_dim: int = 8
    sample_columns: ClassVar[tuple[str, ...]] = ("input", "prior mean", *[f"style {i + 1}" for i in range(SHEET_STYLES)])

    @abc.abstractmethod
    def translate_with_codes(self, images: torch.Tensor, direction: str, codes: torch.Tensor) -> torch.Tensor:
        """Translate with one code (a row of `codes`, N x code_dim) per image."""

    @abc.abstractmethod
    def encode_codes(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """The codes (N x code_dim) of images of `domain` ("a" or "b"), deterministic."""

    @classmethod
    def identity_options(cls, options: Any, train) -> dict[str, Any]:
        plain = super().identity_options(options, train)
        for name in TEST_FIELDS:
            plain.pop(name, None)
        return plain

    @classmethod
    def test_settings(cls, options: Any) -> dict[str, Any]:
        return test_settings_of(options)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """One translation per image with the prior mean code (z = 0)."""
        check_direction(direction)
        return self.translate_with_codes(images, direction, images.new_zeros(images.shape[0], self.code_dim))

    @torch.no_grad()
    def sample_sheet(self, real_a: torch.Tensor, real_b: torch.Tensor) -> torch.Tensor:
        """One row per fixed test image: input | prior mean | three seeded random codes (seed 0)."""
        from torchvision.utils import make_grid

        rows = []
        for real, direction in ((real_a, "a2b"), (real_b, "b2a")):
            columns = [real, self.translate(real, direction)]
            for sample in range(SHEET_STYLES):
                codes = torch.stack([prior_code(0, i, sample, self.code_dim) for i in range(real.shape[0])])
                columns.append(self.translate_with_codes(real, direction, codes.to(real.device, real.dtype)))
            rows.append(torch.stack(columns, dim=1).flatten(0, 1))
        return make_grid((torch.cat(rows).float().cpu() + 1) / 2, nrow=len(self.sample_columns), padding=2,
                         pad_value=1.0).clamp(0, 1)


def evaluation_translator(method: MultimodalMethod, direction: str, settings: dict[str, Any],
                          exemplar_images: Callable[[list[int]], torch.Tensor] | None = None,
                          exemplar_count: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function of successive batches of the test set (in its sorted order) that returns, for each
    image i, its `samples` translations in a row (image-major: i*K + k), with the codes the settings ask
    for. It counts the images it has seen, so the code of image i never depends on the batching.
    `exemplar_images(indices)` loads target-domain test images by index (style "exemplar")."""
    check_direction(direction)
    style, samples, base_seed = settings["style"], settings["samples"], settings["seed"]
    if style == "exemplar" and (exemplar_images is None or exemplar_count < 1):
        raise ValueError("test_style 'exemplar' needs the target domain's test images")
    target_domain = "b" if direction == "a2b" else "a"
    seen = 0

    def translate(images: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        indices = range(seen, seen + images.shape[0])
        seen += images.shape[0]
        repeated = images.repeat_interleave(samples, dim=0)
        pairs = [(i, k) for i in indices for k in range(samples)]
        if style == "mean":
            codes = images.new_zeros(len(pairs), method.code_dim)
        elif style == "random":
            codes = torch.stack([prior_code(base_seed, i, k, method.code_dim) for i, k in pairs])
        else:
            chosen = [exemplar_index(base_seed, i, k, exemplar_count) for i, k in pairs]
            codes = method.encode_codes(exemplar_images(chosen).to(images.device), target_domain)
        return method.translate_with_codes(repeated, direction, codes.to(images.device, images.dtype))

    return translate


def with_test_settings(options: Any, style: str | None = None, samples: int | None = None,
                       seed: int | None = None) -> Any:
    """`options` with the given test-time settings replaced (None keeps the option's own)."""
    changes = {name: value for name, value in (("test_style", style), ("test_samples", samples), ("test_seed", seed))
               if value is not None}
    return dataclasses.replace(options, **changes)
