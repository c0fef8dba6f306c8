"""The Inception-v3 feature extractor of the paper's KID, and its weights.

Features are the 2048-d pool_3 activations of the 2015-12-05 TensorFlow Inception-v3 graph, with
images resized to 299 x 299 by TF1-style bilinear interpolation: torch-fidelity's
`FeatureExtractorInceptionV3` ("inception-v3-compat") reproduces that graph and resize in PyTorch.
Input: uint8 images N x 3 x H x W, each at its own stored size (the extractor does the resize).

Weights, first found wins:
  1. an explicit path (`eval.inception_weights` in an experiment, `--weights` on the command line);
  2. the environment variable UGATIT_BENCH_INCEPTION;
  3. torch-fidelity's own file, `weights-inception-2015-12-05-6726825d.pth`, in torch.hub's cache
     (downloaded from torch-fidelity's release when online, with its sha256 prefix checked).
The special value `random` builds a randomly initialised Inception (deterministic, saved once in the
cache folder) so that the whole evaluation path runs where no weights can be had: tests and smoke
runs. Only the official file (sha256 starting 6726825d) gives numbers comparable with the paper;
every result records the weights' sha256 and says whether it is official.

Every weights file is read by this project with `torch.load(weights_only=True)` (safeio.files) and the
state dict handed to the network: torch-fidelity's own loader, which unpickles with
weights_only=False and so would run code planted in a crafted file, never sees a user's file.
"""

from __future__ import annotations

import hashlib
import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from safeio.files import (InputError, UnreadableFileError, WeightsFileError, atomic_torch_save, cache_root,
                          find_weights_file, load_torch_file, sha256_file)

INCEPTION_WEIGHTS_ENV = "UGATIT_BENCH_INCEPTION"   # the weights' path, where no explicit path is given
OFFICIAL_SHA256_PREFIX = "6726825d"
OFFICIAL_FILE_NAME = f"weights-inception-2015-12-05-{OFFICIAL_SHA256_PREFIX}.pth"
RANDOM_WEIGHTS = "random"
FEATURE_LAYER = "2048"
EXTRACTOR_ID = "torch-fidelity/inception-v3-compat/pool3-2048/tf1-bilinear-299"


class WeightsError(InputError, RuntimeError):
    """The Inception weights cannot be found, downloaded or read."""


@dataclass(frozen=True)
class InceptionWeights:
    path: Path
    sha256: str

    @property
    def official(self) -> bool:
        return self.sha256.startswith(OFFICIAL_SHA256_PREFIX)

    @property
    def label(self) -> str:
        if self.official:
            return "official Inception-v3 (2015-12-05, sha256 6726825d...)"
        if self.sha256.startswith("random-"):
            return f"RANDOM stand-in Inception-v3 weights ({self.sha256[:19]}...): not comparable with the paper"
        return f"NON-OFFICIAL Inception-v3 weights (sha256 {self.sha256[:12]}...): not comparable with the paper"

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "official": self.official, "label": self.label}


def _inception_skeleton() -> nn.Module:
    """torch-fidelity's Inception-v3 network with no weights read from anywhere.

    Its constructor always loads weights (torch.load with weights_only=False on a given path, or a
    download); here it is handed an empty state dict from memory, which a subclass accepts, and the
    weights are loaded afterwards by `_load_weights`, safely.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class UnloadedInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            if not state_dict:          # the constructor's own load: nothing to load yet
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return UnloadedInception("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=empty)


def _load_weights(weights: "InceptionWeights") -> nn.Module:
    """The network with `weights` read by this project (weights_only=True), never by torch-fidelity."""
    try:
        state = load_torch_file(weights.path, "Inception-v3 weights file")
    except UnreadableFileError as error:
        raise WeightsError(str(error)) from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"{weights.path}: not an Inception-v3 state dict (expected a mapping of names to tensors, "
                           f"got {type(state).__name__})")
    network = _inception_skeleton()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise WeightsError(f"{weights.path}: these are not torch-fidelity's Inception-v3 weights ({first_line})") from None
    return network


def write_random_weights(path: Path, seed: int = 0) -> Path:
    """A randomly initialised Inception state dict with non-degenerate features.

    Built without weights, torch-fidelity's network has zero batch-norm scales and variances and
    gives features of ~1e-7 (every KID 0), so the initialisation is set on purpose: batch norm
    weight 1, bias 0, running mean 0, running variance 1; He-normal convolutions; a small random fc.
    """
    generator = torch.Generator().manual_seed(seed)
    network = _inception_skeleton()
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.01)
                module.bias.zero_()
    atomic_torch_save(Path(path), network.state_dict())
    return Path(path)


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names, dtypes, shapes and values: the same tensors give the same hash
    whatever file (or torch version's file format) holds them."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def requested_weights(requested: str | None = None) -> str | None:
    """The weights asked for: an explicit path (or `random`), else $UGATIT_BENCH_INCEPTION; None means
    torch-fidelity's own file."""
    return requested or os.environ.get(INCEPTION_WEIGHTS_ENV) or None


def resolve_weights(requested: str | None = None, allow_download: bool = True,
                    setting: str = "eval.inception_weights") -> InceptionWeights:
    """Find the weights file (see the module docstring) and hash it. `setting` names, in messages, where
    the user gives the path (an experiment key or a command-line flag)."""
    requested = requested_weights(requested)
    if requested == RANDOM_WEIGHTS:
        path = cache_root() / "weights" / "inception-random-seed0.pth"
        if not path.is_file():
            write_random_weights(path)
        # Identified by its tensors, not its file: the same stand-in in every cache folder.
        try:
            state = load_torch_file(path, "Inception-v3 weights file")
        except UnreadableFileError as error:
            raise WeightsError(f"{error}. It is the cached random stand-in: delete it to have it made again") from None
        return InceptionWeights(path, "random-" + state_dict_sha256(state))
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    try:
        path = find_weights_file(requested, env=INCEPTION_WEIGHTS_ENV, setting=setting, what="Inception weights",
                                 file_name=OFFICIAL_FILE_NAME, url=URL_INCEPTION_V3, sha256_prefix=OFFICIAL_SHA256_PREFIX,
                                 allow_download=allow_download)
    except WeightsFileError as error:
        raise WeightsError(str(error)) from None
    return InceptionWeights(path, sha256_file(path))


class InceptionFeatures:
    """torch-fidelity's Inception on a device: uint8 N x 3 x H x W -> float32 N x 2048 pool_3 features.
    The network is loaded on first use, so scoring from cached features never loads it."""

    def __init__(self, weights: InceptionWeights, device: torch.device):
        self.weights, self.device = weights, device
        self._network: nn.Module | None = None

    @property
    def network(self) -> nn.Module:
        if self._network is None:
            network = _load_weights(self.weights)
            # Channels-last layout: the same float32 arithmetic in another memory order, about 1.5x faster
            # on this project's CPU; features agree with torch-fidelity's default layout to ~1e-6 relative.
            self._network = network.to(self.device, memory_format=torch.channels_last)
        return self._network

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images N x 3 x H x W, got {images.dtype} {tuple(images.shape)}")
        # Full float32 convolutions and matrix products, as the TensorFlow graph ran (no TF32).
        with _full_precision():
            (features,) = self.network(images.to(self.device, non_blocking=True))
        return features.float()


@contextmanager
def _full_precision():
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
