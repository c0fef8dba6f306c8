"""The official UGATIT-pytorch checkpoint as a ready method: `load_released("ugatit", checkpoint=FILE)`
and `pretrained: {checkpoint: FILE}` entries (bench/core/released.py). The format and its mapping onto
this project's networks are ugatit/compat.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, create_method
from bench.core.released import ReleasedFileError, register_released, train_config_for
from safeio.files import UnreadableFileError
from ugatit.compat import (check_official, infer_architecture, is_official_checkpoint, official_to_project_states,
                           read_official)


def inspect_official(content: Any, path: Path) -> dict[str, Any] | None:
    if not is_official_checkpoint(content):
        return None
    architecture = infer_architecture(content)
    return {"method": "ugatit", "format": "UGATIT-pytorch checkpoint", "width": architecture.width,
            "n_res": architecture.n_res, "light": architecture.light, "image_size": architecture.image_size}


@register_released("ugatit", files=("checkpoint",), inspect=inspect_official)
def load_ugatit(checkpoint: str | Path | None = None, device: str | torch.device = "cpu", image_size: int | None = None,
                train: TrainConfig | None = None, content: Any = None) -> Method:
    """The official checkpoint `checkpoint` (or its already loaded `content`) as a U-GAT-IT method."""
    try:
        official = read_official(Path(checkpoint)) if content is None else check_official(content, Path(checkpoint))
        architecture = infer_architecture(official, image_size)
    except (UnreadableFileError, ValueError) as error:
        raise ReleasedFileError(str(error)) from None
    method = create_method("ugatit", train=train_config_for(train, architecture.image_size), device=device,
                           **architecture.ugatit_options())
    method.load_networks(official_to_project_states(official))
    return method
