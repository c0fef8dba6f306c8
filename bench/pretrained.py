"""Models trained with the authors' own code: their released files as a ready `Method`.

    load_released("cyclegan", a2b="latest_net_G_A.pth", b2a="latest_net_G_B.pth", device="cpu")
    load_released("cyclegan", a2b="horse2zebra/latest_net_G.pth")        # a model-zoo generator: one direction
    load_released("ugatit", checkpoint="selfie2anime_params_latest.pt")
    load_released("unit", gen="outputs/unit_horse2zebra/checkpoints/gen_01000000.pt")
    load_released("munit", gen="gen_01000000.pt", test_style="random", test_seed=0)   # how test codes are drawn
    python -m bench.pretrained inspect FILE                              # which method and architecture a file holds

The returned method translates like one trained here (bench.translate, the experiment's scoring),
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
generators; bench/released_unit_munit.py maps its layout. The padding (`pad_type`, reflect in all the
authors' configurations) is not in the tensors: give pad_type="zero" for a model trained with zero
padding. MUNIT's test-time options (bench/multimodal.py) choose how its style codes are drawn.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch

from bench.config import TrainConfig
from bench.files import (RUNNING_STATISTICS, InputError, UnreadableFileError, describe_content, load_torch_file,
                         strip_data_parallel_prefix)
from bench.methods import Method, create_method
from bench.released_unit_munit import PAD_TYPES, GenFileError, gen_file_method, inspect_gen_file, load_gen_file

log = logging.getLogger("bench")

RELEASED_FILES = {"cyclegan": ("a2b", "b2a"), "ugatit": ("checkpoint",), "unit": ("gen",), "munit": ("gen",)}
# settings of the authors' networks that their files do not hold, with their allowed values
RELEASED_SETTINGS = {"unit": {"pad_type": PAD_TYPES}, "munit": {"pad_type": PAD_TYPES}}
SUPPORTED = tuple(RELEASED_FILES)


def released_files(method: str, pretrained: dict[str, Any]) -> dict[str, str]:
    """The file entries of an experiment's `pretrained:` mapping (without settings such as pad_type)."""
    return {key: value for key, value in pretrained.items() if key not in RELEASED_SETTINGS.get(method, {})}


class ReleasedFileError(InputError, ValueError):
    """A file that is not the released model it was given as."""


# ----------------------------------------------------------------------------------------------
# CycleGAN


