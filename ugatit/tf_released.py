"""The official TensorFlow U-GAT-IT's checkpoints (github.com/taki0112/UGATIT), the code behind the paper's
numbers and the only U-GAT-IT weights the authors released (selfie2anime, full model, 256 px).

    load_released("ugatit", checkpoint="checkpoint/UGATIT_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing")
    load_released("ugatit", checkpoint=".../UGATIT.model-1000000", discriminators=True)   # to continue training
    python -m bench.cli.released inspect PREFIX_OR_FOLDER

A checkpoint is read by safeio/tf_checkpoint.py (no TensorFlow needed) and becomes a U-GAT-IT method of
the `official_tf` preset (ugatit/networks.py), whose networks compute what the TF graph computes. Its
scopes map to this project's networks: `generator_B` (A -> B) is genA2B, `generator_A` (B -> A) is
genB2A, `discriminator_A/{global,local}` are disGA/disLA, `discriminator_B/...` disGB/disLB. Kernels are
HWIO (convolutions) and (in, out) (dense layers); they are transposed on the way in. Width, residual
blocks, light or full, the image size (full models only: the MLP's first kernel reads (size/4)^2 * 4 *
width features) and the discriminators' depths come from the tensors; the step from the prefix
(`UGATIT.model-STEP`); AdaLIN smoothing from the folder name the TF code gives (`..._smoothing`, its default).

Memory: the generators are built on PyTorch's meta device (no storage), given their memory, and filled
one tensor at a time straight from the data file, so loading holds the generators plus one tensor;
discriminators are read only with `discriminators=True` (otherwise they stay storage-less and the method
translates but cannot train); Adam slots (`*/Adam`, `*/Adam_1`, `beta*_power`) are never read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from bench.core.config import TrainConfig
from bench.core.methods import construct_method, method_class
from bench.core.released import ReleasedFileError
from safeio.tf_checkpoint import TFCheckpoint, read_step
from ugatit.options import UGATITOptions, build_networks

FORMAT = "TensorFlow U-GAT-IT checkpoint"
DEFAULT_IMAGE_SIZE = 256
GENERATOR_SCOPES = {"genA2B": "generator_B", "genB2A": "generator_A"}       # the TF code's generate_a2b / generate_b2a
DISCRIMINATOR_SCOPES = {"disGA": "discriminator_A/global", "disLA": "discriminator_A/local",
                        "disGB": "discriminator_B/global", "disLB": "discriminator_B/local"}


@dataclass(frozen=True)
class TFArchitecture:
    width: int                      # --ch
    n_res: int                      # --n_res
    light: bool                     # --light
    image_size: int
    image_size_from_tensors: bool   # False for light models: then image_size is assumed (256) or given
    smoothing: bool                 # --smoothing (from the folder name; the code's default True otherwise)
    smoothing_from_name: bool
    global_downsamplings: int       # --n_dis 6: 5
    local_downsamplings: int        # 3
    step: int | None                # the saver's global_step in the prefix

    def ugatit_options(self) -> dict[str, Any]:
        return {"preset": "official_tf", "width": self.width, "n_res": self.n_res, "light": self.light,
                "smoothing": self.smoothing}


def is_ugatit_tf(checkpoint: TFCheckpoint) -> bool:
    return all(f"{scope}/conv/conv2d/kernel" in checkpoint.entries for scope in GENERATOR_SCOPES.values())


def open_ugatit_checkpoint(path: str | Path) -> TFCheckpoint:
    checkpoint = TFCheckpoint(path)
    if not is_ugatit_tf(checkpoint):
        found = ", ".join(checkpoint.names()[:4])
        raise ReleasedFileError(f"{checkpoint.index_path}: a TensorFlow checkpoint, but not of U-GAT-IT, the only TensorFlow "
                                f"model read here (expected the scopes generator_A and generator_B; found {found}, ...)")
    return checkpoint


def infer_architecture(checkpoint: TFCheckpoint, image_size: int | None = None) -> TFArchitecture:
    scope = GENERATOR_SCOPES["genA2B"]
    names = checkpoint.entries
    width = checkpoint.shape(f"{scope}/conv/conv2d/kernel")[3]
    n_res = sum(1 for name in names if re.fullmatch(rf"{scope}/resblock_\d+/res1/conv_0/conv2d/kernel", name))
    mlp_inputs = checkpoint.shape(f"{scope}/MLP/linear_0/dense/kernel")[0]
    channels = 4 * width
    light = mlp_inputs == channels
    if light:
        size = image_size or DEFAULT_IMAGE_SIZE
    else:
        side = math.isqrt(mlp_inputs // channels)
        if side * side * channels != mlp_inputs:
            raise ReleasedFileError(f"{checkpoint.index_path}: MLP/linear_0 reads {mlp_inputs} features, not "
                                    f"(size/4)^2 * {channels}: not a U-GAT-IT generator")
        size = 4 * side
        if image_size is not None and image_size != size:
            raise ReleasedFileError(f"{checkpoint.index_path}: the full model's MLP fixes the image size at {size} px, "
                                    f"not {image_size}")
    folder = checkpoint.prefix.parent.name
    named = re.fullmatch(r"UGATIT(_light)?_.+_\d+resblock_\d+dis_.*", folder)
    smoothing = folder.endswith("_smoothing") if named else True

    def downsamplings(network: str) -> int:
        prefix = DISCRIMINATOR_SCOPES[network]
        return sum(1 for name in names if re.fullmatch(rf"{prefix}/conv_\d+/kernel", name))

    return TFArchitecture(width, n_res, light, size, not light, smoothing, bool(named),
                          downsamplings("disGA"), downsamplings("disLA"), read_step(checkpoint.prefix))


# ----------------------------------------------------------------------------------------------
# TF variable -> (project parameter, how to lay the array out)


def _conv(array: np.ndarray) -> np.ndarray:
    return array.transpose(3, 2, 0, 1)            # HWIO -> OIHW


def _dense(array: np.ndarray) -> np.ndarray:
    return array.T                                 # (in, out) -> (out, in)


def _per_channel(array: np.ndarray) -> np.ndarray:
    return array.reshape(1, -1, 1, 1)              # [C] -> 1 x C x 1 x 1 (rho, LIN gamma/beta)


def _vector(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1)                       # spectral norm's u: [1, out] -> out


def _same(array: np.ndarray) -> np.ndarray:
    return array


def generator_mapping(n_res: int) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """TF variable name (within a generator scope) -> (this project's state-dict key, layout)."""
    mapping: dict[str, tuple[str, Callable]] = {}

    def conv(tf_name: str, key: str) -> None:
        mapping[f"{tf_name}/conv2d/kernel"] = (f"{key}.weight", _conv)
        mapping[f"{tf_name}/conv2d/bias"] = (f"{key}.bias", _same)

    def norm(tf_name: str, key: str) -> None:
        mapping[f"{tf_name}/gamma"] = (f"{key}.weight", _same)
        mapping[f"{tf_name}/beta"] = (f"{key}.bias", _same)

    conv("conv", "encoder.1"), norm("ins_norm", "encoder.2")
    conv("conv_0", "encoder.5"), norm("ins_norm_0", "encoder.6")
    conv("conv_1", "encoder.9"), norm("ins_norm_1", "encoder.10")
    for i in range(n_res):
        block = f"encoder.{12 + i}.conv_block"
        conv(f"resblock_{i}/res1/conv_0", f"{block}.1"), norm(f"resblock_{i}/res1/instance_norm", f"{block}.2")
        conv(f"resblock_{i}/res2/conv_0", f"{block}.5"), norm(f"resblock_{i}/res2/instance_norm", f"{block}.6")
        for half in (1, 2):
            conv(f"adaptive_resblock{i}/res{half}/conv_0", f"decoder.{i}.conv{half}")
            mapping[f"adaptive_resblock{i}/res{half}/instance_layer_norm/rho"] = (f"decoder.{i}.norm{half}.rho", _per_channel)
    mapping["CAM_logit/kernel"] = ("attention.cam_fc.weight", _dense)
    mapping["CAM_logit/bias"] = ("attention.cam_fc.bias", _same)
    conv("conv_1x1", "attention.conv1x1")
    for tf_name, key in (("linear_0", "style.fc.0"), ("linear_1", "style.fc.2"), ("gamma", "style.gamma"), ("beta", "style.beta")):
        mapping[f"MLP/{tf_name}/dense/kernel"] = (f"{key}.weight", _dense)
        mapping[f"MLP/{tf_name}/dense/bias"] = (f"{key}.bias", _same)
    for i, (conv_index, norm_index) in enumerate(((2, 3), (7, 8))):
        conv(f"up_conv_{i}", f"upsample.{conv_index}")
        for name in ("rho", "gamma", "beta"):
            mapping[f"layer_ins_norm_{i}/{name}"] = (f"upsample.{norm_index}.{name}", _per_channel)
    conv("G_logit", "upsample.11")
    return mapping


def discriminator_mapping(downsamplings: int) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """TF variable name (within a discriminator scope) -> (this project's state-dict key, layout)."""
    mapping: dict[str, tuple[str, Callable]] = {}

    def spectral(tf_name: str, key: str, layout: Callable, bias: bool = True) -> None:
        mapping[f"{tf_name}/kernel"] = (f"{key}.parametrizations.weight.original", layout)
        mapping[f"{tf_name}/u"] = (f"{key}.parametrizations.weight.0.u", _vector)
        if bias:
            mapping[f"{tf_name}/bias"] = (f"{key}.bias", _same)

    for i in range(downsamplings):
        spectral(f"conv_{i}", f"encoder.{3 * i + 1}", _conv)
    spectral("conv_last", f"encoder.{3 * downsamplings + 1}", _conv)
    spectral("CAM_logit", "attention.cam_fc", _dense)
    mapping["conv_1x1/conv2d/kernel"] = ("attention.conv1x1.weight", _conv)
    mapping["conv_1x1/conv2d/bias"] = ("attention.conv1x1.bias", _same)
    spectral("D_logit", "classifier.1", _conv)
    return mapping


def fill_network(network: nn.Module, checkpoint: TFCheckpoint, scope: str,
                 mapping: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]], device: torch.device) -> nn.Module:
    """Give a meta-device network storage on `device` and copy every tensor of `scope` into it, one at a time."""
    network = network.to_empty(device=device)
    targets = dict(network.named_parameters())
    targets.update(network.named_buffers())
    filled = set()
    for tf_name, (key, layout) in mapping.items():
        full_name = f"{scope}/{tf_name}"
        if full_name not in checkpoint.entries:
            raise ReleasedFileError(f"{checkpoint.index_path}: no tensor {full_name}, which a U-GAT-IT of this "
                                    f"architecture has; not a checkpoint of the official TensorFlow code")
        target = targets[key]
        array = layout(checkpoint.read(full_name))
        if tuple(array.shape) != tuple(target.shape):
            raise ReleasedFileError(f"{checkpoint.index_path}: {full_name} has shape {list(array.shape)} here, "
                                    f"{list(target.shape)} expected")
        with torch.no_grad():
            target.copy_(torch.from_numpy(array))
        del array
        filled.add(key)
    missing = sorted(set(targets) - filled)
    if missing:   # a layer the official graph does not have: this mapping and the preset disagree
        raise RuntimeError(f"{scope}: no TF tensor for {missing[:4]}")
    return network


