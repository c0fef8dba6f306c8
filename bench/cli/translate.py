"""Translate a folder of images with any model file: one PNG per input, same file stem.

    python -m bench.cli.translate MODEL_FILE INPUT_DIR OUTPUT_DIR --direction a2b [--no-attention]
        [--style random|mean|exemplar --samples K --style-seed S --exemplars TARGET_DIR]   (MUNIT, DRIT)

MODEL_FILE is a checkpoint of any method trained by this harness (the method and its options are read
from the checkpoint), or a file of the authors' code that a released-weights loader knows (an official
UGATIT-pytorch checkpoint or TensorFlow checkpoint (prefix or folder), a CycleGAN generator, a UNIT or
MUNIT gen file: bench/core/released.py). The file is read once; PyTorch files with weights_only=True. How translations are written: bench/core/translate.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from bench.core.config import TrainConfig
from bench.core.methods import Method, construct_method, method_class
from bench.core.multimodal import MultimodalMethod, settings_problems, with_test_settings
from bench.core.released import ReleasedFileError, inspect_content, inspect_path, released_loader
from bench.core.schema import build
from bench.core.train import check_checkpoint, is_harness_checkpoint
from bench.core.translate import translate_with_method
from safeio.environment import resolve_device
from safeio.exits import run_translation_command
from safeio.files import load_torch_file


def method_from_checkpoint(content: dict[str, Any], path: Path, device: torch.device) -> tuple[Method, int, int]:
    """(the Method a harness checkpoint holds, built from the options it records, its image size, its step)."""
    checkpoint = check_checkpoint(content, path)
    identity = checkpoint.get("config") or {}
    cls = method_class(checkpoint["method"])
    options = build(cls.Options, identity.get("options") or {}, path=("options",))
    train = build(TrainConfig, identity.get("train") or {}, path=("train",))
    # The data pipeline it trained with: recorded when not the paper's (bench.harness.plan.run_identity).
    pipeline = (identity.get("data") or {}).get("pipeline", "paper")
    method = construct_method(cls, options, train, device, pipeline=pipeline)
    method.load_state_dict(checkpoint["method_state"])
    return method, train.image_size, int(checkpoint["step"])


def method_from_file(path: Path, device: torch.device, direction: str = "a2b") -> tuple[Method, int, int | None]:
    """(the Method a model file holds, its image size, its step or None for an authors' file), reading it once.
    An authors' file of one direction (a CycleGAN generator) is taken as the generator of `direction`."""
    report = inspect_path(path)   # a model that is not one PyTorch file: a TensorFlow checkpoint's prefix or folder
    if report is not None:
        method = released_loader(report["method"]).load(device=device, checkpoint=str(path))
        return method, method.train_config.image_size, report.get("step")
    content = load_torch_file(path, "model file")
    if is_harness_checkpoint(content):
        return method_from_checkpoint(content, path, device)
    report = inspect_content(content, path)   # which authors' code, or a ReleasedFileError naming the file
    loader = released_loader(report["method"])
    if loader is None or "discriminator" in report["format"]:   # nothing that translates
        raise ReleasedFileError(f"{path}: {report['format']}: not a model that translates; give the generator's file")
    key = direction if direction in loader.files else loader.files[0]
    method = loader.load(device=device, content=content, **{key: str(path)})
    return method, method.train_config.image_size, None


def apply_test_settings(method, style: str | None, samples: int | None, seed: int | None) -> None:
    """Replace a multimodal method's test-time options (command-line flags); refuse them for others."""
    if style is None and samples is None and seed is None:
        return
    if not isinstance(method, MultimodalMethod):
        raise ValueError(f"--style, --samples and --style-seed apply to multimodal methods (munit, drit); "
                         f"{method.name} has one deterministic translation per image")
    options = with_test_settings(method.options, style, samples, seed)
    problems = settings_problems(options)
    if problems:
        raise ValueError("; ".join(problems))
    method.options = options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cli.translate",
                                     description="Translate a folder of images with any checkpoint of this harness "
                                                 "or a released file of the authors' code.")
    parser.add_argument("checkpoint", help="checkpoints/latest.pt of a run, or an authors' file (*_params_*.pt, ...)")
    parser.add_argument("input_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--direction", choices=["a2b", "b2a"], default="a2b")
    parser.add_argument("--no-attention", action="store_true", help="do not draw U-GAT-IT's attention heatmaps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--skip-bad-images", action="store_true", help="leave out unreadable files instead of stopping")
    parser.add_argument("--no-progress", action="store_true")
    multimodal = parser.add_argument_group("multimodal methods (MUNIT, DRIT); default: the checkpoint's test options")
    multimodal.add_argument("--style", choices=["random", "mean", "exemplar"],
                            help="random: z ~ N(0, I) seeded by (--style-seed, image index); mean: z = 0; "
                                 "exemplar: the code of a seeded random image of --exemplars")
    multimodal.add_argument("--samples", type=int, help="translations per input image (named <stem>-k<i>.png)")
    multimodal.add_argument("--style-seed", type=int, help="base seed of the codes")
    multimodal.add_argument("--exemplars", help="the target domain's images, for --style exemplar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def translate() -> Path:
        device = resolve_device(args.device)
        method, image_size, step = method_from_file(Path(args.checkpoint), device, args.direction)
        apply_test_settings(method, args.style, args.samples, args.style_seed)
        return translate_with_method(method, args.direction, Path(args.input_dir), Path(args.output_dir), image_size,
                                     device, on_bad_image="skip" if args.skip_bad_images else "fail",
                                     progress=not args.no_progress, attention=not args.no_attention,
                                     batch_size=args.batch_size, exemplar_dir=Path(args.exemplars) if args.exemplars else None,
                                     extra_manifest={"checkpoint": str(args.checkpoint), "method": method.name,
                                                     "direction": args.direction, "step": step})

    return run_translation_command(translate)


if __name__ == "__main__":
    raise SystemExit(main())
