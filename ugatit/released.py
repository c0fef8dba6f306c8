"""The official U-GAT-IT checkpoints as a ready method: `load_released("ugatit", checkpoint=PATH)` and
`pretrained: {checkpoint: PATH}` entries (bench/core/released.py). PATH is an official UGATIT-pytorch file
(its format and mapping: ugatit/compat.py) or a checkpoint of the official TensorFlow code, the prefix
`.../UGATIT.model-STEP` or the folder holding its `checkpoint` file (ugatit/tf_released.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, create_method
from bench.core.released import ReleasedFileError, register_released, train_config_for
from safeio.files import UnreadableFileError
from safeio.tf_checkpoint import is_tf_checkpoint
from ugatit.compat import (check_official, infer_architecture, is_official_checkpoint, official_to_project_states,
                           read_official)
from ugatit.tf_released import inspect_tf, load_tf_checkpoint


def inspect_official(content: Any, path: Path) -> dict[str, Any] | None:
    if not is_official_checkpoint(content):
        return None
    architecture = infer_architecture(content)
    return {"method": "ugatit", "format": "UGATIT-pytorch checkpoint", "width": architecture.width,
            "n_res": architecture.n_res, "light": architecture.light, "image_size": architecture.image_size}


@register_released("ugatit", files=("checkpoint",), inspect=inspect_official, inspect_path=inspect_tf)
def load_ugatit(checkpoint: str | Path | None = None, device: str | torch.device = "cpu", image_size: int | None = None,
                train: TrainConfig | None = None, content: Any = None, discriminators: bool = False) -> Method:
    """The official checkpoint `checkpoint` (or its already loaded `content`) as a U-GAT-IT method. A TensorFlow
    checkpoint's discriminators are read only with `discriminators=True` (to continue training)."""
    if content is None and checkpoint is not None and is_tf_checkpoint(checkpoint):
        return load_tf_checkpoint(checkpoint, device, image_size, train, discriminators)
    try:
        official = read_official(Path(checkpoint)) if content is None else check_official(content, Path(checkpoint))
        architecture = infer_architecture(official, image_size)
    except (UnreadableFileError, ValueError) as error:
        raise ReleasedFileError(str(error)) from None
    method = create_method("ugatit", train=train_config_for(train, architecture.image_size), device=device,
                           **architecture.ugatit_options())
    method.load_networks(official_to_project_states(official))
    return method
