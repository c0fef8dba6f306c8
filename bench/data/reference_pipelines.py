"""The authors' own image pipelines, where a method's reference code departs from the paper's recipe
(bench/data/pipeline.py has the paper's and the table of pipelines, PIPELINES).

`tf_ugatit`: the official TensorFlow U-GAT-IT (taki0112/UGATIT utils.py), the code behind the paper's numbers.
  Training (ImageData.image_processing): decode, bilinear resize to image_size with TensorFlow 1's
  resize_images (align_corners=False without half-pixel centres: output pixel i samples input i * in/out),
  scale to [-1, 1] without rounding to 8 bits; then, when augmenting, a random flip, a second TF1 bilinear
  resize to image_size + 30 (+ 15 when image_size is not 256) and a random crop back to image_size.
  Whether to augment is `random.random() > 0.5` evaluated in Python inside the function that
  tf.data's map traces once: one coin for the whole run, not one per image. A run either augments every
  image or none; here the coin is drawn from the run's seed (`tf_ugatit_augments(seed)`), so the same
  seed always makes the same choice.
  Test (load_test_data): OpenCV's bilinear resize (cv2.INTER_LINEAR, 8-bit result) to image_size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def tf1_resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x C float32 -> height x width x C, as TensorFlow 1's tf.image.resize_images (bilinear,
    align_corners=False, legacy coordinates): output (y, x) interpolates input (y * H / height, x * W / width),
    the lower neighbour index clamped; top, bottom then vertical interpolation, in float32."""
    source = np.asarray(image, dtype=np.float32)
    in_h, in_w = source.shape[:2]

    def axis(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        position = np.arange(out_size, dtype=np.float32) * np.float32(in_size / out_size)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, in_size - 1)
        return lower, upper, (position - lower).astype(np.float32)

    y0, y1, dy = axis(height, in_h)
    x0, x1, dx = axis(width, in_w)
    dx = dx[None, :, None]
    top_left, top_right = source[y0][:, x0], source[y0][:, x1]
    bottom_left, bottom_right = source[y1][:, x0], source[y1][:, x1]
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy[:, None, None]


def tf_ugatit_augments(seed: int) -> bool:
    """The TF code's one coin per run: whether every training image of this run is flipped, resized and cropped."""
    return bool(np.random.default_rng([seed, 0x7F]).random() > 0.5)


def tf_ugatit_augment_size(image_size: int) -> int:
    return image_size + (30 if image_size == 256 else 15)


def tf_ugatit_train(image: Image.Image, image_size: int, seed: int, rng: np.random.Generator) -> torch.Tensor:
    """One training image of the tf_ugatit pipeline (module docstring), 3 x H x W in [-1, 1]."""
    array = tf1_resize_bilinear(np.asarray(image, dtype=np.float32), image_size, image_size) / 127.5 - 1.0
    if tf_ugatit_augments(seed):
        if rng.random() < 0.5:
            array = array[:, ::-1]
        size = tf_ugatit_augment_size(image_size)
        array = tf1_resize_bilinear(array, size, size)
        top = int(rng.integers(0, size - image_size + 1))
        left = int(rng.integers(0, size - image_size + 1))
        array = array[top:top + image_size, left:left + image_size]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def tf_ugatit_test(image: Image.Image, image_size: int) -> torch.Tensor:
    """One test image of the tf_ugatit pipeline: cv2.resize (INTER_LINEAR) to image_size, then [-1, 1]."""
    import cv2

    resized = cv2.resize(np.asarray(image), (image_size, image_size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(resized.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0)
