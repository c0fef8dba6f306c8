"""U-GAT-IT's options (the YAML's `options:` of `name: ugatit`), its Table 1 names, and the six networks
they build (ugatit/networks.py; the training method that uses them is ugatit/method.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch.nn as nn

from ugatit.networks import (PAPER_GLOBAL_DOWNSAMPLINGS, PAPER_LOCAL_DOWNSAMPLINGS, PRESETS, Discriminator, Generator,
                             Preset, discriminator_downsamplings)

TABLE1_NAMES = {"in": "IN", "ln": "LN", "adain": "AdaIN", "gn": "GN"}


@dataclass(frozen=True)
class UGATITOptions:
    image_size: int | None = None          # None: train.image_size (the two must agree)
    width: int = 64                        # base channels (official --ch); 256 in the bottleneck
    n_res: int = 4                         # residual blocks in encoder and in decoder (official --n_res)
    light: bool = False                    # gamma/beta MLP reads pooled features (official --light); paper: full
    norm: Literal["adalin", "in", "ln", "adain", "gn"] = "adalin"   # decoder normalisation (Table 1)
    g_cam: bool = True                     # generator's auxiliary classifier and attention (Table 1: w/o G_CAM)
    d_cam: bool = True                     # discriminators' auxiliary classifier and attention (w/o D_CAM)
    preset: Literal["paper", "official_pytorch", "official_tf"] = "paper"
    smoothing: bool = True                 # official_tf only: the TF code's --smoothing (AdaLIN uses clip(rho - 0.1, 0, 1))
    epoch_iterations: int = 10_000         # official_tf only: the TF code's --iteration, updates per epoch (its lr steps per epoch)
    adv_weight: float = 1.0                # lambda_1, Eq. 7
    cycle_weight: float = 10.0             # lambda_2, Eq. 7
    identity_weight: float = 10.0          # lambda_3, Eq. 7
    cam_weight: float = 1000.0             # lambda_4, Eq. 7
    lr: float = 1e-4                       # Appendix B.2 (train.lr overrides it)
    weight_decay: float = 1e-4             # Appendix B.2
    amp: bool = False                      # CUDA only: bf16 autocast for the networks' forward passes
    channels_last: bool = False            # CUDA only: channels-last memory format
    compile: bool = False                  # torch.compile the six networks (minutes of compilation first)
    init_from: str | None = None           # start from the networks of a checkpoint (this harness's or the official code's)


def table1_label(options: UGATITOptions) -> str:
    """The paper's Table 1 row name of a variant."""
    label = "U-GAT-IT"
    if options.norm != "adalin":
        label += f" w/ {TABLE1_NAMES[options.norm]}"
    if not options.g_cam and not options.d_cam:
        label += " w/o CAM"
    elif not options.g_cam:
        label += " w/o G_CAM"
    elif not options.d_cam:
        label += " w/o D_CAM"
    return label


def network_preset(options: UGATITOptions) -> Preset:
    preset = PRESETS[options.preset]
    if options.preset == "official_tf" and not options.smoothing:
        preset = dataclasses.replace(preset, rho_smoothing=0.0)
    return preset


def build_networks(options: UGATITOptions, image_size: int) -> dict[str, nn.Module]:
    preset = network_preset(options)
    generator = dict(width=options.width, n_res=options.n_res, image_size=image_size, light=options.light,
                     norm=options.norm, cam=options.g_cam, preset=preset)
    global_depth = discriminator_downsamplings(image_size, PAPER_GLOBAL_DOWNSAMPLINGS)
    local_depth = discriminator_downsamplings(image_size, PAPER_LOCAL_DOWNSAMPLINGS)
    return {
        "genA2B": Generator(**generator),
        "genB2A": Generator(**generator),
        "disGA": Discriminator(options.width, global_depth, options.d_cam, preset),
        "disGB": Discriminator(options.width, global_depth, options.d_cam, preset),
        "disLA": Discriminator(options.width, local_depth, options.d_cam, preset),
        "disLB": Discriminator(options.width, local_depth, options.d_cam, preset),
    }
