"""The embedded default data: two synthetic image domains, generated deterministically on demand.

Domain A, "discs": one shaded sphere (smooth radial lighting, warm colours) on a dark two-colour
gradient. Domain B, "polygons": one polygon of three to five corners filled with broad, nearly horizontal
stripes (hard edges, cool colours) on a light, flat background. The domains differ in shape (round vs
angular), texture (smooth shading vs stripes) and palette, so a translator has easy cues (colour) and
harder ones (shape, texture) to learn. The objects are large and the stripes broad enough to survive
the smoke experiment's 32 px, so that small networks learn the translation in a few hundred
iterations: a trained model visibly turns discs into striped polygons, and scores clearly better
than the untranslated images and than matching colours alone.

Every image is a pure function of (seed, domain, split, index): the same files, byte for byte, on
every machine. The dataset is written in the standard layout with a `dataset.json` manifest; it is
regenerated only when the generator or its settings change.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.data.fingerprint import dataset_fingerprint
from safeio.files import owned_temporary_name, remove_stale_temporaries, replace_directory, waiting_lock
from safeio.images import DataError

GENERATOR_VERSION = 2          # bump when the images change, so that old copies are regenerated

# The objects, as fractions of the image side; chosen so that 32 px training images keep them legible.
OBJECT_RADIUS = (0.2, 0.32)    # disc radius, polygon circumradius
OBJECT_CENTRE = (0.32, 0.68)   # where the object's centre may fall, in x and in y
STRIPE_PERIOD = (0.16, 0.22)   # one dark and one light stripe: 5 to 7 pixels at 32 px
STRIPE_TILT = 0.2              # stripes run horizontally, tilted by at most this many radians
POLYGON_CORNERS = (3, 5)       # fewest and most corners
DOMAINS = {"A": 0, "B": 1}
SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SyntheticSpec:
    image_size: int = 64           # pixels per side of the written PNGs
    train_per_domain: int = 400    # images in trainA and in trainB
    test_per_domain: int = 50      # images in testA and in testB
    seed: int = 0


def _rng(spec: SyntheticSpec, domain: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, DOMAINS[domain], SPLIT_IDS[split], index])


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float64)


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float64) + 0.5
    return np.meshgrid(coords, coords)  # x (columns), y (rows)


def _shaded_discs(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = _pixel_grid(size)
    # Background: a dark gradient between two colours, in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle)) / size + 0.5
    top, bottom = _hsv(rng.uniform(), rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.3)), _hsv(rng.uniform(), rng.uniform(0.2, 0.5), rng.uniform(0.15, 0.4))
    image = top * (1 - ramp[..., None]) + bottom * ramp[..., None]

    light = np.array([rng.uniform(-0.7, -0.2), rng.uniform(-0.7, -0.2), 1.0])
    light /= np.linalg.norm(light)
    radius = rng.uniform(*OBJECT_RADIUS) * size
    cx, cy = rng.uniform(*OBJECT_CENTRE, size=2) * size
    colour = _hsv(rng.uniform(-0.12, 0.15), rng.uniform(0.55, 0.95), rng.uniform(0.75, 1.0))
    dx, dy = (x - cx) / radius, (y - cy) / radius
    distance = np.sqrt(dx**2 + dy**2)
    nz = np.sqrt(np.clip(1 - distance**2, 0, 1))      # sphere normal (dx, dy, nz)
    diffuse = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0, 1)
    specular = diffuse**24 * 0.5
    shaded = colour * (0.25 + 0.75 * diffuse[..., None]) + specular[..., None]
    coverage = np.clip(radius - distance * radius + 0.5, 0, 1)[..., None]  # 1-pixel anti-aliased edge
    image = image * (1 - coverage) + shaded * coverage
    image += rng.normal(0, 0.015, size=image.shape)
    return image


def _polygon_mask(rng: np.random.Generator, size: int, supersample: int = 4) -> np.ndarray:
    corners = int(rng.integers(POLYGON_CORNERS[0], POLYGON_CORNERS[1] + 1))
    radius = rng.uniform(*OBJECT_RADIUS) * size * 1.2   # about the disc's area for four corners
    cx, cy = rng.uniform(*OBJECT_CENTRE, size=2) * size
    rotation = rng.uniform(0, 2 * np.pi)
    angles = rotation + np.arange(corners) * 2 * np.pi / corners + rng.uniform(-0.1, 0.1, size=corners)
    radii = radius * rng.uniform(0.9, 1.1, size=corners)
    points = [((cx + r * np.cos(a)) * supersample, (cy + r * np.sin(a)) * supersample) for a, r in zip(angles, radii)]
    canvas = Image.new("L", (size * supersample, size * supersample), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0


def _striped_polygons(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = _pixel_grid(size)
    background = _hsv(rng.uniform(), rng.uniform(0.0, 0.2), rng.uniform(0.78, 0.95))
    image = np.broadcast_to(background, (size, size, 3)).copy()
    mask = _polygon_mask(rng, size)[..., None]
    hue = rng.uniform(0.45, 0.75)
    first, second = _hsv(hue, rng.uniform(0.5, 0.9), rng.uniform(0.35, 0.7)), _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.1, 0.5), rng.uniform(0.75, 1.0))
    angle = np.pi / 2 + rng.uniform(-STRIPE_TILT, STRIPE_TILT)
    period = rng.uniform(*STRIPE_PERIOD) * size
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    stripes = np.clip(np.sin(2 * np.pi * phase) * 3, -1, 1)[..., None] * 0.5 + 0.5  # nearly square wave
    texture = first * stripes + second * (1 - stripes)
    image = image * (1 - mask) + texture * mask
    image += rng.normal(0, 0.01, size=image.shape)
    return image


def generate_image(spec: SyntheticSpec, domain: str, split: str, index: int) -> np.ndarray:
    """One image (H x W x 3, uint8) of domain "A" (discs) or "B" (polygons)."""
    rng = _rng(spec, domain, split, index)
    image = _shaded_discs(rng, spec.image_size) if domain == "A" else _striped_polygons(rng, spec.image_size)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _manifest(spec: SyntheticSpec) -> dict:
    return {"generator": "bench.data.synthetic", "version": GENERATOR_VERSION, **asdict(spec)}


def spec_fingerprint(spec: SyntheticSpec) -> str:
    """What a run's identity records of a synthetic dataset: the generator and its settings, which fix
    every image (`is_current` makes sure the folder holds exactly those)."""
    return hashlib.sha256(json.dumps(_manifest(spec), sort_keys=True).encode()).hexdigest()


def is_current(dataset_dir: Path, spec: SyntheticSpec) -> bool:
    """Whether the folder holds what `spec` generates: its manifest names the spec, and its images are
    the ones generated (their fingerprint, recorded at generation: an edited image is generated again)."""
    manifest = dataset_dir / "dataset.json"
    try:
        recorded = json.loads(manifest.read_text())
        fingerprint = recorded.pop("fingerprint")
    except (OSError, ValueError, KeyError, AttributeError):
        return False
    if recorded != _manifest(spec):
        return False
    try:
        return dataset_fingerprint(dataset_dir) == fingerprint
    except DataError:
        return False


def write_dataset(dataset_dir: Path, spec: SyntheticSpec = SyntheticSpec()) -> Path:
    """Generate the dataset into `dataset_dir` (atomically: a crash leaves no half-written copy, and the
    next call removes what a killed one left)."""
    dataset_dir = Path(dataset_dir)
    if is_current(dataset_dir, spec):
        return dataset_dir
    # One process generates; others (parallel workers) wait for it, then find the dataset current.
    with waiting_lock(dataset_dir.parent / f".{dataset_dir.name}.lock"):
        if not is_current(dataset_dir, spec):
            _generate(dataset_dir, spec)
    return dataset_dir


def _generate(dataset_dir: Path, spec: SyntheticSpec) -> None:
    remove_stale_temporaries(dataset_dir.parent, f".{dataset_dir.name}-generating")
    staging = dataset_dir.parent / owned_temporary_name(f".{dataset_dir.name}-generating")
    staging.mkdir()
    try:
        for split, count in (("train", spec.train_per_domain), ("test", spec.test_per_domain)):
            for domain in DOMAINS:
                folder = staging / f"{split}{domain}"
                folder.mkdir()
                for index in range(count):
                    Image.fromarray(generate_image(spec, domain, split, index)).save(folder / f"{index:05d}.png")
        manifest = {**_manifest(spec), "fingerprint": dataset_fingerprint(staging)}
        (staging / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_directory(staging, dataset_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
