"""Models trained with the authors' own code: their released files as a ready `Method`.

    load_released("cyclegan", a2b="latest_net_G_A.pth", b2a="latest_net_G_B.pth", device="cpu")
    load_released("cyclegan", a2b="horse2zebra/latest_net_G.pth")        # a model-zoo generator: one direction
    load_released("ugatit", checkpoint="selfie2anime_params_latest.pt")
    load_released("ugatit", checkpoint="checkpoint/UGATIT_selfie2anime_..._sn_smoothing")   # the TF code's checkpoint
    load_released("unit", gen="outputs/unit_horse2zebra/checkpoints/gen_01000000.pt")
    load_released("munit", gen="gen_01000000.pt", test_style="random", test_seed=0)   # how test codes are drawn
    python -m bench.cli.released inspect FILE                            # which method and architecture a file holds

The returned method translates like one trained here (bench.cli.translate, the experiment's scoring),
with no per-image min-max stretch (the authors' test scripts stretch each output to [0, 1]; here an
output in [-1, 1] is mapped to [0, 255] as for every method, so the numbers stay comparable).
Every file is read with `torch.load(weights_only=True)`; one that is not what it claims to be is
refused with what was found and what was expected. Architecture (width, residual blocks) comes from
the tensors.

CycleGAN (pytorch-CycleGAN-and-pix2pix): a generator file is the state dict of its `ResnetGenerator`,
keys `model.<index>.weight|bias`, residual blocks `model.<index>.conv_block.{1,5}.weight|bias`. Files
saved by 2018 versions also hold `running_mean`, `running_var` and `num_batches_tracked` of instance
norms that tracked running statistics; the authors' current code drops them and normalises each image
by its own statistics, and so does this loader (it says so). A released generator translates one
direction; a direction without a file is refused at translation.

UNIT and MUNIT (mingyuliutw/UNIT master, NVlabs/MUNIT): a `gen_XXXXXXXX.pt` file holds both
generators; baselines/released_unit_munit.py maps its layout. The padding (`pad_type`, reflect in all the
authors' configurations) is not in the tensors: give pad_type="zero" for a model trained with zero
padding. MUNIT's test-time options (bench/core/multimodal.py) choose how its style codes are drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, import_method_packages
from safeio.files import InputError, describe_content, load_torch_file

log = logging.getLogger("bench")


class ReleasedFileError(InputError, ValueError):
    """A file that is not the released model it was given as."""


@dataclass(frozen=True)
class ReleasedLoader:
    """How one method's released files become a ready Method. Defined beside the method (ugatit/released.py,
    baselines/cyclegan_released.py, baselines/released_unit_munit.py) with `@register_released`."""

    method: str
    files: tuple[str, ...]                           # the keys of its files in `pretrained:`, e.g. ("a2b", "b2a")
    load: Callable[..., Method]                      # load(device=..., image_size=..., train=..., **files_and_settings)
    inspect: Callable[[Any, Path], dict[str, Any] | None]   # what a file's content holds; None: not this code's file
    settings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # not in the files: name -> allowed values
    # A model that is not one PyTorch file (a TensorFlow checkpoint: a prefix or a folder): what the path holds,
    # read without torch.load; None when the path is not such a model.
    inspect_path: Callable[[Path], dict[str, Any] | None] | None = None


_LOADERS: dict[str, ReleasedLoader] = {}


def register_released(method: str, files: tuple[str, ...], inspect: Callable[[Any, Path], dict[str, Any] | None],
                      settings: Mapping[str, tuple[str, ...]] | None = None,
                      inspect_path: Callable[[Path], dict[str, Any] | None] | None = None
                      ) -> Callable[[Callable[..., Method]], Callable[..., Method]]:
    """Decorator of a loader function: `pretrained:` entries and `load_released(method, ...)` use it."""

    def decorate(load: Callable[..., Method]) -> Callable[..., Method]:
        if method in _LOADERS and _LOADERS[method].load is not load:
            raise ValueError(f"released files of {method!r} already have a loader ({_LOADERS[method].load.__module__})")
        _LOADERS[method] = ReleasedLoader(method, tuple(files), load, inspect, dict(settings or {}), inspect_path)
        return load

    return decorate


def released_loader(method: str) -> ReleasedLoader | None:
    import_method_packages()   # the loaders register where their methods are defined
    return _LOADERS.get(method)


def released_methods() -> list[str]:
    import_method_packages()
    return sorted(_LOADERS)


def released_files(method: str, pretrained: dict[str, Any]) -> dict[str, str]:
    """The file entries of an experiment's `pretrained:` mapping (without settings such as pad_type)."""
    loader = released_loader(method)
    settings = loader.settings if loader is not None else {}
    return {key: value for key, value in pretrained.items() if key not in settings}


def released_digest(path: Path) -> str:
    """What identifies a released model's contents: a file's sha256, or a TensorFlow checkpoint's (a prefix or
    folder) index digest; "missing: PATH" when there is nothing there (the run then reports it)."""
    from safeio.files import cached_sha256_file
    from safeio.tf_checkpoint import TFCheckpointError, content_digest, is_tf_checkpoint

    if Path(path).is_file() and not is_tf_checkpoint(path):
        return cached_sha256_file(Path(path))
    if is_tf_checkpoint(path):
        try:
            return content_digest(path)
        except (TFCheckpointError, OSError):
            pass
    return f"missing: {path}"


def train_config_for(train: TrainConfig | None, image_size: int) -> TrainConfig:
    """The settings a released model is built with: `train` to continue training (its image size must be the
    model's); by default one iteration, which only matters to a training that is never run."""
    if train is None:
        return TrainConfig(image_size=image_size, iterations=1)
    if train.image_size != image_size:
        raise ReleasedFileError(f"train.image_size is {train.image_size}, the released model's is {image_size}")
    return train


def load_released(method: str, device: str | torch.device = "cpu", **files: Any) -> Method:
    """A ready Method from the authors' files: translate works, and training may continue from it."""
    loader = released_loader(method)
    if loader is None:
        raise ReleasedFileError(f"released files of {method!r} cannot be loaded yet; supported: {', '.join(released_methods())}")
    return loader.load(device=device, **files)


def inspect_content(content: Any, path: Path) -> dict[str, Any]:
    """Which method and architecture a loaded file holds; ReleasedFileError when no loader knows it."""
    import_method_packages()
    for loader in _LOADERS.values():
        report = loader.inspect(content, path)
        if report is not None:
            return report
    raise ReleasedFileError(f"{path}: not a released model this harness knows ({', '.join(sorted(_LOADERS))}); "
                            f"found {describe_content(content)}")


def inspect_path(path: str | Path) -> dict[str, Any] | None:
    """What a model that is not one PyTorch file holds (a TensorFlow checkpoint's prefix or folder), read by
    the loader that knows it; None when no loader takes the path as such."""
    import_method_packages()
    for loader in _LOADERS.values():
        report = loader.inspect_path(Path(path)) if loader.inspect_path is not None else None
        if report is not None:
            return report
    return None


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Which method and architecture a file (or TensorFlow checkpoint) holds; PyTorch files are read with
    weights_only=True."""
    path = Path(path)
    report = inspect_path(path)
    if report is not None:
        return report
    return inspect_content(load_torch_file(path, "model file"), path)
