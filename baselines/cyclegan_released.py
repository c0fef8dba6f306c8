"""The authors' CycleGAN generators (pytorch-CycleGAN-and-pix2pix) as a ready method:
`load_released("cyclegan", a2b=FILE, b2a=FILE)` and `pretrained: {a2b: FILE, b2a: FILE}` entries
(bench/core/released.py).

A generator file is the state dict of its `ResnetGenerator`, keys `model.<index>.weight|bias`,
residual blocks `model.<index>.conv_block.{1,5}.weight|bias`. Files saved by 2018 versions also hold
`running_mean`, `running_var` and `num_batches_tracked` of instance norms that tracked running
statistics; the authors' current code drops them and normalises each image by its own statistics,
and so does this loader (it says so). A released generator translates one direction; a direction
without a file is refused at translation.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, create_method
from bench.core.released import ReleasedFileError, register_released, train_config_for
from safeio.files import RUNNING_STATISTICS, describe_content, load_torch_file, strip_data_parallel_prefix

log = logging.getLogger("bench")


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


def _read_cyclegan(path: str | Path, content: Any = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    state = strip_data_parallel_prefix(load_torch_file(path, "CycleGAN generator file") if content is None else content)
    architecture = cyclegan_architecture(state, path)
    if architecture["running_statistics"]:
        log.info("%s: an old CycleGAN file with instance-norm running statistics; they are dropped and each image is "
                 "normalised by its own statistics, as the authors' current code does", path)
    return cyclegan_to_project(state), architecture


def inspect_cyclegan(content: Any, path: Path) -> dict[str, Any] | None:
    state = strip_data_parallel_prefix(content) if isinstance(content, dict) else content
    if isinstance(state, dict) and "model.1.weight" in state:
        return {**cyclegan_architecture(state, path), "format": "pytorch-CycleGAN-and-pix2pix generator"}
    if isinstance(state, dict) and "model.0.weight" in state and state["model.0.weight"].dim() == 4 \
            and tuple(state["model.0.weight"].shape[1:]) == (3, 4, 4):
        return {"method": "cyclegan", "format": "pytorch-CycleGAN-and-pix2pix PatchGAN discriminator (not needed to translate)"}
    return None


@register_released("cyclegan", files=("a2b", "b2a"), inspect=inspect_cyclegan)
def load_cyclegan(a2b: str | Path | None = None, b2a: str | Path | None = None, device: str | torch.device = "cpu",
                  image_size: int = 256, train: TrainConfig | None = None, content: Any = None) -> Method:
    """CycleGAN from the authors' generator files; `content`: the one given file's content, already read."""
    files = {direction: path for direction, path in (("a2b", a2b), ("b2a", b2a)) if path is not None}
    if not files:
        raise ReleasedFileError("give a2b=FILE and/or b2a=FILE (latest_net_G_A.pth translates A to B, latest_net_G_B.pth "
                                "B to A; a model-zoo latest_net_G.pth translates the direction its name says)")
    if content is not None and len(files) != 1:
        raise ReleasedFileError("content= goes with one generator file, not two")
    read = {direction: _read_cyclegan(path, content) for direction, path in files.items()}
    shapes = {(a["width"], a["n_blocks"]) for _, a in read.values()}
    if len(shapes) > 1:
        raise ReleasedFileError(f"the two generators differ in architecture: {sorted(shapes)} (width, blocks)")
    width, n_blocks = shapes.pop()
    method = create_method("cyclegan", train=train_config_for(train, image_size), device=device, width=width, n_blocks=n_blocks)
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
