"""Read checkpoints saved by the official UGATIT-pytorch code (github.com/znxlwm/UGATIT-pytorch).

An official checkpoint (`<dataset>_params_<step:07d>.pt` or `<dataset>_params_latest.pt`) is one dict
with the state dicts of `genA2B, genB2A, disGA, disGB, disLA, disLB` in the official module layout
(docs/ugatit.md). `load_official(path)` infers the architecture from the
tensors and returns this project's networks, built with the `official_pytorch` preset, holding
those weights; each `forward(x)` returns (output, cam_logit, heatmap) as the official networks do.

To continue training from one, or to translate with one:
    python -m ugatit.compat inspect FILE       # prints the architecture and the YAML options to use
    methods: [{name: ugatit, options: {preset: official_pytorch, light: true, width: 64, init_from: FILE}}]
    python -m ugatit.translate FILE testA/ out/ --direction a2b
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from bench.core.train import describe_checkpoint
from safeio.exits import EXIT_OK, report_error
from safeio.files import load_torch_file
from ugatit.networks import NETWORK_NAMES, PRESETS, Discriminator, Generator

DEFAULT_IMAGE_SIZE = 256   # the paper's; a light generator's tensors do not tell the image size


def is_official_checkpoint(checkpoint: Any) -> bool:
    return (isinstance(checkpoint, dict) and all(name in checkpoint for name in NETWORK_NAMES)
            and isinstance(checkpoint["genA2B"], dict) and "DownBlock.1.weight" in checkpoint["genA2B"])


# ----------------------------------------------------------------------------------------------
# Official parameter names -> this project's.

_SPECTRAL_SUFFIXES = {"weight_orig": "parametrizations.weight.original",
                      "weight_u": "parametrizations.weight.0._u",
                      "weight_v": "parametrizations.weight.0._v"}

_GENERATOR_RULES = [
    (r"^DownBlock\.", "encoder."),
    (r"^(gap_fc|gmp_fc|conv1x1)\.", r"attention.\1."),
    (r"^FC\.", "style.fc."),
    (r"^(gamma|beta)\.", r"style.\1."),
    (r"^UpBlock2\.", "upsample."),
]


def generator_key(key: str) -> str:
    match = re.match(r"^UpBlock1_(\d+)\.(.*)$", key)
    if match:
        return f"decoder.{int(match.group(1)) - 1}.{match.group(2)}"
    for pattern, replacement in _GENERATOR_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    raise KeyError(f"unexpected key {key!r} in an official generator state dict")


def discriminator_key(key: str) -> str:
    prefix, _, leaf = key.rpartition(".")
    if prefix.startswith("model."):
        prefix = "encoder." + prefix[len("model."):]
    elif prefix in ("gap_fc", "gmp_fc", "conv1x1"):
        prefix = "attention." + prefix
    elif prefix == "conv":
        prefix = "classifier.1"
    else:
        raise KeyError(f"unexpected key {key!r} in an official discriminator state dict")
    return f"{prefix}.{_SPECTRAL_SUFFIXES.get(leaf, leaf)}"


def official_to_project_states(checkpoint: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """The six state dicts renamed to this project's modules."""
    states = {}
    for name in NETWORK_NAMES:
        rename = generator_key if name.startswith("gen") else discriminator_key
        states[name] = {rename(key): value for key, value in checkpoint[name].items()}
    return states


# ----------------------------------------------------------------------------------------------
# Architecture from the tensors.


@dataclass(frozen=True)
class OfficialArchitecture:
    width: int                       # official --ch
    n_res: int                       # official --n_res
    light: bool                      # official --light
    image_size: int
    image_size_from_tensors: bool    # False for light models: then image_size is an assumption
    global_downsamplings: int        # 5 in the official code (n_layers = 7)
    local_downsamplings: int         # 3 (n_layers = 5)

    def ugatit_options(self) -> dict[str, Any]:
        """The `options:` of a `ugatit` method entry with this architecture."""
        return {"preset": "official_pytorch", "width": self.width, "n_res": self.n_res, "light": self.light}


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    return sum(1 for key in state if re.fullmatch(pattern, key))


