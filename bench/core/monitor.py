"""TensorBoard event files beside a run's own records, when the `tensorboard` package is installed
(`pip install -e ".[tensorboard]"`): losses, learning rate, rho per AdaLIN/ILN layer, seconds per
iteration and the sample sheets, in `<run folder>/tensorboard/`. `tensorboard --logdir runs/` then
shows every run of a grid side by side. Without the package nothing is written; stats.jsonl and
samples/ (which tables and plots are made from) are written either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _without_tensorflow() -> None:
    """Make TensorBoard use its own TensorFlow stub even where TensorFlow is installed: by default it imports
    TensorFlow when it can, which loads a second deep-learning runtime into the training process (seconds
    and hundreds of MB, and TensorFlow's and PyTorch's native libraries can crash each other in one
    process). An importable `tensorboard.compat.notf` is TensorBoard's own switch to the stub."""
    import sys
    import types

    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


class TensorBoardLog:
    def __init__(self, run_dir: Path, resumed_from: int | None):
        try:
            _without_tensorflow()
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:   # the optional extra is not installed
            self.writer = None
            return
        except Exception as error:  # installed but broken (a protobuf mismatch, say): never stop a training for it
            log.warning("TensorBoard event files are not written: importing tensorboard failed (%s: %s)",
                        type(error).__name__, error)
            self.writer = None
            return
        # A resumed run drops the events logged after its checkpoint, as stats.jsonl does.
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"),
                                    purge_step=resumed_from + 1 if resumed_from else None)

    def scalars(self, step: int, record: dict[str, float], losses: set[str]) -> None:
        if self.writer is None:
            return
        for name, value in record.items():
            if name == "step":
                continue
            tag = f"loss/{name}" if name in losses else "speed/seconds_per_iteration" if name == "seconds_per_iteration" else name
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, step: int, sheet: torch.Tensor) -> None:
        if self.writer is not None:
            self.writer.add_image("samples", sheet.detach().float().clamp(0, 1).cpu(), step)
            self.writer.flush()

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
