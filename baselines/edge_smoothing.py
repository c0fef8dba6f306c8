"""CartoonGAN's edge-smoothed cartoons (Chen et al. 2018, Sec. 3.2): the target-domain training images
with their edges blurred, which the discriminator learns to call fake (so that the generator draws
clear edges). Made once per dataset and cached beside it.

Per image (the parameters of the only public preprocessing script; the paper gives none):
  1. Canny edges of the grey image, thresholds 100 and 200;
  2. the edge mask dilated with a 5 x 5 kernel of ones;
  3. a 5 x 5 Gaussian (sigma 0.3 * ((5 - 1) / 2 - 1) + 0.8 = 1.1) of the colour image with a reflected
     border, kept only inside the dilated mask; the other pixels are unchanged.
OpenCV does the filters: it is what that script uses, so thresholds and kernels mean the same thing
(scikit-image's and kornia's Canny smooth and scale gradients differently, and would need other
thresholds). Images are smoothed at their own size (the reference resizes them to 256 first; the
paper's cartoon datasets are 256 px already).

Cache: `<dataset>/.edge_smoothed/<key>/`, one PNG per trainB image (same stem), where the key hashes the
parameters and every source file's name and bytes: a changed, added or removed image gives a new key.
A folder is written under a temporary name and renamed when complete, so a present folder is whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from safeio.files import owned_temporary_name, remove_stale_temporaries, replace_directory
from safeio.images import list_images, load_rgb

log = logging.getLogger("bench")

CACHE_DIR = ".edge_smoothed"
PARAMETERS = {"canny_low": 100, "canny_high": 200, "dilate": 5, "gaussian": 5, "version": 1}


def smooth_edges(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> the same image with its (dilated) edge regions Gaussian-blurred."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, PARAMETERS["canny_low"], PARAMETERS["canny_high"])
    mask = cv2.dilate(edges, np.ones((PARAMETERS["dilate"],) * 2, np.uint8)) > 0
    size = PARAMETERS["gaussian"]
    blurred = cv2.GaussianBlur(rgb, (size, size), 0, borderType=cv2.BORDER_REFLECT_101)
    out = rgb.copy()
    out[mask] = blurred[mask]
    return out


def cache_key(files: list[Path]) -> str:
    digest = hashlib.sha256(json.dumps(PARAMETERS, sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def smoothed_folder(source: Path) -> Path:
    """The edge-smoothed copy of the images of `source` (a trainB folder), made on first use."""
    source = Path(source)
    files = list_images(source)
    if not files:
        raise ValueError(f"{source}: no images to edge-smooth")
    cache = source.parent / CACHE_DIR
    folder = cache / f"{source.name}-{cache_key(files)}"
    if folder.is_dir():
        return folder
    cache.mkdir(exist_ok=True)
    remove_stale_temporaries(cache, f".{folder.name}.partial")
    partial = cache / owned_temporary_name(f".{folder.name}.partial")
    partial.mkdir()
    log.info("edge-smoothing %d images of %s into %s", len(files), source, folder)
    try:
        for path in files:
            Image.fromarray(smooth_edges(np.asarray(load_rgb(path)))).save(partial / f"{path.stem}.png")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)   # a killed process's leftovers go on the next call
        raise
    replace_directory(partial, folder)
    return folder