def cyclegan_architecture(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Width, residual blocks and whether the file holds the old running statistics, from the tensors."""
    if not isinstance(state, dict) or "model.1.weight" not in state:
        raise ReleasedFileError(f"{path}: not a CycleGAN generator (expected the state dict of pytorch-CycleGAN-and-pix2pix's "
                                f"ResnetGenerator, keys model.1.weight, model.10.conv_block.1.weight, ...; "
                                f"found {describe_content(state)})")
    first = state["model.1.weight"]
    if first.dim() != 4 or tuple(first.shape[1:]) != (3, 7, 7):
        raise ReleasedFileError(f"{path}: model.1.weight has shape {tuple(first.shape)}; a CycleGAN generator's first "
                                "convolution is (width, 3, 7, 7)")
    blocks = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.conv_block\.1\.weight", k))})
    if not blocks or blocks != list(range(10, 10 + len(blocks))):
        raise ReleasedFileError(f"{path}: residual blocks at model.{blocks} (expected model.10, model.11, ... in a row): "
                                "not a resnet_Nblocks CycleGAN generator")
    return {"method": "cyclegan", "width": int(first.shape[0]), "n_blocks": len(blocks),
            "running_statistics": any(k.endswith(RUNNING_STATISTICS) for k in state)}


def cyclegan_to_project(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The authors' generator keys as this project's ResnetGenerator keys (same layer order and shapes:
    baselines/cyclegan.py), without the instance norms' running statistics."""
    converted = {}
    for key, value in state.items():
        if key.endswith(RUNNING_STATISTICS):
            continue
        converted[key.removeprefix("model.").replace(".conv_block.", ".body.")] = value
    return converted


def _read_cyclegan(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    state = strip_data_parallel_prefix(load_torch_file(path, "CycleGAN generator file"))
    architecture = cyclegan_architecture(state, path)
    if architecture["running_statistics"]:
        log.info("%s: an old CycleGAN file with instance-norm running statistics; they are dropped and each image is "
                 "normalised by its own statistics, as the authors' current code does", path)
    return cyclegan_to_project(state), architecture


def _train_config(train: TrainConfig | None, image_size: int) -> TrainConfig:
    """The settings the method is built with: `train` to continue training (its image size must be the
    model's); by default one iteration, which only matters to a training that is never run."""
    if train is None:
        return TrainConfig(image_size=image_size, iterations=1)
    if train.image_size != image_size:
        raise ReleasedFileError(f"train.image_size is {train.image_size}, the released model's is {image_size}")
    return train


def load_cyclegan(a2b: str | Path | None = None, b2a: str | Path | None = None, device: str | torch.device = "cpu",
                  image_size: int = 256, train: TrainConfig | None = None) -> Method:
    files = {direction: path for direction, path in (("a2b", a2b), ("b2a", b2a)) if path is not None}
    if not files:
        raise ReleasedFileError("give a2b=FILE and/or b2a=FILE (latest_net_G_A.pth translates A to B, latest_net_G_B.pth "
                                "B to A; a model-zoo latest_net_G.pth translates the direction its name says)")
    read = {direction: _read_cyclegan(path) for direction, path in files.items()}
    shapes = {(a["width"], a["n_blocks"]) for _, a in read.values()}
    if len(shapes) > 1:
        raise ReleasedFileError(f"the two generators differ in architecture: {sorted(shapes)} (width, blocks)")
    width, n_blocks = shapes.pop()
    method = create_method("cyclegan", train=_train_config(train, image_size), device=device, width=width, n_blocks=n_blocks)
    for direction, (state, _) in read.items():
        generator = method.gen_a2b if direction == "a2b" else method.gen_b2a
        try:
            missing, unexpected = generator.load_state_dict(state, strict=False)
            problem = f"missing {missing[:4]}, unexpected {unexpected[:4]}" if missing or unexpected else ""
        except RuntimeError as error:   # a tensor of another shape
            problem = str(error).strip().splitlines()[-1].strip()[:300]
        if problem:
            raise ReleasedFileError(f"{files[direction]}: does not fit a CycleGAN generator of width {width} with {n_blocks} "
                                    f"blocks ({problem})")
    method.untrained_directions = {"a2b", "b2a"} - set(files)
    return method


# ----------------------------------------------------------------------------------------------
# U-GAT-IT (the official UGATIT-pytorch checkpoint: ugatit/compat.py)


def load_ugatit(checkpoint: str | Path, device: str | torch.device = "cpu", image_size: int | None = None,
                train: TrainConfig | None = None) -> Method:
    from ugatit.compat import infer_architecture, official_to_project_states, read_official

    try:
        official = read_official(Path(checkpoint))
        architecture = infer_architecture(official, image_size)
    except (UnreadableFileError, ValueError) as error:
        raise ReleasedFileError(str(error)) from None
    method = create_method("ugatit", train=_train_config(train, architecture.image_size), device=device,
                           **architecture.ugatit_options())
    method.load_networks(official_to_project_states(official))
    return method


# ----------------------------------------------------------------------------------------------
# UNIT and MUNIT (bench/released_unit_munit.py)


def load_unit_or_munit(method: str, gen: str | Path, device: str | torch.device = "cpu", image_size: int = 256,
                       train: TrainConfig | None = None, pad_type: str = "reflect", **test_options: Any) -> Method:
    try:
        return load_gen_file(method, gen, device, _train_config(train, image_size), pad_type, **test_options)
    except GenFileError as error:
        raise ReleasedFileError(str(error)) from None


def load_released(method: str, device: str | torch.device = "cpu", **files: Any) -> Method:
    """A ready Method from the authors' files: translate works, and training may continue from it."""
    if method == "cyclegan":
        return load_cyclegan(device=device, **files)
    if method == "ugatit":
        return load_ugatit(device=device, **files)
    if method in ("unit", "munit"):
        return load_unit_or_munit(method, device=device, **files)
    raise ReleasedFileError(f"released files of {method!r} cannot be loaded yet; supported: {', '.join(SUPPORTED)}")


# ----------------------------------------------------------------------------------------------
# inspect


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Which method and architecture a file holds (read with weights_only=True)."""
    path = Path(path)
    content = load_torch_file(path, "model file")
    from ugatit.compat import infer_architecture, is_official_checkpoint

    if is_official_checkpoint(content):
        architecture = infer_architecture(content)
        return {"method": "ugatit", "format": "UGATIT-pytorch checkpoint", "width": architecture.width,
                "n_res": architecture.n_res, "light": architecture.light, "image_size": architecture.image_size}
    state = strip_data_parallel_prefix(content) if isinstance(content, dict) else content
    if isinstance(state, dict) and "model.1.weight" in state:
        return {**cyclegan_architecture(state, path), "format": "pytorch-CycleGAN-and-pix2pix generator"}
    if isinstance(state, dict) and "model.0.weight" in state and state["model.0.weight"].dim() == 4 \
            and tuple(state["model.0.weight"].shape[1:]) == (3, 4, 4):
        return {"method": "cyclegan", "format": "pytorch-CycleGAN-and-pix2pix PatchGAN discriminator (not needed to translate)"}
    if gen_file_method(content) is not None:
        try:
            return inspect_gen_file(content, path)
        except GenFileError as error:
            raise ReleasedFileError(str(error)) from None
    raise ReleasedFileError(f"{path}: not a released model this harness knows (U-GAT-IT, CycleGAN, UNIT, MUNIT); "
                            f"found {describe_content(content)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pretrained", description="Inspect a model file of the authors' code.")
    parser.add_argument("command", choices=["inspect"])
    parser.add_argument("file")
    args = parser.parse_args(argv)
    try:
        report = inspect_file(args.file)
    except (ReleasedFileError, UnreadableFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, value in report.items():
        print(f"{key}: {value}")
    if report.get("running_statistics"):
        print("note: old layout with instance-norm running statistics; loading drops them and normalises each image "
              "by its own statistics, as the authors' current code does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