def load_tf_checkpoint(path: str | Path, device: str | torch.device = "cpu", image_size: int | None = None,
                       train: TrainConfig | None = None, discriminators: bool = False):
    """The checkpoint at `path` (a prefix or its folder) as a U-GAT-IT method of the official_tf preset."""
    from bench.core.released import train_config_for

    checkpoint = open_ugatit_checkpoint(path)
    architecture = infer_architecture(checkpoint, image_size)
    device = torch.device(device)
    cls = method_class("ugatit")
    options = UGATITOptions(**architecture.ugatit_options())
    train = train_config_for(train, architecture.image_size)
    with torch.device("meta"):
        networks = build_networks(options, architecture.image_size)
    for name, scope in GENERATOR_SCOPES.items():
        networks[name] = fill_network(networks[name], checkpoint, scope, generator_mapping(architecture.n_res), device)
    if discriminators:
        for name, scope in DISCRIMINATOR_SCOPES.items():
            depth = networks[name].downsamplings
            found = architecture.global_downsamplings if "/global" in scope else architecture.local_downsamplings
            if found != depth:
                raise ReleasedFileError(f"{checkpoint.index_path}: {scope} has {found} stride-2 layers; at "
                                        f"{architecture.image_size} px this harness builds {depth} (the TF code's --n_dis 6)")
            networks[name] = fill_network(networks[name], checkpoint, scope, discriminator_mapping(depth), device)
    method = construct_method(cls, options, train, device, networks=networks)
    method.released_step = architecture.step
    return method


def inspect_tf(path: Path) -> dict[str, Any] | None:
    """What a TensorFlow checkpoint holds (by its index: no tensor is read); None when `path` is not one."""
    from safeio.tf_checkpoint import is_tf_checkpoint

    if not is_tf_checkpoint(path):
        return None
    checkpoint = open_ugatit_checkpoint(path)
    a = infer_architecture(checkpoint)
    adam = sum(1 for name in checkpoint.entries if name.endswith(("/Adam", "/Adam_1")))
    return {"method": "ugatit", "format": FORMAT, "prefix": str(checkpoint.prefix), "step": a.step,
            "width": a.width, "n_res": a.n_res, "light": a.light,
            "image_size": a.image_size if a.image_size_from_tensors else f"{a.image_size} (assumed: a light model does not record it)",
            "smoothing": a.smoothing if a.smoothing_from_name else "True (assumed: the folder name does not say)",
            "discriminators": f"global {a.global_downsamplings} + local {a.local_downsamplings} stride-2 layers",
            "tensors": f"{len(checkpoint.entries)} ({adam} Adam slots, never read)"}
