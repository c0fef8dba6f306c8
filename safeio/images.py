"""Image files: which files of a folder are images, and how each is decoded, by its real range.

The one place that lists and opens image files, for training, translation, scoring and the study:
`list_images` (the image files directly in a folder, sorted by name), `load_rgb` (8-bit RGB, with
16-bit and floating-point images scaled rather than clipped), `check_images` (every file readable,
by its header or all its pixels) and the errors that name the file and the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from safeio.files import InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


class DataError(InputError, ValueError):
    """A dataset folder that cannot be used (missing, empty, or with a bad image under `fail`)."""


class BadImageError(DataError):
    """An image file that cannot be read."""

    def __init__(self, path: Path, reason: str):
        super().__init__(
            f"{path}: cannot be read as an image ({reason}). Remove or replace the file, "
            "or set data.on_bad_image: skip to leave such files out and count them."
        )
        self.path, self.reason = path, reason

    def for_flag(self, flag: str) -> str:
        """The message for a command-line tool, whose setting is a flag rather than a YAML key."""
        return (f"{self.path}: cannot be read as an image ({self.reason}). Remove or replace the file, or pass "
                f"{flag} to leave such files out and count them.")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, in sorted file-name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{folder}: no image files (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB, by its real range.

    Grayscale, palette, CMYK and RGBA images go through PIL's convert("RGB") (RGBA drops its alpha), as
    torchvision's loader in the authors' code does. Images PIL would clip instead of scale are scaled
    here: 16-bit grayscale (either byte order) from [0, 65535], 32-bit integer grayscale from [0, 65535]
    when it holds values above 255, floating-point grayscale from [0, 1] (or [0, 255] when it holds
    values above 1). A float image with negative values or values above 255 is refused by name.
    EXIF orientation tags are not applied, as neither torchvision's loader nor the authors' code
    applies them: pixels are used in the order they are stored.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I") or image.mode == "F":
                image = _gray_to_8_bit(image, Path(path))
            return image.convert("RGB")
    except BadImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BadImageError(Path(path), f"{type(error).__name__}: {error}") from None


def _gray_to_8_bit(image: Image.Image, path: Path) -> Image.Image:
    array = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16"):
        peak = 65535.0
    elif image.mode == "I":
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
    else:  # "F": floating point
        if not np.isfinite(array).all() or array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise BadImageError(path, f"a floating-point image with values in [{np.nanmin(array):g}, {np.nanmax(array):g}]; "
                                      "only [0, 1] or [0, 255] can be read unambiguously: convert it to 8-bit")
        peak = 1.0 if array.max(initial=0) <= 1.0 else 255.0
    return Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))


def check_images(files: list[Path], on_bad_image: str, full_decode: bool = False) -> tuple[list[Path], list[Path]]:
    """Check that every file is a readable image: its header (fast), or all its pixels (`full_decode`).
    Returns (good, bad); under on_bad_image="fail" the first bad file raises BadImageError."""
    good, bad = [], []
    for path in files:
        try:
            if full_decode:
                load_rgb(path)
            else:
                with Image.open(path) as image:
                    image.verify()
        except Exception as error:  # PIL raises many types for broken files
            if on_bad_image == "fail":
                raise error if isinstance(error, BadImageError) else BadImageError(path, f"{type(error).__name__}: {error}") from None
            bad.append(path)
            continue
        good.append(path)
    if bad:
        log.warning("skipped %d unreadable file(s) in %s, e.g. %s", len(bad), files[0].parent, bad[0].name)
    if not good:
        raise DataError(f"{files[0].parent}: none of the {len(files)} image files can be read")
    return good, bad


def count_images(folder: Path) -> int:
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