def infer_architecture(checkpoint: dict[str, dict[str, torch.Tensor]], image_size: int | None = None) -> OfficialArchitecture:
    generator = checkpoint["genA2B"]
    width = generator["DownBlock.1.weight"].shape[0]
    n_res = _count(generator, r"DownBlock\.\d+\.conv_block\.1\.weight")
    mlp_inputs = generator["FC.0.weight"].shape[1]
    channels = 4 * width
    light = mlp_inputs == channels
    from_tensors = not light
    if light:
        size = image_size or DEFAULT_IMAGE_SIZE
    else:
        side = math.isqrt(mlp_inputs // channels)        # the MLP reads (size / 4)^2 * 4 * width features
        if side * side * channels != mlp_inputs:
            raise ValueError(f"FC.0.weight has {mlp_inputs} inputs, not (size/4)^2 * {channels}: not a U-GAT-IT generator")
        size = 4 * side
        if image_size is not None and image_size != size:
            raise ValueError(f"the checkpoint's full-mode MLP fixes the image size at {size}, not {image_size}")

    def downsamplings(name: str) -> int:
        return _count(checkpoint[name], r"model\.\d+\.weight_orig") - 1   # all stride-2 convs but the last stride-1 one

    return OfficialArchitecture(width, n_res, light, size, from_tensors, downsamplings("disGA"), downsamplings("disLA"))


# ----------------------------------------------------------------------------------------------
# Loading.


class OfficialModels(nn.Module):
    """The six networks of an official checkpoint as this project's modules (official_pytorch preset)."""

    def __init__(self, architecture: OfficialArchitecture):
        super().__init__()
        preset = PRESETS["official_pytorch"]
        a = architecture
        self.architecture = a
        self.genA2B = Generator(a.width, a.n_res, a.image_size, a.light, "adalin", True, preset)
        self.genB2A = Generator(a.width, a.n_res, a.image_size, a.light, "adalin", True, preset)
        self.disGA = Discriminator(a.width, a.global_downsamplings, True, preset)
        self.disGB = Discriminator(a.width, a.global_downsamplings, True, preset)
        self.disLA = Discriminator(a.width, a.local_downsamplings, True, preset)
        self.disLB = Discriminator(a.width, a.local_downsamplings, True, preset)


def read_official(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The file's state dicts (read with weights_only=True); a clear ValueError when it is not an official checkpoint."""
    return check_official(load_torch_file(Path(path), "UGATIT-pytorch checkpoint"), path)


def check_official(checkpoint: Any, path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """`checkpoint` (a file's content) if it is an official checkpoint; a ValueError naming `path` and what it holds."""
    if not is_official_checkpoint(checkpoint):
        if isinstance(checkpoint, dict) and checkpoint.get("format", "").startswith("ugatit-bench-checkpoint"):
            found = f"a checkpoint of this harness ({describe_checkpoint(checkpoint)}), not the official code's"
        else:
            found = f"keys {sorted(map(str, checkpoint))[:8]}" if isinstance(checkpoint, dict) else f"a {type(checkpoint).__name__}"
        raise ValueError(f"{path}: not an official UGATIT-pytorch checkpoint (expected the keys {', '.join(NETWORK_NAMES)}; "
                         f"found {found})")
    return checkpoint


def load_official(path: str | Path, image_size: int | None = None, device: str | torch.device = "cpu") -> OfficialModels:
    """Read an official UGATIT-pytorch checkpoint; the returned modules are in eval mode."""
    path = Path(path)
    checkpoint = read_official(path)
    architecture = infer_architecture(checkpoint, image_size)
    models = OfficialModels(architecture)
    for name, state in official_to_project_states(checkpoint).items():
        getattr(models, name).load_state_dict(state, strict=True)
    return models.to(device).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ugatit.compat", description="Inspect an official UGATIT-pytorch checkpoint.")
    parser.add_argument("command", choices=["inspect"])
    parser.add_argument("checkpoint")
    parser.add_argument("--image-size", type=int, default=None, help="image size of a light model (default 256)")
    args = parser.parse_args(argv)
    try:
        architecture = infer_architecture(read_official(Path(args.checkpoint)), args.image_size)
    except (OSError, ValueError, RuntimeError) as error:
        return report_error(error)
    for key, value in asdict(architecture).items():
        print(f"{key}: {value}")
    if not architecture.image_size_from_tensors:
        print(f"note: a light model does not record its image size; {architecture.image_size} is assumed")
    options = dict(architecture.ugatit_options(), init_from=str(Path(args.checkpoint)))
    print("YAML to continue training from it:")
    print(f"  methods: [{{name: ugatit, options: {{{', '.join(f'{k}: {v}' for k, v in options.items())}}}}}]")
    print(f"  train: {{image_size: {architecture.image_size}}}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
