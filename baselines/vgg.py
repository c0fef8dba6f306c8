"""VGG19 (ImageNet) up to conv4_4, before its ReLU: CartoonGAN's content features.

The weights, in this order:
  1. the method's option `vgg_weights` (a path, or `random`);
  2. the environment variable UGATIT_BENCH_VGG19;
  3. torchvision's ImageNet weights (vgg19-dcbb9e9d.pth) in torch's hub folder, downloaded there by
     torch when online, with their sha256 prefix checked.
Files are loaded by this harness with weights_only=True. `random` is a randomly initialised VGG19
(seed 0) for tests and offline smoke runs: a content loss from it is not CartoonGAN's, and every
record and table says so. The reference used the Caffe VGG19 weights (BGR, mean-subtracted 0-255
input); torchvision's are another training of the same network, fed RGB in [0, 1] normalised by the
ImageNet mean and std, as torchvision documents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from safeio.files import InputError, WeightsFileError, cached_sha256_file, find_weights_file, load_torch_file

VGG_WEIGHTS_ENV = "UGATIT_BENCH_VGG19"
RANDOM_WEIGHTS = "random"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
TORCHVISION_SHA256_PREFIX = "dcbb9e9d"
CONV4_4 = 26                     # torchvision's vgg19().features[:26] ends with conv4_4, before its ReLU
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(InputError, RuntimeError):
    pass


@dataclass(frozen=True)
class VGGWeights:
    path: Path | None            # None for the random stand-in
    identity: str                # "random-seed0", or the file's sha256

    @property
    def official(self) -> bool:
        return self.identity.startswith(TORCHVISION_SHA256_PREFIX)

    @property
    def label(self) -> str:
        if self.identity.startswith("random"):
            return "a RANDOM stand-in VGG19: not CartoonGAN's content loss"
        if self.official:
            return "torchvision's ImageNet VGG19 (the reference used the Caffe weights)"
        return f"NON-STANDARD VGG19 weights (sha256 {self.identity[:12]}...)"


def resolve_vgg_weights(requested: str | None, allow_download: bool = True) -> VGGWeights:
    if (requested or os.environ.get(VGG_WEIGHTS_ENV)) == RANDOM_WEIGHTS:
        return VGGWeights(None, "random-seed0")
    try:
        path = find_weights_file(requested, env=VGG_WEIGHTS_ENV, setting="the cartoongan option vgg_weights",
                                 what="VGG19 weights", file_name=TORCHVISION_FILE, url=TORCHVISION_URL,
                                 sha256_prefix=TORCHVISION_SHA256_PREFIX, allow_download=allow_download)
    except WeightsFileError as error:
        raise VGGWeightsError(str(error)) from None
    return VGGWeights(path, cached_sha256_file(path))


class VGGContent(nn.Module):
    """Frozen VGG19 conv1_1 .. conv4_4 (pre-ReLU) of an image in [-1, 1]."""

    def __init__(self, weights: VGGWeights):
        super().__init__()
        from torchvision.models import vgg19

        if weights.path is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                network = vgg19()
        else:
            network = vgg19()
            state = load_torch_file(weights.path, "VGG19 weights file")
            try:
                network.load_state_dict(state)
            except (RuntimeError, TypeError, AttributeError) as error:
                raise VGGWeightsError(f"{weights.path}: not a torchvision VGG19 state dict ({error})") from None
        self.features = network.features[:CONV4_4].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGContent":
        super().train(mode)
        self.features.eval()   # no dropout or batch norm here, but keep it fixed whatever the caller does
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(((images + 1) / 2 - self.mean) / self.std)
