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

The baselines' pipelines, at image size S (the reference's numbers at S = 256; "load" = round(S * 286 / 256)):
`cyclegan` (junyanz/pytorch-CycleGAN-and-pix2pix, data/base_dataset.py get_transform, resize_and_crop):
  bicubic resize to load x load, random crop S, random flip. Test (load_size = crop_size): bicubic resize to S.
`unit` (UNIT and MUNIT, utils.py get_data_loader_folder): random flip, bilinear resize of the shorter side
  to S (the aspect kept), random crop S x S. Test: the shorter side to S (a non-square test image is then
  centre-cropped to S x S here: the reference translates it whole; the paper's datasets are square).
`drit` (HsinYingLee/DRIT, src/dataset.py dataset_unpair): bicubic resize to S x S, random crop C, random
  flip; test (dataset_single): bicubic resize to S x S, centre crop C. C = 216 at 256 (`drit_crop_size`).
`aggan` (the AGGAN TensorFlow code, data_loader.py load_data, create_cyclegan_dataset.py): rows of fixed
  pairs, row i = (A[i mod |A|], B[i mod |B|]) for max(|A|, |B|) rows, in order, never shuffled; both images
  of a row get TF1's bilinear resize to load x load (float, not rounded), the same random flip and the
  same random crop S (the two ops share one seed). Test: TF1 bilinear resize to S (the reference's test
  reuses the training loader's random crop, which would make a score depend on a crop draw).
`cartoongan` (FlyingGoblin/CartoonGAN, data/donkey_folder.lua, loadSize = fineSize = 256): resize to
  S x S (bilinear; the crop to the same size does nothing), random flip. Test: resize to S x S. (The Lua
  loader also reorders channels to BGR for its Caffe VGG; a self-trained model here stays RGB, and the
  content network is torchvision's RGB VGG19.)
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
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


# -- the baselines' pipelines (module docstring) ----------------------------------------------------

def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> 3 x H x W float tensor in [-1, 1]."""
    return TF.to_tensor(image).mul_(2.0).sub_(1.0)


def random_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A size x size crop at a uniform offset (top drawn first, as torchvision's RandomCrop.get_params)."""
    top = int(rng.integers(0, image.height - size + 1))
    left = int(rng.integers(0, image.width - size + 1))
    return image.crop((left, top, left + size, top + size))


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's CenterCrop offsets: round((H - size) / 2)."""
    top, left = int(round((image.height - size) / 2)), int(round((image.width - size) / 2))
    return image.crop((left, top, left + size, top + size))


def flipped(image: Image.Image, flip: bool, rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip and rng.random() < 0.5 else image


def cyclegan_train(image: Image.Image, image_size: int, load_size: int, rng: np.random.Generator) -> torch.Tensor:
    image = random_crop(image.resize((load_size, load_size), Image.Resampling.BICUBIC), image_size, rng)
    return to_tensor(flipped(image, True, rng))


def cyclegan_test(image: Image.Image, image_size: int) -> torch.Tensor:
    return to_tensor(image.resize((image_size, image_size), Image.Resampling.BICUBIC))


def shorter_side_to(image: Image.Image, size: int) -> Image.Image:
    """torchvision's Resize(size) on a PIL image: the shorter side to `size`, the longer int(size * long / short)."""
    if image.width <= image.height:
        return image.resize((size, int(size * image.height / image.width)), Image.Resampling.BILINEAR)
    return image.resize((int(size * image.width / image.height), size), Image.Resampling.BILINEAR)


def unit_train(image: Image.Image, image_size: int, rng: np.random.Generator) -> torch.Tensor:
    return to_tensor(random_crop(shorter_side_to(flipped(image, True, rng), image_size), image_size, rng))


def unit_test(image: Image.Image, image_size: int) -> torch.Tensor:
    return to_tensor(centre_crop(shorter_side_to(image, image_size), image_size))


def drit_crop_size(image_size: int) -> int:
    """DRIT's crop: 216 of 256, the same fraction at other sizes, down to a multiple of 4 (its content
    code is a quarter of the image, and its generator doubles it twice)."""
    return image_size * 216 // 256 // 4 * 4


def drit_train(image: Image.Image, image_size: int, rng: np.random.Generator) -> torch.Tensor:
    image = random_crop(image.resize((image_size, image_size), Image.Resampling.BICUBIC), drit_crop_size(image_size), rng)
    return to_tensor(flipped(image, True, rng))


def drit_test(image: Image.Image, image_size: int) -> torch.Tensor:
    return to_tensor(centre_crop(image.resize((image_size, image_size), Image.Resampling.BICUBIC), drit_crop_size(image_size)))


def aggan_train(image: Image.Image, image_size: int, load_size: int, rng: np.random.Generator) -> torch.Tensor:
    """One image of an AGGAN row; both images of a row are given generators in the same state (same flip, crop)."""
    array = tf1_resize_bilinear(np.asarray(image, dtype=np.float32), load_size, load_size)
    if rng.random() < 0.5:
        array = array[:, ::-1]
    top = int(rng.integers(0, load_size - image_size + 1))
    left = int(rng.integers(0, load_size - image_size + 1))
    array = array[top:top + image_size, left:left + image_size] / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def aggan_test(image: Image.Image, image_size: int) -> torch.Tensor:
    array = tf1_resize_bilinear(np.asarray(image, dtype=np.float32), image_size, image_size) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def cartoongan_train(image: Image.Image, image_size: int, rng: np.random.Generator) -> torch.Tensor:
    return to_tensor(flipped(image.resize((image_size, image_size), Image.Resampling.BILINEAR), True, rng))


def cartoongan_test(image: Image.Image, image_size: int) -> torch.Tensor:
    return to_tensor(image.resize((image_size, image_size), Image.Resampling.BILINEAR))
