"""Translate a folder of images with a U-GAT-IT checkpoint (this harness's or either official code's).

    python -m ugatit.translate CHECKPOINT INPUT_DIR OUTPUT_DIR --direction a2b [--heatmaps]

CHECKPOINT: a run's checkpoints/latest.pt, an official UGATIT-pytorch *_params_*.pt file, or an official
TensorFlow checkpoint (its prefix `.../UGATIT.model-STEP` or the folder holding its `checkpoint` file).

One PNG per input image, with the input's file stem, at the model's image size (inputs of any size
and mode are converted to RGB and resized, as test images are). `--heatmaps` also writes the
generator's attention over each input into OUTPUT_DIR/attention/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.core.config import TrainConfig
from bench.core.schema import build
from bench.core.train import describe_checkpoint, load_checkpoint
from bench.core.translate import translate_images
from bench.core.visual import overlay
from safeio.environment import resolve_device
from safeio.exits import run_translation_command
from safeio.files import load_torch_file
from safeio.tf_checkpoint import is_tf_checkpoint
from ugatit.compat import is_official_checkpoint, load_official
from ugatit.networks import Generator
from ugatit.options import UGATITOptions, network_preset
from ugatit.tf_released import load_tf_checkpoint


def load_generator(checkpoint: str | Path, direction: str, image_size: int | None = None,
                   device: str | torch.device = "cpu") -> tuple[Generator, int, str]:
    """The generator for `direction` from a checkpoint, in eval mode, its image size and its data pipeline
    (how test images are resized: the TF code's own for its checkpoints)."""
    checkpoint = Path(checkpoint)
    if direction not in ("a2b", "b2a"):
        raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
    name = "genA2B" if direction == "a2b" else "genB2A"
    if is_tf_checkpoint(checkpoint):
        method = load_tf_checkpoint(checkpoint, device, image_size)
        return method.networks[name].eval(), method.image_size, method.data_pipeline(method.options)
    raw = load_torch_file(checkpoint, "checkpoint")
    if is_official_checkpoint(raw):
        models = load_official(checkpoint, image_size=image_size, device=device)
        return getattr(models, name), models.architecture.image_size, "paper"
    state = load_checkpoint(checkpoint)
    if state.get("method") != "ugatit":
        raise ValueError(f"{checkpoint}: a checkpoint of {describe_checkpoint(state)}, not of U-GAT-IT (ugatit)")
    config = state["config"]
    options = build(UGATITOptions, config["options"], path=("options",))
    size = options.image_size or build(TrainConfig, config["train"], path=("train",)).image_size
    if image_size is not None and image_size != size:
        raise ValueError(f"{checkpoint}: the model was trained at {size} px; --image-size {image_size} does not fit it")
    generator = Generator(options.width, options.n_res, size, options.light, options.norm, options.g_cam, network_preset(options))
    generator.load_state_dict(state["method_state"][name])
    # The data pipeline it trained with, as its run recorded it (absent: the paper's).
    return generator.to(device).eval(), size, (config.get("data") or {}).get("pipeline", "paper")


@torch.no_grad()
def translate_folder(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path, direction: str = "a2b", *,
                     heatmaps: bool = False, batch_size: int = 8, image_size: int | None = None, device: str = "auto",
                     on_bad_image: str = "fail", progress: bool = True) -> Path:
    """Translate every image in `input_dir` into `output_dir` (one PNG per input, same file stem)."""
    torch_device = resolve_device(device)
    generator, size, pipeline = load_generator(checkpoint, direction, image_size, torch_device)

    def run(images: torch.Tensor):
        output, _, heatmap = generator(images)
        return (output, overlay(images, heatmap)) if heatmaps else output

    return translate_images(run, Path(input_dir), Path(output_dir), size, torch_device, batch_size=batch_size,
                            on_bad_image=on_bad_image, progress=progress, companion_dir_name="attention" if heatmaps else None,
                            extra_manifest={"checkpoint": str(checkpoint), "direction": direction}, pipeline=pipeline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ugatit.translate", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoints/latest.pt of a run, an official *_params_*.pt file, or an "
                                           "official TF checkpoint (PREFIX of PREFIX.index, or its folder)")
    parser.add_argument("input_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--direction", choices=["a2b", "b2a"], default="a2b")
    parser.add_argument("--heatmaps", action="store_true", help="also write attention overlays to OUTPUT_DIR/attention/")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=None, help="image size of a light official model (default 256)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--skip-bad-images", action="store_true", help="leave out unreadable files instead of stopping")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    return run_translation_command(lambda: translate_folder(
        args.checkpoint, args.input_dir, args.output_dir, args.direction, heatmaps=args.heatmaps, batch_size=args.batch_size,
        image_size=args.image_size, device=args.device, on_bad_image="skip" if args.skip_bad_images else "fail",
        progress=not args.no_progress))

if __name__ == "__main__":
    sys.exit(main())
